using Classifier.Tests.Support;

namespace Classifier.Tests.Orleans;

[Collection(FreshClusterCollection.Name)]
public sealed class ClusterCacheHitRateTests(FreshClusterFixture fixture)
{
    [Fact]
    public async Task ClusterCacheHitRateIsExactOnEverySiloAfterAKnownSequence()
    {
        // 5 distinct images (5 misses), then 3 of them again (3 hits): 3 / 8 = 0.375 cluster-wide.
        var images = Enumerable.Range(0, 5).Select(i => TextImages.Numbered(4000 + i)).ToArray();
        var answers = new List<Grains.Interfaces.Prediction>();
        foreach (var image in images.Concat(images.Take(3)))
        {
            answers.Add(await fixture.ClassifyAsync(image));
        }

        Assert.Equal(3, answers.Count(a => a.FromCache));
        Assert.Equal(2, answers.Select(a => a.Silo).Distinct().Count()); // the grains really are spread

        // Two rounds: in the second, each silo receives a sum that includes every silo's first report.
        for (var round = 0; round < 2; round++)
        {
            foreach (var silo in fixture.SiloServices)
            {
                await ClusterFixture.ReporterOf(silo).ReportOnceAsync();
            }
        }

        foreach (var silo in fixture.SiloServices)
        {
            Assert.Equal(0.375, ClusterFixture.MetricsOf(silo).ClusterCacheHitRate.Value);
        }

        // Each silo's own gauge counts only its grains; together they add up to the cluster's counts.
        var perSilo = fixture.SiloServices.Select(s => (Hits: ClusterFixture.MetricsOf(s).CacheHits.WithLabels("text-orientation", "1").Value,
            Misses: ClusterFixture.MetricsOf(s).CacheMisses.WithLabels("text-orientation", "1").Value)).ToList();
        Assert.Equal(3, perSilo.Sum(s => s.Hits));
        Assert.Equal(5, perSilo.Sum(s => s.Misses));
    }
}
