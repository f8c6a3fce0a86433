using Prometheus;

namespace Classifier.Grains.Inference;

/// <summary>
/// Admits image decodes on one silo within a memory budget and a concurrency limit, first come first served.
/// Each decode reserves its estimated peak memory; one that does not fit waits in line, and one that waits
/// longer than its caller allows is turned away, so excess load is refused early instead of exhausting memory.
/// </summary>
/// <remarks>
/// Strict FIFO: a large decode at the head is not overtaken by small ones behind it, so it cannot starve; the
/// small ones wait at most the queue timeout and are then refused with a retry hint.
/// </remarks>
public sealed class DecodeGate
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _waiting = [];
    private readonly DecodeGateMetrics? _metrics;
    private long _available;
    private int _freeSlots;

    private long _waitingHeld;

    /// <param name="maxWaitingBytes">Most bytes the images waiting in line may hold together (their encoded files); a newcomer beyond it is turned away at once.</param>
    public DecodeGate(long capacityBytes, int maxConcurrent, DecodeGateMetrics? metrics = null, long maxWaitingBytes = long.MaxValue)
    {
        CapacityBytes = capacityBytes;
        MaxWaitingBytes = maxWaitingBytes;
        MaxConcurrent = Math.Max(1, maxConcurrent);
        _available = capacityBytes;
        _freeSlots = MaxConcurrent;
        _metrics = metrics;
    }

    public long CapacityBytes { get; }

    public long MaxWaitingBytes { get; }

    public int MaxConcurrent { get; }

    /// <summary>Bytes reserved by decodes now running.</summary>
    public long ReservedBytes
    {
        get
        {
            lock (_lock)
            {
                return CapacityBytes - _available;
            }
        }
    }

    /// <summary>Decodes waiting for room.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>
    /// Waits for room for a decode of <paramref name="bytes"/>. Answers the lease to dispose when the decode is
    /// done, or null when no room came within <paramref name="wait"/> or the line already holds
    /// <see cref="MaxWaitingBytes"/> (counting <paramref name="heldWhileWaiting"/> for this one). Throws
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires first, and
    /// <see cref="ArgumentOutOfRangeException"/> when <paramref name="bytes"/> exceeds the whole budget (it could never run).
    /// </summary>
    public async ValueTask<IDisposable?> EnterAsync(long bytes, TimeSpan wait, CancellationToken cancellationToken, long heldWhileWaiting = 0)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bytes, CapacityBytes);
        cancellationToken.ThrowIfCancellationRequested();
        Waiter waiter;
        lock (_lock)
        {
            if (_waiting.Count == 0 && Fits(bytes))
            {
                return Grant(bytes);
            }

            if (_waitingHeld + heldWhileWaiting > MaxWaitingBytes && _waiting.Count > 0)
            {
                return null;
            }

            waiter = new Waiter(bytes, heldWhileWaiting);
            waiter.Node = _waiting.AddLast(waiter);
            _waitingHeld += heldWhileWaiting;
            Publish();
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(wait);
        await using (timeout.Token.UnsafeRegister(static state => ((Waiter)state!).Admitted.TrySetCanceled(), waiter))
        {
            try
            {
                return await waiter.Admitted.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                lock (_lock)
                {
                    if (waiter.Node?.List is not null)
                    {
                        _waiting.Remove(waiter.Node);
                        _waitingHeld -= waiter.Held;
                        GrantWaiting(); // the next in line may fit now that this one left the head
                        Publish();
                    }
                }

                cancellationToken.ThrowIfCancellationRequested();
                return null;
            }
        }
    }

    /// <summary>Counts one image that was refused or abandoned.</summary>
    public void Refused(DecodeRefusal reason) => _metrics?.Refusals[(int)reason].Inc();

    private bool Fits(long bytes) => _freeSlots > 0 && bytes <= _available;

    private Lease Grant(long bytes)
    {
        _available -= bytes;
        _freeSlots--;
        Publish();
        return new Lease(this, bytes);
    }

    private void GrantWaiting()
    {
        while (_waiting.First is { } head && Fits(head.Value.Bytes))
        {
            _waiting.RemoveFirst();
            _waitingHeld -= head.Value.Held;
            head.Value.Node = null;
            var lease = Grant(head.Value.Bytes);
            if (!head.Value.Admitted.TrySetResult(lease))
            {
                // Its wait ended in the same instant: give the room back and keep going.
                Return(lease.Bytes);
            }
        }
    }

    private void Release(long bytes)
    {
        lock (_lock)
        {
            Return(bytes);
            GrantWaiting();
            Publish();
        }
    }

    private void Return(long bytes)
    {
        _available += bytes;
        _freeSlots++;
    }

    private void Publish()
    {
        if (_metrics is { } m)
        {
            m.ReservedBytes.Set(CapacityBytes - _available);
            m.Running.Set(MaxConcurrent - _freeSlots);
            m.Waiting.Set(_waiting.Count);
        }
    }

    private sealed class Waiter(long bytes, long held)
    {
        public long Bytes { get; } = bytes;

        public long Held { get; } = held;

        public LinkedListNode<Waiter>? Node { get; set; }

        public TaskCompletionSource<IDisposable?> Admitted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Lease(DecodeGate gate, long bytes) : IDisposable
    {
        private int _disposed;

        public long Bytes => bytes;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                gate.Release(bytes);
            }
        }
    }
}

/// <summary>Why an image was not decoded, or not to the end.</summary>
public enum DecodeRefusal
{
    TooLarge,
    Busy,
    TooManyScans,
    Timeout,
    Cancelled,
}

/// <summary>The gauges a <see cref="DecodeGate"/> keeps current, and one refusal counter per <see cref="DecodeRefusal"/>, in its order.</summary>
public sealed record DecodeGateMetrics(IGauge ReservedBytes, IGauge Running, IGauge Waiting, ICounter[] Refusals)
{
    public static string Label(DecodeRefusal reason) => reason switch
    {
        DecodeRefusal.TooLarge => "too_large",
        DecodeRefusal.Busy => "busy",
        DecodeRefusal.TooManyScans => "too_many_scans",
        DecodeRefusal.Timeout => "timeout",
        _ => "cancelled",
    };
}
