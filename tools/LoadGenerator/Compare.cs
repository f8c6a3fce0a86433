using System.Globalization;
using System.Text;

namespace Classifier.LoadGenerator;

/// <summary>One workload's throughput on two clusters, round by round.</summary>
public sealed record ComparisonResult(string Workload, double[] ThroughputA, double[] ThroughputB)
{
    /// <summary>Median over rounds of B's throughput divided by A's in the same round.</summary>
    public double MedianRatio => Steady.Median(ThroughputA.Zip(ThroughputB, (a, b) => b / a));

    public double MedianA => Steady.Median(ThroughputA);

    public double MedianB => Steady.Median(ThroughputB);

    public double MinRatio => ThroughputA.Zip(ThroughputB, (a, b) => b / a).Min();

    public double MaxRatio => ThroughputA.Zip(ThroughputB, (a, b) => b / a).Max();

}

/// <summary>
/// A/B comparison of two clusters that differ in one setting (metrics on and off, say): the same
/// workloads alternate between them round by round, A then B then B then A, so drift on a shared machine
/// falls on both; the figure of merit is the median of the per-round ratios.
/// </summary>
public static class Compare
{
    public static async Task<List<ComparisonResult>> RunAsync(HttpClient http, string gatewayA, string gatewayB, int rounds, int requests, int concurrency)
    {
        var seed = Random.Shared.Next(1 << 20) * 4096;
        var hot = Enumerable.Range(0, 64).Select(i => Soak.Image(seed + i)).ToArray();
        (gatewayA, gatewayB) = (gatewayA + "/predict", gatewayB + "/predict");
        foreach (var gateway in new[] { gatewayA, gatewayB })
        {
            await Bench.WarmUpAsync(http, gateway, concurrency, seed + 50_000, Math.Min(1000, requests));
        }

        var results = new List<ComparisonResult>();
        foreach (var (name, count, image) in Workloads(seed, hot, requests))
        {
            var (a, b) = (new double[rounds], new double[rounds]);
            for (var round = 0; round < rounds; round++)
            {
                var order = round % 2 == 0 ? new[] { 0, 1 } : [1, 0];
                foreach (var which in order)
                {
                    var gateway = which == 0 ? gatewayA : gatewayB;

                    // Misses stay misses: each cluster and round gets images of its own.
                    var offset = which * requests;
                    (which == 0 ? a : b)[round] = await DriveWithoutErrorsAsync(http, gateway, name, count, concurrency, i => image(round, offset + i));
                }
            }

            results.Add(new ComparisonResult(name, a, b));
        }

        return results;
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
        var text = new StringBuilder()
            .AppendLine($"### {title}")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"| workload | {a} img/s (median) | {b} img/s (median) | {b} / {a} (median of rounds) | range of round ratios | rounds, {a} / {b} img/s |")
            .AppendLine("|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {r.Workload} | {r.MedianA:F0} | {r.MedianB:F0} | {r.MedianRatio:F3} | {r.MinRatio:F3} to {r.MaxRatio:F3} | {string.Join(", ", r.ThroughputA.Zip(r.ThroughputB, (x, y) => $"{x:F0}/{y:F0}"))} |"));
        }

        return text.ToString();
    }
}
