using System.Net.Http.Headers;
using System.Text.Json;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;

namespace Classifier.Tests.Observability;

/// <summary>A silo and a gateway exporting traces over OTLP/HTTP to a receiver in the test, with the gateway's access log on.</summary>
public sealed class TracedClusterFixture : IAsyncLifetime
{
    private readonly ProcessGroup _processes = new();

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

    public OtlpReceiver Receiver { get; private set; } = null!;

    public string GatewayUrl { get; private set; } = "";

    public ClusterProcess Gateway { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        Receiver = await OtlpReceiver.StartAsync();
        var clusterId = "trace-" + Guid.NewGuid().ToString("N")[..8];
        var (siloHttp, siloPort, siloGateway, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        string[] tracing = ["--Tracing:OtlpEndpoint", Receiver.Url, "--Tracing:Protocol", "http/protobuf"];
        var silo = _processes.Track(ClusterProcess.StartSilo("traced-silo", siloHttp, siloPort, siloGateway, siloPort, clusterId, Repo.Models, tracing));
        Gateway = _processes.Track(ClusterProcess.StartGateway("traced-gateway", gatewayHttp, [siloGateway], clusterId,
            [.. tracing, "--Logging:LogLevel:Classifier.Gateway.AccessLog", "Debug"]));
        GatewayUrl = $"http://127.0.0.1:{gatewayHttp}";
        await silo.WaitUntilOkAsync(Http, $"http://127.0.0.1:{siloHttp}/readyz", TimeSpan.FromSeconds(60));
        await Gateway.WaitUntilOkAsync(Http, GatewayUrl + "/readyz", TimeSpan.FromSeconds(60));
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();

        await Receiver.DisposeAsync();
        Http.Dispose();
    }
}

public sealed class TracingTests(TracedClusterFixture cluster) : IClassFixture<TracedClusterFixture>
{
    private async Task<string> PredictWithTraceAsync(byte[] image)
    {
        var traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        using var request = new HttpRequestMessage(HttpMethod.Post, cluster.GatewayUrl + "/predict") { Content = HttpHelpers.Raw(image, "image/png") };
        request.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.NextInt64()))}-01");
        using var response = await cluster.Http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return traceId;
    }

    private async Task<List<ReceivedSpan>> SpansOfAsync(string traceId, Func<List<ReceivedSpan>, bool> complete)
    {
        for (var i = 0; i < 100; i++)
        {
            var spans = cluster.Receiver.Spans.Where(s => s.TraceId == traceId).ToList();
            if (complete(spans))
            {
                return spans;
            }

            await Task.Delay(200); // exporters batch for up to 5 s
        }

        return cluster.Receiver.Spans.Where(s => s.TraceId == traceId).ToList();
    }

    [Fact]
    public async Task OneRequestYieldsOneTraceWithGatewayGrainAndInferenceSpans()
    {
        var traceId = await PredictWithTraceAsync(TextImages.Render("traced request"));

        var spans = await SpansOfAsync(traceId, s => s.Any(x => x.Name == "inference") && s.Any(x => x.Service == "classifier-gateway" && x.Scope.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal)));

        var all = string.Join("\n", spans.Select(s => $"{s.Service} {s.Scope} '{s.Name}' {s.SpanId} <- {s.ParentSpanId}"));
        var gateway = Assert.Single(spans, s => s.Service == "classifier-gateway" && s.Scope.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal));
        var grainServer = Assert.Single(spans, s => s.Service == "classifier-silo" && s.Scope == "Microsoft.Orleans.Application" && s.Name.Contains("Predict", StringComparison.Ordinal));
        var inference = Assert.Single(spans, s => s.Service == "classifier-silo" && s.Name == "inference");
        Assert.Single(spans, s => s.Service == "classifier-silo" && s.Name == "preprocess");

        // inference -> ... -> grain call -> ... -> gateway request: one unbroken chain of parents.
        var byId = spans.ToDictionary(s => s.SpanId);
        var chain = new List<ReceivedSpan>();
        for (var at = inference; at is not null; at = byId.GetValueOrDefault(at.ParentSpanId))
        {
            chain.Add(at);
        }

        Assert.Contains(grainServer, chain);
        Assert.True(chain.Contains(gateway), $"inference is not under the gateway span:\n{all}");
    }

    [Fact]
    public async Task CacheHitsHaveNoInferenceSpan()
    {
        var image = TextImages.Render("traced twice");
        await PredictWithTraceAsync(image);

        var traceId = await PredictWithTraceAsync(image);
        var spans = await SpansOfAsync(traceId, s => s.Any(x => x.Service == "classifier-silo"));

        Assert.Contains(spans, s => s.Service == "classifier-silo");
        Assert.DoesNotContain(spans, s => s.Name is "inference" or "preprocess");
    }

    [Fact]
    public async Task GatewayLogLinesAreJsonCarryingTheTraceId()
    {
        var traceId = await PredictWithTraceAsync(TextImages.Render("logged request"));

        JsonElement? line = null;
        for (var i = 0; i < 50 && line is null; i++)
        {
            line = cluster.Gateway.Output.Split('\n')
                .Where(l => l.StartsWith('{') && l.Contains(traceId, StringComparison.Ordinal))
                .Select(l => (JsonElement?)JsonDocument.Parse(l).RootElement.Clone())
                .FirstOrDefault();
            await Task.Delay(100);
        }

        Assert.True(line is not null, "no JSON log line carries the trace id:\n" + cluster.Gateway.Output[^Math.Min(2000, cluster.Gateway.Output.Length)..]);
        Assert.Equal("Classifier.Gateway.AccessLog", line.Value.GetProperty("Category").GetString());
        Assert.Contains(line.Value.GetProperty("Scopes").EnumerateArray(), s => s.TryGetProperty("TraceId", out var t) && t.GetString() == traceId);
    }

    [Fact]
    public async Task LatencyHistogramsCarryTraceExemplarsInOpenMetrics()
    {
        var traceId = await PredictWithTraceAsync(TextImages.Render("exemplar request"));

        using var request = new HttpRequestMessage(HttpMethod.Get, cluster.GatewayUrl + "/metrics");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/openmetrics-text"));
        using var response = await cluster.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Contains($"trace_id=\"{traceId}\"", text, StringComparison.Ordinal);
        Assert.Contains(text.Split('\n'), l => l.StartsWith("http_request_duration_seconds_bucket{endpoint=\"/predict\"", StringComparison.Ordinal) && l.Contains(traceId, StringComparison.Ordinal));
    }
}
