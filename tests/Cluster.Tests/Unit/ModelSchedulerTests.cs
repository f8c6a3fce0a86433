using System.Buffers;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Telemetry;
using Prometheus;

namespace Classifier.Tests.Unit;

/// <summary>The scheduler bounds its queue, never runs what nobody waits for, runs on threads of its own, and drains before it lets its backend go.</summary>
public sealed class ModelSchedulerTests
{
    private const int Length = 2;

    private static (ModelScheduler Scheduler, ModelMetrics Metrics) Create(Func<float[], int, float[]> run, int maxQueueSize = 64, TimeSpan? queueTimeout = null, int maxBatch = 1)
    {
        var metrics = new SiloMetrics(Metrics.NewCustomRegistry()).ForModel("m", "1");
        var settings = new SchedulerSettings(maxBatch, TimeSpan.Zero, Instances: 1, PadToMax: false, maxQueueSize, queueTimeout ?? TimeSpan.FromSeconds(30));
        return (new ModelScheduler(run, Length, settings, metrics, "m version 1"), metrics);
    }

    private static float[] Tensor(float value)
    {
        var tensor = ArrayPool<float>.Shared.Rent(Length);
        tensor.AsSpan(0, Length).Fill(value);
        return tensor;
    }

    /// <summary>A backend whose runs wait until <paramref name="gate"/> opens, answering each image's first value.</summary>
    private static Func<float[], int, float[]> Gated(ManualResetEventSlim gate, List<float> ran) => (input, count) =>
    {
        gate.Wait();
        lock (ran)
        {
            for (var i = 0; i < count; i++)
            {
                ran.Add(input[i * Length]);
            }
        }

        return [.. Enumerable.Range(0, count).Select(i => input[i * Length])];
    };

    [Fact]
    public async Task AFullQueueRefusesTheNextImageAtOnceWithARetryHint()
    {
        using var gate = new ManualResetEventSlim();
        var ran = new List<float>();
        var (scheduler, metrics) = Create(Gated(gate, ran), maxQueueSize: 2);
        await using var _ = scheduler;

        var running = scheduler.InferAsync(Tensor(1));
        await Task.Delay(100); // the worker holds the first image in its run
        var queued = new[] { scheduler.InferAsync(Tensor(2)), scheduler.InferAsync(Tensor(3)) };
        var refused = await scheduler.InferAsync(Tensor(4));

        Assert.Equal(PredictionErrorKind.Throttled, refused.Error?.Kind);
        Assert.True(refused.Error!.RetryAfterSeconds > 0);
        Assert.Equal(1, metrics.Rejections[(int)RejectionReason.QueueFull].Value);
        gate.Set();
        Assert.All(await Task.WhenAll([running, .. queued]), o => Assert.NotNull(o.Output));
        Assert.DoesNotContain(4f, ran);
    }

    [Fact]
    public async Task AnImageThatWouldWaitPastTheQueueTimeoutIsRefusedAtOnceAndNotRun()
    {
        var ran = new List<float>();
        var (scheduler, metrics) = Create((input, count) =>
        {
            Thread.Sleep(100);
            lock (ran)
            {
                ran.Add(input[0]);
            }

            return [.. Enumerable.Range(0, count).Select(i => input[i * Length])];
        }, queueTimeout: TimeSpan.FromMilliseconds(250));
        await using var _ = scheduler;

        // Runs of about 100 ms, measured; then one running and five arriving at once.
        for (var i = 0; i < 3; i++)
        {
            await scheduler.InferAsync(Tensor(10 + i));
        }

        var running = scheduler.InferAsync(Tensor(1));
        await Task.Delay(20);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var arriving = Enumerable.Range(2, 5).Select(v => scheduler.InferAsync(Tensor(v))).ToArray();
        await Task.WhenAll(arriving[2..]);
        var refusedMs = clock.Elapsed.TotalMilliseconds;
        var outcomes = await Task.WhenAll([running, .. arriving]);

        // With the running image counted whole, the first two arriving expect waits of 100 and 200 ms, within the
        // 250 ms timeout; the other three 300, 400 and 500 ms.
        Assert.All(outcomes[..3], o => Assert.NotNull(o.Output));
        Assert.All(outcomes[3..], o => Assert.Equal(PredictionErrorKind.Throttled, o.Error?.Kind));
        Assert.True(refusedMs < 50, $"the refusals took {refusedMs:F0} ms");
        Assert.Equal([10f, 11f, 12f, 1f, 2f, 3f], ran);
        Assert.Equal(3, metrics.Rejections[(int)RejectionReason.Timeout].Value);
    }

