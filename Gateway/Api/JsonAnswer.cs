using System.Buffers;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Metadata;

namespace Classifier.Gateway.Api;

/// <summary>
/// A 200 answer serialized in one synchronous pass into a reused per-thread buffer, then copied into the
/// response with its <c>Content-Length</c>. <c>TypedResults.Ok</c> serializes through the resumable async path
/// (a write stack per object, the body sent chunked); on the cache-hit path, where the answer is all the work
/// left, that was the largest single cost after the socket (issue 17). Same bytes, same content type.
/// </summary>
public sealed class JsonAnswer<T>(T value, JsonTypeInfo<T> typeInfo) : IResult, IStatusCodeHttpResult, IValueHttpResult<T>, IValueHttpResult, IContentTypeHttpResult, IEndpointMetadataProvider
{
    private const string JsonContentType = "application/json; charset=utf-8";

    public T Value => value;

    object? IValueHttpResult.Value => value;

    public int? StatusCode => StatusCodes.Status200OK;

    public string ContentType => JsonContentType;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = JsonContentType;
        JsonAnswerBuffer.Write(response, value, typeInfo);

        // Copied into the response's pipe already: the flush sends headers and body together, and also reaches a
        // body stream a middleware may have put in Kestrel's place.
        var flush = response.BodyWriter.FlushAsync(httpContext.RequestAborted);
        return flush.IsCompletedSuccessfully ? Task.CompletedTask : flush.AsTask();
    }

    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(T), [JsonContentType]));
}

/// <summary>The per-thread buffer and writer <see cref="JsonAnswer{T}"/> serializes into; nothing awaits while they are in use.</summary>
internal static class JsonAnswerBuffer
{
    /// <summary>A buffer grown past this (a large batch answer) is not kept for the thread's next answer.</summary>
    private const int KeepBytes = 64 * 1024;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    public static void Write<T>(HttpResponse response, T value, JsonTypeInfo<T> typeInfo)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        var writer = t_writer ??= new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true });
        try
        {
            writer.Reset(buffer);
            JsonSerializer.Serialize(writer, value, typeInfo);
            writer.Flush();
            response.ContentLength = buffer.WrittenCount;
            response.BodyWriter.Write(buffer.WrittenSpan);
        }
        finally
        {
            if (buffer.Capacity > KeepBytes)
            {
                t_buffer = null;
                writer.Reset(Stream.Null); // let go of the large buffer
            }
            else
            {
                buffer.ResetWrittenCount();
            }
        }
    }
}
