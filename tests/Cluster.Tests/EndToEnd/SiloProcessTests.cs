using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.EndToEnd;

[Collection(ProcessClusterCollection.Name)]
public sealed class SiloProcessTests(ProcessClusterFixture cluster)
{
    [Fact]
    public async Task SecondSiloJoinsTheLocalClusterAndReceivesNewShards()
    {
        var (http, port, gateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var silo = cluster.Track(ClusterProcess.StartSilo("silo-b", http, port, gateway, cluster.PrimarySiloPort, cluster.ClusterId, cluster.ModelRepository));
        await silo.WaitUntilOkAsync(cluster.Http, $"http://127.0.0.1:{http}/readyz", TimeSpan.FromSeconds(60));
        cluster.AddSilo($"http://127.0.0.1:{http}");

        // Placement weighs silos by the activation counts they publish, so the first few shards after the
        // join may still go to silo-a; within a bounded number of new images one must land on silo-b.
        var served = new List<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        for (var i = 0; i < 200 && DateTime.UtcNow < deadline && !served.Contains("silo-b"); i++)
        {
            using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(TextImages.Numbered(5000 + i), "image/png"));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            served.Add((await response.JsonAsync()).GetProperty("silo").GetString()!);
            await Task.Delay(100);
        }

        Assert.True(served.Contains("silo-b"), $"none of {served.Count} new images reached silo-b:\n{cluster.Logs()}");
    }

    [Fact]
    public async Task BadModelConfigStopsSiloStartupNamingTheFileAndTheField()
    {
        var repo = Directory.CreateTempSubdirectory("bad-repo-").FullName;
        try
        {
            var model = Path.Combine(repo, "broken");
            Directory.CreateDirectory(Path.Combine(model, "1"));
            var config = Path.Combine(model, "config.json");
            await File.WriteAllTextAsync(config, """{ "input": { "name": "x", "shape": [3, 48, 192] }, "output": { "type": "logits" }, "labels": ["a"] }""");

            var (http, port, gateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
            await using var silo = ClusterProcess.StartSilo("silo-bad", http, port, gateway, port, "bad-" + Guid.NewGuid().ToString("N")[..6], repo);

            var code = await silo.WaitForExitAsync(TimeSpan.FromSeconds(60));

            Assert.Equal(2, code);
            Assert.Contains(config, silo.Output, StringComparison.Ordinal);
            Assert.Contains("'output.name'", silo.Output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(repo, recursive: true);
        }
    }

    [Fact]
    public async Task AnUnreachableRedisStopsSiloStartupWithAPlainMessageAndItsOwnExitCode()
    {
        // Nothing listens on this port: the membership table cannot be reached.
        var (http, port, gateway, redis) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        await using var silo = ClusterProcess.StartSilo("silo-no-redis", http, port, gateway, port, "noredis-" + Guid.NewGuid().ToString("N")[..6], Repo.Models,
            "--Cluster:Clustering", "redis", "--Cluster:RedisConnectionString", $"127.0.0.1:{redis}", "--Cluster:AdvertisedIP", "127.0.0.1");

        var code = await silo.WaitForExitAsync(TimeSpan.FromSeconds(90));

        Assert.True(code == 4, $"exit code {code}: {silo.Output[^Math.Min(2000, silo.Output.Length)..]}");
        Assert.Contains("error: cannot reach Redis for the cluster's membership table", silo.Output, StringComparison.Ordinal);
        Assert.Contains("Cluster:RedisConnectionString", silo.Output, StringComparison.Ordinal);
    }
}
