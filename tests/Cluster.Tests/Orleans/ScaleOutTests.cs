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
        var images = await ScaleOut.AnswerAsync(fixture, first: 13000, count: 24);

        var original = fixture.Cluster.Silos[0];
        var shards = ScaleOut.Shards(original.ServiceProvider);
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
            onNew = ScaleOut.Shards(joined.ServiceProvider);
        }

        // The loop stops at a fair share, possibly with more migrations still on their way; let them land
        // (every shard live on one silo or the other, the split unchanged for two polls) before asking.
        // Under load, a request that raced a migration in flight was once answered by a fresh activation
        // without the cache.
        var settled = 0;
        for (var poll = 0; poll < 40 && settled < 2; poll++)
        {
            await Task.Delay(250);
            var onNewNow = ScaleOut.Shards(joined.ServiceProvider);
            var onOriginal = ScaleOut.Shards(original.ServiceProvider);
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

/// <summary>
/// The same scale-out while clients keep asking for images the cluster has already answered: a shard that moves while
/// requests arrive for it must answer them from the cache it brought, not restart cold on either silo.
/// </summary>
public sealed class ScaleOutUnderLoadTests(SingleSiloClusterFixture fixture, ITestOutputHelper output) : IClassFixture<SingleSiloClusterFixture>
{
    [Fact]
    public async Task ShardsMigratedWhileServingKeepAnsweringFromCache()
    {
        var images = await ScaleOut.AnswerAsync(fixture, first: 15000, count: 40);

        var original = fixture.Cluster.Silos[0];
        var shards = ScaleOut.Shards(original.ServiceProvider);

        // Clients that only ever ask for images already answered: every answer should come from a cache.
        using var stop = new CancellationTokenSource();
        var answers = new System.Collections.Concurrent.ConcurrentBag<(int Image, Grains.Interfaces.Prediction Answer)>();
        var clients = Enumerable.Range(0, 4).Select(c => Task.Run(async () =>
        {
            for (var i = c; !stop.IsCancellationRequested; i += 4)
            {
                answers.Add((i % images.Length, await fixture.ClassifyAsync(images[i % images.Length], shardCount: 64)));
            }
        })).ToArray();

        var joined = await fixture.Cluster.StartAdditionalSiloAsync();
        var onNew = 0;
        var settled = 0;
        for (var round = 0; round < 60 && settled < 3; round++)
        {
            foreach (var silo in fixture.SiloServices)
            {
                await ClusterFixture.ReporterOf(silo).ReportOnceAsync();
            }

            await Task.Delay(250);
            var onNewNow = ScaleOut.Shards(joined.ServiceProvider);
            var onOriginal = ScaleOut.Shards(original.ServiceProvider);
            settled = onNewNow == onNew && onNewNow >= shards / 2 - 2 && onNewNow + onOriginal == shards ? settled + 1 : 0;
            onNew = onNewNow;
        }

        await stop.CancelAsync();
        await Task.WhenAll(clients);

        var all = answers.ToArray();
        var cold = all.Where(a => !a.Answer.FromCache).ToArray();
        var movedImages = all.Where(a => a.Answer.Silo == joined.Name)
            .Select(a => a.Image).Distinct().Count();
        var summary = $"{shards} shards, {onNew} moved to the new silo; {all.Length} requests during the move, {cold.Length} not from cache " +
            $"({string.Join(", ", cold.Select(c => c.Image).Distinct().Take(10))}); {movedImages} of {images.Length} images answered by the new silo";
        output.WriteLine(summary);
        Directory.CreateDirectory(Path.Combine(Repo.Root, ".run"));
        File.AppendAllText(Path.Combine(Repo.Root, ".run", "scale-out-under-load.txt"), $"{DateTime.UtcNow:O} {summary}\n");

        Assert.InRange(onNew, shards / 2 - 2, shards / 2 + 2);
        Assert.True(movedImages > 0, "no image was answered by the new silo during the run");
        Assert.True(cold.Length == 0, summary);
    }
}

/// <summary>What both scale-out tests do: answer distinct images once (caching them), and count a silo's shards.</summary>
internal static class ScaleOut
{
    public static async Task<byte[][]> AnswerAsync(ClusterFixture fixture, int first, int count)
    {
        var images = Enumerable.Range(0, count).Select(i => TextImages.Numbered(first + i)).ToArray();
        foreach (var image in images)
        {
            await fixture.ClassifyAsync(image, shardCount: 64);
        }

        return images;
    }

    public static int Shards(IServiceProvider silo) => silo.GetRequiredService<SiloCacheStatistics>().LiveGrainKeys().Length;
}
