using Classifier.LoadGenerator;

namespace Classifier.Tests.Reliability;

/// <summary>The CI-sized version of scripts/soak.sh: a few thousand mixed requests on a silo of its own.</summary>
public sealed class SoakTests(HostileInputFixture cluster, ITestOutputHelper output) : IClassFixture<HostileInputFixture>
{
    [Fact]
    public async Task ShortSoakAnswersEveryRequestAsExpectedWithoutMemoryGrowth()
    {
        var options = new SoakOptions(cluster.GatewayUrl, [cluster.SiloUrl + "/metrics"], Requests: 3_000, Concurrency: 4, UniqueImages: 300, BadShare: 0.05);

        var report = await Soak.RunAsync(options, cluster.Http, TestContext.Current.CancellationToken);

        output.WriteLine(report.ToString());
        Assert.Equal(0, report.UnexpectedStatuses);
        Assert.True(report.Statuses.GetValueOrDefault(400) > 0 && report.Statuses.GetValueOrDefault(200) > 0, report.ToString());
        Assert.True(report.MaxGrowthMiB < 100, $"silo RSS grew {report.MaxGrowthMiB:F0} MiB after warm-up");
        Assert.False(cluster.Silo.HasExited);
    }
}
