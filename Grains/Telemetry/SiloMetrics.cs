using Classifier.ServiceDefaults;
using Prometheus;

namespace Classifier.Grains.Telemetry;

/// <summary>
/// Every metric a silo exports. One instance per silo, bound to that silo's registry, rather than
/// static fields: several silos hosted in one process (the in-process test cluster) must not share
/// counts. Labelled children are resolved once per model version (<see cref="ForModel"/>) and kept.
/// </summary>
public sealed class SiloMetrics
{
    /// <summary>The original's inference buckets (0.05 .. 5 s), extended downwards for GPU and small-model timings.</summary>
    public static readonly double[] DurationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

    private static readonly string[] ModelLabels = ["model", "version"];

    /// <param name="recordRequests">The starting state of <see cref="Recording"/> (<c>Metrics:Enabled</c>).</param>
    /// <param name="exemplars">Whether observations made inside a traced span carry its ids as an exemplar: only worth it when traces are exported.</param>
    public SiloMetrics(CollectorRegistry registry, bool recordRequests = true, bool exemplars = true)
    {
        Registry = registry;
        Recording = new RecordingSwitch { On = recordRequests };
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        if (!exemplars)
        {
            f.ExemplarBehavior = ExemplarBehavior.NoExemplars();
        }

        Predictions = f.CreateCounter("predictions_total", "Predictions answered by this silo's grains, by outcome: success (model ran), cache_hit, error.", "status");
        PredictionSuccess = new SwitchedCounter(Predictions.WithLabels("success"), Recording);
        PredictionCacheHit = new SwitchedCounter(Predictions.WithLabels("cache_hit"), Recording);
        PredictionError = new SwitchedCounter(Predictions.WithLabels("error"), Recording);
        Inference = f.CreateHistogram("inference_duration_seconds", "Model execution time in seconds (ONNX Runtime Run only; preprocessing excluded).",
            new HistogramConfiguration { LabelNames = ModelLabels, Buckets = DurationBuckets });
        Preprocessing = f.CreateHistogram("preprocessing_duration_seconds", "Image decode, resize and tensor fill time in seconds, on cache misses only.",
            new HistogramConfiguration { LabelNames = ModelLabels, Buckets = DurationBuckets });
        CacheHits = f.CreateCounter("cache_hits_total", "Prediction-cache lookups answered from a grain cache on this silo.", ModelLabels);
        CacheMisses = f.CreateCounter("cache_misses_total", "Prediction-cache lookups that found nothing on this silo.", ModelLabels);
        CacheEvictions = f.CreateCounter("cache_evictions_total", "Entries dropped from grain caches on this silo to make room (LRU).", ModelLabels);
        CacheHitRate = f.CreateGauge("cache_hit_rate", "hits / (hits + misses) over this silo's ModelGrains since start, 0 to 1.");
        CacheSize = f.CreateGauge("cache_size_current", "Entries now held by this silo's ModelGrain caches.");
        CacheCapacity = f.CreateGauge("cache_capacity", "Entries this silo's active ModelGrain caches can hold together (per-grain capacity x active grains).");
        CacheMemory = f.CreateGauge("cache_memory_bytes", "Approximate bytes held by cached predictions on this silo.");
        ClusterCacheHitRate = f.CreateGauge("cluster_cache_hit_rate", "hits / (hits + misses) over every ModelGrain in the cluster, 0 to 1, aggregated from the grains' statistics; the same on every silo within one refresh.");
        ModelState = f.CreateGauge("model_state", "Model version state on this silo: 0 = not ready, 1 = ready, 2 = error.", ModelLabels);
        ModelProvider = f.CreateGauge("model_execution_provider", "1 for the ONNX Runtime execution provider running this model version on this silo; requested is the Models:Device setting (auto, cpu, cuda).", "model", "version", "provider", "requested");
        GpuDevices = f.CreateGauge("silo_gpu_devices", "NVIDIA GPU device nodes (/dev/nvidiaN) visible to this silo.");
        QueueDepth = f.CreateGauge("inference_queue_depth", "Images of this model version accepted for inference on this silo that have not started running yet.", ModelLabels);
        QueueWait = f.CreateHistogram("inference_queue_wait_seconds", "Time an image waited between acceptance for inference and the start of its run, in seconds.",
            new HistogramConfiguration { LabelNames = ModelLabels, Buckets = DurationBuckets });
        BatchSize = f.CreateHistogram("inference_batch_size", "Images per ONNX Runtime run.",
            new HistogramConfiguration { LabelNames = ModelLabels, Buckets = [1, 2, 4, 8, 16, 32, 64, 128] });
        Rejections = f.CreateCounter("inference_rejections_total",
            "Images this silo's scheduler answered without running, by reason: queue_full (batching.maxQueueSize reached), timeout (waited past batching.queueTimeoutMicroseconds), cancelled (the caller left).",
            "model", "version", "reason");
        ModelLoad = f.CreateHistogram("model_load_duration_seconds", "Time taken to load a model version on this silo: session creation and warm-up, in seconds; loads that failed are not observed.",
            new HistogramConfiguration { LabelNames = ["model"], Buckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] });
        RepositoryOperations = f.CreateCounter("model_repository_operations_total",
            "Loads and unloads the repository API asked of this silo, by outcome: success, failure (a version did not become ready), refused (Models:ControlMode none, or the folder cannot serve it).",
            "operation", "outcome");
        SystemCpu = f.CreateGauge("system_cpu_percent", "Whole-machine CPU use, 0 to 100, over the last sampling interval.");
        SystemMemory = f.CreateGauge("system_memory_percent", "Whole-machine memory in use (total - available), 0 to 100.");
        ProcessMemory = f.CreateGauge("process_memory_bytes", "This process's memory in bytes: rss (resident) or vms (virtual).", "type");
        DecodeReservedBytes = f.CreateGauge("image_decode_reserved_bytes", "Memory reserved by image decodes now running on this silo (estimated from headers), in bytes; at most Images:DecodeMemoryBytes.");
        DecodesRunning = f.CreateGauge("image_decodes_running", "Image decodes running on this silo now.");
        DecodesWaiting = f.CreateGauge("image_decodes_waiting", "Image decodes waiting for decode memory or a decode slot on this silo.");
        DecodeRefusals = f.CreateCounter("image_decode_refusals_total",
            "Images this silo refused or abandoned before or during decoding, by reason: too_large (needs more decode memory than the silo has), busy (no room within Images:DecodeQueueTimeout), too_many_scans, timeout (over Images:DecodeTimeout), cancelled (the caller left).", "reason");
        AppInfo = f.CreateGauge("app_info", "Always 1; the labels say what is running.", "version", "build", "role", "orleans_version", "onnxruntime_version");
    }

    public CollectorRegistry Registry { get; }

    /// <summary>Whether the per-request series record (<c>Metrics:Enabled</c>, switchable while running).</summary>
    public RecordingSwitch Recording { get; }

    public Counter Predictions { get; }

    public ICounter PredictionSuccess { get; }

    public ICounter PredictionCacheHit { get; }

    public ICounter PredictionError { get; }

    public Histogram Inference { get; }

    public Histogram Preprocessing { get; }

    public Counter CacheHits { get; }

    public Counter CacheMisses { get; }

    public Counter CacheEvictions { get; }

    public Gauge CacheHitRate { get; }

    public Gauge CacheSize { get; }

    public Gauge CacheCapacity { get; }

    public Gauge CacheMemory { get; }

    public Gauge ClusterCacheHitRate { get; }

    public Gauge ModelState { get; }

    public Gauge ModelProvider { get; }

    public Histogram ModelLoad { get; }

    public Counter RepositoryOperations { get; }

    public Gauge GpuDevices { get; }

    public Gauge QueueDepth { get; }

    public Histogram QueueWait { get; }

    public Histogram BatchSize { get; }

    public Counter Rejections { get; }

    public Gauge SystemCpu { get; }

    public Gauge SystemMemory { get; }

    public Gauge ProcessMemory { get; }

    public Gauge AppInfo { get; }

    public Gauge DecodeReservedBytes { get; }

    public Gauge DecodesRunning { get; }

    public Gauge DecodesWaiting { get; }

    public Counter DecodeRefusals { get; }

    /// <summary>The gauges of this silo's decode gate.</summary>
    public Classifier.Grains.Inference.DecodeGateMetrics DecodeGate() => new(DecodeReservedBytes, DecodesRunning, DecodesWaiting,
        Enum.GetValues<Classifier.Grains.Inference.DecodeRefusal>().Select(r => (ICounter)DecodeRefusals.WithLabels(Classifier.Grains.Inference.DecodeGateMetrics.Label(r))).ToArray());

    /// <summary>The labelled children of one model version, resolved once.</summary>
    /// <remarks>
    /// The per-request series follow <see cref="Recording"/>. The state and queue-depth gauges always record:
    /// the queue depth goes up and down in different calls, and skipping either half while the switch flips
    /// would leave it wrong for good.
    /// </remarks>
    public ModelMetrics ForModel(string model, string version) => new(
        new SwitchedHistogram(Inference.WithLabels(model, version), Recording),
        new SwitchedHistogram(Preprocessing.WithLabels(model, version), Recording),
        new SwitchedCounter(CacheHits.WithLabels(model, version), Recording),
        new SwitchedCounter(CacheMisses.WithLabels(model, version), Recording),
        new SwitchedCounter(CacheEvictions.WithLabels(model, version), Recording),
        ModelState.WithLabels(model, version),
        QueueDepth.WithLabels(model, version),
        new SwitchedHistogram(QueueWait.WithLabels(model, version), Recording),
        new SwitchedHistogram(BatchSize.WithLabels(model, version), Recording),
        [.. Enum.GetValues<Classifier.Grains.Inference.RejectionReason>().Select(r => (ICounter)Rejections.WithLabels(model, version, r switch
        {
            Classifier.Grains.Inference.RejectionReason.QueueFull => "queue_full",
            Classifier.Grains.Inference.RejectionReason.Timeout => "timeout",
            _ => "cancelled",
        }))]);
}

/// <summary>One model version's metric children, kept by its runtime so the hot path does no label look-up.</summary>
/// <remarks>Typed by prometheus-net's interfaces so that switched children (<see cref="SwitchedCounter"/>) can stand in.</remarks>
public sealed record ModelMetrics(
    IHistogram Inference,
    IHistogram Preprocessing,
    ICounter CacheHits,
    ICounter CacheMisses,
    ICounter CacheEvictions,
    IGauge State,
    IGauge QueueDepth,
    IHistogram QueueWait,
    IHistogram BatchSize,
    ICounter[] Rejections);
