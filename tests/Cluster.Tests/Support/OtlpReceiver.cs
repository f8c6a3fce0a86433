using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Classifier.Tests.Support;

/// <summary>One span as an OTLP exporter sent it.</summary>
public sealed record ReceivedSpan(string Service, string Scope, string Name, string TraceId, string SpanId, string ParentSpanId);

/// <summary>
/// A minimal OTLP/HTTP trace receiver on loopback: accepts <c>POST /v1/traces</c> in protobuf and keeps
/// the spans. It decodes only the fields the tests need, straight from the protobuf wire format.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app, string url)
    {
        _app = app;
        Url = url;
    }

    public string Url { get; }

    public ConcurrentBag<ReceivedSpan> Spans { get; } = [];

    public static async Task<OtlpReceiver> StartAsync()
    {
        var port = ClusterProcess.FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new OtlpReceiver(app, $"http://127.0.0.1:{port}");
        app.MapPost("/v1/traces", async (HttpRequest request) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            foreach (var span in ExportTraceServiceRequest(body.ToArray()))
            {
                receiver.Spans.Add(span);
            }

            return Results.Bytes([], "application/x-protobuf");
        });
        await app.StartAsync();
        return receiver;
    }

    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    private static IEnumerable<ReceivedSpan> ExportTraceServiceRequest(byte[] message)
    {
        foreach (var (field, value) in Fields(message))
        {
            if (field == 1)
            {
                foreach (var span in ResourceSpans(value))
                {
                    yield return span;
                }
            }
        }
    }

    // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
    // Resource { repeated KeyValue attributes = 1; }   KeyValue { string key = 1; AnyValue value = 2; }   AnyValue { string string_value = 1; }
    private static IEnumerable<ReceivedSpan> ResourceSpans(byte[] message)
    {
        var service = "";
        var scopes = new List<byte[]>();
        foreach (var (field, value) in Fields(message))
        {
            if (field == 1)
            {
                foreach (var (attributeField, keyValue) in Fields(value))
                {
                    if (attributeField != 1)
                    {
                        continue;
                    }

                    var parts = Fields(keyValue).ToDictionary(f => f.Field, f => f.Value);
                    if (parts.TryGetValue(1, out var key) && Encoding.UTF8.GetString(key) == "service.name" && parts.TryGetValue(2, out var any))
                    {
                        service = Encoding.UTF8.GetString(Fields(any).First(f => f.Field == 1).Value);
                    }
                }
            }
            else if (field == 2)
            {
                scopes.Add(value);
            }
        }

        // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }   InstrumentationScope { string name = 1; }
        // Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; }
        foreach (var scopeSpans in scopes)
        {
            var scope = "";
            foreach (var (field, value) in Fields(scopeSpans))
            {
                if (field == 1)
                {
                    scope = Fields(value).Where(f => f.Field == 1).Select(f => Encoding.UTF8.GetString(f.Value)).FirstOrDefault() ?? "";
                }
                else if (field == 2)
                {
                    var span = Fields(value).GroupBy(f => f.Field).ToDictionary(g => g.Key, g => g.First().Value);
                    yield return new ReceivedSpan(
                        service,
                        scope,
                        span.TryGetValue(5, out var name) ? Encoding.UTF8.GetString(name) : "",
                        span.TryGetValue(1, out var trace) ? Convert.ToHexStringLower(trace) : "",
                        span.TryGetValue(2, out var id) ? Convert.ToHexStringLower(id) : "",
                        span.TryGetValue(4, out var parent) ? Convert.ToHexStringLower(parent) : "");
                }
            }
        }
    }

    /// <summary>The length-delimited fields of a protobuf message (other wire types are skipped).</summary>
    private static IEnumerable<(int Field, byte[] Value)> Fields(byte[] message)
    {
        var fields = new List<(int, byte[])>();
        var at = 0;
        while (at < message.Length)
        {
            var tag = Varint(message, ref at);
            var field = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0:
                    Varint(message, ref at);
                    break;
                case 1:
                    at += 8;
                    break;
                case 2:
                    var length = (int)Varint(message, ref at);
                    fields.Add((field, message[at..(at + length)]));
                    at += length;
                    break;
                case 5:
                    at += 4;
                    break;
                default:
                    throw new InvalidDataException($"unsupported protobuf wire type in tag {tag}");
            }
        }

        return fields;
    }

    private static ulong Varint(byte[] data, ref int at)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = data[at++];
            value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
