using System.Net;
using System.Text;
using System.Text.Json;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>
/// A roll-out of a silo whose folder brings a version the cluster has never seen: it joins the record and is served,
/// while a version unloaded on purpose stays unloaded on the new silo although its folder holds it.
/// </summary>
public sealed class RolloutAdoptionTests : IAsyncLifetime
{
    private const string Model = "text-orientation";
    private readonly ProcessGroup _processes = new();
    private readonly string _old = Directory.CreateTempSubdirectory("rollout-old-").FullName;
    private readonly string _new = Directory.CreateTempSubdirectory("rollout-new-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };

    private static void Repository(string root, params string[] versions)
    {
        Directory.CreateDirectory(Path.Combine(root, Model));
        File.Copy(Path.Combine(Repo.Models, Model, "config.json"), Path.Combine(root, Model, "config.json"));
        foreach (var version in versions)
        {
            Directory.CreateDirectory(Path.Combine(root, Model, version));
            File.CreateSymbolicLink(Path.Combine(root, Model, version, "model.onnx"), Repo.DefaultModelFile);
        }
    }

    public ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        Repository(_old, "1", "2");
        Repository(_new, "1", "2", "3");
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task ANewVersionInAJoiningSilosFolderIsServedAndAnUnloadedOneIsNot()
    {
        var clusterId = "rollout-" + Guid.NewGuid().ToString("N")[..8];
        var (aHttp, aPort, aGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var gatewayHttp = ClusterProcess.FreePort();
        var a = _processes.Track(ClusterProcess.StartSilo("old-silo", aHttp, aPort, aGateway, aPort, clusterId, _old));
        await a.WaitUntilOkAsync(_http, $"http://127.0.0.1:{aHttp}/readyz", TimeSpan.FromSeconds(90));
        var gateway = _processes.Track(ClusterProcess.StartGateway("gateway", gatewayHttp, [aGateway], clusterId));
        var url = $"http://127.0.0.1:{gatewayHttp}";
        await gateway.WaitUntilOkAsync(_http, url + "/readyz", TimeSpan.FromSeconds(90));

        // Version 1 is unloaded on purpose before the new silo arrives.
        using (var unload = await _http.PostAsync($"{url}/v2/repository/models/{Model}/unload", new StringContent("""{"parameters": {"version": "1"}}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, unload.StatusCode);
        }

        var (bHttp, bPort, bGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var b = _processes.Track(ClusterProcess.StartSilo("new-silo", bHttp, bPort, bGateway, aPort, clusterId, _new));
        await b.WaitUntilOkAsync(_http, $"http://127.0.0.1:{bHttp}/healthz", TimeSpan.FromSeconds(90));

        string[] onNew = [];
        for (var i = 0; i < 120 && !onNew.Contains("3:ready"); i++)
        {
            await Task.Delay(250);
            var model = await (await _http.GetAsync($"{url}/models/{Model}")).JsonAsync();
            onNew = [.. model.GetProperty("versions").EnumerateArray().SelectMany(v => v.GetProperty("silos").EnumerateArray()
                .Where(s => s.GetProperty("silo").GetString() == "new-silo")
                .Select(s => $"{v.GetProperty("version").GetString()}:{s.GetProperty("state").GetString()}")).Order()];
        }

        Assert.Equal(["2:ready", "3:ready"], onNew);
        using var index = await _http.PostAsync(url + "/v2/repository/index", new StringContent("{}", Encoding.UTF8, "application/json"));
        var entries = (await index.JsonAsync()).EnumerateArray().Select(e => $"{e.GetProperty("version").GetString()}:{e.GetProperty("state").GetString()}").ToArray();
        Assert.Equal(["1:UNAVAILABLE", "2:READY", "3:READY"], entries);
        // Served from the first request: a silo whose view predates the joined silo's report fetches it anew before
        // placing the shard, rather than placing it where version 3 is not loaded.
        using var three = await _http.PostAsync($"{url}/predict?version=3", Raw(TextImages.Numbered(3), "image/png"));
        var (status, body) = (three.StatusCode, await three.Content.ReadAsStringAsync());
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Equal("new-silo", JsonDocument.Parse(body).RootElement.GetProperty("silo").GetString());
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();
        _http.Dispose();
        Directory.Delete(_old, recursive: true);
        Directory.Delete(_new, recursive: true);
    }
}
