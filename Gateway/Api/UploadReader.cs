using System.Buffers;

namespace Classifier.Gateway.Api;

/// <summary>
/// Reads one request's images within the gateway's upload budget and the body's deadline.
/// </summary>
/// <remarks>
/// <para>
/// A body whose length is declared reserves what it will cost before a byte is read (<see cref="Prepay"/>): the
/// request is admitted whole or refused at once with 503. Reserving as bytes arrive instead let forty clients each
/// hold a part of the budget with none able to finish (measured: 2 of 1 192 uploads of 9 MB completed in 20 s).
/// A reservation is not an allocation: bytes are still read in pooled chunks as they arrive and copied once into
/// an array of exactly the image's size, so nothing is allocated from what a client merely claims. A declared
/// body must arrive at <see cref="GatewayOptions.MinUploadBytesPerSecond"/> on average, so a slow client holds its
/// reservation only as long as a client of that speed would.
/// </para>
/// <para>A body without a declared length (chunked) reserves its chunks as they arrive.</para>
/// </remarks>
public sealed class UploadReader : IDisposable
{
    /// <summary>Bytes read from the body at a time; also the size below which an image is read straight into its final array.</summary>
    public const int ChunkSize = 64 * 1024;

    /// <summary>Seconds a client refused for a full upload budget is asked to wait: uploads in flight finish in about that.</summary>
    public const int BusyRetryAfterSeconds = 1;

    /// <summary>Time any declared body gets before its average rate is held against it.</summary>
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    private readonly UploadBudget.Reservation _reservation;
    private readonly CancellationToken _aborted;
    private readonly GatewayOptions _options;
    private readonly long _started = System.Diagnostics.Stopwatch.GetTimestamp();
    private CancellationTokenSource? _deadline;
    private TimeSpan _allowed;
    private bool _prepaid;

    public UploadReader(HttpContext context, UploadBudget budget, GatewayOptions options)
    {
        _reservation = budget.Open(context);
        _aborted = context.RequestAborted;
        _options = options;
        _allowed = options.BodyTimeout;
        context.Response.RegisterForDispose(this);
    }

    /// <summary>
    /// What an image of <paramref name="length"/> bytes costs the gateway from the moment it is read until its request
    /// ends: its array, and what Orleans needs to send it. Orleans serializes a message into a private buffer and then
    /// asks its connection's pipe for one span of the whole size, which beyond 4 KiB comes from the shared array pool
    /// as the next power of two (a 9 MB image: a 16 MiB array). Measured under a 512 MiB limit: counting only twice
    /// the size let a flood of 9 MB uploads exhaust the heap.
    /// </summary>
    public static long HoldingCost(long length) => length + SendCost(length);

    /// <summary>The part of <see cref="HoldingCost"/> that sending the image to a silo adds.</summary>
    public static long SendCost(long length) =>
        length <= ChunkSize ? length : 2 * (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)length);

    /// <summary>
    /// Fires when the client leaves or the body's deadline passes. Made on first use: a small image's body has
    /// usually arrived with its headers and is read without one (Kestrel's minimum data rate still applies).
    /// </summary>
    public CancellationToken Token
    {
        get
        {
            if (_deadline is null)
            {
                _deadline = CancellationTokenSource.CreateLinkedTokenSource(_aborted);
                _deadline.CancelAfter(_allowed - System.Diagnostics.Stopwatch.GetElapsedTime(_started));
            }

            return _deadline.Token;
        }
    }

    /// <summary>True when <see cref="Token"/> fired because the body took too long, not because the client left.</summary>
    public bool TimedOut => _deadline is { IsCancellationRequested: true } && !_aborted.IsCancellationRequested;

    /// <summary>
    /// Reserves <paramref name="bytes"/> for a body of <paramref name="declaredLength"/> before reading it, and gives
    /// the body the time a client at <see cref="GatewayOptions.MinUploadBytesPerSecond"/> would need; false when the
    /// gateway has no room (the caller answers <see cref="BusyProblem"/>).
    /// </summary>
    public bool Prepay(long declaredLength, long bytes)
    {
        if (!_reservation.TryAdd(bytes))
        {
            return false;
        }

        _prepaid = true;
        if (_options.MinUploadBytesPerSecond > 0)
        {
            var needed = Grace + TimeSpan.FromSeconds((double)declaredLength / _options.MinUploadBytesPerSecond);
            if (needed < _allowed)
            {
                _allowed = needed;
                _deadline?.CancelAfter(needed - System.Diagnostics.Stopwatch.GetElapsedTime(_started));
            }
        }

        return true;
    }

    /// <summary>Reserves what sending one image of a batch costs; false when the gateway has no room for it now.</summary>
    public bool ReserveSend(long length) => _reservation.TryAdd(SendCost(length));

    public Upload TimeoutProblem(string? fileName) => Upload.Fail(StatusCodes.Status408RequestTimeout, _allowed < _options.BodyTimeout
        ? $"The request body did not arrive within {_allowed.TotalSeconds:0} s, the time its size allows at Gateway:MinUploadBytesPerSecond ({_options.MinUploadBytesPerSecond} bytes/s); use a faster connection or send smaller images."
        : $"The request body did not arrive within {_allowed.TotalSeconds:0} s (Gateway:BodyTimeout); send smaller images or use a faster connection.", fileName);

    /// <summary>The answer for a body Kestrel itself refused: too large, too slow (under Gateway:MinBodyBytesPerSecond) or malformed.</summary>
    public static Upload Unreadable(BadHttpRequestException e) => Upload.Fail(e.StatusCode, e.StatusCode switch
    {
        StatusCodes.Status413PayloadTooLarge => "The request body is larger than this endpoint accepts; send fewer or smaller images.",
        StatusCodes.Status408RequestTimeout => "The request body arrived too slowly (under Gateway:MinBodyBytesPerSecond); retry on a faster connection.",
        _ => "The request body could not be read (malformed chunked encoding or a body shorter than its Content-Length); let your HTTP client frame the request.",
    });

    public Upload BusyProblem(string? fileName) => Upload.Fail(StatusCodes.Status503ServiceUnavailable,
        $"The gateway is receiving as many uploads as its memory allows (Gateway:MaxUploadBytesInFlight); retry in {BusyRetryAfterSeconds} s.", fileName);

    /// <summary>
    /// Reads one image of at most <paramref name="maxBytes"/> from <paramref name="body"/>. A prepaid body reads within
    /// its reservation; otherwise its chunks, then <see cref="HoldingCost"/>, are reserved as it arrives.
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
        if (!_prepaid && !_reservation.TryAdd(HoldingCost(length)))
        {
            return BusyProblem(fileName);
        }

        var bytes = GC.AllocateUninitializedArray<byte>(length);
        var filled = 0;
        int read;
        while (filled < length && (read = await body.ReadAsync(bytes.AsMemory(filled), filled == 0 ? _aborted : Token)) > 0)
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
                if (!_prepaid && !_reservation.TryAdd(ChunkSize))
                {
                    return BusyProblem(fileName);
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

            if (!_prepaid && !_reservation.TryAdd(HoldingCost(total)))
            {
                return BusyProblem(fileName);
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

            if (!_prepaid)
            {
                _reservation.Remove((long)chunks.Count * ChunkSize);
            }
        }
    }

    public void Dispose() => _deadline?.Dispose();
}
