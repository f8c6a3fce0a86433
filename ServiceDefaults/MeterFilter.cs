using System.Diagnostics.Metrics;

namespace Classifier.ServiceDefaults;

/// <summary>Which .NET meters both roles export through prometheus-net's meter adapter.</summary>
public static class MeterFilter
{
    /// <summary>
    /// Orleans' own instruments (activations, grain calls, messaging, membership), minus its request
    /// latency "bucket" counters, which are non-cumulative bands that read wrongly as Prometheus
    /// histograms. Everything else (System.Runtime, Kestrel, sockets, QUIC) is dropped: prometheus-net
    /// already exports the process and runtime figures that matter.
    /// </summary>
    public static bool Keep(Instrument instrument) =>
        instrument.Meter.Name == "Microsoft.Orleans"
        && !instrument.Name.Contains("latency-bucket", StringComparison.Ordinal);
}
