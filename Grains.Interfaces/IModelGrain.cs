namespace Classifier.Grains.Interfaces;

/// <summary>One shard of one model version; key <c>{model}/{version}/{shard}</c>, see <see cref="ModelGrainKey"/>.</summary>
[Alias("classifier.IModelGrain")]
public interface IModelGrain : IGrainWithStringKey
{
    /// <summary>Classifies one image, from this shard's cache when it has seen the bytes before.</summary>
    [Alias("Predict")]
    Task<PredictionReply> PredictAsync(PredictionRequest request);

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

    public static (string Model, string Version, int Shard) Parse(string key)
    {
        var parts = key.Split('/');
        if (parts.Length != 3 || !int.TryParse(parts[2], out var shard))
        {
            throw new ArgumentException($"ModelGrain key '{key}' is not of the form model/version/shard.", nameof(key));
        }

        return (parts[0], parts[1], shard);
    }
}
