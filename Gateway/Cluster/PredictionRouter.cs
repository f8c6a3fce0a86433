using System.Diagnostics;
using Classifier.Gateway.Telemetry;
using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Gateway.Cluster;

/// <summary>Sends an image to the ModelGrain shard that owns its bytes, retrying when that shard's silo vanished.</summary>
public sealed class PredictionRouter(IClusterClient client, IOptions<GatewayOptions> options, ILogger<PredictionRouter> logger)
{
    /// <summary>The SHA-256 prefix of <paramref name="image"/>: the routing key (the grain computes it again as its cache key).</summary>
    public static ImageHash Hash(ReadOnlySpan<byte> image) => ImageHash.Of(image);

    /// <summary>
    /// Classifies one image on shard <c>hash mod <paramref name="shardCount"/></c>; answers null when no silo could be
    /// reached within the retry budget. <paramref name="cancellationToken"/> (the client leaving) travels with the grain
    /// call, so the silo stops the image's decode and gives up its place in line.
    /// </summary>
    public async Task<PredictionReply?> PredictAsync(string model, string version, byte[] image, int topK, int shardCount, CancellationToken cancellationToken)
    {
        var key = ModelGrainKey.Format(model, version, Hash(image).ShardOf(shardCount));
        var request = new PredictionRequest(image, topK);
        var started = Stopwatch.GetTimestamp();
        var metrics = GatewayMetrics.ForModel(model);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                var reply = await client.GetGrain<IModelGrain>(key).PredictAsync(request, cancellationToken);
                if (reply.Error?.Kind == PredictionErrorKind.Relocating && await BackOffAsync(attempt, started, metrics, cancellationToken))
                {
                    continue; // the shard is moving to a silo where its model is ready
                }

                metrics.Duration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
                return reply;
            }
            catch (Exception e) when (IsTransient(e) && !cancellationToken.IsCancellationRequested)
            {
                if (!await BackOffAsync(attempt, started, metrics, cancellationToken))
                {
                    logger.LogWarning(e, "Prediction for {Key} failed after {Attempts} attempts in {Seconds:F1} s", key, attempt + 1, Stopwatch.GetElapsedTime(started).TotalSeconds);
                    metrics.Unavailable.Inc();
                    return null;
                }
            }
        }
    }

    /// <summary>
    /// Waits before the next attempt and answers true, or answers false when that would pass the retry budget. A
    /// budget of time rather than a count: a grain whose silo died reactivates on a survivor only once membership
    /// has declared the silo dead, which takes seconds; a relocating shard is placed anew at once.
    /// </summary>
    private async Task<bool> BackOffAsync(int attempt, long started, UpstreamChildren metrics, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(Math.Min(1000, 50 * (1 << Math.Min(attempt, 5))));
        if (Stopwatch.GetElapsedTime(started) + delay > options.Value.RetryBudget)
        {
            return false;
        }

        metrics.Retries.Inc();
        await Task.Delay(delay, cancellationToken);
        return true;
    }

    // SiloUnavailableException and message rejections derive from OrleansException; a grain call
    // that outlives Orleans' response timeout surfaces as TimeoutException.
    private static bool IsTransient(Exception e) => e is OrleansException or TimeoutException;
}
