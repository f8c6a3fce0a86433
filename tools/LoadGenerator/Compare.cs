using System.Globalization;
using System.Text;

namespace Classifier.LoadGenerator;

/// <summary>One workload's throughput on two arms, round by round, and the CPU each request cost when measured.</summary>
/// <param name="CpuA">Gateway plus silo CPU microseconds per request in each of A's rounds; null when not measured.</param>
public sealed record ComparisonResult(string Workload, double[] ThroughputA, double[] ThroughputB, double[]? CpuA = null, double[]? CpuB = null)
{
    /// <summary>Median over rounds of B's throughput divided by A's in the same round.</summary>
    public double MedianRatio => Steady.Median(Ratios(ThroughputA, ThroughputB));

    public double MedianA => Steady.Median(ThroughputA);

    public double MedianB => Steady.Median(ThroughputB);

    public double MinRatio => Ratios(ThroughputA, ThroughputB).Min();

    public double MaxRatio => Ratios(ThroughputA, ThroughputB).Max();

    /// <summary>Median over rounds of B's CPU per request divided by A's; NaN when CPU was not measured.</summary>
    public double MedianCpuRatio => CpuA is null || CpuB is null ? double.NaN : Steady.Median(Ratios(CpuA, CpuB));

    /// <summary>95 % bootstrap interval of <see cref="MedianRatio"/>.</summary>
    public Interval RatioInterval => Interval.OfMedian(Ratios(ThroughputA, ThroughputB).ToArray());

    /// <summary>95 % bootstrap interval of <see cref="MedianCpuRatio"/>; null when CPU was not measured.</summary>
    public Interval? CpuRatioInterval => CpuA is null || CpuB is null ? null : Interval.OfMedian(Ratios(CpuA, CpuB).ToArray());

    private static IEnumerable<double> Ratios(double[] a, double[] b) => a.Zip(b, (x, y) => y / x);
}

/// <summary>A confidence interval.</summary>
public readonly record struct Interval(double Low, double High)
{
    /// <summary>
    /// The 95 % percentile-bootstrap interval of the median of <paramref name="values"/>: 2000 resamples of the
    /// rounds with replacement, a fixed seed so that the same rounds always give the same interval.
    /// </summary>
    public static Interval OfMedian(double[] values)
    {
        var random = new Random(1);
        var medians = new double[2000];
        var sample = new double[values.Length];
        for (var i = 0; i < medians.Length; i++)
        {
            for (var j = 0; j < sample.Length; j++)
            {
                sample[j] = values[random.Next(values.Length)];
            }

            medians[i] = Steady.Median(sample);
        }

        Array.Sort(medians);
        return new Interval(medians[(int)(0.025 * medians.Length)], medians[(int)(0.975 * medians.Length) - 1]);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Low:F3}-{High:F3}");
}

/// <summary>One side of an A/B comparison: the gateway its rounds drive, and what must happen before each of them.</summary>
/// <param name="Enter">Puts the system into this arm's state (a live settings switch, say); null when the arms are separate clusters.</param>
public sealed record Arm(string Gateway, Func<Task>? Enter = null);

/// <summary>
/// A/B comparison of two configurations that differ in one setting (metrics on and off, say): the same
/// workloads alternate between them round by round, A then B then B then A, so drift on a shared machine
/// falls on both; the figure of merit is the median of the per-round ratios. The arms are either two
/// clusters side by side or one cluster switched between rounds (<see cref="LiveSwitch"/>).
/// </summary>
public static class Compare
{
    public static Task<List<ComparisonResult>> RunAsync(HttpClient http, string gatewayA, string gatewayB, int rounds, int requests, int concurrency) =>
        RunAsync(http, new Arm(gatewayA), new Arm(gatewayB), rounds, requests, concurrency, cpuFrom: null);

    /// <param name="cpuFrom">The /metrics URLs whose <c>process_cpu_seconds_total</c> make up a request's CPU cost (one cluster's gateway and silo); null: not measured.</param>
    /// <param name="workloads">The workloads to run (all-hit, all-miss); null: both.</param>
    public static async Task<List<ComparisonResult>> RunAsync(HttpClient http, Arm a, Arm b, int rounds, int requests, int concurrency, string[]? cpuFrom, string[]? workloads = null)
    {
        var seed = Random.Shared.Next(1 << 20) * 4096;
        var hot = Enumerable.Range(0, 64).Select(i => Soak.Image(seed + i)).ToArray();
        foreach (var gateway in new[] { a.Gateway, b.Gateway }.Distinct())
        {
            await Bench.WarmUpAsync(http, gateway + "/predict", concurrency, seed + 50_000, Math.Min(1000, requests));
        }

        var results = new List<ComparisonResult>();
        foreach (var (name, count, image) in Workloads(seed, hot, requests).Where(w => workloads is null || workloads.Contains(w.Name)))
        {
            var (throughput, cpu) = (new[] { new double[rounds], new double[rounds] }, new[] { new double[rounds], new double[rounds] });
            // Round -1 is a pair of the same length that is not kept: the first rounds after warm-up, or after
            // a switch of workload, ran up to 20 % apart here while the paths settled.
            for (var round = -1; round < rounds; round++)
            {
                foreach (var which in round % 2 == 0 ? new[] { 0, 1 } : [1, 0])
                {
                    var arm = which == 0 ? a : b;
                    if (arm.Enter is { } enter)
                    {
                        await enter();
                    }

                    var cpuBefore = cpuFrom is null ? 0 : await CpuSecondsAsync(http, cpuFrom);

                    // Misses stay misses: each arm and round gets images of its own.
                    var offset = which * requests;
                    var measured = await DriveWithoutErrorsAsync(http, arm.Gateway + "/predict", name, count, concurrency, i => image(round, offset + i));
                    var cpuAfter = cpuFrom is null ? 0 : await CpuSecondsAsync(http, cpuFrom);
                    if (round >= 0)
                    {
                        throughput[which][round] = measured;
                        cpu[which][round] = (cpuAfter - cpuBefore) / count * 1e6;
                    }
                }
            }

            results.Add(cpuFrom is null
                ? new ComparisonResult(name, throughput[0], throughput[1])
                : new ComparisonResult(name, throughput[0], throughput[1], cpu[0], cpu[1]));
        }

        return results;
    }

