using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Classifier.Grains.Telemetry;

namespace Classifier.Grains.Inference;

/// <summary>What one image got from a batched run.</summary>
/// <param name="Output">This image's output values (probabilities in label order, or an embedding).</param>
/// <param name="InferenceSeconds">Duration of the run the image was part of.</param>
/// <param name="QueueSeconds">Time the image waited for its run to start.</param>
/// <param name="BatchSize">Images in that run.</param>
public readonly record struct BatchResult(float[] Output, double InferenceSeconds, double QueueSeconds, int BatchSize);

/// <summary>
/// Dynamic batching for one model version on one silo, like Triton's: preprocessed images from every
/// grain of the model meet in one queue; a worker takes the first waiting image, gathers more until the
/// batch is full or the oldest has waited <c>maxQueueDelay</c>, and runs them together.
/// </summary>
public sealed class InferenceBatcher : IAsyncDisposable
{
    private readonly Channel<Pending> _queue;
    private readonly Func<float[], int, float[]> _run;
    private readonly int _tensorLength;
    private readonly int _maxBatch;
    private readonly TimeSpan _maxDelay;
    private readonly bool _padToMax;
    private readonly ModelMetrics _metrics;
    private readonly Task[] _workers;

    private sealed class Pending(float[] tensor, long enqueuedAt)
    {
        public float[] Tensor { get; } = tensor;

        public long EnqueuedAt { get; } = enqueuedAt;

        public TaskCompletionSource<BatchResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes <see cref="Done"/> as cancelled when the caller gives up; the worker then skips the image.</summary>
        public CancellationTokenRegistration Cancellation { get; set; }
    }

    /// <param name="run">Runs a batch: tensors laid out one after another, the count; answers the outputs laid out likewise.</param>
    /// <param name="instances">Batches that may run at once (1 suits a CPU session that already uses every core).</param>
    /// <param name="padToMax">
    /// Run every batch at <paramref name="maxBatch"/>, the unused places zeroed, so the model always sees one
    /// input shape. ONNX Runtime's CUDA provider rebuilds its convolution plans whenever the shape differs
    /// from the previous run's (measured on an H100: about 0.7 s a time), which varying batch sizes did on
    /// nearly every run.
    /// </param>
    public InferenceBatcher(Func<float[], int, float[]> run, int tensorLength, int maxBatch, TimeSpan maxDelay, int instances, ModelMetrics metrics, bool padToMax = false)
    {
        _run = run;
        _tensorLength = tensorLength;
        _maxBatch = Math.Max(1, maxBatch);
        _maxDelay = maxDelay;
        _padToMax = padToMax && _maxBatch > 1;
        _metrics = metrics;
        _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = instances == 1 });
        _workers = Enumerable.Range(0, Math.Max(1, instances)).Select(_ => Task.Run(WorkAsync)).ToArray();
    }

    public int MaxBatchSize => _maxBatch;

    /// <summary>
    /// Queues one preprocessed image. The tensor must come from <see cref="ArrayPool{T}.Shared"/>; the batcher returns it.
    /// When <paramref name="cancellationToken"/> fires before the image's run starts, the task is cancelled at once and
    /// the image never runs.
    /// </summary>
    public Task<BatchResult> InferAsync(float[] tensor, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            ArrayPool<float>.Shared.Return(tensor);
            return Task.FromCanceled<BatchResult>(cancellationToken);
        }

        var pending = new Pending(tensor, Stopwatch.GetTimestamp());
        if (cancellationToken.CanBeCanceled)
        {
            pending.Cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((Pending)state!).Done.TrySetCanceled(token), pending);
        }

        _metrics.QueueDepth.Inc();
        if (!_queue.Writer.TryWrite(pending))
        {
            pending.Cancellation.Dispose();
            _metrics.QueueDepth.Dec();
            ArrayPool<float>.Shared.Return(tensor);
            return Task.FromException<BatchResult>(new ObjectDisposedException(nameof(InferenceBatcher), "The model is shutting down."));
        }

        return pending.Done.Task;
    }

    private async Task WorkAsync()
    {
        var batch = new List<Pending>(_maxBatch);
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync())
        {
            if (!reader.TryRead(out var first))
            {
                continue;
            }

            batch.Add(first);
            await GatherAsync(batch, reader, first.EnqueuedAt);
            Run(batch);
            batch.Clear();
        }
    }

    /// <summary>Adds waiting images until the batch is full or the first image has waited the maximum delay.</summary>
    private async Task GatherAsync(List<Pending> batch, ChannelReader<Pending> reader, long firstEnqueuedAt)
    {
        while (batch.Count < _maxBatch)
        {
            if (reader.TryRead(out var next))
            {
                batch.Add(next);
                continue;
            }

            var remaining = _maxDelay - Stopwatch.GetElapsedTime(firstEnqueuedAt);
            if (remaining <= TimeSpan.Zero)
            {
                return;
            }

            using var timeout = new CancellationTokenSource(remaining);
            try
            {
                if (!await reader.WaitToReadAsync(timeout.Token))
                {
                    return;
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Run(List<Pending> batch)
    {
        // Images whose callers left while they waited are dropped here, before they cost a run.
        _metrics.QueueDepth.Dec(batch.Count);
        batch.RemoveAll(static pending =>
        {
            pending.Cancellation.Dispose();
            if (!pending.Done.Task.IsCompleted)
            {
                return false;
            }

            ArrayPool<float>.Shared.Return(pending.Tensor);
            return true;
        });
        if (batch.Count == 0)
        {
            return;
        }

        var count = batch.Count;
        var runSize = _padToMax ? _maxBatch : count;
        var started = Stopwatch.GetTimestamp();
        _metrics.BatchSize.Observe(count);
        // A single image runs from its own tensor; a batch is laid out in one pooled buffer.
        var input = runSize == 1 ? batch[0].Tensor : ArrayPool<float>.Shared.Rent(_tensorLength * runSize);
        try
        {
            if (runSize > count)
            {
                input.AsSpan(count * _tensorLength, (runSize - count) * _tensorLength).Clear();
            }

            for (var i = 0; i < count; i++)
            {
                if (runSize > 1)
                {
                    batch[i].Tensor.AsSpan(0, _tensorLength).CopyTo(input.AsSpan(i * _tensorLength));
                    ArrayPool<float>.Shared.Return(batch[i].Tensor);
                }

                _metrics.QueueWait.Observe(Stopwatch.GetElapsedTime(batch[i].EnqueuedAt, started).TotalSeconds);
            }

            var output = _run(input, runSize);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var perImage = output.Length / runSize;
            for (var i = 0; i < count; i++)
            {
                var queued = Stopwatch.GetElapsedTime(batch[i].EnqueuedAt, started).TotalSeconds;
                batch[i].Done.TrySetResult(new BatchResult(output.AsSpan(i * perImage, perImage).ToArray(), seconds, queued, count));
            }
        }
        catch (Exception e)
        {
            foreach (var pending in batch)
            {
                pending.Done.TrySetException(e);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(input);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await Task.WhenAll(_workers);
    }
}
