using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace Classifier.Gateway.Api;

/// <summary>One uploaded image, or the problem with it.</summary>
public sealed record Upload(string? FileName, byte[]? Bytes, int Status = 200, string? Problem = null)
{
    public static Upload Fail(int status, string problem, string? fileName = null) => new(fileName, null, status, problem);
}

/// <summary>Reads images from request bodies without buffering more than the configured limits (the framing; <see cref="UploadReader"/> holds the bytes).</summary>
public static class ImageUploads
{
    private const string FieldName = "image";

    /// <summary>Reads the single image of <c>POST /predict</c>: a raw <c>image/*</c> body, or the <c>image</c> field of a multipart form.</summary>
    public static async Task<Upload> ReadSingleAsync(HttpRequest request, long maxBytes, UploadReader reader)
    {
        SetBodyLimit(request, maxBytes + 64 * 1024); // room for multipart framing around one image
        if (IsMultipart(request, out var boundary, out var problem))
        {
            if (request.ContentLength is { } formLength && !reader.Prepay(formLength, UploadReader.HoldingCost(Math.Min(formLength, maxBytes + 64 * 1024))))
            {
                return reader.BusyProblem(null);
            }

            var found = await ReadPartsAsync(request, boundary, maxBytes, maxParts: 1, onlyField: FieldName, reader);
            if (found.Problem is not null)
            {
                return found.Problem;
            }

            return found.Parts.Count == 0
                ? Upload.Fail(StatusCodes.Status400BadRequest, $"The multipart form has no '{FieldName}' field; send the file as -F {FieldName}=@photo.jpg.")
                : found.Parts[0];
        }

        if (problem is not null)
        {
            return problem;
        }

        if (!IsImageType(request.ContentType))
        {
            return Upload.Fail(StatusCodes.Status415UnsupportedMediaType,
                $"Content-Type '{Echo.Of(request.ContentType ?? "(none)")}' is not accepted; send the image as the raw body with an image/* type (e.g. image/png), or as multipart/form-data with an '{FieldName}' field.");
        }

        if (request.ContentLength > maxBytes)
        {
            return TooLarge(request.ContentLength.Value, maxBytes);
        }

        if (request.ContentLength is { } length && !reader.Prepay(length, UploadReader.HoldingCost(length)))
        {
            return reader.BusyProblem(null); // refused before a byte of the body is read
        }

        return await reader.ReadAsync(request.Body, maxBytes, null, request.ContentLength);
    }

    /// <summary>Reads every file part of a multipart <c>POST /predict/batch</c>, in order.</summary>
    public static async Task<(List<Upload> Parts, Upload? Problem)> ReadBatchAsync(HttpRequest request, long maxImageBytes, long maxBodyBytes, int maxImages, UploadReader reader)
    {
        SetBodyLimit(request, maxBodyBytes);
        if (!IsMultipart(request, out var boundary, out var problem))
        {
            return ([], problem ?? Upload.Fail(StatusCodes.Status415UnsupportedMediaType,
                $"Content-Type '{Echo.Of(request.ContentType ?? "(none)")}' is not accepted here; send multipart/form-data with one file part per image (-F image=@a.jpg -F image=@b.jpg)."));
        }

        if (request.ContentLength > maxBodyBytes)
        {
            return ([], TooLarge(request.ContentLength.Value, maxBodyBytes));
        }

        // The parts' arrays, and their chunks while they arrive; what sending each costs is reserved per image (UploadReader.ReserveSend).
        if (request.ContentLength is { } length && !reader.Prepay(length, 2 * length))
        {
            return ([], reader.BusyProblem(null));
        }

        var found = await ReadPartsAsync(request, boundary, maxImageBytes, maxImages, onlyField: null, reader);
        if (found.Problem is null && found.Parts.Count == 0)
        {
            return ([], Upload.Fail(StatusCodes.Status400BadRequest, "The multipart form holds no file; send one file part per image."));
        }

        return found;
    }

    public static void SetBodyLimit(HttpRequest request, long limit)
    {
        var feature = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false })
        {
            feature.MaxRequestBodySize = limit;
        }
    }

    private static bool IsMultipart(HttpRequest request, out string boundary, out Upload? problem)
    {
        boundary = "";
        problem = null;
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var type) || !type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        boundary = HeaderUtilities.RemoveQuotes(type.Boundary).Value ?? "";
        if (boundary.Length is 0 or > 200)
        {
            problem = Upload.Fail(StatusCodes.Status400BadRequest, "The multipart/form-data Content-Type has no valid boundary parameter.");
            return false;
        }

        return true;
    }

    private static bool IsImageType(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var type)
        && (type.MediaType.StartsWith("image/", StringComparison.OrdinalIgnoreCase)
            || type.MediaType.Equals("application/octet-stream", StringComparison.OrdinalIgnoreCase));

    private static async Task<(List<Upload> Parts, Upload? Problem)> ReadPartsAsync(
        HttpRequest request, string boundary, long maxBytes, int maxParts, string? onlyField, UploadReader uploads)
    {
        var parts = new List<Upload>();
        var reader = new MultipartReader(boundary, request.Body) { HeadersLengthLimit = 16 * 1024 };
        try
        {
            while (await reader.ReadNextSectionAsync(uploads.Token) is { } section)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition) || !disposition.IsFileDisposition() && onlyField is null)
                {
                    continue; // plain form fields are not images
                }

                var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value;
                if (onlyField is not null && !string.Equals(name, onlyField, StringComparison.Ordinal))
                {
                    continue;
                }

                var fileName = Echo.FileName(HeaderUtilities.RemoveQuotes(disposition.FileName).Value);
                if (parts.Count == maxParts)
                {
                    return (parts, Upload.Fail(StatusCodes.Status400BadRequest, $"At most {maxParts} image(s) per request; split the batch."));
                }

                if (section.ContentType is not null && !IsImageType(section.ContentType))
                {
                    parts.Add(Upload.Fail(StatusCodes.Status415UnsupportedMediaType, $"Part '{Echo.Of(fileName ?? name)}' has Content-Type '{Echo.Of(section.ContentType)}'; image parts must be image/* or application/octet-stream.", fileName));
                    continue;
                }

                var upload = await uploads.ReadAsync(section.Body, maxBytes, fileName, null);
                if (upload.Status is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status408RequestTimeout
                    || (upload.Status == StatusCodes.Status413PayloadTooLarge && onlyField is not null))
                {
                    return (parts, upload); // the rest of the body is not read
                }

                parts.Add(upload);
                if (onlyField is not null)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException && e is not BadHttpRequestException)
        {
            // The reader's own message stays out: exception texts are not for anonymous clients.
            return (parts, Upload.Fail(StatusCodes.Status400BadRequest, "The multipart body is malformed (its boundaries or part headers do not parse, or it ends early); let your HTTP client build the form (curl -F image=@photo.jpg)."));
        }
        catch (BadHttpRequestException e)
        {
            return (parts, UploadReader.Unreadable(e));
        }
        catch (OperationCanceledException) when (uploads.TimedOut)
        {
            return (parts, uploads.TimeoutProblem(null));
        }

        return (parts, null);
    }

    internal static Upload TooLarge(long? actual, long maxBytes, string? fileName = null) => Upload.Fail(
        StatusCodes.Status413PayloadTooLarge,
        $"The image is {(actual is { } a ? $"{a:N0} bytes" : "larger than the limit")}; at most {maxBytes:N0} bytes are accepted (Gateway:MaxImageBytes). Downscale or recompress it.",
        fileName);
}
