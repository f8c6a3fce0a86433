using Classifier.Gateway.Telemetry;

namespace Classifier.Gateway.Api;

/// <summary>
/// The gateway's memory for request bodies: every upload reserves what it holds, as the bytes arrive, and gets
/// refused (503 with <c>Retry-After</c>) when the total would pass <see cref="GatewayOptions.MaxUploadBytesInFlight"/>.
/// Nothing is reserved or allocated from a Content-Length the client merely claims.
/// </summary>
public sealed class UploadBudget(long capacityBytes)
{
    private long _used;

    public long CapacityBytes { get; } = capacityBytes;

    /// <summary>A request's share of the budget, released when the request ends.</summary>
    public Reservation Open(HttpContext context)
    {
        var reservation = new Reservation(this);
        context.Response.RegisterForDispose(reservation);
        return reservation;
    }

    private bool TryTake(long bytes)
    {
        var used = Volatile.Read(ref _used);
        while (true)
        {
            if (used + bytes > CapacityBytes)
            {
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _used, used + bytes, used);
            if (seen == used)
            {
                GatewayMetrics.UploadBytesInFlight.Set(used + bytes);
                return true;
            }

            used = seen;
        }
    }

    private void Give(long bytes) => GatewayMetrics.UploadBytesInFlight.Set(Interlocked.Add(ref _used, -bytes));

    /// <summary>What one request holds; disposing it (at the latest when the response ends) gives it all back.</summary>
    public sealed class Reservation(UploadBudget budget) : IDisposable
    {
        private long _held;

        /// <summary>Adds <paramref name="bytes"/> to this request's share; false when the gateway has no room for them.</summary>
        public bool TryAdd(long bytes)
        {
            if (!budget.TryTake(bytes))
            {
                GatewayMetrics.UploadRefusals.Inc();
                return false;
            }

            Interlocked.Add(ref _held, bytes);
            return true;
        }

        /// <summary>Gives back part of this request's share (buffers it no longer holds).</summary>
        public void Remove(long bytes)
        {
            Interlocked.Add(ref _held, -bytes);
            budget.Give(bytes);
        }

        public void Dispose()
        {
            var held = Interlocked.Exchange(ref _held, 0);
            if (held != 0)
            {
                budget.Give(held);
            }
        }
    }
}
