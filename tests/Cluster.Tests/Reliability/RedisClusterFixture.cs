using System.Text.Json;
using Classifier.Tests.Support;

namespace Classifier.Tests.Reliability;

/// <summary>Three silo processes and a gateway whose membership lives in a real Redis.</summary>
public sealed class RedisClusterFixture : IAsyncLifetime
{
    public const int SiloCount = 3;

    private readonly List<ClusterProcess> _processes = [];

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    public RedisServer Redis { get; private set; } = null!;

    public string GatewayUrl { get; private set; } = "";

    public List<(string Name, ClusterProcess Process, string Url)> Silos { get; } = [];

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        Redis = await RedisServer.StartAsync();
        var clusterId = "redis-" + Guid.NewGuid().ToString("N")[..8];
        string[] redis = ["--Cluster:Clustering", "redis", "--Cluster:RedisConnectionString", Redis.ConnectionString, "--Cluster:AdvertisedIP", "127.0.0.1"];
        for (var i = 0; i < SiloCount; i++)
        {
            var (http, port, gateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
            var name = $"redis-silo-{(char)('a' + i)}";
            Silos.Add((name, Track(ClusterProcess.StartSilo(name, http, port, gateway, port, clusterId, Repo.Models, redis)), $"http://127.0.0.1:{http}"));
        }

        var gatewayHttp = ClusterProcess.FreePort();
        GatewayUrl = $"http://127.0.0.1:{gatewayHttp}";
        var gatewayProcess = Track(ClusterProcess.StartGateway("redis-gateway", gatewayHttp, [], clusterId, [.. redis[..4], "--Gateway:RetryBudget", "00:00:20"]));
        foreach (var silo in Silos)
        {
            await silo.Process.WaitUntilOkAsync(Http, silo.Url + "/readyz", TimeSpan.FromSeconds(90));
        }

        await gatewayProcess.WaitUntilOkAsync(Http, GatewayUrl + "/readyz", TimeSpan.FromSeconds(90));
        for (var i = 0; i < 150 && (SilosSeenAtStart = await SilosInGatewayViewAsync()) < SiloCount; i++)
        {
            await Task.Delay(200);
        }

        // Each silo's placement learns of the others within a second of their first reports (its view catches up
        // while an active member is missing); the gateway's view may have come first.
        await Task.Delay(TimeSpan.FromSeconds(2));
    }

    /// <summary>Silos the gateway saw once the cluster had formed, before any test stopped one.</summary>
    public int SilosSeenAtStart { get; private set; }

    /// <summary>How many silos the gateway's cluster view reports the default model on.</summary>
    public async Task<int> SilosInGatewayViewAsync()
    {
        var json = JsonDocument.Parse(await Http.GetStringAsync(GatewayUrl + "/models/text-orientation")).RootElement;
        return json.GetProperty("versions")[0].GetProperty("silos").GetArrayLength();
    }

    private ClusterProcess Track(ClusterProcess process)
    {
        _processes.Add(process);
        return process;
    }

    public string Logs() => string.Join("\n", _processes.Select(p => $"--- {p.Name} ---\n{p.Output[^Math.Min(4000, p.Output.Length)..]}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        await Redis.DisposeAsync();
        Http.Dispose();
    }
}
