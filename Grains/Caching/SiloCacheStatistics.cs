using Classifier.Grains.Interfaces;

namespace Classifier.Grains.Caching;

/// <summary>
/// Sums the cache statistics of this silo's ModelGrains. Live grains are read when asked; a grain
/// that deactivates hands its cumulative counts over first, so silo totals never go backwards.
/// </summary>
public sealed class SiloCacheStatistics
{
    private readonly object _gate = new();
    private readonly Dictionary<Func<CacheStatistics>, string> _live = [];
    private CacheStatistics _retired = CacheStatistics.Empty;

    /// <summary>Starts counting the cache of the grain <paramref name="key"/>; <paramref name="read"/> is called from other threads, so it must tolerate slightly stale values.</summary>
    public void Register(string key, Func<CacheStatistics> read)
    {
        lock (_gate)
        {
            _live[read] = key;
        }
    }

    /// <summary>The keys of the ModelGrains active on this silo now.</summary>
    public string[] LiveGrainKeys()
    {
        lock (_gate)
        {
            return [.. _live.Values];
        }
    }

    /// <summary>Stops reading a deactivating grain, keeping its hits, misses and evictions.</summary>
    public void Retire(Func<CacheStatistics> read)
    {
        lock (_gate)
        {
            if (_live.Remove(read))
            {
                var last = read();
                _retired = _retired.Add(last with { Entries = 0, Capacity = 0, Bytes = 0 });
            }
        }
    }

    /// <summary>The silo's totals: cumulative counts, and the entries, capacity and bytes of live grains.</summary>
    public CacheStatistics Snapshot()
    {
        lock (_gate)
        {
            var total = _retired;
            foreach (var read in _live.Keys)
            {
                total = total.Add(read());
            }

            return total;
        }
    }
}
