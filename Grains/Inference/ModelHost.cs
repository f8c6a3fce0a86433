using Classifier.Grains.Cluster;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Grains.Inference;

/// <summary>
/// This silo's side of the repository API (<see cref="IModelHost"/>): reads a model's folder anew and brings the
/// catalog to the versions its version policy selects, loading new versions beside the served ones before letting
/// leaving versions drain. Registered with the repository grain at every report.
/// </summary>
public sealed class ModelHost(ModelCatalog catalog, IOptions<ModelsOptions> options, ILocalSiloDetails silo, IServiceProvider services, Telemetry.SiloMetrics metrics, ILogger<ModelHost> logger) : IModelHost
{
    /// <summary>Counts the change in <c>model_repository_operations_total</c> and answers it.</summary>
    private SiloModelChange Counted(string operation, SiloModelChange change, string? version, bool failed = false)
    {
        var outcome = failed ? "failure"
            : change.Error is not null ? "refused"
            : operation == "load" && change.Versions.Any(s => (version is null || s.Version == version) && s.State != ModelState.Ready) ? "failure"
            : "success";
        metrics.RepositoryOperations.WithLabels(operation, outcome).Inc();
        return change;
    }

    private string Root => options.Value.Repository;

    /// <summary>Set when <c>Models:ControlMode</c> is <c>none</c>: the answer to every load and unload.</summary>
    private string? Refusal => options.Value.ControlMode == "none"
        ? $"Silo {silo.Name} has Models:ControlMode none: it serves its folder and refuses loads and unloads."
        : null;

    public async Task<SiloModelChange> LoadAsync(string model, string? version)
    {
        if (Refusal is { } refusal)
        {
            return Counted("load", new(silo.Name, Statuses(model), refusal), version);
        }

        IReadOnlyList<ModelVersionDefinition> wanted;
        try
        {
            wanted = ModelRepository.LoadModel(Root, model);
        }
        catch (ModelConfigException e)
        {
            return Counted("load", Refused(model, e), version);
        }

        var failedReloads = new List<string>();
        if (version is not null)
        {
            // One version, whatever the policy says: the folder must hold it.
            var definition = wanted.FirstOrDefault(v => v.Version == version) ?? OutsidePolicy(wanted, model, version);
            if (definition is null)
            {
                return Counted("load", new(silo.Name, Statuses(model), $"Model {model} has no version folder {version} on silo {silo.Name}."), version);
            }

            await LoadOneAsync(definition, failedReloads);
        }
        else
        {
            // New versions first, so that the model never has fewer ready versions than before; then the leaving ones.
            foreach (var definition in wanted)
            {
                await LoadOneAsync(definition, failedReloads);
            }

            var keep = wanted.Select(v => v.Version).ToHashSet();
            foreach (var leaving in catalog.Runtimes.Where(r => r.Model.Name == model && !keep.Contains(r.Definition.Version)).ToList())
            {
                await catalog.UnloadAsync(model, leaving.Definition.Version);
            }
        }

        await ReportAsync();
        return failedReloads.Count == 0
            ? Counted("load", new(silo.Name, Statuses(model), null), version)
            : Counted("load", new(silo.Name, Statuses(model), string.Join(" ", failedReloads)), version, failed: true);
    }

    /// <summary>Loads a version; a changed version whose reload failed keeps serving its previous load, and says so in <paramref name="failedReloads"/>.</summary>
    private async Task LoadOneAsync(ModelVersionDefinition definition, List<string> failedReloads)
    {
        var loaded = await catalog.LoadAsync(definition);
        if (loaded.State != ModelState.Ready && catalog.Find(definition.Model.Name, definition.Version) is { State: ModelState.Ready })
        {
            failedReloads.Add($"Version {definition.Version} changed but its new files failed to load ({loaded.Error}); its previous load keeps serving.");
        }
    }

    public async Task<SiloModelChange> UnloadAsync(string model, string? version)
    {
        if (Refusal is { } refusal)
        {
            return Counted("unload", new(silo.Name, Statuses(model), refusal), version);
        }

        foreach (var runtime in catalog.Runtimes.Where(r => r.Model.Name == model && (version is null || r.Definition.Version == version)).ToList())
        {
            await catalog.UnloadAsync(model, runtime.Definition.Version);
        }

        await ReportAsync();
        return Counted("unload", new(silo.Name, Statuses(model), null), version);
    }

