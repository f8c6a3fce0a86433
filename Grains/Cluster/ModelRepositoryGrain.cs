using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace Classifier.Grains.Cluster;

/// <summary>
/// Applies repository loads and unloads on every live silo at once, through the host each silo registers, and keeps
/// what the cluster serves (versions and their files' SHA-256) in grain storage: Redis when clustering is Redis,
/// memory for a local cluster. Hosts are soft state: silos register again at every report, so a reactivated grain
/// knows them all within one interval. Reentrant: a load of a large model on every silo takes seconds, and other
/// calls need not wait behind it.
/// </summary>
[Reentrant]
public sealed class ModelRepositoryGrain(
    [PersistentState("repository", ModelRepositoryGrain.StorageName)] IPersistentState<RepositoryState> state,
    IClusterMembershipService membership,
    Microsoft.Extensions.Options.IOptions<ClusterStatsOptions> reporting,
    ILogger<ModelRepositoryGrain> logger) : Grain, IModelRepositoryGrain
{
    /// <summary>The grain storage provider that holds the cluster's declared models.</summary>
    public const string StorageName = "repository";

    private readonly Dictionary<string, IModelHost> _hosts = [];

    /// <summary>One write at a time: calls interleave (the grain is reentrant), and a second write sent before the first's ETag came back is refused.</summary>
    private readonly SemaphoreSlim _writes = new(1, 1);

    private async Task SaveAsync()
    {
        await _writes.WaitAsync();
        try
        {
            await state.WriteStateAsync();
        }
        finally
        {
            _writes.Release();
        }
    }

    private Dictionary<string, DeclaredVersion[]> Models => state.State.Models;

    public async Task<Dictionary<string, DeclaredVersion[]>> RegisterAsync(string silo, IModelHost host, ModelVersionStatus[] served)
    {
        _hosts[silo] = host;

        // Versions the cluster has never seen become part of the record, as at the cluster's first start: a roll-out
        // of an image with a new version serves it. What was unloaded on purpose (a whole model, or one version)
        // stays unloaded, and recorded versions keep their recorded file.
        var adopted = served.Where(s => s.State == ModelState.Ready && s.Sha256 is not null && IsNew(s.Model, s.Version)).ToList();
        foreach (var status in adopted)
        {
            Models[status.Model] = [.. (Models.GetValueOrDefault(status.Model) ?? []).Append(new DeclaredVersion(status.Version, status.Sha256!)).OrderBy(v => VersionOrder(v.Version))];
        }

        if (adopted.Count > 0)
        {
            await SaveAsync();
        }

        return new Dictionary<string, DeclaredVersion[]>(Models);
    }

    public async Task<SiloModelChange[]> LoadAsync(string model, string? version)
    {
        var changes = await OnEverySiloAsync(h => h.LoadAsync(model, version));

        // The record follows what loaded: every version ready on some silo (for a one-version load, that version beside
        // the others), with the file hash most silos have (ties: the first silo by name); a version that failed
        // everywhere is not recorded.
        var ready = changes.OrderBy(c => c.Silo, StringComparer.Ordinal).SelectMany(c => c.Versions)
            .Where(s => s.State == ModelState.Ready && s.Sha256 is not null && (version is null || s.Version == version))
            .GroupBy(s => s.Version)
            .Select(g => new DeclaredVersion(g.Key, g.GroupBy(s => s.Sha256!).OrderByDescending(h => h.Count()).First().Key))
            .ToList();
        if (ready.Count == 0)
        {
            // Nothing loaded anywhere (no such folder, a broken config, a broken version): the record stays as it was,
            // as the silos' previous versions keep serving.
            return changes;
        }

        var kept = version is null ? [] : (Models.GetValueOrDefault(model) ?? []).Where(v => v.Version != version);
        Models[model] = [.. kept.Concat(ready).OrderBy(v => VersionOrder(v.Version))];
        if (state.State.UnloadedVersions.TryGetValue(model, out var unloaded))
        {
            var rest = version is null ? [] : unloaded.Where(v => v != version).ToArray();
            if (rest.Length == 0)
            {
                state.State.UnloadedVersions.Remove(model);
            }
            else
            {
                state.State.UnloadedVersions[model] = rest;
            }
        }

        await SaveAsync();

        // Silos whose file for a version differs from the recorded one refuse it: every silo answers with the same bytes.
        var record = Models.GetValueOrDefault(model) ?? [];
        var differing = changes.Where(c => c.Versions.Any(s => s.State == ModelState.Ready && record.Any(r => r.Version == s.Version && r.Sha256 != s.Sha256)))
            .Select(c => c.Silo).ToHashSet();
        if (differing.Count == 0)
        {
            return changes;
        }

        var enforced = await Task.WhenAll(_hosts.Where(h => differing.Contains(h.Key)).Select(h => h.Value.EnforceAsync(model, record)));
        return [.. changes.Where(c => !differing.Contains(c.Silo)), .. enforced];
    }

    public async Task<SiloModelChange[]> UnloadAsync(string model, string? version)
    {
        // Recorded first: a silo that joins while the unload runs must not load what is leaving.
        var (previousVersions, previousUnloaded) = (Models.GetValueOrDefault(model), state.State.UnloadedVersions.GetValueOrDefault(model));
        if (version is null)
        {
            Models[model] = [];
            state.State.UnloadedVersions.Remove(model);
        }
        else
        {
            Models[model] = [.. (Models.GetValueOrDefault(model) ?? []).Where(v => v.Version != version)];
            state.State.UnloadedVersions[model] = [.. (state.State.UnloadedVersions.GetValueOrDefault(model) ?? []).Append(version).Distinct()];
        }

        await SaveAsync();
        var changes = await OnEverySiloAsync(h => h.UnloadAsync(model, version));
        if (changes.Length > 0 && changes.All(c => c.Error is not null))
        {
            // No silo applied it (all refused, Models:ControlMode none): the record stays as it was.
            Restore(Models, model, previousVersions);
            Restore(state.State.UnloadedVersions, model, previousUnloaded);
            await SaveAsync();
        }

        return changes;
    }

    public async Task<SiloModelChange[]> FolderChangedAsync(string silo, string model, string? folderState)
    {
        if (state.State.Folders.GetValueOrDefault(model) == (folderState ?? ""))
        {
            return [];
        }

        // Recorded before the change runs, so that other silos reporting the same state while it runs leave it be.
        state.State.Folders[model] = folderState ?? "";
        await SaveAsync();
        logger.LogInformation("Silo {Silo} saw model {Model}'s folder {Change}: applying it on every silo", silo, model, folderState is null ? "go" : "change");
        return folderState is null ? await UnloadAsync(model, null) : await LoadAsync(model, null);
    }

    private static void Restore<T>(Dictionary<string, T> map, string key, T? previous)
        where T : class
    {
        if (previous is null)
        {
            map.Remove(key);
        }
        else
        {
            map[key] = previous;
        }
    }

    public Task<Dictionary<string, string[]?>> UnloadedAsync()
    {
        var unloaded = Models.Where(m => m.Value.Length == 0).ToDictionary(m => m.Key, _ => (string[]?)null);
        foreach (var (model, versions) in state.State.UnloadedVersions)
        {
            unloaded.TryAdd(model, versions);
        }

        return Task.FromResult(unloaded);
    }

    private bool IsNew(string model, string version) =>
        Models.GetValueOrDefault(model) is not { Length: 0 }
        && Models.GetValueOrDefault(model)?.Any(v => v.Version == version) != true
        && state.State.UnloadedVersions.GetValueOrDefault(model)?.Contains(version) != true;

    private static long VersionOrder(string version) => long.TryParse(version, out var v) ? v : -1;

    /// <summary>Calls every live silo's host at once; a silo that fails to answer, or has not registered yet, is reported with why.</summary>
    private async Task<SiloModelChange[]> OnEverySiloAsync(Func<IModelHost, Task<SiloModelChange>> change)
    {
        var live = membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.Name).ToHashSet();
        foreach (var gone in _hosts.Keys.Where(s => !live.Contains(s)).ToList())
        {
            _hosts.Remove(gone);
        }

        // Freshly (re)activated, this grain knows the silos that have reported to it since: the others register at their
        // next report, within one interval. Wait for them rather than skip them (the grain is reentrant: they get in).
        var deadline = DateTime.UtcNow + reporting.Value.ReportInterval * 1.5;
        while (live.Any(s => !_hosts.ContainsKey(s)) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
            live.IntersectWith(membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.Name));
        }

        var unregistered = live.Where(s => !_hosts.ContainsKey(s))
            .Select(s => new SiloModelChange(s, [], $"Silo {s} has not registered its model host yet (it does at its next report); retry in a few seconds."));
        return [.. unregistered, .. await Task.WhenAll(_hosts.Select(async pair =>
        {
            try
            {
                return await change(pair.Value);
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Silo {Silo} did not apply a repository change", pair.Key);
                return new SiloModelChange(pair.Key, [], $"Silo {pair.Key} did not answer: {e.GetType().Name}.");
            }
        }))];
    }
}
