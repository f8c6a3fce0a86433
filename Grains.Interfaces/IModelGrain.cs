namespace Classifier.Grains.Interfaces;

/// <summary>One shard of one model version; key <c>{model}/{version}/{shard}</c>, see <see cref="ModelGrainKey"/>.</summary>
[Alias("classifier.IModelGrain")]
public interface IModelGrain : IGrainWithStringKey
{
    /// <summary>Classifies one image, from this shard's cache when it has seen the bytes before; a cancelled call gives up its decode and its place in line.</summary>
    [Alias("Predict")]
    Task<PredictionReply> PredictAsync(PredictionRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Counts <paramref name="hits"/> answers a gateway gave from its near cache (copies of this shard's answers) as this
    /// shard's cache hits: in its statistics, and in its silo's <c>predictions_total{status="cache_hit"}</c>.
    /// </summary>
    [Orleans.Concurrency.OneWay, Alias("RecordNearHits")]
    Task RecordNearHitsAsync(int hits);

    /// <summary>This grain's cache statistics.</summary>
    [Alias("GetCacheStatistics")]
    Task<CacheStatistics> GetCacheStatisticsAsync();

    /// <summary>Moves this shard, cache included, to <paramref name="target"/> once it is idle (load rebalancing).</summary>
    [Alias("MigrateTo")]
    Task MigrateToAsync(SiloAddress target);
}

/// <summary>Builds and parses ModelGrain keys, so both sides agree on one format.</summary>
public static class ModelGrainKey
{
    public static string Format(string model, string version, int shard) => $"{model}/{version}/{shard}";

    public static (string Model, string Version, int Shard) Parse(string key) =>
        TryParse(key, out var parsed) ? parsed : throw new ArgumentException($"ModelGrain key '{key}' is not of the form model/version/shard.", nameof(key));

    /// <summary>Parses a key whose shard is a plain non-negative decimal number (no sign, spaces or leading zeros).</summary>
    public static bool TryParse(string key, out (string Model, string Version, int Shard) parsed)
    {
        parsed = default;
        var parts = key.Split('/');
        if (parts.Length != 3 || parts[0].Length == 0 || parts[1].Length == 0
            || !int.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var shard)
            || parts[2] != shard.ToString(System.Globalization.CultureInfo.InvariantCulture))
        {
            return false;
        }

        parsed = (parts[0], parts[1], shard);
        return true;
    }
}