    /// <summary>
    /// Brings this silo, as it starts or joins, to what the cluster serves (<paramref name="declared"/>), not to
    /// whatever its folder holds: versions declared are loaded (a missing folder or a file whose SHA-256 differs from
    /// the declared one puts the version in error, so every silo answers with the same bytes), versions not declared
    /// are unloaded, and models unloaded on purpose are not served. Models the cluster has no record of are left as
    /// loaded from the folder.
    /// </summary>
    public async Task ReconcileAsync(IReadOnlyDictionary<string, DeclaredVersion[]> declared)
    {
        if (Refusal is not null)
        {
            return; // Models:ControlMode none: the folder, as it is, is what this silo serves.
        }

        foreach (var (model, versions) in declared)
        {
            var wanted = versions.ToDictionary(v => v.Version, v => v.Sha256);
            foreach (var leaving in catalog.Runtimes.Where(r => r.Model.Name == model && !wanted.ContainsKey(r.Definition.Version)).ToList())
            {
                await catalog.UnloadAsync(model, leaving.Definition.Version);
            }

            if (wanted.Count == 0)
            {
                continue;
            }

            IReadOnlyList<ModelVersionDefinition> folder;
            try
            {
                folder = ModelRepository.LoadModel(Root, model);
            }
            catch (ModelConfigException e)
            {
                logger.LogError(e, "The cluster serves model {Model}, but this silo's folder cannot", model);
                continue;
            }

            foreach (var (version, sha256) in wanted)
            {
                var definition = folder.FirstOrDefault(v => v.Version == version) ?? OutsidePolicy(folder, model, version);
                if (definition is null || !File.Exists(definition.ModelPath))
                {
                    logger.LogError("The cluster serves model {Model} version {Version}, but this silo's folder lacks it", model, version);
                    continue;
                }

                var local = await ModelCatalog.FileSha256OrNullAsync(definition.ModelPath);
                if (local != sha256)
                {
                    await catalog.RefuseAsync(definition,
                        $"This silo's model.onnx differs from the one the cluster serves (SHA-256 {(local is null ? "unreadable" : local[..12] + "...")} here, {sha256[..12]}... recorded); give every silo the same file.", local);
                    continue;
                }

                if (catalog.Find(model, version) is not { State: ModelState.Ready } loaded || loaded.Sha256 != sha256)
                {
                    await catalog.LoadAsync(definition);
                }
            }
        }
    }

    public async Task<SiloModelChange> EnforceAsync(string model, DeclaredVersion[] versions)
    {
        await ReconcileAsync(new Dictionary<string, DeclaredVersion[]> { [model] = versions });
        await ReportAsync();
        return new(silo.Name, Statuses(model), null);
    }

    /// <summary>A version folder outside the version policy, for a load that names it.</summary>
    private ModelVersionDefinition? OutsidePolicy(IReadOnlyList<ModelVersionDefinition> served, string model, string version)
    {
        var path = Path.Combine(Path.GetFullPath(Root), model, version, ModelRepository.ModelFileName);
        return served.Count > 0 && Directory.Exists(Path.GetDirectoryName(path)) && int.TryParse(version, out _)
            ? new ModelVersionDefinition(served[0].Model, version, path)
            : null;
    }

    private ModelVersionStatus[] Statuses(string model) => catalog.Statuses().Where(s => s.Model == model).ToArray();

    /// <summary>The silo's folder cannot serve the model: said without the silo's paths.</summary>
    private SiloModelChange Refused(string model, ModelConfigException e)
    {
        logger.LogWarning(e, "Cannot load model {Model} from the repository", model);
        var message = e.Message.Replace(Path.GetFullPath(Root), "<repository>", StringComparison.Ordinal);
        return new(silo.Name, Statuses(model), message);
    }

    /// <summary>Tells the cluster at once, so the gateways route by the new state within their next refresh.</summary>
    private Task ReportAsync() => services.GetRequiredService<ClusterReporter>().ReportOnceAsync();
}