    /// <summary>The summed <c>process_cpu_seconds_total</c> of the processes behind <paramref name="metricsUrls"/>.</summary>
    private static async Task<double> CpuSecondsAsync(HttpClient http, string[] metricsUrls)
    {
        var total = 0.0;
        foreach (var url in metricsUrls)
        {
            total += LiveSwitch.Sum(await http.GetStringAsync(url), "process_cpu_seconds_total");
        }

        return total;
    }

    /// <summary>
    /// One cluster on its own: warmed to steady state, then the same two workloads as <see cref="RunAsync"/>.
    /// Answers throughput by workload name.
    /// </summary>
    public static async Task<Dictionary<string, double>> MeasureAsync(HttpClient http, string gateway, int requests, int concurrency)
    {
        var seed = Random.Shared.Next(1 << 20) * 4096;
        var hot = Enumerable.Range(0, 64).Select(i => Soak.Image(seed + i)).ToArray();
        gateway += "/predict";
        await Bench.WarmUpAsync(http, gateway, concurrency, seed + 50_000, Math.Min(1000, requests));
        await Bench.DriveAsync(http, gateway, "warm-up", hot.Length, concurrency, i => hot[i]); // the hot set cached
        var measured = new Dictionary<string, double>();
        foreach (var (name, count, image) in Workloads(seed, hot, requests))
        {
            measured[name] = await DriveWithoutErrorsAsync(http, gateway, name, count, concurrency, i => image(0, i));
        }

        return measured;
    }

    /// <summary>All-hit over the hot set and all-miss on fresh images (by round); hits are several times faster, so more of them make a round last as long.</summary>
    private static (string Name, int Requests, Func<int, int, byte[]> Image)[] Workloads(int seed, byte[][] hot, int requests) =>
    [
        ("all-hit", requests * 5, (_, i) => hot[i % hot.Length]),
        ("all-miss", requests, (round, i) => Soak.Image(seed + 100_000 + round * 2 * requests + i)),
    ];

    /// <summary>Throughput of one workload; an A/B figure from a run with errors would compare failures, so errors end the run.</summary>
    private static async Task<double> DriveWithoutErrorsAsync(HttpClient http, string gateway, string name, int count, int concurrency, Func<int, byte[]> image)
    {
        var result = await Bench.DriveAsync(http, gateway, name, count, concurrency, image);
        return result.Errors > 0 ? throw new InvalidOperationException($"{result.Errors} errors from {gateway} in {name}") : result.Throughput;
    }

    public static string Markdown(IEnumerable<ComparisonResult> results, string title, string a, string b)
    {
        var list = results.ToList();
        var withCpu = list.All(r => r.CpuA is not null);
        var text = new StringBuilder()
            .AppendLine($"### {title}")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"| workload | {a} img/s (median) | {b} img/s (median) | {b} / {a} (median of rounds) | 95 % interval | range of round ratios |{(withCpu ? $" CPU µs/request, {a} / {b} (medians) | CPU {b} / {a} (median of rounds) | 95 % interval |" : "")} rounds |")
            .AppendLine(withCpu ? "|---|---|---|---|---|---|---|---|---|---|" : "|---|---|---|---|---|---|---|");
        foreach (var r in list)
        {
            var cpu = withCpu ? string.Create(CultureInfo.InvariantCulture, $" {Steady.Median(r.CpuA!):F0} / {Steady.Median(r.CpuB!):F0} | {r.MedianCpuRatio:F3} | {r.CpuRatioInterval} |") : "";
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {r.Workload} | {r.MedianA:F0} | {r.MedianB:F0} | {r.MedianRatio:F3} | {r.RatioInterval} | {r.MinRatio:F3} to {r.MaxRatio:F3} |{cpu} {r.ThroughputA.Length} |"));
        }

        return text.ToString();
    }
}
