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

    /// <summary>
    /// A model that fails at run time after it served (a GPU lost mid-flight, simulated by the failure drill
    /// <c>Models:FailRunsAfter</c>): the failing silo takes the version out of service, the requests caught by the
    /// failure are retried on the other silo, and the shards follow. No request fails.
    /// </summary>
    [Fact]
    public async Task EveryRequestIsServedWhenTheModelStartsFailingOnOneSiloAfterItServed()
    {
        const int runsBeforeFailure = 12;
        var clusterId = "runfail-" + Guid.NewGuid().ToString("N")[..8];
        var (goodHttp, goodPort, goodGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var (failingHttp, failingPort, failingGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var gatewayHttp = ClusterProcess.FreePort();
        var good = _processes.Track(ClusterProcess.StartSilo("good-silo", goodHttp, goodPort, goodGateway, goodPort, clusterId, Repo.Models));
        await good.WaitUntilOkAsync(_http, $"http://127.0.0.1:{goodHttp}/readyz", TimeSpan.FromSeconds(90));
        var failing = _processes.Track(ClusterProcess.StartSilo("failing-silo", failingHttp, failingPort, failingGateway, goodPort, clusterId, Repo.Models,
            "--Models:FailRunsAfter", runsBeforeFailure.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        await failing.WaitUntilOkAsync(_http, $"http://127.0.0.1:{failingHttp}/readyz", TimeSpan.FromSeconds(90));
        var gateway = _processes.Track(ClusterProcess.StartGateway("gateway", gatewayHttp, [goodGateway, failingGateway], clusterId));
        var gatewayUrl = $"http://127.0.0.1:{gatewayHttp}";
        await gateway.WaitUntilOkAsync(_http, gatewayUrl + "/readyz", TimeSpan.FromSeconds(90));
        await WaitUntilSilosReportAsync(gatewayUrl, ["ready", "ready"]);

        // Four clients over 80 distinct images: the failing silo serves its first runs, then fails mid-stream.
        var images = Enumerable.Range(0, 80).Select(i => TextImages.Numbered(41_000 + i)).ToArray();
        var answers = new (int Status, string Body)[images.Length];
        var slowest = 0.0;
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async client =>
        {
            for (var i = client; i < images.Length; i += 4)
            {
                var sent = System.Diagnostics.Stopwatch.GetTimestamp();
                using var response = await _http.PostAsync(gatewayUrl + "/predict", Raw(images[i], "image/png"));
                answers[i] = ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
                var took = System.Diagnostics.Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
                lock (answers)
                {
                    slowest = Math.Max(slowest, took);
                }
            }
        }));

        var failed = answers.Where(a => a.Status != 200).ToList();
        var servedByFailing = answers.Count(a => a.Body.Contains("\"silo\":\"failing-silo\"", StringComparison.Ordinal));
        var failingState = await WaitUntilSilosReportAsync(gatewayUrl, ["error", "ready"]);
        var summary = $"{answers.Length - failed.Count} of {answers.Length} answered 200, {servedByFailing} by failing-silo before it failed, slowest {slowest:F0} ms; its state: {failingState}";
        output.WriteLine(summary);
        Directory.CreateDirectory(Path.Combine(Repo.Root, ".run"));
        File.AppendAllText(Path.Combine(Repo.Root, ".run", "run-time-failure.txt"), $"{DateTime.UtcNow:O} {summary}\n");

        Assert.True(failed.Count == 0, $"{failed.Count} of 80 failed, e.g. {failed.FirstOrDefault()}\n{failing.Output[^Math.Min(3000, failing.Output.Length)..]}");
        Assert.InRange(servedByFailing, 1, runsBeforeFailure);
        Assert.Contains("failed 3 runs in a row", failingState, StringComparison.Ordinal);
        Assert.DoesNotContain("/", failingState, StringComparison.Ordinal); // no host paths to anonymous clients

        // Afterwards every image, including those the failing silo answered, is served by the good silo.
        foreach (var image in images.Take(20))
        {
            using var response = await _http.PostAsync(gatewayUrl + "/predict", Raw(image, "image/png"));
            var body = await response.Content.ReadAsStringAsync();
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Contains("\"silo\":\"good-silo\"", body, StringComparison.Ordinal);
        }

        var metrics = await _http.GetStringAsync($"http://127.0.0.1:{failingHttp}/metrics");
        Assert.Contains("model_state{model=\"text-orientation\",version=\"1\"} 2", metrics, StringComparison.Ordinal);
    }

    /// <summary>Until the gateway's view lists the model on both silos, one ready and one in error.</summary>
    private Task WaitUntilBothSilosReportAsync(string gatewayUrl) => WaitUntilSilosReportAsync(gatewayUrl, ["error", "ready"]);

    /// <summary>Until the gateway's view lists the model on two silos in <paramref name="expected"/> states (in name order); answers the error reason, if any.</summary>
    private async Task<string> WaitUntilSilosReportAsync(string gatewayUrl, string[] expected)
    {
        var seen = "nothing";
        for (var attempt = 0; attempt < 120; attempt++)
        {
            var model = await (await _http.GetAsync(gatewayUrl + "/models/text-orientation")).JsonAsync();
            seen = model.ToString();
            var silos = model.GetProperty("versions")[0].GetProperty("silos").EnumerateArray().ToArray();
            var states = silos.Select(s => s.GetProperty("state").GetString()).Order().ToArray();
            if (states.SequenceEqual(expected))
            {
                return string.Join("; ", silos.Select(s => s.GetProperty("error").ValueKind == System.Text.Json.JsonValueKind.String ? s.GetProperty("error").GetString() : null).OfType<string>());
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"the gateway never saw the model's states on two silos as {string.Join(", ", expected)}; last seen: {seen}");
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();

        _http.Dispose();
        Directory.Delete(_damaged, recursive: true);
    }
}
