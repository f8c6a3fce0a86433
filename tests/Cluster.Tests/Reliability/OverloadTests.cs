using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>
/// More clients than a model can serve: the scheduler's bounded queue refuses the excess at once with 429 and
/// <c>Retry-After</c> instead of queueing it for seconds, and what it admits is served within its queue timeout.
/// </summary>
public sealed class OverloadTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int MaxQueueSize = 4;
    private static readonly TimeSpan QueueTimeout = TimeSpan.FromMilliseconds(300);

    private readonly ProcessGroup _processes = new();
    private readonly string _models = Directory.CreateTempSubdirectory("overload-models-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private string _gatewayUrl = "";

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var model = Path.Combine(_models, "text-orientation");
        Directory.CreateDirectory(Path.Combine(model, "1"));
        File.CreateSymbolicLink(Path.Combine(model, "1", "model.onnx"), Repo.DefaultModelFile);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Repo.Models, "text-orientation", "config.json")),
            documentOptions: new System.Text.Json.JsonDocumentOptions { CommentHandling = System.Text.Json.JsonCommentHandling.Skip })!;
        config["batching"] = new JsonObject
        {
            ["maxQueueSize"] = MaxQueueSize,
            ["queueTimeoutMicroseconds"] = (int)QueueTimeout.TotalMicroseconds,
            ["instances"] = 1,
        };
        File.WriteAllText(Path.Combine(model, "config.json"), config.ToJsonString());

        var clusterId = "overload-" + Guid.NewGuid().ToString("N")[..8];
        var (siloHttp, siloPort, siloGateway, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var silo = _processes.Track(ClusterProcess.StartSilo("overload-silo", siloHttp, siloPort, siloGateway, siloPort, clusterId, _models));
        var gateway = _processes.Track(ClusterProcess.StartGateway("overload-gateway", gatewayHttp, [siloGateway], clusterId));
        _gatewayUrl = $"http://127.0.0.1:{gatewayHttp}";
        await silo.WaitUntilOkAsync(_http, $"http://127.0.0.1:{siloHttp}/readyz", TimeSpan.FromSeconds(90));
        await gateway.WaitUntilOkAsync(_http, _gatewayUrl + "/readyz", TimeSpan.FromSeconds(90));
    }

    [Fact]
    public async Task TwoHundredFiftySixClientsGetAnswersOrAtOnceRefusalsWithRetryAfter()
    {
        // Closed loop for 5 s: each client sends its next image when it has its answer, so the queue stays full.
        var results = new System.Collections.Concurrent.ConcurrentBag<(HttpStatusCode Status, bool RetryAfter, double Ms, string Body)>();
        var until = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 256).Select(async client =>
        {
            for (var i = 0; until.Elapsed < TimeSpan.FromSeconds(5); i++)
            {
                var clock = Stopwatch.StartNew();
                using var response = await _http.PostAsync(_gatewayUrl + "/predict", Raw(TextImages.Numbered(100_000 + client * 1000 + i), "image/png"));
                var body = response.StatusCode == HttpStatusCode.OK ? "" : await response.Content.ReadAsStringAsync();
                results.Add((response.StatusCode, response.Headers.RetryAfter is not null, clock.Elapsed.TotalMilliseconds, body));
            }
        }));

        var served = results.Where(r => r.Status == HttpStatusCode.OK).Select(r => r.Ms).Order().ToArray();
        var refused = results.Where(r => r.Status == HttpStatusCode.TooManyRequests).ToArray();
        var refusedMs = refused.Select(r => r.Ms).Order().ToArray();
        var line = $"256 closed-loop clients for 5 s, maxQueueSize {MaxQueueSize}, queue timeout {QueueTimeout.TotalMilliseconds:0} ms: 200 x{served.Length} (p50 {Percentile(served, 0.5):F0} ms, p99 {Percentile(served, 0.99):F0} ms), "
            + $"429 x{refused.Length} (p50 {Percentile(refusedMs, 0.5):F1} ms, p99 {Percentile(refusedMs, 0.99):F1} ms), as the clients saw them";
        output.WriteLine(line);
        Directory.CreateDirectory(Path.Combine(Repo.Root, ".run"));
        await File.WriteAllTextAsync(Path.Combine(Repo.Root, ".run", "overload.txt"), line + "\n");
        Assert.All(results, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{(int)r.Status}: {r.Body}"));
        Assert.NotEmpty(served);
        Assert.NotEmpty(refused);
        Assert.All(refused, r => Assert.True(r.RetryAfter, "a 429 without Retry-After"));
        Assert.All(refused, r => Assert.Contains("batching.", r.Body, StringComparison.Ordinal));
    }

    private static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();

        _http.Dispose();
        Directory.Delete(_models, recursive: true);
    }
}
