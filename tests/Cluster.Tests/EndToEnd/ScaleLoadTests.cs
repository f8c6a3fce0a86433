using Classifier.LoadGenerator;
using Classifier.Tests.Support;

namespace Classifier.Tests.EndToEnd;

/// <summary>
/// The load generator's <c>scale</c> mode, which <c>scripts/scale-check.sh</c> runs once per silo count on a
/// multi-core host: here against two silos and two gateways of their own, to show it spreads requests over
/// every gateway and accounts every silo's CPU, before a borrowed host's minutes are spent on it.
/// </summary>
public sealed class ScaleLoadTests
{
    [Fact]
    public async Task ScaleRunSpreadsRequestsOverEveryGatewayAndAccountsEverySilo()
    {
        Repo.RequireDefaultModel();
        var clusterId = "scale-" + Guid.NewGuid().ToString("N")[..6];
        var (http1, port1, gateway1, http2, port2, gateway2) =
            (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        // Four shards over two silos: two each, so both serve misses.
        await using var silo1 = ClusterProcess.StartSilo("silo1", http1, port1, gateway1, port1, clusterId, Repo.Models, "--Cluster:ShardCount", "4");
        await using var silo2 = ClusterProcess.StartSilo("silo2", http2, port2, gateway2, port1, clusterId, Repo.Models, "--Cluster:ShardCount", "4");
        var (frontA, frontB) = (ClusterProcess.FreePort(), ClusterProcess.FreePort());
        await using var gatewayA = ClusterProcess.StartGateway("gatewayA", frontA, [gateway1, gateway2], clusterId);
        await using var gatewayB = ClusterProcess.StartGateway("gatewayB", frontB, [gateway1, gateway2], clusterId);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        string[] gateways = [$"http://127.0.0.1:{frontA}", $"http://127.0.0.1:{frontB}"];
        string[] silos = [$"http://127.0.0.1:{http1}", $"http://127.0.0.1:{http2}"];
        foreach (var silo in silos)
        {
            await silo1.WaitUntilOkAsync(http, silo + "/readyz", TimeSpan.FromSeconds(60));
        }

        foreach (var gateway in gateways)
        {
            await gatewayA.WaitUntilOkAsync(http, gateway + "/readyz", TimeSpan.FromSeconds(60));
            await WaitForReadySilosAsync(http, gateway, 2);
        }

        var before = await Task.WhenAll(gateways.Select(g => PredictRequestsAsync(http, g)));
        const int requests = 200;
        var results = await Scale.RunAsync(http, gateways, gateways.Select(g => g + "/metrics").ToArray(), silos.Select(s => s + "/metrics").ToArray(),
            "text-orientation", requests, concurrency: 8, warmUpPass: 100);
        var after = await Task.WhenAll(gateways.Select(g => PredictRequestsAsync(http, g)));

        Assert.Equal(["all-miss", "Zipf(1.1) over 1000"], results.Select(r => r.Workload));
        Assert.All(results, r => Assert.Equal(0, r.Errors));
        var allMiss = results[0];
        Assert.Equal(0, allMiss.HitRate);
        Assert.True(allMiss.HitRate < results[1].HitRate, "the Zipf mix repeats images, so some of it should hit");
        // Every request alternates between the gateways: each answered half of every run, warm-up included.
        var served = after.Zip(before, (a, b) => a - b).ToArray();
        Assert.Equal(served[0], served[1]);
        Assert.True(served[0] >= requests, $"each gateway should have answered at least half of both workloads' {2 * requests} requests: {string.Join(", ", served)}");
        // Both silos ran misses, and the total is their sum.
        Assert.Equal(2, allMiss.SiloCpuMsEach.Length);
        Assert.All(allMiss.SiloCpuMsEach, ms => Assert.True(ms > 0, $"every silo should have spent CPU on the misses: {string.Join(", ", allMiss.SiloCpuMsEach)}"));
        Assert.Equal(allMiss.SiloCpuMsEach.Sum(), allMiss.SiloCpuMs, 6);
        Assert.True(allMiss.GatewayCpuMs > 0 && allMiss.ClientCpuMs > 0);
    }

    private static async Task<double> PredictRequestsAsync(HttpClient http, string gateway) =>
        (await http.GetStringAsync(gateway + "/metrics")).Split('\n')
            .Where(l => l.StartsWith("http_requests_total{", StringComparison.Ordinal) && l.Contains("endpoint=\"/predict\"", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    private static async Task WaitForReadySilosAsync(HttpClient http, string gateway, int silos)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var body = await http.GetStringAsync(gateway + "/models/text-orientation");
            var ready = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("versions").EnumerateArray()
                .Sum(v => v.GetProperty("silos").EnumerateArray().Count(s => s.GetProperty("state").GetString() == "ready"));
            if (ready >= silos)
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{gateway} saw {ready} of {silos} silos ready after 60 s: {body}");
            await Task.Delay(200);
        }
    }
}
