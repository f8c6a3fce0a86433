using System.ComponentModel.DataAnnotations;
using Classifier.Grains.Inference;
using Microsoft.Extensions.Options;

namespace Classifier.Grains;

/// <summary>Where models come from and what runs them.</summary>
public sealed class ModelsOptions
{
    public const string SectionName = "Models";

    /// <summary>The model repository folder (one sub-folder per model). Default <c>models</c>.</summary>
    [Required]
    public string Repository { get; set; } = "models";

    /// <summary><c>auto</c> (CUDA when it loads, else CPU), <c>cpu</c> or <c>cuda</c> (a model fails rather than fall back).</summary>
    [Required, RegularExpression("^(auto|cpu|cuda)$", ErrorMessage = "Models:Device must be auto, cpu or cuda.")]
    public string Device { get; set; } = "auto";

    /// <summary>
    /// Who changes the served models, as Triton's model control modes: <c>explicit</c> (the default) serves the folder
    /// at the cluster's first start and then follows the repository API; <c>poll</c> does too, and also applies a
    /// change it sees in a model's folder (every <see cref="PollInterval"/>) as a cluster-wide load, or unload for a
    /// folder removed; <c>none</c> serves the folder and refuses the API's loads and unloads, for clusters whose
    /// models change only by redeploying.
    /// </summary>
    [Required, RegularExpression("^(none|explicit|poll)$", ErrorMessage = "Models:ControlMode must be none, explicit or poll.")]
    public string ControlMode { get; set; } = "explicit";

    /// <summary>
    /// With <c>Models:ControlMode poll</c>, how often the silo looks at its model folders (Triton's
    /// <c>--repository-poll-secs</c>, whose default is 15 s too). A change is applied once two looks in a row see it
    /// alike, so a file still being copied is not loaded half-written.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The CUDA device ordinal used when the device is <c>cuda</c> or <c>auto</c>.</summary>
    [Range(0, 64)]
    public int GpuDeviceId { get; set; }

    /// <summary>
    /// The CUDA provider's <c>cudnn_conv_algo_search</c>: <c>EXHAUSTIVE</c>, <c>HEURISTIC</c> or <c>DEFAULT</c>;
    /// empty leaves ONNX Runtime's default (exhaustive). Each change of input shape repeats the search, so
    /// models whose shape varies from run to run may prefer <c>HEURISTIC</c>.
    /// </summary>
    [RegularExpression("^(|EXHAUSTIVE|HEURISTIC|DEFAULT)$", ErrorMessage = "Models:CudnnConvAlgoSearch must be EXHAUSTIVE, HEURISTIC, DEFAULT or empty.")]
    public string CudnnConvAlgoSearch { get; set; } = "";

    /// <summary>
    /// ONNX Runtime intra-op threads per session. 0: the cores this process may use (affinity and container
    /// CPU limits honoured) divided among the model's concurrent runs (<c>batching.instances</c>).
    /// </summary>
    [Range(0, 256)]
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// After loading, each model version runs its whole path (decode, resize, tensor, inference) on synthetic
    /// images for up to this long (at most 2000 times), so that tiered compilation has optimised it before the
    /// silo reports ready. Zero: one pass only.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan WarmUp { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Runs of one model version that may fail in a row (ONNX Runtime throwing: a CUDA device lost or out of memory)
    /// before the version is taken out of service on this silo: its state turns to error, its shards move to silos
    /// where it is ready, and it stays out until the silo restarts.
    /// </summary>
    [Range(1, 1000)]
    public int FailedRunsBeforeError { get; set; } = 3;

    /// <summary>
    /// For failure drills only: every run after this many fails, as if the device had been lost. 0 (the default): off.
    /// Counts the scheduler's runs, not the warm-up's, so the model loads and serves before it fails.
    /// </summary>
    [Range(0, int.MaxValue)]
    public int FailRunsAfter { get; set; }
}

/// <summary>The per-grain prediction cache.</summary>
public sealed class CacheOptions
{
    public const string SectionName = "Cache";

    /// <summary>Entries each ModelGrain keeps (LRU). Default 128, the original's capacity; 0 turns caching off.</summary>
    [Range(0, 1_000_000)]
    public int Capacity { get; set; } = 128;
}

/// <summary>What the silo agrees to decode.</summary>
public sealed class ImageOptions
{
    public const string SectionName = "Images";

    /// <summary>Used when <see cref="AllowedFormats"/> is not configured.</summary>
    public static readonly string[] DefaultFormats = ["jpeg", "png", "gif", "webp"];