    [Fact]
    public async Task AnImageThatWaitedPastTheQueueTimeoutIsAnsweredAndNotRun()
    {
        using var gate = new ManualResetEventSlim();
        var ran = new List<float>();
        var (scheduler, metrics) = Create(Gated(gate, ran), queueTimeout: TimeSpan.FromMilliseconds(50));
        await using var _ = scheduler;

        var first = scheduler.InferAsync(Tensor(1));
        await Task.Delay(50);
        var late = scheduler.InferAsync(Tensor(2));
        await Task.Delay(200);
        gate.Set();

        Assert.NotNull((await first).Output);
        Assert.Equal(PredictionErrorKind.Throttled, (await late).Error?.Kind);
        Assert.Equal([1f], ran);
        Assert.Equal(1, metrics.Rejections[(int)RejectionReason.Timeout].Value);
    }

    [Fact]
    public async Task ACallerThatLeavesIsAnsweredAtOnceAndItsImageIsNotRun()
    {
        using var gate = new ManualResetEventSlim();
        var ran = new List<float>();
        var (scheduler, metrics) = Create(Gated(gate, ran));
        await using var _ = scheduler;
        using var leaving = new CancellationTokenSource();

        var first = scheduler.InferAsync(Tensor(1));
        await Task.Delay(50);
        var abandoned = scheduler.InferAsync(Tensor(2), leaving.Token);
        await leaving.CancelAsync();

        Assert.Equal(PredictionErrorKind.Cancelled, (await abandoned.WaitAsync(TimeSpan.FromSeconds(5))).Error?.Kind);
        gate.Set();
        await first;
        await scheduler.DisposeAsync(); // drained: whatever was to run has run
        Assert.Equal([1f], ran);
        Assert.Equal(1, metrics.Rejections[(int)RejectionReason.Cancelled].Value);
    }

    [Fact]
    public async Task RunsExecuteOnThreadsOfTheirOwnNotOnTheThreadPool()
    {
        var threads = new List<(bool Pool, string? Name)>();
        var (scheduler, _) = Create((input, count) =>
        {
            lock (threads)
            {
                threads.Add((Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.Name));
            }

            return new float[count];
        });
        await using var _ = scheduler;

        await Task.WhenAll(Enumerable.Range(0, 5).Select(i => scheduler.InferAsync(Tensor(i))));

        Assert.All(threads, t => Assert.False(t.Pool));
        Assert.All(threads, t => Assert.StartsWith("inference m version 1", t.Name, StringComparison.Ordinal));
    }

    [Fact]
    public async Task DisposalLetsQueuedAndRunningImagesFinishBeforeItReturns()
    {
        var ran = 0;
        var (scheduler, _) = Create((input, count) =>
        {
            Thread.Sleep(100);
            Interlocked.Add(ref ran, count);
            return new float[count];
        });

        var images = Enumerable.Range(0, 3).Select(i => scheduler.InferAsync(Tensor(i))).ToArray();
        await scheduler.DisposeAsync();
        var ranWhenDisposed = Volatile.Read(ref ran);

        Assert.Equal(3, ranWhenDisposed);
        Assert.All(await Task.WhenAll(images), o => Assert.NotNull(o.Output));
    }

    [Fact]
    public async Task AfterDisposalNewImagesAreAnsweredAsUnavailable()
    {
        var (scheduler, _) = Create((input, count) => new float[count]);
        await scheduler.DisposeAsync();

        var outcome = await scheduler.InferAsync(Tensor(1));

        Assert.Equal(PredictionErrorKind.ModelUnavailable, outcome.Error?.Kind);
    }
}
