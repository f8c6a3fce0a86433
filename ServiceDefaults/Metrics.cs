using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Prometheus;

namespace Classifier.ServiceDefaults;

/// <summary>
/// Whether the per-request series record (<c>Metrics:Enabled</c>). Read on every recording and flipped while
/// the process runs when the setting changes in a settings file, so that what recording costs can be measured
/// in the same processes, on and off in alternating rounds (<c>scripts/metrics-overhead.sh</c>).
/// </summary>
public sealed class RecordingSwitch
{
    private volatile bool _on = true;

    public bool On
    {
        get => _on;
        set => _on = value;
    }

    /// <summary>
    /// Takes <c>Metrics:Enabled</c> from <paramref name="configuration"/> now, and again whenever a settings file
    /// changes. A value that is not true or false stops start-up (the binder's error names the setting); on a
    /// reload it is logged and the switch stays as it was, so a slip in a file cannot take a running process down.
    /// </summary>
    public void Follow(IConfiguration configuration, ILogger logger)
    {
        On = Read(configuration);
        ChangeToken.OnChange(configuration.GetReloadToken, () =>
        {
            try
            {
                On = Read(configuration);
            }
            catch (InvalidOperationException e)
            {
                logger.LogWarning("{Setting} was not changed (still {Enabled}): {Reason}", $"{MetricsOptions.SectionName}:{nameof(MetricsOptions.Enabled)}", On, e.Message);
            }
        });
    }

    private static bool Read(IConfiguration configuration) =>
        configuration.GetSection(MetricsOptions.SectionName).Get<MetricsOptions>()?.Enabled ?? true;
}

/// <summary>A counter child that records only while its <see cref="RecordingSwitch"/> is on.</summary>
public sealed class SwitchedCounter(ICounter inner, RecordingSwitch recording) : ICounter
{
    public double Value => inner.Value;

    public void Inc(double increment = 1)
    {
        if (recording.On)
        {
            inner.Inc(increment);
        }
    }

    public void Inc(Exemplar? exemplar)
    {
        if (recording.On)
        {
            inner.Inc(exemplar);
        }
    }

    public void Inc(double increment, Exemplar? exemplar)
    {
        if (recording.On)
        {
            inner.Inc(increment, exemplar);
        }
    }

    public void IncTo(double targetValue)
    {
        if (recording.On)
        {
            inner.IncTo(targetValue);
        }
    }
}

/// <summary>A histogram child that records only while its <see cref="RecordingSwitch"/> is on.</summary>
public sealed class SwitchedHistogram(IHistogram inner, RecordingSwitch recording) : IHistogram
{
    public double Sum => inner.Sum;

    public long Count => inner.Count;

    public void Observe(double val)
    {
        if (recording.On)
        {
            inner.Observe(val);
        }
    }

    public void Observe(double val, long count)
    {
        if (recording.On)
        {
            inner.Observe(val, count);
        }
    }

    public void Observe(double val, Exemplar? exemplar)
    {
        if (recording.On)
        {
            inner.Observe(val, exemplar);
        }
    }
}

/// <summary>Metric recording (section <c>Metrics</c>), read by silos and gateways alike.</summary>
public sealed class MetricsOptions
{
    public const string SectionName = "Metrics";

    /// <summary>
    /// False stops recording the per-request series (HTTP requests, upstream calls, predictions, cache,
    /// inference, queue wait, batch size); <c>/metrics</c>, the periodic gauges and the level gauges (requests
    /// in flight, queue depth) remain. Takes effect without a restart when a settings file changes. Meant for
    /// measuring what recording costs (README, Metrics overhead), not for production.
    /// </summary>
    public bool Enabled { get; set; } = true;
}
