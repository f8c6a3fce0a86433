namespace Classifier.Grains.Interfaces;

/// <summary>What one silo did with a load or unload: the model's versions as it now serves them, or why it could not.</summary>
/// <param name="Error">Why the silo could not apply the change at all (its folder lacks the model, a bad config.json); null otherwise.</param>
[GenerateSerializer, Immutable, Alias("classifier.SiloModelChange")]
public sealed record SiloModelChange(
    [property: Id(0)] string Silo,
    [property: Id(1)] ModelVersionStatus[] Versions,
    [property: Id(2)] string? Error);

/// <summary>One model version the cluster serves, and the SHA-256 of its <c>model.onnx</c>: every silo must answer with the same bytes.</summary>
[GenerateSerializer, Immutable, Alias("classifier.DeclaredVersion")]
public sealed record DeclaredVersion(
    [property: Id(0)] string Version,
    [property: Id(1)] string Sha256);

/// <summary>
/// What the cluster serves, model by model: the versions (an empty list: unloaded on purpose), and versions unloaded
/// one by one (for the index). Kept in grain storage, so silos that start or join later load exactly this.
/// </summary>
[GenerateSerializer, Alias("classifier.RepositoryState")]
public sealed class RepositoryState
{
    [Id(0)]
    public Dictionary<string, DeclaredVersion[]> Models { get; set; } = [];

    [Id(1)]
    public Dictionary<string, string[]> UnloadedVersions { get; set; } = [];

    /// <summary>With <c>Models:ControlMode poll</c>: each model folder's state (a hash of its files) as last applied; empty: the folder went.</summary>
    [Id(2)]
    public Dictionary<string, string> Folders { get; set; } = [];
}

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

    /// <summary>Serves exactly <paramref name="versions"/> of the model: a version whose file here has another SHA-256 is refused.</summary>
    [Alias("Enforce")]
    Task<SiloModelChange> EnforceAsync(string model, DeclaredVersion[] versions);
}

/// <summary>
/// The cluster's model repository control (Triton's repository extension): loads and unloads a model on every live
/// silo at once. Use the single key <see cref="Key"/>.
/// </summary>
[Alias("classifier.IModelRepositoryGrain")]
public interface IModelRepositoryGrain : IGrainWithIntegerKey
{
    public const long Key = 0;

    /// <summary>
    /// Registers (or renews) a silo's host; silos renew at every report, so a reactivated grain relearns them. The
    /// silo's ready versions the cluster has never seen join the record (the first start of a cluster serves its
    /// folders; a roll-out adding a version serves it); versions unloaded on purpose do not. Answers what the cluster
    /// serves, for a silo that starts or joins to load exactly that.
    /// </summary>
    [Alias("Register")]
    Task<Dictionary<string, DeclaredVersion[]>> RegisterAsync(string silo, IModelHost host, ModelVersionStatus[] served);

    /// <summary>Applies a load on every registered silo and answers what each did.</summary>
    [Alias("Load")]
    Task<SiloModelChange[]> LoadAsync(string model, string? version);

    /// <summary>Applies an unload on every registered silo and answers what each did.</summary>
    [Alias("Unload")]
    Task<SiloModelChange[]> UnloadAsync(string model, string? version);

    /// <summary>
    /// A silo polling its folders (<c>Models:ControlMode poll</c>) saw model <paramref name="model"/>'s folder change to
    /// <paramref name="folderState"/> (null: the folder went). Unless that state was applied already, applies it as a
    /// load of the model on every silo (an unload when the folder went) and answers what each did; otherwise answers
    /// nothing.
    /// </summary>
    [Alias("FolderChanged")]
    Task<SiloModelChange[]> FolderChangedAsync(string silo, string model, string? folderState);

    /// <summary>Models unloaded on purpose and not loaded since, with the versions (null: every version).</summary>
    [Alias("Unloaded")]
    Task<Dictionary<string, string[]?>> UnloadedAsync();
}
