using System.Net;
using System.Text;
using System.Text.Json;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;

namespace Classifier.Tests.Reliability;

/// <summary>
/// With Redis clustering the cluster's record of what it serves lives in Redis (the Orleans Redis grain storage), so
/// it outlives every silo: after the whole cluster stopped, a fresh silo serves the record, not its folder.
/// </summary>
public sealed class RepositoryPersistenceTests : IAsyncLifetime
{
    private const string Model = "text-orientation";
    private readonly ProcessGroup _processes = new();
    private readonly string _before = Directory.CreateTempSubdirectory("persist-before-").FullName;
    private readonly string _after = Directory.CreateTempSubdirectory("persist-after-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private RedisServer _redis = null!;

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        _redis = await RedisServer.StartAsync();
        var original = await File.ReadAllBytesAsync(Repo.DefaultModelFile);

        // Before: versions 1 and 2. After the restart the folder holds version 1 again, another file under
        // version 2 (a valid model: one more protobuf field) and a new version 3.
        Repository(_before, ("1", original), ("2", original));
        Repository(_after, ("1", original), ("2", [.. original, 0xA2, 0x06, 0x01, 0x00]), ("3", original));
    }

    private static void Repository(string root, params (string Version, byte[] Bytes)[] versions)
    {
        Directory.CreateDirectory(Path.Combine(root, Model));
        File.Copy(Path.Combine(Repo.Models, Model, "config.json"), Path.Combine(root, Model, "config.json"));
        foreach (var (version, bytes) in versions)
        {
            Directory.CreateDirectory(Path.Combine(root, Model, version));
            File.WriteAllBytes(Path.Combine(root, Model, version, "model.onnx"), bytes);
        }
    }

    /// <summary>Starts a silo and a gateway on Redis clustering and answers the gateway's address.</summary>
    private async Task<(ClusterProcess Silo, ClusterProcess Gateway, string Url)> StartAsync(string clusterId, string name, string repository)
    {
        string[] redis = ["--Cluster:Clustering", "redis", "--Cluster:RedisConnectionString", _redis.ConnectionString, "--Cluster:AdvertisedIP", "127.0.0.1"];
        var (http, port, gateway, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var silo = _processes.Track(ClusterProcess.StartSilo(name, http, port, gateway, port, clusterId, repository, redis));
        await silo.WaitUntilOkAsync(_http, $"http://127.0.0.1:{http}/readyz", TimeSpan.FromSeconds(90));
        var front = _processes.Track(ClusterProcess.StartGateway($"{name}-gateway", gatewayHttp, [], clusterId, redis[..4]));
        var url = $"http://127.0.0.1:{gatewayHttp}";
        await front.WaitUntilOkAsync(_http, url + "/readyz", TimeSpan.FromSeconds(90));
        return (silo, front, url);
    }

    private static async Task StopAsync(ClusterProcess process)
    {
        process.Terminate();
        await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>The model's versions on one silo as "2:ready", once the silo has reported them all settled.</summary>
    private async Task<string[]> SettledVersionsAsync(string url, string silo)
    {
        string[] versions = [];
        for (var i = 0; i < 120; i++)
        {
            var model = JsonDocument.Parse(await _http.GetStringAsync($"{url}/models/{Model}")).RootElement;
            versions = [.. model.GetProperty("versions").EnumerateArray().SelectMany(v => v.GetProperty("silos").EnumerateArray()
                .Where(s => s.GetProperty("silo").GetString() == silo)
                .Select(s => $"{v.GetProperty("version").GetString()}:{s.GetProperty("state").GetString()}")).Order()];
            if (versions.Length > 0 && !versions.Any(v => v.EndsWith(":not_ready", StringComparison.Ordinal)))
            {
                break;
            }

            await Task.Delay(250);
        }

        return versions;
    }

    [Fact]
    public async Task AfterTheWholeClusterRestartsANewSiloServesTheRecordNotItsFolder()
    {
        var clusterId = "persist-" + Guid.NewGuid().ToString("N")[..8];
        var (silo, gateway, url) = await StartAsync(clusterId, "first-silo", _before);
        using (var unload = await _http.PostAsync($"{url}/v2/repository/models/{Model}/unload", new StringContent("""{"parameters": {"version": "1"}}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, unload.StatusCode);
        }

        Assert.Equal(["2:ready"], await SettledVersionsAsync(url, "first-silo"));
        await StopAsync(gateway);
        await StopAsync(silo);

        // Nothing of the first cluster runs now; only Redis remembers it.
        var (_, _, again) = await StartAsync(clusterId, "second-silo", _after);
        var versions = await SettledVersionsAsync(again, "second-silo");

        // Version 1 stays unloaded, version 2's other file is refused, and version 3, never seen, is served.
        Assert.Equal(["2:error", "3:ready"], versions);
        var model = JsonDocument.Parse(await _http.GetStringAsync($"{again}/models/{Model}")).RootElement;
        var refused = model.GetProperty("versions").EnumerateArray().Single(v => v.GetProperty("version").GetString() == "2").GetProperty("silos")[0].GetProperty("error").GetString();
        Assert.Contains("differs from the one the cluster serves", refused, StringComparison.Ordinal);
        using var index = await _http.PostAsync(again + "/v2/repository/index", new StringContent("{}", Encoding.UTF8, "application/json"));
        var entries = JsonDocument.Parse(await index.Content.ReadAsStringAsync()).RootElement.EnumerateArray()
            .Select(e => $"{e.GetProperty("version").GetString()}:{e.GetProperty("state").GetString()}").ToArray();
        Assert.Contains("1:UNAVAILABLE", entries);
        Assert.Contains("3:READY", entries);
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();
        await _redis.DisposeAsync();
        _http.Dispose();
        Directory.Delete(_before, recursive: true);
        Directory.Delete(_after, recursive: true);
    }
}
