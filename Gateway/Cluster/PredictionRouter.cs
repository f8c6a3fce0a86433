using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using Classifier.Gateway.Telemetry;
using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Gateway.Cluster;

/// <summary>Sends an image to the ModelGrain shard that owns its bytes, retrying when that shard's silo vanished.</summary>
public sealed class PredictionRouter(IClusterClient client, IOptions<GatewayOptions> options, ILogger<PredictionRouter> logger)
{
    /// <summary>The SHA-256 prefix of <paramref name="image"/>: the cache and routing key.</summary>
    public static ImageHash Hash(ReadOnlySpan<byte> image)
    {
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(image, digest);
        return new ImageHash(BinaryPrimitives.ReadUInt64BigEndian(digest), BinaryPrimitives.ReadUInt64BigEndian(digest[8..]));
    }

    /// <summary>Classifies one image; answers null when no silo could be reached within the retry budget.</summary>
    public async Task<PredictionReply?> PredictAsync(string model, string version, byte[] image, int topK, CancellationToken cancellationToken)
    {
        var hash = Hash(image);
        var key = ModelGrainKey.Format(model, version, hash.ShardOf(options.Value.ShardCount));
        var request = new PredictionRequest(image, hash, topK);
        var started = Stopwatch.GetTimestamp();
        var metrics = GatewayMetrics.ForModel(model);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                var reply = await client.GetGrain<IModelGrain>(key).PredictAsync(request).WaitAsync(cancellationToken);
                metrics.Duration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
                return reply;
            }
            catch (Exception e) when (IsTransient(e) && !cancellationToken.IsCancellationRequested)
            {
                // Retry within a time budget rather than a count: a grain whose silo died reactivates
                // on a survivor only once membership has declared the silo dead, which takes seconds.
                var delay = TimeSpan.FromMilliseconds(Math.Min(1000, 100 * (1 << Math.Min(attempt, 4))));
                if (Stopwatch.GetElapsedTime(started) + delay > options.Value.RetryBudget)
                {
                    logger.LogWarning("Prediction for {Key} failed after {Attempts} attempts in {Seconds:F1} s: {Error}", key, attempt + 1, Stopwatch.GetElapsedTime(started).TotalSeconds, e.Message);
                    metrics.Unavailable.Inc();
                    return null;
                }

                metrics.Retries.Inc();
                await Task.Delay(delay, cancellationToken);
            }
        }
    }

    // SiloUnavailableException and message rejections derive from OrleansException; a grain call
    // that outlives Orleans' response timeout surfaces as TimeoutException.
    private static bool IsTransient(Exception e) => e is OrleansException or TimeoutException;
}
