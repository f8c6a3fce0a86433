using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace Classifier.Grains.Cluster;

/// <summary>
/// Applies repository loads and unloads on every live silo at once, through the host each silo registers. Hosts are
/// soft state: silos register again at every report, so a reactivated grain knows them all within one interval.
/// Reentrant: a load of a large model on every silo takes seconds, and other calls need not wait behind it.
/// </summary>
[Reentrant]
public sealed class ModelRepositoryGrain(IClusterMembershipService membership, ILogger<ModelRepositoryGrain> logger) : Grain, IModelRepositoryGrain
{
    private readonly Dictionary<string, IModelHost> _hosts = [];
    private readonly Dictionary<string, string[]?> _unloaded = [];

    public Task RegisterAsync(string silo, IModelHost host)
    {
        _hosts[silo] = host;
        return Task.CompletedTask;
    }

    public async Task<SiloModelChange[]> LoadAsync(string model, string? version)
    {
        var changes = await OnEverySiloAsync(h => h.LoadAsync(model, version));
        if (version is null)
        {
            _unloaded.Remove(model);
        }
        else if (_unloaded.TryGetValue(model, out var versions) && versions is not null)
        {
            var rest = versions.Where(v => v != version).ToArray();
            if (rest.Length == 0)
            {
                _unloaded.Remove(model);
            }
            else
            {
                _unloaded[model] = rest;
            }
        }

        return changes;
    }

    public async Task<SiloModelChange[]> UnloadAsync(string model, string? version)
    {
        var changes = await OnEverySiloAsync(h => h.UnloadAsync(model, version));
        _unloaded[model] = version is null ? null : [.. (_unloaded.GetValueOrDefault(model) ?? []).Append(version).Distinct()];
        return changes;
    }

    public Task<Dictionary<string, string[]?>> UnloadedAsync() => Task.FromResult(new Dictionary<string, string[]?>(_unloaded));

    /// <summary>Calls every live silo's host at once; a silo that fails to answer is reported with why.</summary>
    private async Task<SiloModelChange[]> OnEverySiloAsync(Func<IModelHost, Task<SiloModelChange>> change)
    {
        var live = membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.Name).ToHashSet();
        foreach (var gone in _hosts.Keys.Where(s => !live.Contains(s)).ToList())
        {
            _hosts.Remove(gone);
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
