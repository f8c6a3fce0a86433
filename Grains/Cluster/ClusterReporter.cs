using Classifier.Grains.Caching;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Grains.Cluster;

/// <summary>
/// While the silo is active, pushes its report to the cluster grain every interval and publishes the
/// answer as <c>cluster_cache_hit_rate</c>.
/// </summary>
public sealed class ClusterReporter(
    ModelCatalog catalog,
    SiloCacheStatistics statistics,
    SiloMetrics metrics,
    IGrainFactory grains,
    ILocalSiloDetails silo,
    IOptions<ClusterStatsOptions> options,
    ILogger<ClusterReporter> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;

    /// <summary>The last cluster view this silo received.</summary>
    public ClusterSnapshot? Latest { get; private set; }

    public void Participate(ISiloLifecycle lifecycle)
    {
        lifecycle.Subscribe<ClusterReporter>(ServiceLifecycleStage.Active, Start, Stop);
    }

    private Task Start(CancellationToken cancellationToken)
    {
        _loop = Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task Stop(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RunAsync()
    {
        using var timer = new PeriodicTimer(options.Value.ReportInterval);
        try
        {
            do
            {
                await ReportOnceAsync();
            }
            while (await timer.WaitForNextTickAsync(_stopping.Token));
        }
        catch (OperationCanceledException)
        {
            // The silo is stopping.
        }
    }

    /// <summary>Reports this silo once and refreshes the cluster gauge; failures are logged and retried next interval.</summary>
    public async Task ReportOnceAsync()
    {
        try
        {
            var report = new SiloReport(silo.Name, catalog.Statuses(), statistics.Snapshot(), DateTime.UtcNow);
            var snapshot = await grains.GetGrain<IClusterGrain>(IClusterGrain.Key).ReportAsync(report);
            Latest = snapshot;
            metrics.ClusterCacheHitRate.Set(snapshot.Cache.HitRate);
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            logger.LogWarning("Cluster report failed, retrying next interval: {Error}", e.Message);
        }
    }
}
