namespace Classifier.Grains.Interfaces;

/// <summary>What one silo did with a load or unload: the model's versions as it now serves them, or why it could not.</summary>
/// <param name="Error">Why the silo could not apply the change at all (its folder lacks the model, a bad config.json); null otherwise.</param>
[GenerateSerializer, Immutable, Alias("classifier.SiloModelChange")]
public sealed record SiloModelChange(
    [property: Id(0)] string Silo,
    [property: Id(1)] ModelVersionStatus[] Versions,
    [property: Id(2)] string? Error);

/// <summary>
/// A silo's side of the model repository API: reads the model's folder on this silo and applies a load or unload.
/// Every silo registers one with <see cref="IModelRepositoryGrain"/>.
/// </summary>
[Alias("classifier.IModelHost")]
public interface IModelHost : IGrainObserver
{
    /// <summary>Brings the model to the versions its version policy selects (or loads just <paramref name="version"/>).</summary>
    [Alias("Load")]
    Task<SiloModelChange> LoadAsync(string model, string? version);

    /// <summary>Stops serving the model (or just <paramref name="version"/>), letting admitted images finish first.</summary>
    [Alias("Unload")]
    Task<SiloModelChange> UnloadAsync(string model, string? version);
}

/// <summary>
/// The cluster's model repository control (Triton's repository extension): loads and unloads a model on every live
/// silo at once. Use the single key <see cref="Key"/>.
/// </summary>
[Alias("classifier.IModelRepositoryGrain")]
public interface IModelRepositoryGrain : IGrainWithIntegerKey
{
    public const long Key = 0;

    /// <summary>Registers (or renews) a silo's host; silos renew at every report, so a reactivated grain relearns them.</summary>
    [Alias("Register")]
    Task RegisterAsync(string silo, IModelHost host);

    /// <summary>Applies a load on every registered silo and answers what each did.</summary>
    [Alias("Load")]
    Task<SiloModelChange[]> LoadAsync(string model, string? version);

    /// <summary>Applies an unload on every registered silo and answers what each did.</summary>
    [Alias("Unload")]
    Task<SiloModelChange[]> UnloadAsync(string model, string? version);

    /// <summary>Models unloaded on purpose and not loaded since, with the versions (null: every version).</summary>
    [Alias("Unloaded")]
    Task<Dictionary<string, string[]?>> UnloadedAsync();
}
