using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>
/// Triton's repository API over a cluster of two silos, under traffic: a version added and loaded on both without a
/// failed request, unversioned requests moving to it, one version unloaded, a broken version refused while the
/// others serve, and the whole model unloaded and loaded again.
/// </summary>
public sealed class RepositoryApiTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Model = "text-orientation";
    private readonly ProcessGroup _processes = new();
    private readonly string _repository = Directory.CreateTempSubdirectory("repository-api-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private string _gateway = "";
    private string _clusterId = "";
    private int _primaryPort;
    private string _siloA = "";

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        Directory.CreateDirectory(Path.Combine(_repository, Model));
        File.Copy(Path.Combine(Repo.Models, Model, "config.json"), Path.Combine(_repository, Model, "config.json"));
        AddVersion("1");

        var clusterId = _clusterId = "repo-" + Guid.NewGuid().ToString("N")[..8];
        var (aHttp, aPort, aGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var (bHttp, bPort, bGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var gatewayHttp = ClusterProcess.FreePort();
        _primaryPort = aPort;
        _siloA = $"http://127.0.0.1:{aHttp}";
        var a = _processes.Track(ClusterProcess.StartSilo("silo-a", aHttp, aPort, aGateway, aPort, clusterId, _repository));
        await a.WaitUntilOkAsync(_http, $"http://127.0.0.1:{aHttp}/readyz", TimeSpan.FromSeconds(90));
        var b = _processes.Track(ClusterProcess.StartSilo("silo-b", bHttp, bPort, bGateway, aPort, clusterId, _repository));
        await b.WaitUntilOkAsync(_http, $"http://127.0.0.1:{bHttp}/readyz", TimeSpan.FromSeconds(90));
        var gateway = _processes.Track(ClusterProcess.StartGateway("gateway", gatewayHttp, [aGateway, bGateway], clusterId));
        _gateway = $"http://127.0.0.1:{gatewayHttp}";
        await gateway.WaitUntilOkAsync(_http, _gateway + "/readyz", TimeSpan.FromSeconds(90));
        await WaitForIndexAsync(e => e.Any(x => x.Version == "1" && x.State == "READY"), "version 1 ready");
    }

    private void AddVersion(string version, bool broken = false)
    {
        var folder = Path.Combine(_repository, Model, version);
        Directory.CreateDirectory(folder);
        if (broken)
        {
            var onnx = File.ReadAllBytes(Repo.DefaultModelFile);
            File.WriteAllBytes(Path.Combine(folder, "model.onnx"), onnx[..(onnx.Length / 2)]);
        }
        else
        {
            File.CreateSymbolicLink(Path.Combine(folder, "model.onnx"), Repo.DefaultModelFile);
        }
    }

    private sealed record Entry(string Name, string Version, string State, string Reason);

    private async Task<List<Entry>> IndexAsync()
    {
        using var response = await _http.PostAsync(_gateway + "/v2/repository/index", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return [.. (await response.JsonAsync()).EnumerateArray().Select(e => new Entry(
            e.GetProperty("name").GetString()!, e.GetProperty("version").GetString()!, e.GetProperty("state").GetString()!, e.GetProperty("reason").GetString()!))];
    }

    private async Task WaitForIndexAsync(Func<List<Entry>, bool> condition, string what)
    {
        for (var i = 0; i < 80; i++)
        {
            if (condition(await IndexAsync()))
            {
                return;
            }

            await Task.Delay(250);
        }

        Assert.Fail($"the index never showed {what}: {string.Join("; ", await IndexAsync())}");
    }

    private async Task<(HttpStatusCode Status, string Body)> RepositoryAsync(string operation, string? body = null)
    {
        using var response = await _http.PostAsync($"{_gateway}/v2/repository/models/{Model}/{operation}",
            new StringContent(body ?? "", Encoding.UTF8, "application/json"));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<(HttpStatusCode Status, string? Version, string Body)> PredictAsync(int image, string? version = null)
    {
        using var response = await _http.PostAsync($"{_gateway}/predict{(version is null ? "" : $"?version={version}")}", Raw(TextImages.Numbered(image), "image/png"));
        var body = await response.Content.ReadAsStringAsync();
        var answered = response.IsSuccessStatusCode ? JsonDocument.Parse(body).RootElement.GetProperty("version").GetString() : null;
        return (response.StatusCode, answered, body);
    }

    [Fact]
    public async Task VersionsLoadAndUnloadAcrossTheClusterWhileItServesWithoutAFailedRequest()
    {
        // Traffic all along: four clients, unversioned, images repeating so that hits and misses both flow.
        using var stop = new CancellationTokenSource();
        var outcomes = new ConcurrentBag<(HttpStatusCode Status, string? Version, string Body, double Ms, string Phase)>();
        var phase = "steady";
        var clients = Enumerable.Range(0, 4).Select(c => Task.Run(async () =>
        {
            for (var i = c; !stop.IsCancellationRequested; i += 4)
            {
                var (sent, during) = (System.Diagnostics.Stopwatch.GetTimestamp(), Volatile.Read(ref phase));
                var (status, version, body) = await PredictAsync(60_000 + i % 200);
                outcomes.Add((status, version, body, System.Diagnostics.Stopwatch.GetElapsedTime(sent).TotalMilliseconds, during));
            }
        })).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(3));

        // Version 2 appears in the folder and is loaded on both silos.
        AddVersion("2");
        Volatile.Write(ref phase, "swap");
        var load = await RepositoryAsync("load");
        Volatile.Write(ref phase, "after");
        Assert.True(load.Status == HttpStatusCode.OK, load.Body);
        var index = await IndexAsync();
        Assert.Contains(new Entry(Model, "1", "READY", ""), index);
        Assert.Contains(new Entry(Model, "2", "READY", ""), index);
        await WaitUntilAsync(async () => (await PredictAsync(61_000)).Version == "2", "unversioned requests never moved to version 2");

        // Version 1 alone is unloaded: named requests for it are 404, the rest carry on.
        var unload = await RepositoryAsync("unload", """{"parameters": {"version": "1"}}""");
        Assert.True(unload.Status == HttpStatusCode.OK, unload.Body);
        await WaitUntilAsync(async () => (await PredictAsync(61_001, version: "1")).Status == HttpStatusCode.NotFound, "version 1 kept answering after its unload");
        Assert.Contains(new Entry(Model, "1", "UNAVAILABLE", "unloaded"), await IndexAsync());
        Assert.Contains("version 1 is not loaded: it was unloaded", (await PredictAsync(61_006, version: "1")).Body, StringComparison.Ordinal);

        // A broken version 3 is refused, naming it and both silos; version 2 keeps serving.
        AddVersion("3", broken: true);
        var broken = await RepositoryAsync("load", """{"parameters": {"version": 3}}""");
        Assert.Equal(HttpStatusCode.BadRequest, broken.Status);
        var error = JsonDocument.Parse(broken.Body).RootElement.GetProperty("error").GetString()!;
        Assert.Contains("version 3", error, StringComparison.Ordinal);
        Assert.Contains("silo-a", error, StringComparison.Ordinal);
        Assert.Contains("silo-b", error, StringComparison.Ordinal);
        Assert.DoesNotContain(_repository, error, StringComparison.Ordinal);
        Assert.Equal("2", (await PredictAsync(61_002)).Version);

        // A silo that joins now serves what the cluster serves (version 2), not what its folder holds (1, 2 and 3).
        var (_, joined) = await StartSiloAsync("silo-c", _repository);
        Assert.Equal(["2:ready"], joined);

        // A silo whose copy of version 2 differs (one more field in the file: a valid model, other bytes) refuses it.
        var other = Directory.CreateTempSubdirectory("repository-other-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(other, Model, "2"));
            File.Copy(Path.Combine(_repository, Model, "config.json"), Path.Combine(other, Model, "config.json"));
            await File.WriteAllBytesAsync(Path.Combine(other, Model, "2", "model.onnx"), [.. await File.ReadAllBytesAsync(Repo.DefaultModelFile), 0xA2, 0x06, 0x01, 0x00]);
            var (process, differing) = await StartSiloAsync("silo-d", other);
            Assert.Equal(["2:error"], differing);
            var reason = (await SiloVersionsAsync("silo-d")).Single().Error;
            Assert.Contains("differs from the one the cluster serves", reason, StringComparison.Ordinal);

            // A load applies the same rule: the differing silo refuses, names itself, and the others serve.
            var reload = await RepositoryAsync("load");
            Assert.Equal(HttpStatusCode.BadRequest, reload.Status);
            Assert.Contains("silo-d: version 2: This silo's model.onnx differs", reload.Body, StringComparison.Ordinal);
            Assert.Equal("2", (await PredictAsync(61_005)).Version);

            // It leaves (SIGTERM), and the cluster carries on without it once membership and the cluster view drop it.
            process.Terminate();
            try
            {
                await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
            }
            catch (TaskCanceledException)
            {
                await process.KillAsync();
            }

            await WaitUntilAsync(async () => (await SiloVersionsAsync("silo-d")).Count == 0, "silo-d stayed in the cluster view after it stopped");
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }

        await stop.CancelAsync();
        await Task.WhenAll(clients);
        var all = outcomes.ToList();
        var failed = all.Where(o => o.Status != HttpStatusCode.OK).ToList();
        double P99(string during) => all.Where(o => o.Phase == during).Select(o => o.Ms).Order().DefaultIfEmpty(0).ElementAt(Math.Max(0, (int)(all.Count(o => o.Phase == during) * 0.99) - 1));
        var summary = $"{all.Count} requests during load, partial unload and a broken load: {failed.Count} failed; " +
            $"answered by version: {string.Join(", ", all.Where(o => o.Version is not null).GroupBy(o => o.Version).Select(g => $"{g.Key}: {g.Count()}"))}; " +
            $"p99 steady {P99("steady"):F0} ms ({all.Count(o => o.Phase == "steady")} requests), during the load of version 2 {P99("swap"):F0} ms ({all.Count(o => o.Phase == "swap")}), after {P99("after"):F0} ms";
        output.WriteLine(summary);
        Directory.CreateDirectory(Path.Combine(Repo.Root, ".run"));
        await File.AppendAllTextAsync(Path.Combine(Repo.Root, ".run", "repository-api.txt"), $"{DateTime.UtcNow:O} {summary}\n");
        Assert.True(failed.Count == 0, $"{summary}; e.g. {failed.FirstOrDefault()}");

        // The silo counted what it was asked and how long its loads took.
        var metrics = await _http.GetStringAsync(_siloA + "/metrics");
        Assert.Matches(@"model_repository_operations_total\{operation=""load"",outcome=""success""\} [1-9]", metrics);
        Assert.Matches(@"model_repository_operations_total\{operation=""load"",outcome=""failure""\} [1-9]", metrics);
        Assert.Matches(@"model_repository_operations_total\{operation=""unload"",outcome=""success""\} [1-9]", metrics);
        Assert.Matches(@"model_load_duration_seconds_count\{model=""text-orientation""\} [2-9]", metrics); // at start, then version 2

        // The whole model unloaded: unknown to the gateway; loaded again: served again.
        Directory.Delete(Path.Combine(_repository, Model, "3"), recursive: true);
        var unloadAll = await RepositoryAsync("unload");
        Assert.True(unloadAll.Status == HttpStatusCode.OK, unloadAll.Body);
        await WaitUntilAsync(async () => (await PredictAsync(61_003)).Status == HttpStatusCode.NotFound, "the model kept answering after its unload");
        Assert.Contains($"Model '{Model}' is not loaded: it was unloaded", (await PredictAsync(61_007)).Body, StringComparison.Ordinal);
        var loadAgain = await RepositoryAsync("load");
        Assert.True(loadAgain.Status == HttpStatusCode.OK, loadAgain.Body);
        await WaitUntilAsync(async () => (await PredictAsync(61_004)).Status == HttpStatusCode.OK, "the model did not answer after it was loaded again");
    }

    [Theory]
    [InlineData("load", "not json", 400)]
    [InlineData("load", """{"parameters": {"version": "two"}}""", 400)]
    [InlineData("unload", """{"parameters": {"version": -1}}""", 400)]
    public async Task BadRepositoryRequestsGetAnErrorBody(string operation, string body, int status)
    {
        var (code, text) = await RepositoryAsync(operation, body);

        Assert.Equal(status, (int)code);
        Assert.False(string.IsNullOrWhiteSpace(JsonDocument.Parse(text).RootElement.GetProperty("error").GetString()));
    }

    private sealed record SiloVersion(string Version, string State, string? Error);

    /// <summary>The model's versions on one silo, as the gateway's <c>/models</c> lists them.</summary>
    private async Task<List<SiloVersion>> SiloVersionsAsync(string silo)
    {
        var model = await (await _http.GetAsync($"{_gateway}/models/{Model}")).JsonAsync();
        return [.. model.GetProperty("versions").EnumerateArray().SelectMany(v => v.GetProperty("silos").EnumerateArray()
            .Where(s => s.GetProperty("silo").GetString() == silo)
            .Select(s => new SiloVersion(v.GetProperty("version").GetString()!, s.GetProperty("state").GetString()!,
                s.GetProperty("error").ValueKind == JsonValueKind.String ? s.GetProperty("error").GetString() : null)))];
    }

    /// <summary>Starts a silo in the cluster and answers its versions of the model ("2:ready") once it has reported them.</summary>
    private async Task<(ClusterProcess Process, string[] Versions)> StartSiloAsync(string name, string repository)
    {
        var (http, port, gateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var silo = _processes.Track(ClusterProcess.StartSilo(name, http, port, gateway, _primaryPort, _clusterId, repository));
        await silo.WaitUntilOkAsync(_http, $"http://127.0.0.1:{http}/healthz", TimeSpan.FromSeconds(90));
        string[] versions = [];
        await WaitUntilAsync(async () => (versions = [.. (await SiloVersionsAsync(name)).Select(v => $"{v.Version}:{v.State}").Order()]).Length > 0
            && versions.All(v => !v.EndsWith(":not_ready", StringComparison.Ordinal)), $"{name} never reported its versions");
        await Task.Delay(TimeSpan.FromSeconds(1)); // one more refresh: nothing left over from its folder
        return (silo, [.. (await SiloVersionsAsync(name)).Select(v => $"{v.Version}:{v.State}").Order()]);
    }

    [Theory]
    [InlineData("Bad..Name", "", 400, "not a model name")]
    [InlineData("no-such-model", "", 400, "has no folder 'no-such-model'")]
    [InlineData("text-orientation", "big", 413, "at most 64 KiB")]
    public async Task BadModelNamesUnknownModelsAndOversizedBodiesGetAnErrorThatSaysWhy(string model, string body, int status, string says)
    {
        var content = body == "big" ? new string(' ', 70 * 1024) + "{}" : body;
        using var response = await _http.PostAsync($"{_gateway}/v2/repository/models/{model}/load", new StringContent(content, Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString()!;

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Contains(says, error, StringComparison.Ordinal);
        Assert.DoesNotContain(_repository, error, StringComparison.Ordinal);
        Assert.All(await IndexAsync(), e => Assert.Equal(Model, e.Name)); // a failed load records nothing
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string failure)
    {
        for (var i = 0; i < 160; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(250);
        }

        Assert.Fail(failure);
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();
        _http.Dispose();
        Directory.Delete(_repository, recursive: true);
    }
}
