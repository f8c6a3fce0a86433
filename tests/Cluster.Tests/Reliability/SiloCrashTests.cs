using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;

namespace Classifier.Tests.Reliability;

/// <summary>A silo killed with SIGKILL under steady load: the gateway retries, grains reactivate on the survivors.</summary>
public sealed class SiloCrashTests(RedisClusterFixture cluster, ITestOutputHelper output) : IClassFixture<RedisClusterFixture>
{
    /// <summary>The most requests allowed to fail (5xx) while membership notices the dead silo: none, the gateway retries them.</summary>
    private const int AllowedFailures = 0;

    /// <summary>The slowest request after the kill: the silos' failure detection (about 2 s here) plus a retry, well under the gateway's 10 s call timeout.</summary>
    private static readonly TimeSpan SlowestAllowed = TimeSpan.FromSeconds(5);

    /// <summary>Full service must be back within this time after the kill.</summary>
    private static readonly TimeSpan RecoveryBound = TimeSpan.FromSeconds(25);

    [Fact]
    public async Task ThreeSilosAndAGatewayFormOneClusterThroughRedis()
    {
        // The crash test in this class stops a silo; tests run in any order, so check what formed first.
        Assert.Equal(RedisClusterFixture.SiloCount, cluster.SilosSeenAtStart);

        var served = new HashSet<string>();
        for (var i = 0; i < 30; i++)
        {
            using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", HttpHelpers.Raw(TextImages.Numbered(8000 + i), "image/png"));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            served.Add((await response.JsonAsync()).GetProperty("silo").GetString()!);
        }

        // The crash test may have run first and killed a silo: how evenly shards spread is checked there, before its kill.
        Assert.True(served.Count >= 2, $"only {string.Join(", ", served)} served 30 distinct images");
    }

    [Fact]
    public async Task KillingASiloUnderLoadFailsNoRequestAndNoneWaitsForTheCallTimeout()
    {
        var victim = cluster.Silos[^1];
        var load = new LoadRun(cluster.Http, cluster.GatewayUrl, images: 48, seed: 9000);
        using var stop = new CancellationTokenSource();
        var running = load.RunAsync(clients: 4, stop.Token);
        await Task.Delay(TimeSpan.FromSeconds(6));
        var killAt = load.Elapsed;
        await victim.Process.KillAsync();
        await Task.Delay(RecoveryBound + TimeSpan.FromSeconds(5));
        await stop.CancelAsync();
        await running;

        var outcomes = load.Outcomes;
        var beforeKill = outcomes.Where(o => o.At <= killAt).ToList();
        var after = outcomes.Where(o => o.At > killAt).ToList();
        var settled = after.Where(o => o.At - killAt > RecoveryBound).ToList();
        var failures = after.Where(o => o.Status >= 500).ToList();
        var lastFailure = failures.Count == 0 ? TimeSpan.Zero : failures[^1].At - killAt;
        var victimImages = beforeKill.Where(o => o.Silo == victim.Name).Select(o => o.Image).ToHashSet();
        var summary = $"requests: {beforeKill.Count} before the kill, {after.Count} after; 5xx after the kill: {failures.Count}; " +
            $"last 5xx {lastFailure.TotalSeconds:F1} s after the kill; {victimImages.Count} images were on {victim.Name}, " +
            $"{settled.Where(o => victimImages.Contains(o.Image)).Select(o => o.Image).Distinct().Count()} of them served again after recovery; " +
            $"latency after the kill p50 {LoadRun.Percentile(after, 0.5):F0} ms, p99 {LoadRun.Percentile(after, 0.99):F0} ms, max {LoadRun.Percentile(after, 1):F0} ms";
        output.WriteLine(summary);
        Directory.CreateDirectory(Path.Combine(Repo.Root, ".run"));
        File.AppendAllText(Path.Combine(Repo.Root, ".run", "silo-crash.txt"), $"{DateTime.UtcNow:O} {summary}\n");

        Assert.True(beforeKill.Count > 50 && beforeKill.All(o => o.Status == 200), "the cluster was not serving cleanly before the kill");

        // Before the kill, shards spread over all three silos (placement is shard mod ready silos, whatever the
        // activation statistics say): every silo answers some of the distinct images, none more than half.
        var imagesBySilo = beforeKill.GroupBy(o => o.Silo!).ToDictionary(g => g.Key, g => g.Select(o => o.Image).Distinct().Count());
        var spread = string.Join(", ", imagesBySilo.Select(p => $"{p.Key}: {p.Value}"));
        Assert.True(imagesBySilo.Count == RedisClusterFixture.SiloCount, $"before the kill, distinct images were served by {spread}");
        Assert.True(imagesBySilo.Values.Max() * 2 <= imagesBySilo.Values.Sum(), $"before the kill, one silo served more than half of the distinct images: {spread}");
        Assert.NotEmpty(victimImages);
        Assert.True(failures.Count <= AllowedFailures, $"{failures.Count} requests failed after the kill:\n{string.Join("\n", failures.Take(10))}\n{cluster.Logs()}");
        // Calls caught by the crash are retried when membership declares the silo dead, not at the 10 s call timeout.
        Assert.True(LoadRun.Percentile(after, 1) < SlowestAllowed.TotalMilliseconds, $"the slowest request after the kill took {LoadRun.Percentile(after, 1):F0} ms");
        Assert.True(lastFailure < RecoveryBound, $"failures continued {lastFailure.TotalSeconds:F1} s after the kill");
        Assert.All(settled, o => Assert.Equal(200, o.Status));
        Assert.All(settled, o => Assert.NotEqual(victim.Name, o.Silo));
        Assert.Contains(settled, o => victimImages.Contains(o.Image)); // the dead silo's shards are served again
    }
}
