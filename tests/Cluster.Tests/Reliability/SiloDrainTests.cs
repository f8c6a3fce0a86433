using Classifier.Tests.Support;

namespace Classifier.Tests.Reliability;

/// <summary>A cluster of its own, so that draining a silo does not disturb the crash tests.</summary>
public sealed class DrainClusterFixture : IAsyncLifetime
{
    public RedisClusterFixture Cluster { get; } = new();

    public ValueTask InitializeAsync() => Cluster.InitializeAsync();

    public ValueTask DisposeAsync() => Cluster.DisposeAsync();
}

/// <summary>SIGTERM on a silo under load (Kubernetes scale-in): it drains, and no request fails.</summary>
public sealed class SiloDrainTests(DrainClusterFixture fixture, ITestOutputHelper output) : IClassFixture<DrainClusterFixture>
{
    private RedisClusterFixture Cluster => fixture.Cluster;

    [Fact]
    public async Task TerminatingASiloUnderLoadFailsNoRequestAndItsShardsMove()
    {
        var leaving = Cluster.Silos[1];
        var load = new LoadRun(Cluster.Http, Cluster.GatewayUrl, images: 48, seed: 11000);
        using var stop = new CancellationTokenSource();
        var running = load.RunAsync(clients: 4, stop.Token);
        await Task.Delay(TimeSpan.FromSeconds(6));

        var terminatedAt = load.Elapsed;
        leaving.Process.Terminate();
        var readyTurnedFalse = await ReadinessTurnsFalseAsync(leaving.Url);
        var exitCode = await leaving.Process.WaitForExitAsync(TimeSpan.FromSeconds(40));
        var exitedAfter = load.Elapsed - terminatedAt;
        await Task.Delay(TimeSpan.FromSeconds(5));
        await stop.CancelAsync();
        await running;

        var outcomes = load.Outcomes;
        var before = outcomes.Where(o => o.At <= terminatedAt).ToList();
        var after = outcomes.Where(o => o.At > terminatedAt).ToList();
        var leavingImages = before.Where(o => o.Silo == leaving.Name).Select(o => o.Image).ToHashSet();
        var afterExit = after.Where(o => o.At > terminatedAt + exitedAfter).ToList();
        output.WriteLine($"requests: {before.Count} before SIGTERM, {after.Count} after; failures after: {after.Count(o => o.Status != 200)}; " +
            $"readiness false: {readyTurnedFalse}; exit code {exitCode} after {exitedAfter.TotalSeconds:F1} s; " +
            $"latency after SIGTERM p50 {LoadRun.Percentile(after, 0.5):F0} ms, p99 {LoadRun.Percentile(after, 0.99):F0} ms, max {LoadRun.Percentile(after, 1):F0} ms");

        output.WriteLine(string.Join("\n", after.Where(o => o.Status != 200).Take(5)));
        Assert.NotEmpty(leavingImages);
        Assert.True(readyTurnedFalse, "the silo's /readyz never answered 503 while it drained");
        Assert.Equal(0, exitCode);
        Assert.All(after, o => Assert.Equal(200, o.Status));
        Assert.Contains(afterExit, o => leavingImages.Contains(o.Image) && o.Silo != leaving.Name);
    }

    /// <summary>True once the silo's readiness probe answers 503 (or the silo stops answering after having done so).</summary>
    private async Task<bool> ReadinessTurnsFalseAsync(string siloUrl)
    {
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var response = await Cluster.Http.GetAsync(siloUrl + "/readyz");
                if ((int)response.StatusCode == 503)
                {
                    return true;
                }
            }
            catch (HttpRequestException)
            {
                return false; // gone without ever saying it was draining
            }

            await Task.Delay(50);
        }

        return false;
    }
}
