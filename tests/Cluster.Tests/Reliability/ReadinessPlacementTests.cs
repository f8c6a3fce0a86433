using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>
/// A cluster is as healthy as its best silo: with one silo whose copy of the model is damaged (a truncated download),
/// every request is served by the silo where the model is ready, whichever silo started first.
/// </summary>
public sealed class ReadinessPlacementTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly ProcessGroup _processes = new();
    private readonly string _damaged = Directory.CreateTempSubdirectory("damaged-models-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };

    public ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var model = Path.Combine(_damaged, "text-orientation");
        Directory.CreateDirectory(Path.Combine(model, "1"));
        File.Copy(Path.Combine(Repo.Models, "text-orientation", "config.json"), Path.Combine(model, "config.json"));
        var onnx = File.ReadAllBytes(Repo.DefaultModelFile);
        File.WriteAllBytes(Path.Combine(model, "1", "model.onnx"), onnx[..(onnx.Length / 2)]);
        return ValueTask.CompletedTask;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryRequestIsServedWhenOneOfTwoSilosCannotLoadTheModel(bool damagedSiloFirst)
    {
        var clusterId = "ready-" + Guid.NewGuid().ToString("N")[..8];
        var (firstHttp, firstPort, firstGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var (secondHttp, secondPort, secondGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var gatewayHttp = ClusterProcess.FreePort();
        var (firstModels, secondModels) = damagedSiloFirst ? (_damaged, Repo.Models) : (Repo.Models, _damaged);
        var (firstName, secondName) = damagedSiloFirst ? ("damaged-silo", "good-silo") : ("good-silo", "damaged-silo");

        var first = _processes.Track(ClusterProcess.StartSilo(firstName, firstHttp, firstPort, firstGateway, firstPort, clusterId, firstModels));
        await first.WaitUntilOkAsync(_http, $"http://127.0.0.1:{firstHttp}/readyz", TimeSpan.FromSeconds(90));
        var second = _processes.Track(ClusterProcess.StartSilo(secondName, secondHttp, secondPort, secondGateway, firstPort, clusterId, secondModels));
        await second.WaitUntilOkAsync(_http, $"http://127.0.0.1:{secondHttp}/readyz", TimeSpan.FromSeconds(90));
        var gateway = _processes.Track(ClusterProcess.StartGateway("gateway", gatewayHttp, [firstGateway, secondGateway], clusterId));
        var gatewayUrl = $"http://127.0.0.1:{gatewayHttp}";
        await gateway.WaitUntilOkAsync(_http, gatewayUrl + "/readyz", TimeSpan.FromSeconds(90));
        await WaitUntilBothSilosReportAsync(gatewayUrl);

        var answers = await Task.WhenAll(Enumerable.Range(0, 80).Select(async i =>
        {
            using var response = await _http.PostAsync(gatewayUrl + "/predict", Raw(TextImages.Numbered(40_000 + i), "image/png"));
            var body = await response.Content.ReadAsStringAsync();
            return ((int)response.StatusCode, body);
        }));

        var failed = answers.Where(a => a.Item1 != 200).ToList();
        output.WriteLine($"{answers.Length - failed.Count} of {answers.Length} answered 200");
        Assert.True(failed.Count == 0, $"{failed.Count} of 80 failed, e.g. {failed.FirstOrDefault()}");
        Assert.All(answers, a => Assert.Contains("\"silo\":\"good-silo\"", a.Item2, StringComparison.Ordinal));
    }

    /// <summary>Until the gateway's view lists the model on both silos, one ready and one in error.</summary>
    private async Task WaitUntilBothSilosReportAsync(string gatewayUrl)
    {
        for (var attempt = 0; attempt < 120; attempt++)
        {
            var model = await (await _http.GetAsync(gatewayUrl + "/models/text-orientation")).JsonAsync();
            var states = model.GetProperty("versions")[0].GetProperty("silos").EnumerateArray().Select(s => s.GetProperty("state").GetString()).Order().ToArray();
            if (states.SequenceEqual(["error", "ready"]))
            {
                return;
            }

            await Task.Delay(250);
        }

        throw new TimeoutException("the gateway never saw both silos' model states");
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();

        _http.Dispose();
        Directory.Delete(_damaged, recursive: true);
    }
}
