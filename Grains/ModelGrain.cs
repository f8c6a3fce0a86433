using Classifier.Grains.Caching;
using Classifier.Grains.Inference;
using Classifier.Grains.Placement;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Telemetry;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Classifier.Grains;

/// <summary>
/// One shard of one model version. Cache look-ups run in the grain's turn; preprocessing and
/// inference run off it, and the grain is reentrant so other requests proceed meanwhile.
/// </summary>
/// <remarks>
/// Placed only where its model version is ready, spread evenly over those silos (<see cref="ModelReadyPlacementDirector"/>);
/// a shard whose model stops being ready here leaves, and its callers' retries place it where the model is ready.
/// </remarks>
[Reentrant]
[ModelReadyPlacement]
public sealed class ModelGrain(
    ModelCatalog catalog,
    ModelAvailability availability,
    SiloCacheStatistics siloStatistics,
    SiloMetrics siloMetrics,
    IOptions<CacheOptions> cacheOptions,
    IOptions<ShardingOptions> sharding,
    ILocalSiloDetails silo) : Grain, IModelGrain, IGrainMigrationParticipant
{
    private const string CacheStateKey = "cache";

    // Bytes of a cached entry beyond its output values: key, list node, dictionary slot, array header.
    private const int EntryOverheadBytes = 112;

    private readonly LruCache<ImageHash, float[]> _cache = new(cacheOptions.Value.Capacity, p => EntryOverheadBytes + p.Length * sizeof(float));
    private readonly Dictionary<ImageHash, SharedRun> _inFlight = [];
    /// <summary>
    /// Which load of the model version this shard serves (<see cref="ModelRuntime.Generation"/>). Not the runtime
    /// itself: the catalog is asked on every request, so a shard left idle after an unload holds nothing of the
    /// unloaded version (ten resnet18 load and unload cycles otherwise kept megabytes each until idle collection).
    /// </summary>
    private long _generation;
    private string _model = "";
    private string _version = "";
    private int _shard;
    private Func<CacheStatistics>? _statistics;

    /// <summary>Why this key is not one this cluster serves; null for a served key.</summary>
    private PredictionError? _refusal;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Keys come from callers: only the gateway's (model, version, shard below the shard count) may hold state
        // here. Anything else answers an error and goes away, so made-up keys cannot pile up activations.
        var key = this.GetPrimaryKeyString();
        ModelRuntime? found = null;
        if (!ModelGrainKey.TryParse(key, out var parsed))
        {
            _refusal = new(PredictionErrorKind.ModelUnavailable, "This is not a ModelGrain key of the form model/version/shard.");
        }
        else if (parsed.Shard >= sharding.Value.ShardCount)
        {
            _refusal = new(PredictionErrorKind.ModelUnavailable,
                $"Shard {parsed.Shard} is outside this silo's {sharding.Value.ShardCount} shards (Cluster:ShardCount); the cluster's shard count is changing, retry shortly.");
        }
        else if ((found = catalog.Find(parsed.Model, parsed.Version)) is null)
        {
            _refusal = new(PredictionErrorKind.ModelNotFound, $"Model {parsed.Model} version {parsed.Version} is not in this silo's model repository.");
        }

        if (_refusal is not null)
        {
            return Task.CompletedTask; // deactivated after answering: deactivating during activation would reject the call
        }

        (_model, _version, _shard) = parsed;
        _generation = found!.Generation;
        _statistics = () => _cache.Statistics;
        siloStatistics.Register(key, _statistics);
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_statistics is not null)
        {
            siloStatistics.Retire(_statistics);
        }

        return Task.CompletedTask;
    }

    public async Task<PredictionReply> PredictAsync(PredictionRequest request, CancellationToken cancellationToken = default)
    {
        if (_refusal is not null)
        {
            this.DeactivateOnIdle();
            return new PredictionReply(null, _refusal);
        }

        var runtime = catalog.Find(_model, _version);
        if (runtime?.Generation != _generation)
        {
            // Unloaded, or loaded anew, since this shard activated: it leaves with its cache, whose answers came from
            // the session that is gone; a retry activates it against what is served now.
            this.DeactivateOnIdle();
            return runtime is null
                ? PredictionReply.Fail(PredictionErrorKind.ModelNotFound, $"Model {_model} version {_version} is not loaded on this silo.")
                : PredictionReply.Fail(PredictionErrorKind.Relocating, $"Model {_model} version {_version} was loaded anew on this silo; retry.");
        }

        if (runtime.State != ModelState.Ready && availability.IsReadyElsewhere(_model, _version))
        {
            // Placed here on stale knowledge, or the model failed here since: leave, so the retry lands where it is ready.
            return Relocate(runtime);
        }

        var metrics = runtime.Metrics;
        var k = request.TopK == 0 ? runtime.Model.TopK : request.TopK;
        if (RequestRules.TopKProblem(request.TopK, _model, runtime.Model.IsEmbedding, runtime.Model.Labels.Length) is { } topKProblem)
        {
            return PredictionReply.Fail(PredictionErrorKind.BadParameter, topKProblem);
        }

        // Hashed here, not taken from the caller: an answer is only ever filed under the hash of the bytes it answers.
        var hash = request.Tensor ? ImageHash.OfTensor(runtime.InputShape, request.Image) : ImageHash.Of(request.Image);
        if (_cache.TryGet(hash, out var cached))
        {
            metrics.CacheHits.Inc();
            siloMetrics.PredictionCacheHit.Inc();
            return PredictionReply.Ok(Answer(runtime, cached, k, fromCache: true, 0, 0));
        }

        // An identical image already being classified by this grain: share its run, as a cache hit.
        if (_inFlight.TryGetValue(hash, out var running))
        {
            _cache.CountJoinedAsHit();
            metrics.CacheHits.Inc();
            InferenceOutcome shared;
            using (running.Join(cancellationToken))
            {
                try
                {
                    shared = await running.Outcome.WaitAsync(cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return PredictionReply.Fail(PredictionErrorKind.Cancelled, "The request was cancelled before its answer was ready.");
                }
            }

            return Reply(shared, runtime, k, fromCache: true);
        }

        metrics.CacheMisses.Inc();
        var run = new SharedRun();
        InferenceOutcome outcome;
        using (run.Join(cancellationToken))
        {
            run.Outcome = request.Tensor ? runtime.PredictTensorAsync(request.Image, run.Token) : runtime.PredictAsync(request.Image, run.Token);
            _inFlight[hash] = run;
            try
            {
                // Awaited to the end even when this caller leaves: others may have joined, and the run ends at
                // once by itself when every caller has left.
                outcome = await run.Outcome;
            }
            finally
            {
                _inFlight.Remove(hash);
                run.Dispose();
            }
        }

        if (outcome.Output is { } output)
        {
            var evicted = _cache.Set(hash, output);
            if (evicted > 0)
            {
                metrics.CacheEvictions.Inc(evicted);
            }
        }

        return Reply(outcome, runtime, k, fromCache: false);
    }

    private PredictionReply Reply(InferenceOutcome outcome, ModelRuntime runtime, int k, bool fromCache)
    {
        if (outcome.Output is { } output)
        {
            (fromCache ? siloMetrics.PredictionCacheHit : siloMetrics.PredictionSuccess).Inc();
            return PredictionReply.Ok(fromCache
                ? Answer(runtime, output, k, fromCache: true, 0, 0)
                : Answer(runtime, output, k, fromCache: false, outcome.PreprocessingMs, outcome.InferenceMs));
        }

        // The model failed here while it runs elsewhere (a run-time failure): the caller retries there, the shard follows.
        if (outcome.Error?.Kind == PredictionErrorKind.ModelUnavailable && availability.IsReadyElsewhere(_model, _version))
        {
            return Relocate(runtime);
        }

        // A caller that left is nobody's error: its (unread) answer is not counted as one.
        if (outcome.Error?.Kind != PredictionErrorKind.Cancelled)
        {
            siloMetrics.PredictionError.Inc();
        }

        return new PredictionReply(null, outcome.Error);
    }

    /// <summary>
    /// Answers "send it again" and, once the model is out of service here, leaves: the caller's retry places the shard
    /// on a silo where the model is ready. While the model is still in service here (a failed run or two), the retry
    /// comes back to this shard.
    /// </summary>
    private PredictionReply Relocate(ModelRuntime runtime)
    {
        if (runtime.State != ModelState.Ready)
        {
            // Moved, not deactivated: the shard takes its cache along, and lands where this silo knows the model is
            // ready now, rather than where another silo's older report might place a fresh activation.
            if (availability.ReadyElsewhere(_model, _version, _shard) is { } target)
            {
                RequestContext.Set(IPlacementDirector.PlacementHintKey, target);
                this.MigrateOnIdle();
            }
            else
            {
                this.DeactivateOnIdle();
            }
        }

        return PredictionReply.Fail(PredictionErrorKind.Relocating, $"Model {_model} version {_version} is not ready on this silo; the shard moves to a silo where it is.");
    }

    public Task RecordNearHitsAsync(int hits)
    {
        if (_refusal is null && hits > 0)
        {
            _cache.CountHits(hits);
            catalog.Find(_model, _version)?.Metrics.CacheHits.Inc(hits);
            siloMetrics.PredictionCacheHit.Inc(hits);
        }

        return Task.CompletedTask;
    }

    public Task<CacheStatistics> GetCacheStatisticsAsync() => Task.FromResult(_cache.Statistics);

    public Task MigrateToAsync(SiloAddress target)
    {
        if (!target.Equals(silo.SiloAddress))
        {
            RequestContext.Set(IPlacementDirector.PlacementHintKey, target);
            this.MigrateOnIdle();
        }

        return Task.CompletedTask;
    }

    /// <summary>The cache moves with the grain: a rebalanced shard keeps answering its images from cache.</summary>
    public void OnDehydrate(IDehydrationContext dehydrationContext)
    {
        var entries = _cache.OldestFirst().ToArray();
        dehydrationContext.TryAddValue(CacheStateKey, new CacheSnapshot([.. entries.Select(e => e.Key)], [.. entries.Select(e => e.Value)]));
    }

    public void OnRehydrate(IRehydrationContext rehydrationContext)
    {
        if (rehydrationContext.TryGetValue(CacheStateKey, out CacheSnapshot? snapshot) && snapshot is not null)
        {
            for (var i = 0; i < snapshot.Keys.Length; i++)
            {
                _cache.Set(snapshot.Keys[i], snapshot.Values[i]);
            }
        }
    }

    /// <summary>
    /// One image's run, shared by every caller that asked for the same image while it ran. The run is cancelled
    /// when the last of them has left: an abandoned image costs nothing more, a shared one keeps running for
    /// those still waiting.
    /// </summary>
    private sealed class SharedRun : IDisposable
    {
        private readonly CancellationTokenSource _cancellation = new();
        private int _waiting;

        public Task<InferenceOutcome> Outcome { get; set; } = null!;

        public CancellationToken Token => _cancellation.Token;

        /// <summary>Counts a caller in; its token leaving counts it out. Dispose the answer once the caller has its outcome.</summary>
        public IDisposable Join(CancellationToken caller)
        {
            Interlocked.Increment(ref _waiting);
            return new Member(this, caller);
        }

        private void Leave()
        {
            if (Interlocked.Decrement(ref _waiting) == 0)
            {
                try
                {
                    _cancellation.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // The run ended meanwhile.
                }
            }
        }

        public void Dispose() => _cancellation.Dispose();

        private sealed class Member : IDisposable
        {
            private readonly SharedRun _run;
            private readonly CancellationTokenRegistration _registration;
            private int _left;

            public Member(SharedRun run, CancellationToken caller)
            {
                _run = run;
                _registration = caller.UnsafeRegister(static state => ((Member)state!).LeaveOnce(), this);
            }

            private void LeaveOnce()
            {
                if (Interlocked.Exchange(ref _left, 1) == 0)
                {
                    _run.Leave();
                }
            }

            /// <summary>A caller that got its outcome stops listening; it no longer counts towards cancelling the run.</summary>
            public void Dispose()
            {
                _registration.Dispose();
                Interlocked.Exchange(ref _left, 1);
            }
        }
    }

    private Prediction Answer(ModelRuntime runtime, float[] output, int k, bool fromCache, double preprocessingMs, double inferenceMs) => runtime.Model.IsEmbedding
        ? new(_model, _version, [], fromCache, preprocessingMs, inferenceMs, silo.Name, runtime.Provider, output)
        : new(_model, _version, runtime.TopK(output, k), fromCache, preprocessingMs, inferenceMs, silo.Name, runtime.Provider);
}
