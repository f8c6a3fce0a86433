using Classifier.Grains.Interfaces;

namespace Classifier.Grains.Caching;

/// <summary>
/// A least-recently-used map with hit, miss and eviction counts, bounded by entries and, optionally, by the bytes
/// <paramref name="sizeOf"/> gives. Not thread-safe: a grain touches it only from its own turns, which never run in
/// parallel even when they interleave; the gateway's near cache holds a lock around it. Here, not in Grains, because
/// both sides use it.
/// </summary>
public sealed class LruCache<TKey, TValue>(int capacity, Func<TValue, long> sizeOf, long maxBytes = long.MaxValue)
    where TKey : notnull
{
    private readonly Dictionary<TKey, LinkedListNode<(TKey Key, TValue Value)>> _map = new(capacity);
    private readonly LinkedList<(TKey Key, TValue Value)> _order = new();

    public int Capacity { get; } = capacity;

    public int Count => _map.Count;

    public long Hits { get; private set; }

    public long Misses { get; private set; }

    public long Evictions { get; private set; }

    /// <summary>Approximate bytes held by the cached values.</summary>
    public long Bytes { get; private set; }

    /// <summary>Looks <paramref name="key"/> up, counting a hit or a miss, and marks it most recently used.</summary>
    public bool TryGet(TKey key, out TValue value)
    {
        if (_map.TryGetValue(key, out var node))
        {
            _order.Remove(node);
            _order.AddFirst(node);
            Hits++;
            value = node.Value.Value;
            return true;
        }

        Misses++;
        value = default!;
        return false;
    }

    /// <summary>
    /// Turns the miss the last lookup counted into a hit: the request found no entry but joined an identical one in
    /// flight, and is answered as a hit. Counting both (a miss and a hit) put the cluster's hit rate below the
    /// silos' own counters, which count it once, as a hit.
    /// </summary>
    public void CountJoinedAsHit()
    {
        Misses--;
        Hits++;
    }

    /// <summary>Counts hits served elsewhere from copies of this cache's entries (a gateway's near cache).</summary>
    public void CountHits(long hits) => Hits += hits;

    /// <summary>
    /// Adds or replaces <paramref name="key"/>; returns how many entries were evicted to make room. A value larger than
    /// the byte bound on its own is not kept.
    /// </summary>
    public int Set(TKey key, TValue value)
    {
        var size = sizeOf(value);
        if (Capacity == 0 || size > maxBytes)
        {
            return 0;
        }

        Remove(key);
        var evicted = 0;
        while (_map.Count > 0 && (_map.Count >= Capacity || Bytes + size > maxBytes))
        {
            var last = _order.Last!;
            _order.RemoveLast();
            _map.Remove(last.Value.Key);
            Bytes -= sizeOf(last.Value.Value);
            Evictions++;
            evicted++;
        }

        _map[key] = _order.AddFirst((key, value));
        Bytes += size;
        return evicted;
    }

    /// <summary>Drops <paramref name="key"/> if held; answers whether it was.</summary>
    public bool Remove(TKey key)
    {
        if (!_map.Remove(key, out var node))
        {
            return false;
        }

        _order.Remove(node);
        Bytes -= sizeOf(node.Value.Value);
        return true;
    }

    public bool Contains(TKey key) => _map.ContainsKey(key);

    /// <summary>Every entry, least recently used first: adding them back in this order restores the recency order.</summary>
    public IEnumerable<(TKey Key, TValue Value)> OldestFirst()
    {
        for (var node = _order.Last; node is not null; node = node.Previous)
        {
            yield return node.Value;
        }
    }

    public CacheStatistics Statistics => new(Hits, Misses, Evictions, Count, Capacity, Bytes);
}
