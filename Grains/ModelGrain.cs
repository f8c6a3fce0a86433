using Classifier.Grains.Caching;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Telemetry;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Classifier.Grains;

/// <summary>
/// One shard of one model version. Cache look-ups run in the grain's turn; preprocessing and
/// inference run off it, and the grain is reentrant so other requests proceed meanwhile.
/// </summary>
/// <remarks>
/// Placed by activation count, so shards spread evenly and a silo that joins receives new shards.
/// </remarks>
[Reentrant]
[ActivationCountBasedPlacement]
public sealed class ModelGrain(
    ModelCatalog catalog,
    SiloCacheStatistics siloStatistics,
    SiloMetrics siloMetrics,
    IOptions<CacheOptions> cacheOptions,
    ILocalSiloDetails silo) : Grain, IModelGrain, IGrainMigrationParticipant
{
    private const string CacheStateKey = "cache";

    // Bytes of a cached entry beyond its output values: key, list node, dictionary slot, array header.
    private const int EntryOverheadBytes = 112;

    private readonly LruCache<ImageHash, float[]> _cache = new(cacheOptions.Value.Capacity, p => EntryOverheadBytes + p.Length * sizeof(float));
    private readonly Dictionary<ImageHash, Task<InferenceOutcome>> _inFlight = [];
    private ModelRuntime? _runtime;
    private string _model = "";
    private string _version = "";
    private Func<CacheStatistics>? _statistics;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        (_model, _version, _) = ModelGrainKey.Parse(this.GetPrimaryKeyString());
        _runtime = catalog.Find(_model, _version);
        _statistics = () => _cache.Statistics;
        siloStatistics.Register(this.GetPrimaryKeyString(), _statistics);
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

    public async Task<PredictionReply> PredictAsync(PredictionRequest request)
    {
        var runtime = _runtime;
        if (runtime is null)
        {
            return PredictionReply.Fail(PredictionErrorKind.ModelNotFound, $"Model {_model} version {_version} is not in this silo's model repository.");
        }

        var metrics = runtime.Metrics;
        var k = request.TopK == 0 ? runtime.Model.TopK : request.TopK;
        if (runtime.Model.IsEmbedding && request.TopK != 0)
        {
            return PredictionReply.Fail(PredictionErrorKind.BadParameter, $"Model {_model} answers embeddings, not classes: leave top_k out.");
        }

        if (!runtime.Model.IsEmbedding && (k < 1 || k > runtime.Model.Labels.Length))
        {
            return PredictionReply.Fail(PredictionErrorKind.BadParameter, $"top_k must be between 1 and {runtime.Model.Labels.Length} for model {_model}.");
        }

        if (_cache.TryGet(request.Hash, out var cached))
        {
            metrics.CacheHits.Inc();
            siloMetrics.PredictionCacheHit.Inc();
            return PredictionReply.Ok(Answer(runtime, cached, k, fromCache: true, 0, 0));
        }

        // An identical image already being classified by this grain: share its run, as a cache hit.
        if (_inFlight.TryGetValue(request.Hash, out var running))
        {
            _cache.CountHit();
            metrics.CacheHits.Inc();
            var shared = await running;
            if (shared.Output is { } p)
            {
                siloMetrics.PredictionCacheHit.Inc();
                return PredictionReply.Ok(Answer(runtime, p, k, fromCache: true, 0, 0));
            }

            siloMetrics.PredictionError.Inc();
            return new PredictionReply(null, shared.Error);
        }

        metrics.CacheMisses.Inc();
        var run = runtime.PredictAsync(request.Image);
        _inFlight[request.Hash] = run;
        InferenceOutcome outcome;
        try
        {
            outcome = await run;
        }
        finally
        {
            _inFlight.Remove(request.Hash);
        }

        if (outcome.Output is not { } output)
        {
            siloMetrics.PredictionError.Inc();
            return new PredictionReply(null, outcome.Error);
        }

        var evicted = _cache.Set(request.Hash, output);
        if (evicted > 0)
        {
            metrics.CacheEvictions.Inc(evicted);
        }

        siloMetrics.PredictionSuccess.Inc();
        return PredictionReply.Ok(Answer(runtime, output, k, fromCache: false, outcome.PreprocessingMs, outcome.InferenceMs));
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

    private Prediction Answer(ModelRuntime runtime, float[] output, int k, bool fromCache, double preprocessingMs, double inferenceMs) => runtime.Model.IsEmbedding
        ? new(_model, _version, [], fromCache, preprocessingMs, inferenceMs, silo.Name, runtime.Provider, output)
        : new(_model, _version, runtime.TopK(output, k), fromCache, preprocessingMs, inferenceMs, silo.Name, runtime.Provider);
}
