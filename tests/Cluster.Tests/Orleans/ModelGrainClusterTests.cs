using Classifier.Grains.Interfaces;
using Classifier.Tests.Support;

namespace Classifier.Tests.Orleans;

[Collection(ClusterCollection.Name)]
public sealed class ModelGrainClusterTests(ClusterFixture fixture)
{
    [Fact]
    public async Task ShardsOfOneModelArePlacedOnBothSilos()
    {
        var answers = new List<Prediction>();
        for (var i = 0; i < 16; i++)
        {
            answers.Add(await fixture.ClassifyAsync(TextImages.Numbered(1000 + i)));
        }

        var silos = answers.Select(a => a.Silo).Distinct().ToList();
        Assert.Equal(2, silos.Count);
    }

    [Fact]
    public async Task RepeatedImageIsServedFromTheGrainCache()
    {
        var image = TextImages.Render("cache me if you can");

        var first = await fixture.ClassifyAsync(image);
        var second = await fixture.ClassifyAsync(image);

        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(first.Silo, second.Silo);
        Assert.Equal(first.Scores, second.Scores);
        Assert.Equal(0, second.InferenceMs);

        var key = ModelGrainKey.Format("text-orientation", "1", Gateway.Cluster.PredictionRouter.Hash(image).ShardOf(ClusterFixture.ShardCount));
        var stats = await fixture.Cluster.Client.GetGrain<IModelGrain>(key).GetCacheStatisticsAsync();
        Assert.True(stats.Hits >= 1);
    }

    [Fact]
    public async Task LeastRecentlyUsedImageIsEvictedWhenTheGrainCacheIsFull()
    {
        // One shard, so every image lands in the same grain, whose capacity is 4.
        var images = Enumerable.Range(0, ClusterFixture.CacheCapacity + 1).Select(i => TextImages.Numbered(2000 + i)).ToArray();
        var grain = fixture.Cluster.Client.GetGrain<IModelGrain>(ModelGrainKey.Format("text-orientation", "1", 0));
        var before = await grain.GetCacheStatisticsAsync();

        for (var i = 0; i < ClusterFixture.CacheCapacity; i++)
        {
            await fixture.ClassifyAsync(images[i], shardCount: 1);
        }

        Assert.True((await fixture.ClassifyAsync(images[0], shardCount: 1)).FromCache); // touch 0: 1 becomes least recent
        await fixture.ClassifyAsync(images[^1], shardCount: 1); // full: evicts 1

        Assert.True((await fixture.ClassifyAsync(images[0], shardCount: 1)).FromCache);
        Assert.False((await fixture.ClassifyAsync(images[1], shardCount: 1)).FromCache);
        var after = await grain.GetCacheStatisticsAsync();
        Assert.Equal(ClusterFixture.CacheCapacity, after.Entries);
        Assert.True(after.Evictions - before.Evictions >= 2); // image 1, then the entry image 1's return displaced
    }

    [Fact]
    public async Task ConcurrentMissesOnOneGrainAreAllAnswered()
    {
        // Distinct images in one shard arrive together; the reentrant grain runs them side by side.
        var images = Enumerable.Range(0, 8).Select(i => TextImages.Numbered(3000 + i)).ToArray();

        var answers = await Task.WhenAll(images.Select(image => fixture.ClassifyAsync(image, shardCount: 1)));

        Assert.All(answers, a => Assert.False(a.FromCache));
        Assert.All(answers, a => Assert.Equal("0", a.Scores[0].Label));
    }

    [Fact]
    public async Task CacheHitIsAnsweredWhileAMissOnTheSameGrainIsStillRunning()
    {
        // One shard, so both requests meet in one grain. The large image keeps its miss busy decoding;
        // a grain that took one turn at a time would hold the cached request back until it finished.
        var cached = TextImages.Numbered(6000);
        await fixture.ClassifyAsync(cached, shardCount: 1);
        var large = LargePng(3000, 3000);

        var slow = fixture.ClassifyAsync(large, shardCount: 1);
        await Task.Delay(20); // let the miss start
        var fast = await fixture.ClassifyAsync(cached, shardCount: 1);
        var slowWasRunning = !slow.IsCompleted;
        var slowAnswer = await slow;

        Assert.True(fast.FromCache);
        Assert.True(slowWasRunning, "the hit waited for the miss: the grain does not interleave requests (or the large image decoded too fast to tell)");
        Assert.False(slowAnswer.FromCache);
        Assert.True(slowAnswer.PreprocessingMs > 20, $"decode took {slowAnswer.PreprocessingMs} ms");
    }

    private static byte[] LargePng(int width, int height)
    {
        using var image = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    row[x] = new((byte)(x * 7 + y), (byte)(y * 3), (byte)(x ^ y));
                }
            }
        });
        using var stream = new MemoryStream();
        SixLabors.ImageSharp.ImageExtensions.SaveAsPng(image, stream);
        return stream.ToArray();
    }

    [Fact]
    public async Task EachSiloCacheHitRateGaugeCountsOnlyItsOwnGrains()
    {
        var images = Enumerable.Range(0, 6).Select(i => TextImages.Numbered(4100 + i)).ToArray();
        foreach (var image in images.Concat(images.Take(2)))
        {
            await fixture.ClassifyAsync(image);
        }

        foreach (var silo in fixture.SiloServices)
        {
            var metrics = ClusterFixture.MetricsOf(silo);
            using var scrape = new MemoryStream();
            await metrics.Registry.CollectAndExportAsTextAsync(scrape, TestContext.Current.CancellationToken); // runs the before-scrape refresh

            var hits = metrics.CacheHits.WithLabels("text-orientation", "1").Value;
            var misses = metrics.CacheMisses.WithLabels("text-orientation", "1").Value;
            Assert.True(misses > 0, "every silo should hold some of the shards");
            Assert.Equal(hits / (hits + misses), metrics.CacheHitRate.Value, 12);
            Assert.InRange(metrics.CacheSize.Value, 1, metrics.CacheCapacity.Value);
            Assert.Equal(0, metrics.CacheCapacity.Value % ClusterFixture.CacheCapacity);
        }
    }

    [Fact]
    public async Task UnknownModelVersionIsReportedAsNotFound()
    {
        var reply = await fixture.Cluster.Client.GetGrain<IModelGrain>(ModelGrainKey.Format("text-orientation", "9", 0))
            .PredictAsync(new PredictionRequest([1, 2, 3], 0));

        Assert.Equal(PredictionErrorKind.ModelNotFound, reply.Error?.Kind);
    }
}
