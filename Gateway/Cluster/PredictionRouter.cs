using System.Diagnostics;
using Classifier.Gateway.Telemetry;
using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Gateway.Cluster;

/// <summary>Sends an image to the ModelGrain shard that owns its bytes, retrying when that shard's silo vanished.</summary>
/// <param name="silos">Membership deaths, to retry calls a dead silo may have taken with it at once; null: they wait for their timeout.</param>
/// <param name="near">The gateway's near cache; null (or without <paramref name="silos"/>, which says whose answers are still good): every image goes to its shard.</param>
public sealed class PredictionRouter(IClusterClient client, IOptions<GatewayOptions> options, ILogger<PredictionRouter> logger, SiloWatch? silos = null, NearCache? near = null)
{

    /// <summary>The SHA-256 prefix of <paramref name="image"/>: the routing key (the grain computes it again as its cache key).</summary>
    public static ImageHash Hash(ReadOnlySpan<byte> image) => ImageHash.Of(image);

    /// <summary>
    /// Classifies one image on shard <c>hash mod <paramref name="shardCount"/></c>; answers null when no silo could be
    /// reached within the retry budget. <paramref name="cancellationToken"/> (the client leaving) travels with the grain
    /// call, so the silo stops the image's decode and gives up its place in line.
    /// </summary>
    /// <param name="tensorShape">Set when <paramref name="image"/> is the model's input tensor of this shape (FP32) rather than an encoded image.</param>
    /// <param name="serving">What the version serves and where (<see cref="ModelRoute.Serving"/>): with it, a repeated image is answered from the near cache.</param>
    public async Task<PredictionReply?> PredictAsync(string model, string version, byte[] image, int topK, int shardCount, CancellationToken cancellationToken, int[]? tensorShape = null, ServingIdentity? serving = null)
    {
        var hash = tensorShape is null ? Hash(image) : ImageHash.OfTensor(tensorShape, image);
        var key = ModelGrainKey.Format(model, version, hash.ShardOf(shardCount));
        var metrics = GatewayMetrics.ForModel(model);
        var nearKey = serving is not null && near is { Enabled: true } && silos is not null ? new NearCache.Key(model, version, serving.Fingerprint, hash, topK) : (NearCache.Key?)null;
        // An answer is served here only while the silo that gave it is a member and still has the version ready.
        if (nearKey is { } k && near!.TryGet(k, key, silo => serving!.ReadySilos.Contains(silo) && silos!.IsActive(silo), out var copy))
        {
            metrics.NearHits.Inc();
            return PredictionReply.Ok(copy);
        }

        var request = new PredictionRequest(image, topK, Tensor: tensorShape is not null);
        var started = Stopwatch.GetTimestamp();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                var reply = await CallAsync(key, request, cancellationToken);
                if (reply is null)
                {
                    // A silo was declared dead while the call waited: it might only end at the call timeout; the next
                    // attempt reaches the shard where it lives, or places it anew on a survivor.
                    if (!WithinBudget(started, TimeSpan.Zero))
                    {
                        metrics.Unavailable.Inc();
                        return null;
                    }

                    metrics.Retries.Inc();
                    continue;
                }

                if (reply.Error?.Kind == PredictionErrorKind.Relocating && await BackOffAsync(attempt, started, metrics, cancellationToken))
                {
                    continue; // the shard is moving to a silo where its model is ready
                }

                // The gateway's view has the version, the silo that placed the shard did not have it yet (a version
                // new on a silo that just joined is known to the others within a second): place it again, briefly.
                if (reply.Error?.Kind == PredictionErrorKind.ModelNotFound && Stopwatch.GetElapsedTime(started) < StaleViewWindow
                    && await BackOffAsync(attempt, started, metrics, cancellationToken))
                {
                    continue;
                }

                metrics.Duration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
                if (nearKey is { } added && reply.Prediction is { } prediction)
                {
                    near!.Add(added, prediction);
                }

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
    /// Makes one grain call and answers its reply, or null when membership declares any silo dead before the reply
    /// comes. Not only calls to the dead silo's shards are lost: a call relayed through the dead silo as the
    /// client's gateway loses its answer too, whichever silo ran it, and the gateway cannot tell which calls those
    /// were. So every call waiting at that moment is sent again. A retried call whose shard lives on a survivor
    /// joins the run already under way there (the grain shares runs of the same image), at the cost of its silo
    /// counting it once more as a cache hit; deaths are rare, waits of the call timeout are not acceptable. The
    /// abandoned call is left to end by itself.
    /// </summary>
    private async Task<PredictionReply?> CallAsync(string key, PredictionRequest request, CancellationToken cancellationToken)
    {
        var death = silos?.NextDeath;
        var call = client.GetGrain<IModelGrain>(key).PredictAsync(request, cancellationToken);
        if (death is null || await Task.WhenAny(call, death) == call)
        {
            return await call;
        }

        _ = call.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        logger.LogInformation("Retrying {Key} at once: {Silos} was declared dead while it waited", key, string.Join(", ", await death));
        return null;
    }

    /// <summary>How long a "not found" from a silo is retried: the silos' views catch up within a second.</summary>
    private static readonly TimeSpan StaleViewWindow = TimeSpan.FromSeconds(2);

    private bool WithinBudget(long started, TimeSpan delay) => Stopwatch.GetElapsedTime(started) + delay <= options.Value.RetryBudget;

    /// <summary>
    /// Waits before the next attempt and answers true, or answers false when that would pass the retry budget. A
    /// budget of time rather than a count: a grain whose silo died reactivates on a survivor only once membership
    /// has declared the silo dead, which takes seconds; a relocating shard is placed anew at once.
    /// </summary>
    private async Task<bool> BackOffAsync(int attempt, long started, UpstreamChildren metrics, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(Math.Min(1000, 50 * (1 << Math.Min(attempt, 5))));
        if (!WithinBudget(started, delay))
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
