using System.Collections.Concurrent;
using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Options;

namespace Classifier.Gateway.Cluster;

/// <summary>Where a request for a model can go, or why it cannot.</summary>
/// <param name="Embedding">True when the model answers feature vectors rather than labels.</param>
/// <param name="ShardCount">Shards per model version: the smallest count any silo accepts, so every silo accepts every key.</param>
/// <param name="Serving">What the version serves and where, for the near cache; null when the silos serving it disagree on what it is (a reload under way), and then no answer of it is kept at the gateway.</param>
public readonly record struct ModelRoute(string? Version, int LabelCount, int StatusCode, string? Problem, bool Embedding = false, int ShardCount = ClusterView.DefaultShardCount, ServingIdentity? Serving = null);

/// <summary>A model version as the silos serving it report it.</summary>
/// <param name="Fingerprint">The model file's and the answer-shaping config's hashes, equal on every silo where the version is ready.</param>
/// <param name="ReadySilos">The silos where the version is ready: an answer any other silo gave is no longer served from the near cache.</param>
public sealed record ServingIdentity(string Fingerprint, IReadOnlySet<string> ReadySilos);

/// <summary>
/// The gateway's periodically refreshed copy of the cluster's model and silo reports: used to
/// validate requests before a grain call, to answer <c>/models</c> and to decide readiness.
/// </summary>
public sealed class ClusterView(IClusterClient client, IOptions<GatewayOptions> options, TimeProvider time, ILogger<ClusterView> logger) : BackgroundService
{
    private ClusterSnapshot? _snapshot;
    private DateTimeOffset _refreshedAt = DateTimeOffset.MinValue;
    private DateTimeOffset _lastSilosSeenAt = DateTimeOffset.MinValue;

    /// <summary>How long an empty answer from a freshly reactivated cluster grain is ignored: several silo report intervals.</summary>
    private static readonly TimeSpan EmptyViewGrace = TimeSpan.FromSeconds(30);

    public ClusterSnapshot? Snapshot => Volatile.Read(ref _snapshot);

    /// <summary>Models (null) and versions unloaded through the repository API, so their requests hear "not loaded", not "unknown".</summary>
    private Dictionary<string, string[]?> _unloaded = [];

    /// <summary>The shard count of silos that report none (older builds); the silos' own default.</summary>
    public const int DefaultShardCount = 32;

    /// <summary>
    /// The shard count the silos accept (<c>Cluster:ShardCount</c> on each silo): the smallest reported, so that while
    /// it is being raised silo by silo no key lands on a silo that would refuse it.
    /// </summary>
    public static int ShardCountOf(ClusterSnapshot snapshot) =>
        snapshot.Silos.Select(s => s.ShardCount).Where(n => n > 0).DefaultIfEmpty(DefaultShardCount).Min();

