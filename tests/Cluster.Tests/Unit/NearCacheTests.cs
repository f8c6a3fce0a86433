using Classifier.Gateway;
using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Options;

namespace Classifier.Tests.Unit;

public sealed class NearCacheTests
{
    private static readonly Func<string, bool> AllLive = _ => true;

    private static NearCache NewCache(int entries, long bytes = 1 << 20) =>
        new(Options.Create(new GatewayOptions { NearCacheEntries = entries, NearCacheBytes = bytes }));

    private static NearCache.Key Key(int image, string fingerprint = "f1", int topK = 0) =>
        new("m", "1", fingerprint, ImageHash.Of(BitConverter.GetBytes(image)), topK);

    private static Prediction Answer(string silo = "silo-a", float[]? embedding = null) =>
        new("m", "1", [new ClassScore("cat", 0, 0.9f)], false, 3.5, 1.5, silo, "CPU", embedding);

    [Fact]
    public void AStoredAnswerComesBackMarkedAsACacheHitWithoutSiloTimings()
    {
        var cache = NewCache(8);
        cache.Add(Key(1), Answer());

        Assert.True(cache.TryGet(Key(1), "m/1/0", AllLive, out var hit));
        Assert.True(hit.FromCache);
        Assert.Equal((0.0, 0.0, "silo-a", "cat"), (hit.PreprocessingMs, hit.InferenceMs, hit.Silo, hit.Scores[0].Label));
    }

    [Fact]
    public void AnotherFingerprintTopKOrImageIsAMiss()
    {
        var cache = NewCache(8);
        cache.Add(Key(1), Answer());

        Assert.False(cache.TryGet(Key(1, fingerprint: "f2"), "m/1/0", AllLive, out _));
        Assert.False(cache.TryGet(Key(1, topK: 1), "m/1/0", AllLive, out _));
        Assert.False(cache.TryGet(Key(2), "m/1/0", AllLive, out _));
    }

    [Fact]
    public void TheLeastRecentlyUsedAnswerIsEvictedAtTheEntryLimit()
    {
        var cache = NewCache(2);
        cache.Add(Key(1), Answer());
        cache.Add(Key(2), Answer());
        Assert.True(cache.TryGet(Key(1), "m/1/0", AllLive, out _)); // 2 is now the least recently used

        cache.Add(Key(3), Answer());

        Assert.Equal(2, cache.Count);
        Assert.True(cache.TryGet(Key(1), "m/1/0", AllLive, out _));
        Assert.False(cache.TryGet(Key(2), "m/1/0", AllLive, out _));
    }

    [Fact]
    public void BytesStayWithinTheLimitWhateverTheAnswersSize()
    {
        var cache = NewCache(1000, bytes: 64 * 1024);
        for (var i = 0; i < 100; i++)
        {
            cache.Add(Key(i), Answer(embedding: new float[2048])); // about 8 KB each
        }

        Assert.InRange(cache.Bytes, 1, 64 * 1024);
        Assert.InRange(cache.Count, 1, 8);
        cache.Add(Key(1000), Answer(embedding: new float[1 << 20])); // 4 MB: larger than the whole tier
        Assert.False(cache.TryGet(Key(1000), "m/1/0", AllLive, out _));
    }

    [Fact]
    public void AnAnswerFromASiloThatLeftIsDroppedNotServed()
    {
        var cache = NewCache(8);
        cache.Add(Key(1), Answer(silo: "gone"));

        Assert.False(cache.TryGet(Key(1), "m/1/0", s => s != "gone", out _));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void HitsAreBookedToTheirShardAndTakenOnce()
    {
        var cache = NewCache(8);
        cache.Add(Key(1), Answer());
        cache.Add(Key(2), Answer());
        for (var i = 0; i < 3; i++)
        {
            cache.TryGet(Key(1), "m/1/0", AllLive, out _);
        }

        cache.TryGet(Key(2), "m/1/5", AllLive, out _);
        cache.TryGet(Key(3), "m/1/7", AllLive, out _); // a miss books nothing

        Assert.Equal([("m/1/0", 3L), ("m/1/5", 1L)], cache.TakeHits().OrderBy(h => h.Grain));
        Assert.Empty(cache.TakeHits());
    }

    [Fact]
    public void ZeroEntriesTurnsTheTierOff()
    {
        var cache = NewCache(0);
        cache.Add(Key(1), Answer());

        Assert.False(cache.Enabled);
        Assert.False(cache.TryGet(Key(1), "m/1/0", AllLive, out _));
    }
}
