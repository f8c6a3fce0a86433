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
    IOptions<ShardingOptions> sharding,
    IClusterMembershipService membership,
    ModelHost host,
    ILogger<ClusterReporter> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    /// <summary>This silo's model host as the repository grain calls it; created once, kept alive by this field.</summary>
    private IModelHost? _hostReference;
    private bool _reconciled;

    /// <summary>How often a view that lacks an active silo is fetched again, until it has them all.</summary>
    private static readonly TimeSpan CatchUpInterval = TimeSpan.FromSeconds(1);

    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;
    private Task _catchUp = Task.CompletedTask;

    /// <summary>The last cluster view this silo received.</summary>
    public ClusterSnapshot? Latest { get; private set; }

    public void Participate(ISiloLifecycle lifecycle)
    {
        lifecycle.Subscribe<ClusterReporter>(ServiceLifecycleStage.Active, Start, Stop);
    }

    private Task Start(CancellationToken cancellationToken)
    {
        _loop = Task.Run(RunAsync, CancellationToken.None);
        _catchUp = Task.Run(CatchUpAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task Stop(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();

        // Bounded: a report or view fetch in flight may wait on a grain whose silo is leaving too (up to the response
        // timeout); the loops are background work, and shutting down must not wait 30 s for them.
        await Task.WhenAll(_loop, _catchUp).WaitAsync(TimeSpan.FromSeconds(3), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>
    /// Placement reads which silos serve what from <see cref="Latest"/>, which is otherwise only as fresh as this
    /// silo's last report: a silo that joined since would get none of this silo's fresh shards for up to one report
    /// interval (all 30 fresh shards of a test once went to the two silos that knew each other). So while an active
    /// member is missing from the view, the view is fetched again every second, without reporting or rebalancing.
    /// </summary>
    private async Task CatchUpAsync()
    {
        using var timer = new PeriodicTimer(CatchUpInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                if (!LacksAnActiveSilo())
                {
                    continue;
                }

                try
                {
                    Latest = await grains.GetGrain<IClusterGrain>(IClusterGrain.Key).GetSnapshotAsync();
                }
                catch (Exception e) when (!_stopping.IsCancellationRequested)
                {
                    logger.LogDebug(e, "Cluster view refresh failed, retrying in a second");
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The silo is stopping.
        }
    }

    private bool LacksAnActiveSilo()
    {
        var known = Latest?.Silos.Select(s => s.Address).OfType<SiloAddress>().ToHashSet() ?? [];
        return membership.CurrentSnapshot.Members.Values.Any(m => m.Status == SiloStatus.Active && !known.Contains(m.SiloAddress));
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

    /// <summary>
    /// Shards activate where placement puts them and then stay, so a silo that joins a loaded cluster
    /// would only get shards activated after it joined. Each silo therefore compares its ModelGrain
    /// count with the cluster's and, when it holds more than the mean while the lightest silo holds
    /// less than its floor, migrates some of its shards there, caches included. Every silo plans from
    /// the same snapshot (<see cref="ShardBalance"/>), so silos deciding at once share the lightest
    /// silo's room instead of overshooting it; a joining silo is filled in one or two report intervals.
    /// </summary>
    private async Task RebalanceAsync(ClusterSnapshot snapshot, string[] local)
    {
        var silos = snapshot.Silos.Where(s => s.Address is not null).ToList();
        if (silos.Count < 2 || local.Length == 0)
        {
            return;
        }

        var versions = local.Select(key => ModelGrainKey.TryParse(key, out var k) ? (k.Model, k.Version) : default).Where(v => v.Model is not null).Distinct().ToArray();
        var plan = ShardBalance.Plan(silo.SiloAddress.ToString(),
            silos.Select(s => (s.Address!.ToString(), s.ModelGrains, versions.Any(v => s.Serves(v.Model, v.Version)))).ToList());
        if (plan.Lightest is null)
        {
            return;
        }

        var lightest = silos.First(s => s.Address!.ToString() == plan.Lightest);
        // Only shards whose model version is ready there: a silo that failed to load a model is light for that
        // reason, and shards sent to it would only move away again.
        var movable = local.Where(key => ModelGrainKey.TryParse(key, out var k) && lightest.Serves(k.Model, k.Version)).ToArray();
        var moves = Math.Min(plan.Moves, movable.Length);
        if (moves == 0)
        {
            return;
        }

        logger.LogInformation("Rebalancing: moving {Moves} of {Local} shards to {Target}", moves, local.Length, lightest.Silo);
        foreach (var key in movable.Take(moves))
        {
            await grains.GetGrain<IModelGrain>(key).MigrateToAsync(lightest.Address!);
        }
    }

    /// <summary>
    /// Registers this silo's model host with the repository grain and, the first time, serves what the cluster serves.
    /// A failure (the repository's storage unreachable) is logged and retried at the next report; the report itself
    /// still goes out, so statistics and placement do not depend on the repository.
    /// </summary>
    private async Task RegisterAsync()
    {
        try
        {
            _hostReference ??= grains.CreateObjectReference<IModelHost>(host);
            var declared = await grains.GetGrain<IModelRepositoryGrain>(IModelRepositoryGrain.Key).RegisterAsync(silo.Name, _hostReference, catalog.Statuses());
            if (!_reconciled)
            {
                await host.ReconcileAsync(declared);
                _reconciled = true;
            }
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            logger.LogWarning(e, "Registering with the model repository failed, retrying next interval");
        }
    }

    private readonly Lock _refreshGate = new();
    private Task _refresh = Task.CompletedTask;
    private long _refreshedAt;

    /// <summary>
    /// Fetches the cluster view now, for placement that found a model version ready nowhere in its view although a
    /// gateway routed a request for it: a silo that joined with a new version, or loaded one, since this silo's last
    /// report. Calls within half a second share one fetch, so a burst of such placements costs one grain call.
    /// </summary>
    public Task RefreshViewAsync()
    {
        lock (_refreshGate)
        {
            if (!_refresh.IsCompleted || System.Diagnostics.Stopwatch.GetElapsedTime(_refreshedAt) < TimeSpan.FromMilliseconds(500))
            {
                return _refresh;
            }

            _refreshedAt = System.Diagnostics.Stopwatch.GetTimestamp();
            return _refresh = Task.Run(async () =>
            {
                try
                {
                    Latest = await grains.GetGrain<IClusterGrain>(IClusterGrain.Key).GetSnapshotAsync();
                }
                catch (Exception e) when (!_stopping.IsCancellationRequested)
                {
                    logger.LogDebug(e, "Cluster view refresh for placement failed");
                }
            });
        }
    }

    /// <summary>Reports this silo once and refreshes the cluster gauge; failures are logged and retried next interval.</summary>
    public async Task ReportOnceAsync()
    {
        try
        {
            // Registered before the report: the first time, the silo then serves what the cluster serves (not whatever
            // its folder holds) before its first report tells placement and the gateways what it has ready.
            await RegisterAsync();

            var local = statistics.LiveGrainKeys();
            var report = new SiloReport(silo.Name, catalog.Statuses(), statistics.Snapshot(), DateTime.UtcNow, silo.SiloAddress, local.Length, sharding.Value.ShardCount);
            var snapshot = await grains.GetGrain<IClusterGrain>(IClusterGrain.Key).ReportAsync(report);
            Latest = snapshot;
            metrics.ClusterCacheHitRate.Set(snapshot.Cache.HitRate);
            if (options.Value.Rebalance)
            {
                await RebalanceAsync(snapshot, local);
            }
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            logger.LogWarning(e, "Cluster report failed, retrying next interval");
        }
    }
}
