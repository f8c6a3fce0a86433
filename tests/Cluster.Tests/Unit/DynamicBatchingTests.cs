using Classifier.Tests.Support;

namespace Classifier.Tests.Unit;

/// <summary>Cache misses that arrive together run together, and each caller gets its own image's answer.</summary>
public sealed class DynamicBatchingTests
{
    private static (Grains.Inference.ModelRuntime Runtime, Grains.Telemetry.SiloMetrics Metrics) Load(int maxBatch, int delayMs) =>
        DefaultModel.Load(adjust: m => m with { MaxBatchSize = maxBatch, MaxQueueDelay = TimeSpan.FromMilliseconds(delayMs) });

    [Fact]
    public async Task ConcurrentMissesRunInSharedBatchesAndEachCallerGetsItsOwnResult()
    {
        var (runtime, metrics) = Load(maxBatch: 8, delayMs: 300);
        using var _ = runtime;
        var upsideDown = Enumerable.Range(0, 8).Select(i => i % 2 == 1).ToArray();
        var images = upsideDown.Select((down, i) => TextImages.Render($"Batched line {i}", upsideDown: down)).ToArray();

        var outcomes = await Task.WhenAll(images.Select(image => runtime.PredictAsync(image)));

        var batchSizes = metrics.BatchSize.WithLabels("text-orientation", "1");
        Assert.Equal(8, batchSizes.Sum);
        Assert.True(batchSizes.Count < 8, $"8 concurrent misses ran in {batchSizes.Count} runs: no batching happened");
        for (var i = 0; i < images.Length; i++)
        {
            Assert.Null(outcomes[i].Error);
            Assert.Equal(upsideDown[i] ? "180" : "0", runtime.TopK(outcomes[i].Output!, 1)[0].Label);
        }
    }

    [Fact]
    public async Task NoBatchExceedsTheMaximumSize()
    {
        // A maximum of 4, a histogram boundary: every run must fall in the buckets up to le="4", so runs of
        // 5 + 5 + 1 + 1 (the same count and sum as 4 + 4 + 2 + 2) fail this test.
        var (runtime, metrics) = Load(maxBatch: 4, delayMs: 200);
        using var _ = runtime;
        var images = Enumerable.Range(0, 12).Select(i => TextImages.Numbered(14000 + i)).ToArray();

        var outcomes = await Task.WhenAll(images.Select(image => runtime.PredictAsync(image)));

        Assert.All(outcomes, o => Assert.Null(o.Error));
        var histogram = metrics.BatchSize.WithLabels("text-orientation", "1");
        Assert.Equal(12, histogram.Sum);
        var exposition = await ExpositionAsync(metrics);
        var upToFour = Bucket(exposition, "4");
        Assert.True(upToFour == histogram.Count, $"{histogram.Count - upToFour} of {histogram.Count} runs held more than 4 images");
    }

    private static async Task<string> ExpositionAsync(Grains.Telemetry.SiloMetrics metrics)
    {
        using var stream = new MemoryStream();
        await metrics.Registry.CollectAndExportAsTextAsync(stream);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>The cumulative count of the batch-size bucket <c>le</c>.</summary>
    private static double Bucket(string exposition, string le) => double.Parse(
        System.Text.RegularExpressions.Regex.Match(exposition, $@"^inference_batch_size_bucket\{{model=""text-orientation"",version=""1"",le=""{le}""\}} (\S+)$", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value,
        System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task WithoutBatchingEveryRunHoldsOneImage()
    {
        var (runtime, metrics) = Load(maxBatch: 1, delayMs: 0);
        using var _ = runtime;

        await Task.WhenAll(Enumerable.Range(0, 6).Select(i => runtime.PredictAsync(TextImages.Numbered(15000 + i))));

        var histogram = metrics.BatchSize.WithLabels("text-orientation", "1");
        Assert.Equal(6, histogram.Count);
        Assert.Equal(6, histogram.Sum);
    }

    [Fact]
    public async Task QueueDepthReturnsToZeroAndWaitsAreRecorded()
    {
        var (runtime, metrics) = Load(maxBatch: 4, delayMs: 20);
        using var _ = runtime;

        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => runtime.PredictAsync(TextImages.Numbered(16000 + i))));

        Assert.Equal(0, metrics.QueueDepth.WithLabels("text-orientation", "1").Value);
        Assert.Equal(8, metrics.QueueWait.WithLabels("text-orientation", "1").Count);
    }

    [Fact]
    public async Task PaddedBatchesAlwaysRunAtTheMaximumSizeAndAnswerOnlyTheRealImages()
    {
        const int length = 3;
        var metrics = new Grains.Telemetry.SiloMetrics(Prometheus.Metrics.NewCustomRegistry(), recordRequests: true).ForModel("padded", "1");
        var runSizes = new System.Collections.Concurrent.ConcurrentBag<int>();
        var paddingWasZero = true;
        // Answers each slot's first value back, so every caller can check it got its own image's output.
        float[] Run(float[] input, int count)
        {
            runSizes.Add(count);
            var output = new float[count];
            for (var i = 0; i < count; i++)
            {
                output[i] = input[i * length];
                paddingWasZero &= output[i] != 0 || input.AsSpan(i * length, length).IndexOfAnyExcept(0f) < 0;
            }

            return output;
        }

        await using var batcher = new Grains.Inference.ModelScheduler(Run, length,
            new Grains.Inference.SchedulerSettings(MaxBatch: 4, TimeSpan.FromMilliseconds(50), Instances: 1, PadToMax: true, MaxQueueSize: 64, TimeSpan.FromSeconds(5)), metrics, "padded");
        var tensors = Enumerable.Range(1, 6).Select(i =>
        {
            var t = System.Buffers.ArrayPool<float>.Shared.Rent(length);
            t.AsSpan(0, length).Fill(i);
            return t;
        }).ToArray();

        var results = await Task.WhenAll(tensors.Select(tensor => batcher.InferAsync(tensor)));

        Assert.All(runSizes, size => Assert.Equal(4, size));
        Assert.True(paddingWasZero, "the unused places of a padded batch held stale values");
        Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], results.Select(r => Assert.Single(r.Output!)));
        Assert.Equal(6, metrics.BatchSize.Sum); // real images, not padding
    }

    [Fact]
    public async Task PaddedBatchingWithTheRealModelGivesEachCallerItsOwnLabel()
    {
        var (runtime, metrics) = DefaultModel.Load(adjust: m => m with { MaxBatchSize = 4, MaxQueueDelay = TimeSpan.FromMilliseconds(100), PadToMaxBatch = true });
        using var _ = runtime;
        var upsideDown = new[] { true, false, false, true, false };
        var images = upsideDown.Select((down, i) => TextImages.Render($"Padded line {i}", upsideDown: down)).ToArray();

        var outcomes = await Task.WhenAll(images.Select(image => runtime.PredictAsync(image)));

        for (var i = 0; i < images.Length; i++)
        {
            Assert.Null(outcomes[i].Error);
            Assert.Equal(upsideDown[i] ? "180" : "0", runtime.TopK(outcomes[i].Output!, 1)[0].Label);
        }

        Assert.Equal(5, metrics.BatchSize.WithLabels("text-orientation", "1").Sum);
    }
}
