using System.Collections.Concurrent;
using System.Diagnostics;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;

namespace Classifier.Tests.Reliability;

/// <summary>A silo killed with SIGKILL under steady load: the gateway retries, grains reactivate on the survivors.</summary>
public sealed class SiloCrashTests(RedisClusterFixture cluster, ITestOutputHelper output) : IClassFixture<RedisClusterFixture>
{
    /// <summary>The most requests allowed to fail (5xx) while membership notices the dead silo.</summary>
    private const int AllowedFailures = 3;

    /// <summary>Full service must be back within this time after the kill.</summary>
    private static readonly TimeSpan RecoveryBound = TimeSpan.FromSeconds(25);

    private sealed record Outcome(TimeSpan At, int Status, string? Silo, int Image, double LatencyMs);

    [Fact]
    public async Task ThreeSilosAndAGatewayFormOneClusterThroughRedis()
    {
        Assert.Equal(RedisClusterFixture.SiloCount, await cluster.SilosInGatewayViewAsync());

        var served = new HashSet<string>();
        for (var i = 0; i < 30; i++)
        {
            using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", HttpHelpers.Raw(TextImages.Numbered(8000 + i), "image/png"));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            served.Add((await response.JsonAsync()).GetProperty("silo").GetString()!);
        }

        Assert.True(served.Count >= 2, $"only {string.Join(", ", served)} served 30 distinct images");
    }

    [Fact]
    public async Task KillingASiloUnderLoadLosesAtMostAFewRequestsAndServiceResumes()
    {
        var images = Enumerable.Range(0, 48).Select(i => TextImages.Numbered(9000 + i)).ToArray();
        var outcomes = new ConcurrentBag<Outcome>();
        var clock = Stopwatch.StartNew();
        var killAt = TimeSpan.Zero;
        var victim = cluster.Silos[^1];

        async Task Client(int id, CancellationToken stop)
        {
            var random = new Random(id);
            while (!stop.IsCancellationRequested)
            {
                var image = random.Next(images.Length);
                var sent = clock.Elapsed;
                try
                {
                    using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", HttpHelpers.Raw(images[image], "image/png"), CancellationToken.None);
                    var silo = response.IsSuccessStatusCode ? (await response.JsonAsync()).GetProperty("silo").GetString() : null;
                    outcomes.Add(new Outcome(clock.Elapsed, (int)response.StatusCode, silo, image, (clock.Elapsed - sent).TotalMilliseconds));
                }
                catch (HttpRequestException)
                {
                    outcomes.Add(new Outcome(clock.Elapsed, 599, null, image, (clock.Elapsed - sent).TotalMilliseconds));
                }

                await Task.Delay(20, CancellationToken.None);
            }
        }

        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(i => Task.Run(() => Client(i, stop.Token))).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(6));
        var beforeKill = outcomes.ToList();
        killAt = clock.Elapsed;
        await victim.Process.KillAsync();
        await Task.Delay(RecoveryBound + TimeSpan.FromSeconds(5));
        await stop.CancelAsync();
        await Task.WhenAll(clients);

        var after = outcomes.Where(o => o.At > killAt).OrderBy(o => o.At).ToList();
        var failures = after.Where(o => o.Status >= 500).ToList();
        var lastFailure = failures.Count == 0 ? TimeSpan.Zero : failures[^1].At - killAt;
        var victimImages = beforeKill.Where(o => o.Silo == victim.Name).Select(o => o.Image).ToHashSet();
        var recoveredVictimImages = after.Where(o => o.At - killAt > RecoveryBound && o.Status == 200 && victimImages.Contains(o.Image)).ToList();
        output.WriteLine($"requests: {beforeKill.Count} before the kill, {after.Count} after; 5xx after the kill: {failures.Count}; " +
            $"last 5xx {lastFailure.TotalSeconds:F1} s after the kill; {victimImages.Count} images were on {victim.Name}, " +
            $"{recoveredVictimImages.Select(o => o.Image).Distinct().Count()} of them served again after recovery; " +
            $"latency after the kill p50 {Percentile(after, 0.5):F0} ms, p99 {Percentile(after, 0.99):F0} ms, max {Percentile(after, 1):F0} ms");

        Assert.True(beforeKill.Count > 50 && beforeKill.All(o => o.Status == 200), "the cluster was not serving cleanly before the kill");
        Assert.NotEmpty(victimImages);
        Assert.True(failures.Count <= AllowedFailures, $"{failures.Count} requests failed after the kill:\n{string.Join("\n", failures.Take(10))}\n{cluster.Logs()}");
        Assert.True(lastFailure < RecoveryBound, $"failures continued {lastFailure.TotalSeconds:F1} s after the kill");
        Assert.All(after.Where(o => o.At - killAt > RecoveryBound), o => Assert.Equal(200, o.Status));
        Assert.All(after.Where(o => o.At - killAt > RecoveryBound), o => Assert.NotEqual(victim.Name, o.Silo));
        Assert.Equal(victimImages.Intersect(after.Where(o => o.At - killAt > RecoveryBound).Select(o => o.Image)).Count(), recoveredVictimImages.Select(o => o.Image).Distinct().Count());
    }

    private static double Percentile(List<Outcome> outcomes, double p)
    {
        var sorted = outcomes.Select(o => o.LatencyMs).Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];
    }
}
