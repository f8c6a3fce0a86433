using Classifier.ServiceDefaults;
using System.Collections.Concurrent;
using Prometheus;

namespace Classifier.Gateway.Telemetry;

/// <summary>The gateway's metrics, with the names, labels and buckets of the original service.</summary>
public static class GatewayMetrics
{
    /// <summary>The original's buckets (0.01 .. 30 s) plus finer ones below 10 ms for cache hits.</summary>
    public static readonly double[] DurationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    public static readonly Counter Requests = Metrics.CreateCounter(
        "http_requests_total", "HTTP requests answered by the gateway, by route template, method and status code.",
        "endpoint", "method", "status");

    public static readonly Histogram Duration = Metrics.CreateHistogram(
        "http_request_duration_seconds", "Time from request start to response end at the gateway, in seconds, by route template and method.",
        new HistogramConfiguration { LabelNames = ["endpoint", "method"], Buckets = DurationBuckets });

    public static readonly Gauge AppInfo = Metrics.CreateGauge(
        "app_info", "Always 1; the labels say what is running.", "version", "build", "role", "orleans_version", "onnxruntime_version");

    public static readonly Gauge InFlight = Metrics.CreateGauge(
        "gateway_requests_in_flight", "HTTP requests the gateway is processing now.");

    /// <summary>Grain-call time for one prediction, retries included, by model (models are validated first, so the label is bounded).</summary>
    public static readonly Histogram Upstream = Metrics.CreateHistogram(
        "gateway_upstream_duration_seconds", "Time from the gateway's first grain call to the silo's answer for one image, retries included, in seconds.",
        new HistogramConfiguration { LabelNames = ["model"], Buckets = DurationBuckets });

    public static readonly Counter Retries = Metrics.CreateCounter(
        "gateway_upstream_retries_total", "Grain calls repeated because the silo serving them vanished or timed out.", "model");

    public static readonly Counter Unavailable = Metrics.CreateCounter(
        "gateway_upstream_unavailable_total", "Images answered 503 because no silo could be reached within the retry budget.", "model");

    public static readonly Gauge UploadBytesInFlight = Metrics.CreateGauge(
        "gateway_upload_bytes_in_flight", "Request-body bytes the gateway holds now (arriving, or on their way to a silo); at most Gateway:MaxUploadBytesInFlight.");

    public static readonly Counter UploadRefusals = Metrics.CreateCounter(
        "gateway_upload_refusals_total", "Uploads refused with 503 because Gateway:MaxUploadBytesInFlight was reached.");

    public static readonly Gauge NearCacheEntries = Metrics.CreateGauge(
        "gateway_near_cache_entries", "Answers the gateway's near cache holds now (copies of shard grains' answers).");

    public static readonly Gauge NearCacheCapacity = Metrics.CreateGauge(
        "gateway_near_cache_capacity", "Most answers the gateway's near cache holds (Gateway:NearCacheEntries; 0: off).");

    public static readonly Gauge NearCacheBytes = Metrics.CreateGauge(
        "gateway_near_cache_bytes", "Approximate bytes held by the gateway's near cache; at most Gateway:NearCacheBytes.");

    public static readonly Counter NearCacheHits = Metrics.CreateCounter(
        "gateway_near_cache_hits_total", "Images answered from the gateway's near cache, by model; each is reported to its shard, whose silo counts it in predictions_total{status=\"cache_hit\"}.", "model");

    public static readonly Counter NearCacheHitsReported = Metrics.CreateCounter(
        "gateway_near_cache_hits_reported_total", "Near-cache hits sent on to their shards.");

    public static readonly Counter NearCacheEvictions = Metrics.CreateCounter(
        "gateway_near_cache_evictions_total", "Answers dropped from the gateway's near cache to stay within its entries and bytes.");

    private static readonly ConcurrentDictionary<(string Endpoint, string Method, int Status), (Counter.Child Count, Histogram.Child Duration)> Children = new();

    private static readonly ConcurrentDictionary<string, UpstreamChildren> ByModel = new();

    /// <summary>The upstream series of one model, resolved once (model names are validated before any grain call, so the set is bounded).</summary>
    public static UpstreamChildren ForModel(string model) => ByModel.GetOrAdd(model, static m => new UpstreamChildren(
        new SwitchedHistogram(Upstream.WithLabels(m), Recording), new SwitchedCounter(Retries.WithLabels(m), Recording), new SwitchedCounter(Unavailable.WithLabels(m), Recording),
        new SwitchedCounter(NearCacheHits.WithLabels(m), Recording)));

    /// <summary>
    /// Whether the per-request series record (<c>Metrics:Enabled</c>; follows the setting while running). For
    /// measuring what recording costs, not for production.
    /// </summary>
    public static RecordingSwitch Recording { get; } = new();

    /// <summary>Records one request; label children are resolved once per combination and kept.</summary>
    public static void Record(string endpoint, string method, int status, double seconds)
    {
        var (count, duration) = Children.GetOrAdd((endpoint, method, status), static k =>
            (Requests.WithLabels(k.Endpoint, k.Method, k.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)),
             Duration.WithLabels(k.Endpoint, k.Method)));
        count.Inc();
        duration.Observe(seconds);
    }
}

/// <summary>One model's gateway-side upstream series.</summary>
public sealed record UpstreamChildren(IHistogram Duration, ICounter Retries, ICounter Unavailable, ICounter NearHits);
