using System.Net;
using System.Text;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>Loading and unloading a large model again and again through the repository API gives its memory back.</summary>
public sealed class RepositoryMemoryTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long AllowedGrowthBytes = 50L << 20;
    private readonly ProcessGroup _processes = new();
    private readonly string _repository = Repo.CreateResnet18Repository();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(120) };
    private ClusterProcess _silo = null!;
    private string _gateway = "";

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        Directory.CreateDirectory(Path.Combine(_repository, "text-orientation", "1"));
        File.Copy(Path.Combine(Repo.Models, "text-orientation", "config.json"), Path.Combine(_repository, "text-orientation", "config.json"));
        File.CreateSymbolicLink(Path.Combine(_repository, "text-orientation", "1", "model.onnx"), Repo.DefaultModelFile);
        var clusterId = "repomem-" + Guid.NewGuid().ToString("N")[..8];
        var (siloHttp, siloPort, siloGateway, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        _silo = _processes.Track(ClusterProcess.StartSilo("silo", siloHttp, siloPort, siloGateway, siloPort, clusterId, _repository));
        var gateway = _processes.Track(ClusterProcess.StartGateway("gateway", gatewayHttp, [siloGateway], clusterId));
        _gateway = $"http://127.0.0.1:{gatewayHttp}";
        await _silo.WaitUntilOkAsync(_http, $"http://127.0.0.1:{siloHttp}/readyz", TimeSpan.FromSeconds(90));
        await gateway.WaitUntilOkAsync(_http, _gateway + "/readyz", TimeSpan.FromSeconds(90));
    }

    private async Task ChangeAsync(string operation)
    {
        using var response = await _http.PostAsync($"{_gateway}/v2/repository/models/resnet18/{operation}", new StringContent("", Encoding.UTF8, "application/json"));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task LoadingAndUnloadingResnet18TenTimesReturnsTheSilosMemoryToItsBaseline()
    {
        // One cycle first, serving an image, so the baseline includes what stays (code paths jitted, pools warmed).
        using (var first = await _http.PostAsync($"{_gateway}/predict?model=resnet18", Raw(TextImages.Numbered(1), "image/png")))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        await ChangeAsync("unload");
        await ChangeAsync("load");
        await ChangeAsync("unload");
        await Task.Delay(500);
        var baseline = _silo.RssBytes;
        var loadedPeak = 0L;
        var trail = new List<long>();
        for (var i = 0; i < 10; i++)
        {
            await ChangeAsync("load");
            using (var answer = await _http.PostAsync($"{_gateway}/predict?model=resnet18", Raw(TextImages.Numbered(100 + i), "image/png")))
            {
                Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            }

            loadedPeak = Math.Max(loadedPeak, _silo.RssBytes);
            await ChangeAsync("unload");
            trail.Add(_silo.RssBytes >> 20);
        }

        await Task.Delay(500);
        var after = _silo.RssBytes;
        var summary = $"resnet18 loaded and unloaded 10 times: silo RSS {baseline >> 20} MiB unloaded before, up to {loadedPeak >> 20} MiB loaded, {after >> 20} MiB unloaded after ({(after - baseline) / 1048576.0:+0;-0} MiB); after each unload: {string.Join(", ", trail)} MiB";
        output.WriteLine(summary);
        Directory.CreateDirectory(Path.Combine(Repo.Root, ".run"));
        await File.AppendAllTextAsync(Path.Combine(Repo.Root, ".run", "repository-memory.txt"), $"{DateTime.UtcNow:O} {summary}\n");
        Assert.True(after - baseline < AllowedGrowthBytes, summary);
        Assert.True(loadedPeak - baseline > 30L << 20, $"loading resnet18 (45 MB of weights) hardly showed in RSS: {summary}");
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();
        _http.Dispose();
        Directory.Delete(_repository, recursive: true);
    }
}
