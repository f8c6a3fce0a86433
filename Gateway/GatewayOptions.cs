using System.ComponentModel.DataAnnotations;
using Classifier.ServiceDefaults;

namespace Classifier.Gateway;

/// <summary>How the gateway accepts and routes prediction requests.</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>Model used when a request names none.</summary>
    [Required]
    public string DefaultModel { get; set; } = "text-orientation";

    /// <summary>Largest image accepted, in bytes (413 above).</summary>
    [Range(1, 1L << 30)]
    public long MaxImageBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Most images in one <c>POST /predict/batch</c>.</summary>
    [Range(1, 1024)]
    public int MaxBatchImages { get; set; } = 32;

    /// <summary>Largest <c>POST /predict/batch</c> body, in bytes (413 above).</summary>
    [Range(1, 1L << 31)]
    public long MaxBatchBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>
    /// Longest wait for one grain call. A call in flight to a silo that dies gets no answer, so this bounds
    /// how long such a request hangs before it is retried on a survivor (Orleans' default is 30 s).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a prediction may keep retrying when its grain call fails because the silo vanished or the
    /// cluster is unreachable (predictions are idempotent). Cover the silos' failure-detection time.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan RetryBudget { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// When set, <c>/metrics</c>, <c>/healthz</c> and <c>/readyz</c> are served on this port only (added to
    /// the listening URLs), and the API is not served there: scrapers and probes stay off the public port.
    /// </summary>
    [Range(1, 65535)]
    public int? ManagementPort { get; set; }

    /// <summary>
    /// The port of the Open Inference Protocol's gRPC service (<c>inference.GRPCInferenceService</c>, HTTP/2 without
    /// TLS, on the hosts of the listening URLs). Unset (the default): no gRPC; <c>run.sh</c> sets 8081.
    /// </summary>
    [Range(1, 65535)]
    public int? GrpcPort { get; set; }

    /// <summary>
    /// Upload memory this gateway may hold at once, over all requests, in bytes: an image holds its size while it
    /// arrives, then its array and what Orleans needs to send it (about four times its size for large images, see
    /// <see cref="Api.UploadReader.HoldingCost"/>) until its request ends. Beyond it uploads are refused with 503
    /// and <c>Retry-After</c>, never buffered. Default 160 MiB: with the gateway's own ~100 MB it fits the
    /// manifests' 512 MiB limit (README, Security: memory model). Must hold at least one largest image.
    /// </summary>
    [Range(1024 * 1024, 1L << 40)]
    public long MaxUploadBytesInFlight { get; set; } = 160L * 1024 * 1024;

    /// <summary>
    /// Longest a request body may take to arrive (408 after it), whatever its rate: with Kestrel's minimum data rate
    /// alone a slow client may hold a connection for hours. A 10 MiB image needs 1.4 Mbit/s to make the default.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan BodyTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Slowest average rate, in bytes a second, at which a body of declared length may arrive once the gateway has
    /// reserved memory for it: it then has 2 s plus its length at this rate (and never more than
    /// <see cref="BodyTimeout"/>). Default 128 KiB/s (1 Mbit/s): a 3 MB photo gets 25 s. It bounds how long a client
    /// can hold memory it claimed and does not send.
    /// </summary>
    [Range(0, 1 << 30)]
    public int MinUploadBytesPerSecond { get; set; } = 128 * 1024;

    /// <summary>Slowest a request body may arrive, in bytes a second after a 5 s grace period, on any connection (Kestrel's default is 240).</summary>
    [Range(0, 1 << 30)]
    public int MinBodyBytesPerSecond { get; set; } = 4096;

    /// <summary>Most connections Kestrel keeps open at once; further ones are refused. Each costs buffers even while idle.</summary>
    [Range(1, 1_000_000)]
    public int MaxConnections { get; set; } = 1000;

    /// <summary>Longest Kestrel waits for a request's headers (Kestrel's default is 30 s).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan HeadersTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long an idle keep-alive connection stays open (Kestrel's default is 130 s).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How often the gateway reads cluster membership. When a silo is declared dead, requests waiting on it are retried
    /// on a survivor at the next read instead of at <see cref="CallTimeout"/>; one small call to a silo per interval.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan MembershipPollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How often the gateway refreshes its view of models and silos.</summary>
    /// <summary>
    /// Answers the gateway keeps as a near tier of the shards' caches, so repeated images are answered without a grain
    /// call (each hit is still reported to its shard and counted by its silo). 0 turns the tier off.
    /// </summary>
    [Range(0, 10_000_000)]
    public int NearCacheEntries { get; set; } = 4096;

    /// <summary>Most bytes the near cache holds (answers of embedding models are large).</summary>
    [Range(0, long.MaxValue)]
    public long NearCacheBytes { get; set; } = 16L << 20;

    /// <summary>How often near-cache hits are reported to their shards, so the silos' and the cluster's cache figures count them.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan NearCacheReportInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(2);
}

/// <summary>How the gateway finds the cluster.</summary>
public sealed class ClusterClientOptions : ClusterMembershipSettings
{
    /// <summary>
    /// Gateway ports of the local silos (localhost clustering); the client uses every one that answers.
    /// Empty means 30000. (No initialiser: the configuration binder appends to an existing array.)
    /// </summary>
    public int[] GatewayPorts { get; set; } = [];

    /// <summary>The configured ports, or the primary silo's default.</summary>
    public int[] EffectiveGatewayPorts => GatewayPorts.Length > 0 ? GatewayPorts : [30000];
}
