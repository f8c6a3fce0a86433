using System.Buffers;

namespace Classifier.Gateway.Api;

/// <summary>
/// Reads one request's images within the gateway's upload budget and the body deadline. Bytes are reserved as
/// they arrive, in pooled chunks, and copied once into an array of exactly the image's size (the form a grain
/// call carries); a claimed Content-Length allocates nothing ahead of the data, except for a small image (up to
/// one chunk) that is read straight into its final array.
/// </summary>
public sealed class UploadReader : IDisposable
{
    /// <summary>Bytes read from the body at a time; also the size below which an image with a Content-Length is read in place.</summary>
    public const int ChunkSize = 64 * 1024;

    /// <summary>Seconds a client refused for a full upload budget is asked to wait: uploads in flight finish in about that.</summary>
    public const int BusyRetryAfterSeconds = 1;

    private readonly UploadBudget.Reservation _reservation;
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationToken _aborted;
    private readonly TimeSpan _bodyTimeout;

    public UploadReader(HttpContext context, UploadBudget budget, TimeSpan bodyTimeout)
    {
        _reservation = budget.Open(context);
        _aborted = context.RequestAborted;
        _bodyTimeout = bodyTimeout;
        _deadline = CancellationTokenSource.CreateLinkedTokenSource(_aborted);
        _deadline.CancelAfter(bodyTimeout);
        context.Response.RegisterForDispose(this);
    }

    /// <summary>Fires when the client leaves or the body deadline passes.</summary>
    public CancellationToken Token => _deadline.Token;

    /// <summary>True when <see cref="Token"/> fired because the body took too long, not because the client left.</summary>
    public bool TimedOut => _deadline.IsCancellationRequested && !_aborted.IsCancellationRequested;

    public Upload TimeoutProblem(string? fileName) => Upload.Fail(StatusCodes.Status408RequestTimeout,
        $"The request body did not arrive within {_bodyTimeout.TotalSeconds:0} s (Gateway:BodyTimeout); send smaller images or use a faster connection.", fileName);

    /// <summary>The answer for a body Kestrel itself refused: too large, too slow (under Gateway:MinBodyBytesPerSecond) or malformed.</summary>
    public static Upload Unreadable(BadHttpRequestException e) => Upload.Fail(e.StatusCode, e.StatusCode switch
    {
        StatusCodes.Status413PayloadTooLarge => "The request body is larger than this endpoint accepts; send fewer or smaller images.",
        StatusCodes.Status408RequestTimeout => "The request body arrived too slowly (under Gateway:MinBodyBytesPerSecond); retry on a faster connection.",
        _ => "The request body could not be read (malformed chunked encoding or a body shorter than its Content-Length); let your HTTP client frame the request.",
    });

    private static Upload Busy(string? fileName) => Upload.Fail(StatusCodes.Status503ServiceUnavailable,
        $"The gateway is receiving as many uploads as its memory allows (Gateway:MaxUploadBytesInFlight); retry in {BusyRetryAfterSeconds} s.", fileName);

    /// <summary>
    /// Reads one image of at most <paramref name="maxBytes"/> from <paramref name="body"/>. The image then holds
    /// twice its size of the budget until the request ends: its array and the copy Orleans serializes to the silo.
    /// </summary>
    public async Task<Upload> ReadAsync(Stream body, long maxBytes, string? fileName, long? contentLength)
    {
        try
        {
            return contentLength is { } length and > 0 and <= ChunkSize
                ? await ReadSmallAsync(body, (int)length, fileName)
                : await ReadChunkedAsync(body, maxBytes, fileName);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ImageUploads.TooLarge(null, maxBytes, fileName);
        }
        catch (BadHttpRequestException e)
        {
            return Unreadable(e);
        }
        catch (OperationCanceledException) when (TimedOut)
        {
            return TimeoutProblem(fileName);
        }
    }

    private async Task<Upload> ReadSmallAsync(Stream body, int length, string? fileName)
    {
        if (!_reservation.TryAdd(2L * length))
        {
            return Busy(fileName);
        }

        var bytes = GC.AllocateUninitializedArray<byte>(length);
        var filled = 0;
        int read;
        while (filled < length && (read = await body.ReadAsync(bytes.AsMemory(filled), Token)) > 0)
        {
            filled += read;
        }

        // Kestrel ends a body that falls short of its Content-Length with a 400 of its own; never hand on a partial image.
        return filled == length
            ? new Upload(fileName, bytes)
            : Upload.Fail(StatusCodes.Status400BadRequest, "The request body ended before its Content-Length; send the whole file.", fileName);
    }

    private async Task<Upload> ReadChunkedAsync(Stream body, long maxBytes, string? fileName)
    {
        var chunks = new List<byte[]>();
        long total = 0;
        try
        {
            while (true)
            {
                if (!_reservation.TryAdd(ChunkSize))
                {
                    return Busy(fileName);
                }

                var chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
                chunks.Add(chunk);
                var filled = 0;
                int read;
                while (filled < ChunkSize && (read = await body.ReadAsync(chunk.AsMemory(filled, ChunkSize - filled), Token)) > 0)
                {
                    filled += read;
                }

                total += filled;
                if (total > maxBytes)
                {
                    return ImageUploads.TooLarge(null, maxBytes, fileName);
                }

                if (filled < ChunkSize)
                {
                    break;
                }
            }

            if (total == 0)
            {
                return Upload.Fail(StatusCodes.Status400BadRequest, "The image is empty (0 bytes); send the file's contents.", fileName);
            }

            if (!_reservation.TryAdd(2 * total))
            {
                return Busy(fileName);
            }

            var bytes = GC.AllocateUninitializedArray<byte>((int)total);
            var at = 0;
            foreach (var chunk in chunks)
            {
                var n = (int)Math.Min(ChunkSize, total - at);
                chunk.AsSpan(0, n).CopyTo(bytes.AsSpan(at));
                at += n;
            }

            return new Upload(fileName, bytes);
        }
        finally
        {
            foreach (var chunk in chunks)
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }

            _reservation.Remove((long)chunks.Count * ChunkSize);
        }
    }

    public void Dispose() => _deadline.Dispose();
}
