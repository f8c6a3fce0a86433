namespace Classifier.Grains.Interfaces;

/// <summary>Cumulative cache counts and current occupancy, for one grain, one silo or the cluster.</summary>
[GenerateSerializer, Immutable, Alias("classifier.CacheStatistics")]
public sealed record CacheStatistics(
    [property: Id(0)] long Hits,
    [property: Id(1)] long Misses,
    [property: Id(2)] long Evictions,
    [property: Id(3)] int Entries,
    [property: Id(4)] int Capacity,
    [property: Id(5)] long Bytes)
{
    public static readonly CacheStatistics Empty = new(0, 0, 0, 0, 0, 0);

    /// <summary>hits / (hits + misses), or 0 before any lookup.</summary>
    public double HitRate => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);

    public CacheStatistics Add(CacheStatistics other) => new(
        Hits + other.Hits,
        Misses + other.Misses,
        Evictions + other.Evictions,
        Entries + other.Entries,
        Capacity + other.Capacity,
        Bytes + other.Bytes);
}
