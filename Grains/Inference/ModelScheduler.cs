using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Telemetry;

namespace Classifier.Grains.Inference;

/// <summary>How a model version's scheduler batches and bounds its queue (config.json <c>batching</c>).</summary>
/// <param name="MaxBatch">Most images per run.</param>
/// <param name="MaxDelay">Longest the first waiting image holds its run back for more to join.</param>
/// <param name="Instances">Runs that may execute at once, each on a thread of its own.</param>
/// <param name="PadToMax">Run every batch at <paramref name="MaxBatch"/>, padded, so the model always sees one shape.</param>
/// <param name="MaxQueueSize">Images that may wait; the next is refused at once (Triton's <c>max_queue_size</c>).</param>
/// <param name="QueueTimeout">Longest an image may wait for its run; then it is refused, not run (Triton's <c>default_timeout_microseconds</c>).</param>
public sealed record SchedulerSettings(int MaxBatch, TimeSpan MaxDelay, int Instances, bool PadToMax, int MaxQueueSize, TimeSpan QueueTimeout);

/// <summary>
/// The scheduler of one model version on one silo, like Triton's dynamic batcher: preprocessed images from every
/// grain of the version wait in one bounded queue; each of <see cref="SchedulerSettings.Instances"/> threads of its
/// own takes the oldest, gathers more until the batch is full or the oldest has waited the maximum delay, and runs
/// them through the backend. An image is answered, never thrown at: with its output, or with why it was not run
/// (queue full, waited too long, caller gone, backend failed).
/// </summary>
/// <remarks>
/// Dedicated threads, not the thread pool: a run blocks its thread for the whole of ONNX Runtime's <c>Run</c>, and
/// the thread pool is what Orleans runs grain turns on (cache hits would wait behind inference).
/// </remarks>
public sealed class ModelScheduler : IAsyncDisposable
{
    private readonly BlockingCollection<Pending> _queue = new(new ConcurrentQueue<Pending>());
    private readonly Func<float[], int, float[]> _run;
    private readonly int _tensorLength;
    private readonly SchedulerSettings _settings;
    private readonly ModelMetrics _metrics;
    private readonly string _name;
    private readonly Task[] _workers;
    private readonly Action<Exception?>? _ran;
    private int _waiting;

    /// <param name="run">The backend's run: tensors laid out one after another and their count; answers the outputs laid out likewise.</param>
    /// <param name="name">The model version, for thread names and messages.</param>
    /// <param name="ran">Told of every run's end: null when it succeeded, its exception when the backend failed.</param>
    public ModelScheduler(Func<float[], int, float[]> run, int tensorLength, SchedulerSettings settings, ModelMetrics metrics, string name, Action<Exception?>? ran = null)
    {
        _run = run;
        _ran = ran;
        _tensorLength = tensorLength;
        _settings = settings with
        {
            MaxBatch = Math.Max(1, settings.MaxBatch),
            Instances = Math.Max(1, settings.Instances),
            PadToMax = settings.PadToMax && settings.MaxBatch > 1,
        };
        _metrics = metrics;
        _name = name;
        _workers = Enumerable.Range(0, _settings.Instances).Select(StartWorker).ToArray();
    }

    /// <summary>
    /// Takes a place in the queue for an image about to be preprocessed, or answers why not (the queue is full): so a
    /// model that cannot keep up refuses the excess before anything is decoded for it. The place is given back by
    /// <see cref="InferAdmittedAsync"/> or, when the image is not sent after all, by <see cref="Withdraw"/>.
    /// </summary>
    /// <remarks>
    /// Also refuses, at once, an image that would wait past the queue timeout: the images ahead of it times the
    /// recent run time per image, divided among the instances. Waiting out the timeout only to be refused then would
    /// cost the caller seconds and the silo the decode and the queue memory. With nothing ahead an image is always
    /// admitted, so the estimate keeps being measured.
    /// </remarks>
    public bool TryAdmit(out InferenceOutcome refusal)
    {
        refusal = default;
        var ahead = Interlocked.Increment(ref _waiting) - 1;
        if (ahead >= _settings.MaxQueueSize)
        {
            Interlocked.Decrement(ref _waiting);
            refusal = Refused(RejectionReason.QueueFull);
            return false;
        }

        if (ahead + Volatile.Read(ref _running) > 0 && ExpectedWait(ahead) > _settings.QueueTimeout)
        {
            Interlocked.Decrement(ref _waiting);
            refusal = Refused(RejectionReason.Timeout);
            return false;
        }

        return true;
    }

