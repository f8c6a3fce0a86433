using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Options;

namespace Classifier.Grains.Cluster;

/// <summary>
/// Keeps the latest report of every silo and answers their sum. State is soft: if this grain's
/// silo dies it reactivates elsewhere empty and is refilled within one report interval.
/// </summary>
public sealed class ClusterGrain(IOptions<ClusterStatsOptions> options, TimeProvider time) : Grain, IClusterGrain
{
    private readonly Dictionary<string, SiloReport> _reports = [];

    // A silo that missed three reports is gone (dead or partitioned); its grains are no longer in the cluster.
    private TimeSpan Expiry => options.Value.ReportInterval * 3;

    public Task<ClusterSnapshot> ReportAsync(SiloReport report)
    {
        _reports[report.Silo] = report with { ReportedAtUtc = time.GetUtcNow().UtcDateTime };
        return GetSnapshotAsync();
    }

    public Task<ClusterSnapshot> GetSnapshotAsync()
    {
        var cutoff = time.GetUtcNow().UtcDateTime - Expiry;
        foreach (var stale in _reports.Where(r => r.Value.ReportedAtUtc < cutoff).Select(r => r.Key).ToList())
        {
            _reports.Remove(stale);
        }

        var silos = _reports.Values.OrderBy(r => r.Silo, StringComparer.Ordinal).ToArray();
        var cache = silos.Aggregate(CacheStatistics.Empty, (sum, r) => sum.Add(r.Cache));
        return Task.FromResult(new ClusterSnapshot(silos, cache));
    }
}
