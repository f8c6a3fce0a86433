using Prometheus;

namespace Classifier.ServiceDefaults;

/// <summary>
/// A metric child that records nothing: what the hot path gets with <c>Metrics:Enabled=false</c>, so that
/// the cost of recording can be measured by switching it off (see README, Performance).
/// </summary>
public sealed class NoMetric : ICounter, IGauge, IHistogram
{
    public static readonly NoMetric Instance = new();

    private NoMetric()
    {
    }

    public double Value => 0;

    public double Sum => 0;

    public long Count => 0;

    public void Inc(double increment = 1)
    {
    }

    public void Inc(Exemplar? exemplar)
    {
    }

    public void Inc(double increment, Exemplar? exemplar)
    {
    }

    public void IncTo(double targetValue)
    {
    }

    public void Set(double val)
    {
    }

    public void Dec(double decrement = 1)
    {
    }

    public void DecTo(double targetValue)
    {
    }

    public void Observe(double val)
    {
    }

    public void Observe(double val, long count)
    {
    }

    public void Observe(double val, Exemplar? exemplar)
    {
    }
}

/// <summary>Metric recording (section <c>Metrics</c>), read by silos and gateways alike.</summary>
public sealed class MetricsOptions
{
    public const string SectionName = "Metrics";

    /// <summary>
    /// False stops recording the per-request series (HTTP requests, upstream calls, predictions, cache,
    /// inference, queue); <c>/metrics</c> and the periodic gauges remain. Meant for measuring what recording
    /// costs (README, Performance), not for production.
    /// </summary>
    public bool Enabled { get; set; } = true;
}
