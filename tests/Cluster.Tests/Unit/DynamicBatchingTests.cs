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

        var outcomes = await Task.WhenAll(images.Select(runtime.PredictAsync));

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
        var (runtime, metrics) = Load(maxBatch: 3, delayMs: 200);
        using var _ = runtime;
        var images = Enumerable.Range(0, 12).Select(i => TextImages.Numbered(14000 + i)).ToArray();

        var outcomes = await Task.WhenAll(images.Select(runtime.PredictAsync));

        Assert.All(outcomes, o => Assert.Null(o.Error));
        var histogram = metrics.BatchSize.WithLabels("text-orientation", "1");
        Assert.Equal(12, histogram.Sum);
        Assert.True(histogram.Count >= 4, $"12 images in {histogram.Count} runs of at most 3");
    }

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
}