    /// <summary>
    /// How long an image with <paramref name="ahead"/> images waiting before it is expected to wait for its run: those
    /// and the images in runs now, at the recent time per image, shared among the instances. Counting a run in
    /// progress whole errs towards refusing by at most one run's time.
    /// </summary>
    public TimeSpan ExpectedWait(int ahead) =>
        TimeSpan.FromSeconds((ahead + Volatile.Read(ref _running)) * Volatile.Read(ref _secondsPerImage) / _settings.Instances);

    /// <summary>Images in runs now.</summary>
    private int _running;

    /// <summary>Recent run time per image on one instance (an exponentially weighted average); 0 before the first run.</summary>
    private double _secondsPerImage;

    /// <summary>Gives back a place taken by <see cref="TryAdmit"/> for an image that will not be sent (bad, cancelled).</summary>
    public void Withdraw() => Interlocked.Decrement(ref _waiting);

    /// <summary>Admits and queues one preprocessed image (<see cref="TryAdmit"/> then <see cref="InferAdmittedAsync"/>).</summary>
    public Task<InferenceOutcome> InferAsync(float[] tensor, CancellationToken cancellationToken = default)
    {
        if (!TryAdmit(out var refusal))
        {
            ArrayPool<float>.Shared.Return(tensor);
            return Task.FromResult(refusal);
        }

        return InferAdmittedAsync(tensor, cancellationToken);
    }

    /// <summary>
    /// Queues one preprocessed image, admitted by <see cref="TryAdmit"/>, for its model's next run. The tensor must come
    /// from <see cref="ArrayPool{T}.Shared"/>; the scheduler returns it. Answers at once when the scheduler is closing;
    /// when <paramref name="cancellationToken"/> fires before the image's run starts, answers at once and never runs it.
    /// </summary>
    public Task<InferenceOutcome> InferAdmittedAsync(float[] tensor, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            Withdraw();
            ArrayPool<float>.Shared.Return(tensor);
            return Task.FromResult(Refused(RejectionReason.Cancelled));
        }

        var pending = new Pending(tensor, Stopwatch.GetTimestamp());
        if (cancellationToken.CanBeCanceled)
        {
            pending.Cancellation = cancellationToken.UnsafeRegister(static state => ((Pending)state!).Done.TrySetResult(CallerLeft), pending);
        }

        _metrics.QueueDepth.Inc();
        try
        {
            _queue.Add(pending);
        }
        catch (InvalidOperationException)
        {
            // Closing: CompleteAdding was called.
            Interlocked.Decrement(ref _waiting);
            _metrics.QueueDepth.Dec();
            pending.Cancellation.Dispose();
            ArrayPool<float>.Shared.Return(tensor);
            return Task.FromResult(new InferenceOutcome(null, new(PredictionErrorKind.ModelUnavailable, $"Model {_name} is being unloaded on this silo; retry shortly."), 0, 0));
        }

