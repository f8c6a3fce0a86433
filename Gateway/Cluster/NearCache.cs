using System.Collections.Concurrent;
using Classifier.Gateway.Telemetry;
using Classifier.Grains.Caching;
using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Options;

namespace Classifier.Gateway.Cluster;

/// <summary>
/// The gateway's near tier of the shard grains' caches: the answers shards gave, kept here so that a repeated image is
/// answered without a grain call. The shard stays the owner: an entry is only ever a copy of what its shard answered,
/// and every hit here is reported to that shard (<see cref="IModelGrain.RecordNearHitsAsync"/>, batched each
/// <see cref="GatewayOptions.NearCacheReportInterval"/>), so the shard's statistics, its silo's
/// <c>predictions_total{status="cache_hit"}</c> and <c>cache_hit_rate</c>, and the cluster's gauge count it as theirs.
/// </summary>
/// <remarks>
/// An answer depends on the image's bytes, the top-k asked and what the version serves: the model file and the config
/// that shape its answers. The key holds all of them (the last as the version's fingerprint in the gateway's view), so a
/// version loaded anew from a changed file or config never meets its earlier answers. An entry whose silo has left the
/// cluster is not served: its answer names that silo, and the shard now lives elsewhere.
/// </remarks>
public sealed class NearCache
{
    private const int EntryOverheadBytes = 256; // key, list node, dictionary slot, the Prediction and its strings

    private readonly Lock _lock = new();
    private readonly LruCache<Key, Prediction> _answers;
    private readonly ConcurrentDictionary<string, PendingHits> _pending = new();

    public NearCache(IOptions<GatewayOptions> options)
    {
        _answers = new(options.Value.NearCacheEntries, SizeOf, options.Value.NearCacheBytes);
        GatewayMetrics.NearCacheCapacity.Set(_answers.Capacity);
    }

    /// <summary>What an answer depends on besides its shard: model, version, what the version serves, the image's hash, the top-k asked.</summary>
    public readonly record struct Key(string Model, string Version, string Fingerprint, ImageHash Hash, int TopK);

    private sealed class PendingHits
    {
        public long Count;
    }

    public bool Enabled => _answers.Capacity > 0;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _answers.Count;
            }
        }
    }

    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _answers.Bytes;
            }
        }
    }

    private static long SizeOf(Prediction p) => EntryOverheadBytes + p.Scores.Sum(s => 48 + 2L * s.Label.Length) + 4L * (p.Embedding?.Length ?? 0);

    /// <summary>
    /// Answers the cached copy of <paramref name="key"/>'s answer when there is one from a silo that <paramref name="isLive"/>
    /// says is still in the cluster, and books the hit for its shard <paramref name="grain"/>.
    /// </summary>
    public bool TryGet(in Key key, string grain, Func<string, bool> isLive, out Prediction prediction)
    {
        lock (_lock)
        {
            if (!_answers.TryGet(key, out prediction))
            {
                return false;
            }

            if (!isLive(prediction.Silo))
            {
                _answers.Remove(key);
                Publish();
                return false;
            }
        }

        Interlocked.Increment(ref _pending.GetOrAdd(grain, static _ => new PendingHits()).Count);
        return true;
    }

    /// <summary>Keeps a shard's successful answer, marked as from a cache, for the next identical request.</summary>
    public void Add(in Key key, Prediction prediction)
    {
        var copy = prediction with { FromCache = true, PreprocessingMs = 0, InferenceMs = 0 };
        lock (_lock)
        {
            GatewayMetrics.NearCacheEvictions.Inc(_answers.Set(key, copy));
            Publish();
        }
    }

    /// <summary>Takes the hits booked since the last call, by shard grain key.</summary>
    public List<(string Grain, long Hits)> TakeHits()
    {
        var taken = new List<(string, long)>();
        foreach (var (grain, pending) in _pending)
        {
            var hits = Interlocked.Exchange(ref pending.Count, 0);
            if (hits > 0)
            {
                taken.Add((grain, hits));
            }
        }

        return taken;
    }

    private void Publish()
    {
        GatewayMetrics.NearCacheEntries.Set(_answers.Count);
        GatewayMetrics.NearCacheBytes.Set(_answers.Bytes);
    }
}

/// <summary>Sends the near cache's hits to their shards every <see cref="GatewayOptions.NearCacheReportInterval"/>, and once more when the gateway stops.</summary>
public sealed class NearCacheReporter(NearCache cache, IClusterClient client, IOptions<GatewayOptions> options, ILogger<NearCacheReporter> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!cache.Enabled)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.NearCacheReportInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                Report();
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping: the last hits go out below.
        }

        Report();
    }

    /// <summary>One one-way call per shard that had hits; a shard that cannot be reached loses that report, never a request.</summary>
    public void Report()
    {
        foreach (var (grain, hits) in cache.TakeHits())
        {
            try
            {
                _ = client.GetGrain<IModelGrain>(grain).RecordNearHitsAsync((int)Math.Min(hits, int.MaxValue));
                GatewayMetrics.NearCacheHitsReported.Inc(hits);
            }
            catch (Exception e)
            {
                logger.LogDebug(e, "Could not report {Hits} near-cache hits to {Grain}", hits, grain);
            }
        }
    }
}