    /// <summary>
    /// Formats decoded; others answer 415. Known: jpeg, png, gif, webp, bmp, tga, tiff, pbm. Empty means
    /// <see cref="DefaultFormats"/>. (No initialiser: the configuration binder appends to an existing
    /// array, so a configured list could never narrow a default one.)
    /// </summary>
    public string[] AllowedFormats { get; set; } = [];

    /// <summary>The configured formats, or the defaults.</summary>
    public string[] EffectiveFormats => AllowedFormats.Length > 0 ? AllowedFormats : DefaultFormats;

    /// <summary>Largest width accepted, read from the header before decoding.</summary>
    [Range(1, 65535)]
    public int MaxWidth { get; set; } = 10_000;

    /// <summary>Largest height accepted, read from the header before decoding.</summary>
    [Range(1, 65535)]
    public int MaxHeight { get; set; } = 10_000;

    /// <summary>Largest width x height accepted, read from the header before decoding (40 MP decodes in 160 to 400 MB, by format).</summary>
    [Range(1, 1_000_000_000)]
    public long MaxPixels { get; set; } = 40_000_000;

    /// <summary>
    /// Most scans a JPEG may have (libjpeg-turbo's limit; encoders write about 10). Each progressive scan walks
    /// the whole frame again, so the decode time of a JPEG is its pixels times its scans.
    /// </summary>
    [Range(1, 1000)]
    public int MaxJpegScans { get; set; } = EncodedImageGuard.DefaultMaxJpegScans;

    /// <summary>
    /// Memory that decodes in progress on this silo may hold together, in bytes, estimated per image from its
    /// header (bytes per pixel by format, measured: README, Security). An image whose estimate alone exceeds it
    /// is refused (413); otherwise it waits for room. Default 384 MiB: with the silo's own ~300 MB it fits the
    /// manifests' 1 GiB limit.
    /// </summary>
    [Range(16L * 1024 * 1024, 64L * 1024 * 1024 * 1024)]
    public long DecodeMemoryBytes { get; set; } = 384L * 1024 * 1024;

    /// <summary>Decodes that may run at once on this silo; 0: the cores this process may use. More only queue for CPU while holding memory.</summary>
    [Range(0, 1024)]
    public int MaxConcurrentDecodes { get; set; }

    /// <summary>
    /// Most bytes of encoded images that may wait for decode room on this silo, in bytes; beyond it an image is
    /// refused with 429 and <c>Retry-After</c> at once rather than held. Default 64 MiB.
    /// </summary>
    [Range(0, 64L * 1024 * 1024 * 1024)]
    public long MaxWaitingBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Longest an image waits for decode room before it is refused with 429 and <c>Retry-After</c>.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan DecodeQueueTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Longest one decode (decode, orientation, resize) may run before it is abandoned and refused with 422. A 40 MP
    /// progressive JPEG took about 1.5 s here on an idle core.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan DecodeTimeout { get; set; } = TimeSpan.FromSeconds(4);

    /// <summary>The decode concurrency in effect: <see cref="MaxConcurrentDecodes"/>, or the usable cores.</summary>
    public int EffectiveMaxConcurrentDecodes => MaxConcurrentDecodes > 0 ? MaxConcurrentDecodes : Environment.ProcessorCount;
}

/// <summary>How a silo accepts ModelGrain keys (section <c>Cluster</c>, shared with the silo host's settings).</summary>
public sealed class ShardingOptions
{
    public const string SectionName = "Cluster";

    /// <summary>
    /// Grains per model version; keys with a shard outside 0 .. ShardCount - 1 are refused. Gateways learn it from
    /// the silos (the smallest any silo reports), so set it on silos only, the same on every one. An image goes
    /// to shard hash mod this, so it bounds how finely load spreads: a few times the largest expected silo count.
    /// Changing it re-homes cached images.
    /// </summary>
    [Range(1, 65536)]
    public int ShardCount { get; set; } = 32;
}

/// <summary>How silos share cache statistics and model status.</summary>
public sealed class ClusterStatsOptions
{
    public const string SectionName = "ClusterStats";

    /// <summary>How often each silo reports to the cluster grain and refreshes <c>cluster_cache_hit_rate</c>; at most 15 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:00:15")]
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Move shards, with their caches, from silos above their fair share to silos below it (see ClusterReporter).</summary>
    public bool Rebalance { get; set; } = true;
}

internal sealed class ImageOptionsValidator : IValidateOptions<ImageOptions>
{
    public ValidateOptionsResult Validate(string? name, ImageOptions options)
    {
        var unknown = options.AllowedFormats.Where(f => !ImageFormats.IsKnown(f)).ToArray();

        return unknown.Length == 0
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Images:AllowedFormats names unknown format(s) {string.Join(", ", unknown)}; known: {string.Join(", ", ImageFormats.Known)}.");
    }
}
