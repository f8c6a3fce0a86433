namespace Classifier.Grains.Interfaces;

/// <summary>Whether a model version can serve; the numbers are those of the <c>model_state</c> gauge.</summary>
public enum ModelState
{
    NotReady = 0,
    Ready = 1,
    Error = 2,
}

/// <summary>What a client must send a model, as declared in its config.json.</summary>
[GenerateSerializer, Immutable, Alias("classifier.InputSpec")]
public sealed record InputSpec(
    [property: Id(0)] string Name,
    [property: Id(1)] int[] Shape,
    [property: Id(2)] string Layout,
    [property: Id(3)] string ColorOrder,
    [property: Id(4)] string Resize);

/// <summary>A model version as one silo sees it.</summary>
/// <remarks><c>OutputKind</c> is <c>classes</c> (answers are top-k labels) or <c>embedding</c> (answers are vectors of <c>OutputLength</c> floats).</remarks>
[GenerateSerializer, Immutable, Alias("classifier.ModelVersionStatus")]
public sealed record ModelVersionStatus(
    [property: Id(0)] string Model,
    [property: Id(1)] string Version,
    [property: Id(2)] ModelState State,
    [property: Id(3)] string Provider,
    [property: Id(4)] InputSpec Input,
    [property: Id(5)] string Output,
    [property: Id(6)] int LabelCount,
    [property: Id(7)] int DefaultTopK,
    [property: Id(8)] double LoadMs,
    [property: Id(9)] string? Error,
    [property: Id(10)] string OutputKind = "classes",
    [property: Id(11)] int OutputLength = 0,
    [property: Id(12)] string? Sha256 = null,
    [property: Id(13)] string? Fingerprint = null);

/// <summary>What one silo reports to the cluster: its models, its grains' cache statistics, how many ModelGrains it hosts and how many shards it accepts per model version.</summary>
[GenerateSerializer, Immutable, Alias("classifier.SiloReport")]
public sealed record SiloReport(
    [property: Id(0)] string Silo,
    [property: Id(1)] ModelVersionStatus[] Models,
    [property: Id(2)] CacheStatistics Cache,
    [property: Id(3)] DateTime ReportedAtUtc,
    [property: Id(4)] SiloAddress? Address = null,
    [property: Id(5)] int ModelGrains = 0,
    [property: Id(6)] int ShardCount = 0)
{
    /// <summary>Whether this silo reported <paramref name="model"/> <paramref name="version"/> ready to serve.</summary>
    public bool Serves(string model, string version) => Models.Any(m => m.Model == model && m.Version == version && m.State == ModelState.Ready);
}

/// <summary>The cluster as the cluster grain last heard of it.</summary>
[GenerateSerializer, Immutable, Alias("classifier.ClusterSnapshot")]
public sealed record ClusterSnapshot(
    [property: Id(0)] SiloReport[] Silos,
    [property: Id(1)] CacheStatistics Cache);
