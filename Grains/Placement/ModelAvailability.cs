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
    public bool IsReadyElsewhere(string model, string version)
    {
        var snapshot = reporter.Latest;
        return snapshot?.Silos.Any(s => s.Address is { } address && !address.Equals(local.SiloAddress) && IsReady(address, model, version, snapshot)) == true;
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