        return pending.Done.Task;
    }

    /// <summary>The answer for a caller that left; counted as a rejection when the worker skips its image.</summary>
    private static readonly InferenceOutcome CallerLeft = new(null, new(PredictionErrorKind.Cancelled, "The request was cancelled before its answer was ready."), 0, 0);

    private Task StartWorker(int index)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                Work();
            }
            finally
            {
                done.SetResult();
            }
        })
        {
            IsBackground = true,
            Name = $"inference {_name} #{index}",
        };
        thread.Start();
        return done.Task;
    }

    private void Work()
    {
        var batch = new List<Pending>(_settings.MaxBatch);
        while (_queue.TryTake(out var first, Timeout.Infinite))
        {
            batch.Add(first);
            Gather(batch, first.EnqueuedAt);
            Run(batch);
            batch.Clear();
        }
    }

    /// <summary>Adds waiting images until the batch is full or the first has waited the maximum delay.</summary>
    private void Gather(List<Pending> batch, long firstEnqueuedAt)
    {
        while (batch.Count < _settings.MaxBatch)
        {
            var remaining = _settings.MaxDelay - Stopwatch.GetElapsedTime(firstEnqueuedAt);
            if (!_queue.TryTake(out var next, remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero))
            {
                return;
            }

            batch.Add(next);
        }
    }

    private void Run(List<Pending> batch)
    {
        var started = Stopwatch.GetTimestamp();
        Interlocked.Add(ref _waiting, -batch.Count);
        _metrics.QueueDepth.Dec(batch.Count);

        // Images whose callers left, or that waited past the queue timeout, are answered here and not run.
        batch.RemoveAll(pending =>
        {
            pending.Cancellation.Dispose();
            if (pending.Done.Task.IsCompleted)
            {
                _metrics.Rejections[(int)RejectionReason.Cancelled].Inc();
                ArrayPool<float>.Shared.Return(pending.Tensor);
                return true;
            }

            if (Stopwatch.GetElapsedTime(pending.EnqueuedAt, started) > _settings.QueueTimeout)
            {
                pending.Done.TrySetResult(Refused(RejectionReason.Timeout));
                ArrayPool<float>.Shared.Return(pending.Tensor);
                return true;
            }

            return false;
        });
        if (batch.Count == 0)
        {
            return;
        }

        var count = batch.Count;
        var runSize = _settings.PadToMax ? _settings.MaxBatch : count;
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

            Interlocked.Add(ref _running, count);
            float[] output;
            try
            {
                output = _run(input, runSize);
            }
            finally
            {
                Interlocked.Add(ref _running, -count);
            }

            _ran?.Invoke(null);
            var milliseconds = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var secondsPerImage = milliseconds / 1000 / count;
            var average = Volatile.Read(ref _secondsPerImage);
            Volatile.Write(ref _secondsPerImage, average == 0 ? secondsPerImage : average + (secondsPerImage - average) / 8);
            var valuesPerImage = output.Length / runSize;
            for (var i = 0; i < count; i++)
            {
                var queued = Stopwatch.GetElapsedTime(batch[i].EnqueuedAt, started).TotalMilliseconds;
                batch[i].Done.TrySetResult(new InferenceOutcome(output.AsSpan(i * valuesPerImage, valuesPerImage).ToArray(), null, 0, milliseconds, queued, count));
            }
        }
        catch (Exception e)
        {
            _ran?.Invoke(e);
            var failed = new InferenceOutcome(null, new(PredictionErrorKind.ModelUnavailable, $"Model {_name} could not run: ONNX Runtime failed (see the silo's log); retry shortly."), 0, 0, Failure: e);
            foreach (var pending in batch)
            {
                pending.Done.TrySetResult(failed);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(input);
        }
    }

    /// <summary>How long a refused caller should wait: about the time the queue ahead of it takes to drain.</summary>
    private int RetryAfterSeconds() => Math.Clamp((int)Math.Ceiling(_settings.QueueTimeout.TotalSeconds), 1, 30);

    private InferenceOutcome Refused(RejectionReason reason)
    {
        _metrics.Rejections[(int)reason].Inc();
        return new InferenceOutcome(null, reason switch
        {
            RejectionReason.QueueFull => new(PredictionErrorKind.Throttled,
                $"Model {_name} has {_settings.MaxQueueSize} images waiting on this silo, its limit (batching.maxQueueSize); retry in a moment.", RetryAfterSeconds()),
            RejectionReason.Timeout => new(PredictionErrorKind.Throttled,
                $"Model {_name} could not start this image within {_settings.QueueTimeout.TotalMilliseconds:0} ms (batching.queueTimeoutMicroseconds); the silo is overloaded, retry in a moment.", RetryAfterSeconds()),
            _ => new(PredictionErrorKind.Cancelled, "The request was cancelled before its answer was ready."),
        }, 0, 0);
    }

    /// <summary>Stops taking images, lets every queued and running image finish, then returns: the backend may then be released.</summary>
    /// <remarks>The queue itself is left to the garbage collector: callers may still be adding to it, and are answered "unloading".</remarks>
    public async ValueTask DisposeAsync()
    {
        _queue.CompleteAdding();
        await Task.WhenAll(_workers).ConfigureAwait(false);
    }

    private sealed class Pending(float[] tensor, long enqueuedAt)
    {
        public float[] Tensor { get; } = tensor;

        public long EnqueuedAt { get; } = enqueuedAt;

        /// <summary>Completed with the outcome, or by the caller's cancellation (the worker then skips it).</summary>
        public TaskCompletionSource<InferenceOutcome> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public CancellationTokenRegistration Cancellation { get; set; }
    }
}

/// <summary>Why the scheduler answered an image without running it; the order of <see cref="ModelMetrics.Rejections"/>.</summary>
public enum RejectionReason
{
    QueueFull,
    Timeout,
    Cancelled,
}
