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

    /// <summary>The gateway's Open Inference Protocol gRPC address, host:port.</summary>
    public string GrpcAddress { get; private set; } = "";

    public ClusterProcess Gateway { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        Receiver = await OtlpReceiver.StartAsync();
        var clusterId = "trace-" + Guid.NewGuid().ToString("N")[..8];
        var (siloHttp, siloPort, siloGateway, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var grpc = ClusterProcess.FreePort();
        string[] tracing = ["--Tracing:OtlpEndpoint", Receiver.Url, "--Tracing:Protocol", "http/protobuf"];
        var silo = _processes.Track(ClusterProcess.StartSilo("traced-silo", siloHttp, siloPort, siloGateway, siloPort, clusterId, Repo.Models, tracing));
        Gateway = _processes.Track(ClusterProcess.StartGateway("traced-gateway", gatewayHttp, [siloGateway], clusterId,
            [.. tracing, "--Logging:LogLevel:Classifier.Gateway.AccessLog", "Debug", "--Gateway:GrpcPort", $"{grpc}"]));
        GatewayUrl = $"http://127.0.0.1:{gatewayHttp}";
        GrpcAddress = $"127.0.0.1:{grpc}";
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
        var (traceId, traceParent) = NewTraceParent();
        using var request = new HttpRequestMessage(HttpMethod.Post, cluster.GatewayUrl + "/predict") { Content = HttpHelpers.Raw(image, "image/png") };
        request.Headers.Add("traceparent", traceParent);
        using var response = await cluster.Http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return traceId;
    }

    private static (string TraceId, string TraceParent) NewTraceParent()
    {
        var traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        return (traceId, $"00-{traceId}-{Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.NextInt64()))}-01");
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

        await AssertOneChainFromGatewayToInferenceAsync(traceId);
    }

    [Fact]
    public async Task OpenInferenceProtocolGrpcCallYieldsOneTraceWithGatewayGrainAndInferenceSpans()
    {
        var (traceId, traceParent) = NewTraceParent();
        var request = new Dictionary<string, object>
        {
            ["model_name"] = "text-orientation",
            ["inputs"] = new[] { new { name = "image", datatype = "BYTES", shape = new[] { 1 } } },
            ["raw_input_contents"] = new[] { GrpcInferenceTests.Raw(TextImages.Render("traced grpc call")) },
        };

        var (code, answer) = await GrpcInferenceTests.CallAsync(cluster.GrpcAddress, "ModelInfer", request, new() { ["traceparent"] = traceParent });

        Assert.True(code == "OK", answer.ToString());
        var gateway = await AssertOneChainFromGatewayToInferenceAsync(traceId);
        Assert.Contains("ModelInfer", gateway.Name, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenInferenceProtocolRestInferYieldsOneTraceWithGatewayGrainAndInferenceSpans()
    {
        var (traceId, traceParent) = NewTraceParent();
        var image = TextImages.Render("traced rest infer");
        var header = System.Text.Encoding.UTF8.GetBytes(
            $$$"""{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": {{{image.Length + 4}}}}}]}""");
        using var request = new HttpRequestMessage(HttpMethod.Post, cluster.GatewayUrl + "/v2/models/text-orientation/infer")
        {
            Content = new ByteArrayContent([.. header, .. BitConverter.GetBytes((uint)image.Length), .. image]),
        };
        request.Content.Headers.Add("Inference-Header-Content-Length", $"{header.Length}");
        request.Headers.Add("traceparent", traceParent);

        using var response = await cluster.Http.SendAsync(request);

        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var gateway = await AssertOneChainFromGatewayToInferenceAsync(traceId);
        Assert.Contains("/v2/models/{name}/infer", gateway.Name, StringComparison.Ordinal);
    }

    /// <summary>Waits for the trace's spans and asserts that its inference span descends, through the grain call, from the gateway's one request span; answers that span.</summary>
    private async Task<ReceivedSpan> AssertOneChainFromGatewayToInferenceAsync(string traceId)
    {
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
        return gateway;
    }

    /// <summary>A repeat is answered from the gateway's near cache: its trace is the gateway's request alone, with no grain call, preprocessing or inference.</summary>
    [Fact]
    public async Task CacheHitsAreAnsweredAtTheGatewayWithNoGrainCallOrInferenceSpan()
    {
        var image = TextImages.Render("traced twice");
        await PredictWithTraceAsync(image);

        var traceId = await PredictWithTraceAsync(image);
        // A miss sent after it, whose silo spans, once exported, prove the silo's exporter has sent everything before them.
        var later = await PredictWithTraceAsync(TextImages.Render("traced after the hit"));
        await AssertOneChainFromGatewayToInferenceAsync(later);
        var spans = await SpansOfAsync(traceId, s => s.Any(x => x.Service == "classifier-gateway" && x.Scope.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal)));

        Assert.Contains(spans, s => s.Service == "classifier-gateway" && s.Name.Contains("/predict", StringComparison.Ordinal));
        Assert.DoesNotContain(spans, s => s.Service == "classifier-silo");
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
