using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>
/// <c>Models:ControlMode poll</c> on two silos sharing one model folder, as a shared volume would: a version added,
/// a version's file replaced, a broken file put in its place, a version removed and a whole model removed are each
/// applied on both silos without an API call, and the traffic meanwhile sees no failed request.
/// </summary>
public sealed class PollModeTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Model = "text-orientation";
    private const string Spare = "spare";
    private readonly ProcessGroup _processes = new();
    private readonly string _repository = Directory.CreateTempSubdirectory("poll-mode-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private readonly string[] _silos = ["", ""];
    private string _gateway = "";

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        foreach (var model in new[] { Model, Spare })
        {
            Directory.CreateDirectory(Path.Combine(_repository, model, "1"));
            File.Copy(Path.Combine(Repo.Models, Model, "config.json"), Path.Combine(_repository, model, "config.json"));
            File.CreateSymbolicLink(Path.Combine(_repository, model, "1", "model.onnx"), Repo.DefaultModelFile);
        }

        var clusterId = "poll-" + Guid.NewGuid().ToString("N")[..8];
        var primary = ClusterProcess.FreePort();
        var gateways = new List<int>();
        for (var i = 0; i < 2; i++)
        {
            var (http, port, gateway) = (ClusterProcess.FreePort(), i == 0 ? primary : ClusterProcess.FreePort(), ClusterProcess.FreePort());
            var silo = _processes.Track(ClusterProcess.StartSilo($"poll-{(char)('a' + i)}", http, port, gateway, primary, clusterId, _repository,
                "--Models:ControlMode", "poll", "--Models:PollInterval", "00:00:00.500"));
            _silos[i] = $"http://127.0.0.1:{http}";
            gateways.Add(gateway);
            await silo.WaitUntilOkAsync(_http, _silos[i] + "/readyz", TimeSpan.FromSeconds(90));
        }

        var gatewayHttp = ClusterProcess.FreePort();
        var front = _processes.Track(ClusterProcess.StartGateway("gateway", gatewayHttp, [.. gateways], clusterId));
        _gateway = $"http://127.0.0.1:{gatewayHttp}";
        await front.WaitUntilOkAsync(_http, _gateway + "/readyz", TimeSpan.FromSeconds(90));
    }

    /// <summary>Puts a file in place with one rename, as a careful deployer does (and as Triton asks of its poll mode).</summary>
    private void Place(string version, byte[] bytes)
    {
        var staged = Path.Combine(_repository, ".staging");
        File.WriteAllBytes(staged, bytes);
        Directory.CreateDirectory(Path.Combine(_repository, Model, version));
        File.Move(staged, Path.Combine(_repository, Model, version, "model.onnx"), overwrite: true);
    }

    private sealed record SiloVersion(string Silo, string Version, string State, string? Sha256);

    private async Task<List<SiloVersion>> VersionsAsync(string model = Model)
    {
        using var response = await _http.GetAsync($"{_gateway}/models/{model}");
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return [];
        }

        var body = await response.JsonAsync();
        return [.. body.GetProperty("versions").EnumerateArray().SelectMany(v => v.GetProperty("silos").EnumerateArray().Select(s => new SiloVersion(
            s.GetProperty("silo").GetString()!, v.GetProperty("version").GetString()!, s.GetProperty("state").GetString()!,
            s.GetProperty("sha256").ValueKind == JsonValueKind.String ? s.GetProperty("sha256").GetString() : null)))];
    }

    /// <summary>Each silo's ready versions of the model with the first characters of their file's hash: "poll-a 2 ab12".</summary>
    private async Task<string[]> ReadyAsync(string model = Model) =>
        [.. (await VersionsAsync(model)).Where(v => v.State == "ready").Select(v => $"{v.Silo} {v.Version} {v.Sha256?[..4]}").Order()];

    private async Task<(HttpStatusCode Status, string? Version)> PredictAsync(int image, string query = "")
    {
        using var response = await _http.PostAsync($"{_gateway}/predict{query}", Raw(TextImages.Numbered(image), "image/png"));
        var body = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, response.IsSuccessStatusCode ? JsonDocument.Parse(body).RootElement.GetProperty("version").GetString() : null);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, Func<Task<string>> failure)
    {
        for (var i = 0; i < 120; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(250);
        }

        Assert.Fail(await failure());
    }

    [Fact]
    public async Task FolderChangesAreAppliedOnEverySiloWithoutAnApiCallOrAFailedRequest()
    {
        var original = await File.ReadAllBytesAsync(Repo.DefaultModelFile);
        string Short(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes))[..4];
        using var stop = new CancellationTokenSource();
        var outcomes = new ConcurrentBag<(HttpStatusCode Status, string? Version, double Ms)>();
        var clients = Enumerable.Range(0, 4).Select(c => Task.Run(async () =>
        {
            for (var i = c; !stop.IsCancellationRequested; i += 4)
            {
                var sent = System.Diagnostics.Stopwatch.GetTimestamp();
                var (status, version) = await PredictAsync(70_000 + i % 200);
                outcomes.Add((status, version, System.Diagnostics.Stopwatch.GetElapsedTime(sent).TotalMilliseconds));
            }
        })).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(2));

        // A version added to the folder is loaded on both silos, and unversioned requests move to it.
        Place("2", original);
        string[] bothOn(string version, byte[] file) => [$"poll-a {version} {Short(file)}", $"poll-b {version} {Short(file)}"];
        await WaitUntilAsync(async () => (await ReadyAsync()).Intersect(bothOn("2", original)).Count() == 2 && (await PredictAsync(71_000)).Version == "2",
            async () => $"version 2 was not served by both silos: {string.Join(", ", await ReadyAsync())}");

        // Its file replaced by other bytes (a valid model: one more protobuf field) is reloaded on both.
        byte[] variant = [.. original, 0xA2, 0x06, 0x01, 0x00];
        Place("2", variant);
        await WaitUntilAsync(async () => (await ReadyAsync()).Intersect(bothOn("2", variant)).Count() == 2,
            async () => $"the replaced file of version 2 was not loaded on both silos: {string.Join(", ", await ReadyAsync())}");

        // A broken file in its place fails to load, and the loaded one keeps serving, on both silos.
        Place("2", original[..(original.Length / 2)]);
        await WaitUntilAsync(async () => (await Task.WhenAll(_silos.Select(s => _http.GetStringAsync(s + "/metrics"))))
                .All(m => System.Text.RegularExpressions.Regex.IsMatch(m, @"model_repository_operations_total\{operation=""load"",outcome=""failure""\} [1-9]")),
            () => Task.FromResult("the broken file's load was never counted as a failure on both silos"));
        Assert.Equal(bothOn("1", original).Concat(bothOn("2", variant)).Order(), await ReadyAsync());
        Assert.Equal((HttpStatusCode.OK, "2"), await PredictAsync(71_001));

        // A version removed from the folder is unloaded on both silos.
        Place("2", variant);
        Directory.Delete(Path.Combine(_repository, Model, "1"), recursive: true);
        await WaitUntilAsync(async () => (await ReadyAsync()).SequenceEqual(bothOn("2", variant)) && (await PredictAsync(71_002, "?version=1")).Status == HttpStatusCode.NotFound,
            async () => $"version 1 stayed after its folder went: {string.Join(", ", await ReadyAsync())}");

        await stop.CancelAsync();
        await Task.WhenAll(clients);
        var all = outcomes.ToList();
        var failed = all.Where(o => o.Status != HttpStatusCode.OK).ToList();
        var latencies = all.Select(o => o.Ms).Order().ToList();
        var summary = $"{all.Count} requests while version 2 was added, replaced, broken and version 1 removed by folder changes alone: {failed.Count} failed; " +
            $"answered by version: {string.Join(", ", all.Where(o => o.Version is not null).GroupBy(o => o.Version).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}"))}; " +
            $"p50 {latencies[latencies.Count / 2]:F0} ms, p99 {latencies[(int)(latencies.Count * 0.99)]:F0} ms";
        output.WriteLine(summary);
        Directory.CreateDirectory(Path.Combine(Repo.Root, ".run"));
        await File.AppendAllTextAsync(Path.Combine(Repo.Root, ".run", "poll-mode.txt"), $"{DateTime.UtcNow:O} {summary}\n");
        Assert.True(failed.Count == 0, $"{summary}; first failure: {failed.FirstOrDefault()}");

        // A whole model folder removed: the model is unloaded on both silos and its requests answer 404.
        Assert.Equal(HttpStatusCode.OK, (await PredictAsync(71_003, $"?model={Spare}")).Status);
        Directory.Delete(Path.Combine(_repository, Spare), recursive: true);
        await WaitUntilAsync(async () => (await PredictAsync(71_004, $"?model={Spare}")).Status == HttpStatusCode.NotFound && (await ReadyAsync(Spare)).Length == 0,
            async () => $"model {Spare} kept serving after its folder went: {string.Join(", ", await ReadyAsync(Spare))}");
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();
        _http.Dispose();
        Directory.Delete(_repository, recursive: true);
    }
}
