using Classifier.Grains.Caching;

namespace Classifier.Tests.Unit;

public sealed class LruCacheTests
{
    private static LruCache<string, int> NewCache(int capacity) => new(capacity, _ => 10);

    [Fact]
    public void LeastRecentlyUsedEntryIsEvictedAtCapacity()
    {
        var cache = NewCache(3);
        cache.Set("a", 1);
        cache.Set("b", 2);
        cache.Set("c", 3);
        Assert.True(cache.TryGet("a", out _)); // a is now the most recent; b the least

        var evicted = cache.Set("d", 4);

        Assert.Equal(1, evicted);
        Assert.False(cache.Contains("b"));
        Assert.True(cache.Contains("a"));
        Assert.True(cache.Contains("c"));
        Assert.True(cache.Contains("d"));
        Assert.Equal(3, cache.Count);
        Assert.Equal(1, cache.Evictions);
    }

    [Fact]
    public void ARequestThatJoinedAnIdenticalOneInFlightCountsAsOneHitAndNoMiss()
    {
        // The silo's counters count it once, as a hit; the cluster's rate is summed from these statistics.
        var cache = NewCache(3);
        Assert.False(cache.TryGet("a", out _)); // the first request: a miss, it runs
        Assert.False(cache.TryGet("a", out _)); // the second finds no entry yet, then joins the run

        cache.CountJoinedAsHit();

        Assert.Equal((1L, 1L), (cache.Statistics.Hits, cache.Statistics.Misses));
    }

    [Fact]
    public void HitsMissesSizeAndBytesAreCounted()
    {
        var cache = NewCache(2);
        Assert.False(cache.TryGet("x", out _));
        cache.Set("x", 1);
        Assert.True(cache.TryGet("x", out var value));
        Assert.Equal(1, value);
        cache.Set("y", 2);
        cache.Set("z", 3);

        var stats = cache.Statistics;
        Assert.Equal(1, stats.Hits);
        Assert.Equal(1, stats.Misses);
        Assert.Equal(1, stats.Evictions);
        Assert.Equal(2, stats.Entries);
        Assert.Equal(2, stats.Capacity);
        Assert.Equal(20, stats.Bytes);
        Assert.Equal(0.5, stats.HitRate);
    }

    [Fact]
    public void ReplacingAnEntryKeepsOneCopyAndItsSize()
    {
        var cache = NewCache(2);
        cache.Set("x", 1);
        cache.Set("x", 2);

        Assert.Equal(1, cache.Count);
        Assert.Equal(10, cache.Bytes);
        Assert.True(cache.TryGet("x", out var value));
        Assert.Equal(2, value);
    }

    [Fact]
    public void ZeroCapacityCachesNothing()
    {
        var cache = NewCache(0);
        cache.Set("x", 1);
        Assert.False(cache.TryGet("x", out _));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void TheByteBoundEvictsTheLeastRecentlyUsedAndRefusesAValueLargerThanItself()
    {
        var cache = new LruCache<string, int>(100, v => v, maxBytes: 10);
        cache.Set("a", 4);
        cache.Set("b", 4);

        var evicted = cache.Set("c", 4); // 12 bytes would be over: a goes

        Assert.Equal(1, evicted);
        Assert.False(cache.Contains("a"));
        Assert.Equal(8, cache.Bytes);
        Assert.Equal(0, cache.Set("huge", 11));
        Assert.False(cache.Contains("huge"));
        Assert.Equal(8, cache.Bytes);
    }

    [Fact]
    public void RemoveDropsTheEntryAndItsBytes()
    {
        var cache = NewCache(4);
        cache.Set("a", 1);
        cache.Set("b", 2);

        Assert.True(cache.Remove("a"));
        Assert.False(cache.Remove("a"));
        Assert.Equal((1, 10L), (cache.Count, cache.Bytes));
        Assert.Equal(["b"], cache.OldestFirst().Select(e => e.Key));
    }
}
