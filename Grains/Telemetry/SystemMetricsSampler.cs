using System.Globalization;

namespace Classifier.Grains.Telemetry;

/// <summary>Reads machine and process memory and CPU from /proc (Linux); elsewhere the gauges stay at 0.</summary>
public sealed class SystemMetricsSampler(SiloMetrics metrics)
{
    private readonly object _gate = new();
    private (ulong Busy, ulong Total)? _lastCpu;

    /// <summary>Updates the system gauges; called before every scrape.</summary>
    public void Sample()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var mem = ReadKeyValues("/proc/meminfo");
        if (mem.TryGetValue("MemTotal", out var total) && mem.TryGetValue("MemAvailable", out var available) && total > 0)
        {
            metrics.SystemMemory.Set(100.0 * (total - available) / total);
        }

        var status = ReadKeyValues("/proc/self/status");
        if (status.TryGetValue("VmRSS", out var rss))
        {
            metrics.ProcessMemory.WithLabels("rss").Set(rss * 1024.0);
        }

        if (status.TryGetValue("VmSize", out var vms))
        {
            metrics.ProcessMemory.WithLabels("vms").Set(vms * 1024.0);
        }

        SampleCpu();
    }

    private void SampleCpu()
    {
        // First line of /proc/stat: cpu user nice system idle iowait irq softirq steal ...
        var line = File.ReadLines("/proc/stat").FirstOrDefault();
        if (line is null || !line.StartsWith("cpu ", StringComparison.Ordinal))
        {
            return;
        }

        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(f => ulong.Parse(f, CultureInfo.InvariantCulture)).ToArray();
        var idle = fields[3] + (fields.Length > 4 ? fields[4] : 0);
        var total = fields.Aggregate(0UL, (a, b) => a + b);
        var busy = total - idle;
        lock (_gate)
        {
            if (_lastCpu is { } last && total > last.Total)
            {
                metrics.SystemCpu.Set(100.0 * (busy - last.Busy) / (total - last.Total));
            }

            _lastCpu = (busy, total);
        }
    }

    private static Dictionary<string, long> ReadKeyValues(string path)
    {
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                continue;
            }

            var rest = line.AsSpan(colon + 1).Trim();
            var space = rest.IndexOf(' ');
            var number = space < 0 ? rest : rest[..space];
            if (long.TryParse(number, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            {
                values[line[..colon]] = v;
            }
        }

        return values;
    }
}