    /// <summary>True when the view is fresh and the default model is ready on at least one silo.</summary>
    public bool IsReady(out string reason)
    {
        var snapshot = Snapshot;
        if (snapshot is null || time.GetUtcNow() - _refreshedAt > options.Value.RefreshInterval * 5)
        {
            reason = "The gateway is not connected to the cluster (no silo answered recently).";
            return false;
        }

        var model = options.Value.DefaultModel;
        if (!snapshot.Silos.Any(s => s.Models.Any(m => m.Model == model && m.State == ModelState.Ready)))
        {
            reason = $"The default model '{model}' is not loaded on any silo yet.";
            return false;
        }

        reason = "";
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Until the default model shows up, every 200 ms rather than every interval: a starting gateway waits on it
        // (launch to ready went from 2.6 or 4.6 s, as the silo's report and this refresh met or missed, to 2.7-2.9).
        var starting = TimeSpan.FromMilliseconds(Math.Min(200, options.Value.RefreshInterval.TotalMilliseconds));
        try
        {
            var since = time.GetTimestamp();
            while (!IsReady(out _) && time.GetElapsedTime(since) < TimeSpan.FromMinutes(1)) // then at the interval: a default model that never comes
            {
                await RefreshAsync(stoppingToken);
                await Task.Delay(starting, time, stoppingToken);
            }

            using var timer = new PeriodicTimer(options.Value.RefreshInterval, time);
            do
            {
                await RefreshAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
            // The gateway is stopping.
        }
    }

    /// <summary>
    /// Fetches the cluster's snapshot now; failures keep the old view and are logged. Callers that arrive while a
    /// fetch is under way share it: many concurrent <c>GET /models</c> make one grain call, not one each in turn.
    /// </summary>
    public Task RefreshAsync(CancellationToken cancellationToken = default)
    {
        Task fetch;
        lock (_refreshGate)
        {
            fetch = _refresh ??= FetchAsync();
        }

        return fetch.WaitAsync(cancellationToken);
    }

    private readonly Lock _refreshGate = new();
    private Task? _refresh;

    private async Task FetchAsync()
    {
        await Task.Yield(); // callers register before the fetch can finish
        try
        {
            var snapshot = await client.GetGrain<IClusterGrain>(IClusterGrain.Key).GetSnapshotAsync().WaitAsync(TimeSpan.FromSeconds(5));
            var now = time.GetUtcNow();
            if (snapshot.Silos.Length == 0 && Snapshot is { Silos.Length: > 0 } && now - _lastSilosSeenAt < EmptyViewGrace)
            {
                // The cluster grain was just reactivated elsewhere (its silo stopped or died) and holds no
                // reports yet; the silos refill it within one report interval. Keep the last view meanwhile.
                _refreshedAt = now;
                return;
            }

            if (snapshot.Silos.Length > 0)
            {
                _lastSilosSeenAt = now;
            }

            Volatile.Write(ref _snapshot, snapshot);
            _refreshedAt = now;
            try
            {
                Volatile.Write(ref _unloaded, await client.GetGrain<IModelRepositoryGrain>(IModelRepositoryGrain.Key).UnloadedAsync().WaitAsync(TimeSpan.FromSeconds(5)));
            }
            catch (Exception e)
            {
                logger.LogDebug(e, "Fetching the unloaded models failed; keeping the last list");
            }
        }
        catch (Exception e)
        {
            logger.LogDebug(e, "Cluster view refresh failed");
        }
        finally
        {
            lock (_refreshGate)
            {
                _refresh = null;
            }
        }
    }

    /// <summary>Decides where a request for <paramref name="model"/> (and optionally a version) goes.</summary>
    public async Task<ModelRoute> RouteAsync(string model, string? version, CancellationToken cancellationToken)
    {
        var route = Route(model, version);
        if (route.StatusCode == StatusCodes.Status404NotFound && time.GetUtcNow() - _refreshedAt > TimeSpan.FromSeconds(1))
        {
            // A model added since the last refresh should not wait for the next one.
            await RefreshAsync(cancellationToken);
            route = Route(model, version);
        }

        return route;
    }

    /// <summary>Routes worked out from one snapshot; replaced whenever the snapshot is.</summary>
    private sealed record RouteCache(ClusterSnapshot Snapshot, ConcurrentDictionary<(string Model, string? Version), ModelRoute> Routes);

    private RouteCache? _routes;

    /// <remarks>
    /// Every request asks, so servable routes are kept per snapshot (working one out walked every silo's
    /// model list: 6 % of the gateway's CPU on cache hits). Only servable ones: the keys are then bounded
    /// by the models that exist, whatever names requests make up.
    /// </remarks>
    private ModelRoute Route(string model, string? version)
    {
        var snapshot = Snapshot;
        if (snapshot is null || snapshot.Silos.Length == 0)
        {
            return new(null, 0, StatusCodes.Status503ServiceUnavailable, "No silo is available to serve predictions; start a silo or wait for the cluster to recover.");
        }

        var cache = Volatile.Read(ref _routes);
        if (cache is null || !ReferenceEquals(cache.Snapshot, snapshot))
        {
            cache = new RouteCache(snapshot, new());
            Volatile.Write(ref _routes, cache);
        }

        if (cache.Routes.TryGetValue((model, version), out var known))
        {
            return known;
        }

        var route = Route(snapshot, model, version, Volatile.Read(ref _unloaded));
        if (route.StatusCode == StatusCodes.Status200OK)
        {
            cache.Routes.TryAdd((model, version), route);
        }

        return route;
    }

    private static ModelRoute Route(ClusterSnapshot snapshot, string model, string? version, Dictionary<string, string[]?> unloaded)
    {
        var statuses = snapshot.Silos.SelectMany(s => s.Models).Where(m => m.Model == model).ToList();
        var unloadedVersions = unloaded.TryGetValue(model, out var versionsUnloaded) ? versionsUnloaded ?? [] : null;
        if (unloadedVersions is not null && (statuses.Count == 0 && unloadedVersions.Length == 0 || version is not null && unloadedVersions.Contains(version) && statuses.All(s => s.Version != version)))
        {
            var what = version is null ? $"Model '{model}'" : $"Model '{model}' version {version}";
            return new(null, 0, StatusCodes.Status404NotFound,
                $"{what} is not loaded: it was unloaded through the repository API (POST /v2/repository/models/{model}/load serves it again).");
        }

        if (statuses.Count == 0)
        {
            var known = snapshot.Silos.SelectMany(s => s.Models).Select(m => m.Model).Distinct().Order();
            return new(null, 0, StatusCodes.Status404NotFound, $"Unknown model '{model}'. Available models: {string.Join(", ", known)}.");
        }

        if (version is not null && statuses.All(s => s.Version != version))
        {
            var versions = statuses.Select(s => s.Version).Distinct().OrderBy(VersionOrder);
            return new(null, 0, StatusCodes.Status404NotFound, $"Model '{model}' has no version '{version}'. Available versions: {string.Join(", ", versions)}.");
        }

        var ready = statuses.Where(s => s.State == ModelState.Ready && (version is null || s.Version == version))
            .OrderByDescending(s => VersionOrder(s.Version)).FirstOrDefault();
        if (version is null && ready is not null)
        {
            // Unversioned requests move to a new version only once every silo serving the model has it ready: while
            // it loads silo by silo, one request stream never mixes answers of two versions.
            var serving = snapshot.Silos.Where(s => s.Models.Any(m => m.Model == model && m.State == ModelState.Ready)).ToList();
            ready = statuses.Where(s => s.State == ModelState.Ready && serving.All(silo => silo.Serves(model, s.Version)))
                .OrderByDescending(s => VersionOrder(s.Version)).FirstOrDefault() ?? ready;
        }
        if (ready is null)
        {
            var why = statuses.Select(s => s.Error).FirstOrDefault(e => e is not null) ?? "still loading";
            return new(null, 0, StatusCodes.Status503ServiceUnavailable, $"Model '{model}' is not loaded on any silo: {why}");
        }

        var fingerprints = statuses.Where(s => s.Version == ready.Version && s.State == ModelState.Ready).Select(s => s.Fingerprint).Distinct().ToList();
        var identity = fingerprints is [{ } fingerprint]
            ? new ServingIdentity(fingerprint, snapshot.Silos.Where(s => s.Serves(model, ready.Version)).Select(s => s.Silo).ToHashSet())
            : null;
        return new(ready.Version, ready.LabelCount, StatusCodes.Status200OK, null, ready.OutputKind == "embedding", ShardCountOf(snapshot), identity);
    }

    private static long VersionOrder(string version) => long.TryParse(version, out var v) ? v : -1;
}
