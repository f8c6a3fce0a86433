using Classifier.Grains.Caching;
using Classifier.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Classifier.Tests.Orleans;

/// <summary>A silo joining a loaded cluster receives a fair share of the shards, which keep their caches.</summary>
public sealed class ScaleOutTests(SingleSiloClusterFixture fixture, ITestOutputHelper output) : IClassFixture<SingleSiloClusterFixture>
{
    [Fact]
    public async Task ANewSiloReceivesAFairShareOfActiveShardsWithTheirCaches()
    {
        var images = Enumerable.Range(0, 24).Select(i => TextImages.Numbered(13000 + i)).ToArray();
        foreach (var image in images)
        {
            await fixture.ClassifyAsync(image, shardCount: 64);
        }

        var original = fixture.Cluster.Silos[0];
        var shards = original.ServiceProvider.GetRequiredService<SiloCacheStatistics>().LiveGrainKeys().Length;
        var joined = await fixture.Cluster.StartAdditionalSiloAsync();
        var onNew = 0;
        var rounds = 0;
        for (; rounds < 40 && onNew < shards / 2 - 2; rounds++)
        {
            foreach (var silo in fixture.SiloServices)
            {
                await ClusterFixture.ReporterOf(silo).ReportOnceAsync();
            }

            await Task.Delay(250);
            onNew = joined.ServiceProvider.GetRequiredService<SiloCacheStatistics>().LiveGrainKeys().Length;
        }

        // The loop stops at a fair share, possibly with more migrations still on their way; let them land
        // (every shard live on one silo or the other, the split unchanged for two polls) before asking.
        // Under load, a request that raced a migration in flight was once answered by a fresh activation
        // without the cache.
        var settled = 0;
        for (var poll = 0; poll < 40 && settled < 2; poll++)
        {
            await Task.Delay(250);
            var onNewNow = joined.ServiceProvider.GetRequiredService<SiloCacheStatistics>().LiveGrainKeys().Length;
            var onOriginal = original.ServiceProvider.GetRequiredService<SiloCacheStatistics>().LiveGrainKeys().Length;
            settled = onNewNow == onNew && onNewNow + onOriginal == shards ? settled + 1 : 0;
            onNew = onNewNow;
        }

        var answers = new List<Grains.Interfaces.Prediction>();
        foreach (var image in images)
        {
            answers.Add(await fixture.ClassifyAsync(image, shardCount: 64));
        }

        output.WriteLine($"{shards} shards; after {rounds} report rounds the new silo holds {onNew}; answers by silo: " +
            string.Join(", ", answers.GroupBy(a => a.Silo).Select(g => $"{g.Key}: {g.Count()}")));
        Assert.InRange(onNew, shards / 2 - 2, shards / 2 + 2);
        Assert.Equal(2, answers.Select(a => a.Silo).Distinct().Count());
        Assert.All(answers, a => Assert.True(a.FromCache, "a migrated shard lost its cache"));
    }
}
