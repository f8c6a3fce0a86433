using Classifier.Grains.Cluster;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Orleans.Runtime;

namespace Classifier.Grains.Placement;

/// <summary>
/// Which silos can serve which model version now: this silo's own models as they are, the others' as their last
/// report to the cluster grain said (at most one <c>ClusterStats:ReportInterval</c> old). A silo that has not
/// reported yet counts as unable: new shards wait for its first report rather than risk a silo that failed to load.
/// </summary>
public sealed class ModelAvailability(ModelCatalog catalog, ClusterReporter reporter, ILocalSiloDetails local)
{
    /// <summary>The silos among <paramref name="candidates"/> where <paramref name="model"/> <paramref name="version"/> is ready, in address order.</summary>
    public SiloAddress[] ReadySilos(string model, string version, IEnumerable<SiloAddress> candidates)
    {
        var snapshot = reporter.Latest;
        return candidates
            .Where(silo => IsReady(silo, model, version, snapshot))
            .OrderBy(silo => silo.ToParsableString(), StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>Whether a silo other than this one reported the model version ready.</summary>
    public bool IsReadyElsewhere(string model, string version) => ReadyElsewhere(model, version, 0) is not null;

    /// <summary>
    /// Where shard <paramref name="shard"/> of the model version should go when it leaves this silo: among the other
    /// silos that reported it ready, the <c>shard mod n</c>-th in address order, as placement would choose; null if none.
    /// </summary>
    public SiloAddress? ReadyElsewhere(string model, string version, int shard)
    {
        var snapshot = reporter.Latest;
        var others = snapshot?.Silos.Select(s => s.Address).OfType<SiloAddress>().Where(a => !a.Equals(local.SiloAddress)) ?? [];
        var ready = ReadySilos(model, version, others);
        return ready.Length == 0 ? null : ready[shard % ready.Length];
    }

    private bool IsReady(SiloAddress silo, string model, string version, ClusterSnapshot? snapshot)
    {
        if (silo.Equals(local.SiloAddress))
        {
            return catalog.Find(model, version)?.State == ModelState.Ready;
        }

        return snapshot?.Silos.FirstOrDefault(s => silo.Equals(s.Address))?.Serves(model, version) == true;
    }
}
