using Classifier.Grains.Interfaces;
using Classifier.Tests.Support;

namespace Classifier.Tests.Unit;

/// <summary>A model's decodes run within the silo's memory, time and concurrency budget, and stop when their caller leaves.</summary>
public sealed class DecodeBudgetTests
{
    /// <summary>20 MP with 100 scans (the limit): about 1.5 s to decode on an idle core here.</summary>
    private static readonly Lazy<Task<byte[]>> SlowJpeg = new(() => AttackImages.ProgressiveJpegWithScansAsync(4500, 4500, scans: 100));

    private static double Refusals(Grains.Telemetry.SiloMetrics metrics, string reason) => metrics.DecodeRefusals.WithLabels(reason).Value;

    [Fact]
    public async Task ADecodeOverItsTimeBudgetIsAbandonedAsTooComplex()
    {
        var jpeg = await SlowJpeg.Value;
        var (runtime, metrics) = DefaultModel.Load(images: o => o.DecodeTimeout = TimeSpan.FromMilliseconds(200));
        using var _ = runtime;

        var outcome = await runtime.PredictAsync(jpeg);

        Assert.Equal(PredictionErrorKind.TooComplex, outcome.Error?.Kind);
        Assert.Contains("longer than", outcome.Error!.Message, StringComparison.Ordinal);
        Assert.Equal(1, Refusals(metrics, "timeout"));
        Assert.Equal(0, metrics.DecodeReservedBytes.Value);
    }

    [Fact]
    public async Task ACallerThatLeavesStopsItsDecode()
    {
        var jpeg = await SlowJpeg.Value;
        var (runtime, metrics) = DefaultModel.Load();
        using var _ = runtime;
        using var leaving = new CancellationTokenSource(TimeSpan.FromMilliseconds(150));

        var outcome = await runtime.PredictAsync(jpeg, leaving.Token);

        Assert.Equal(PredictionErrorKind.Cancelled, outcome.Error?.Kind);
        Assert.Equal(1, Refusals(metrics, "cancelled"));
        Assert.Equal(0, metrics.Preprocessing.WithLabels("text-orientation", "1").Count);
    }

    [Fact]
    public async Task AnImageNeedingMoreThanTheWholeDecodeBudgetIsRefusedAsTooLarge()
    {
        var (runtime, metrics) = DefaultModel.Load(images: o => o.DecodeMemoryBytes = 16L << 20);
        using var _ = runtime;

        var outcome = await runtime.PredictAsync(AttackImages.LosslessWebp(2000, 2000));

        Assert.Equal(PredictionErrorKind.ImageTooLarge, outcome.Error?.Kind);
        Assert.Contains("2000x2000", outcome.Error!.Message, StringComparison.Ordinal);
        Assert.Equal(1, Refusals(metrics, "too_large"));
    }

    [Fact]
    public async Task WhenEveryDecodeSlotIsTakenTooLongAnImageIsRefusedWithARetryHint()
    {
        var jpeg = await SlowJpeg.Value;
        var (runtime, metrics) = DefaultModel.Load(images: o =>
        {
            o.MaxConcurrentDecodes = 1;
            o.DecodeQueueTimeout = TimeSpan.FromMilliseconds(100);
        });
        using var _ = runtime;

        using var stopSlow = new CancellationTokenSource();
        var slow = runtime.PredictAsync(jpeg, stopSlow.Token);
        await Task.Delay(50);
        var refused = await runtime.PredictAsync(TextImages.Render("behind a slow one"));
        await stopSlow.CancelAsync();

        Assert.Equal(PredictionErrorKind.Overloaded, refused.Error?.Kind);
        Assert.True(refused.Error!.RetryAfterSeconds > 0);
        Assert.Equal(1, Refusals(metrics, "busy"));
        Assert.Equal(PredictionErrorKind.Cancelled, (await slow).Error?.Kind);
    }

    [Fact]
    public async Task AJpegOverTheScanLimitIsCountedAsARefusal()
    {
        var jpeg = await AttackImages.ProgressiveJpegWithScansAsync(64, 64, scans: 500);
        var (runtime, metrics) = DefaultModel.Load();
        using var _ = runtime;

        var outcome = await runtime.PredictAsync(jpeg);

        Assert.Equal(PredictionErrorKind.TooComplex, outcome.Error?.Kind);
        Assert.Equal(1, Refusals(metrics, "too_many_scans"));
    }
}
