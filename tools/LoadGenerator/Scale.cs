using System.Diagnostics;

namespace Classifier.LoadGenerator;

/// <summary>What one workload gave at one silo count: throughput, latency, and each process's CPU per image.</summary>
/// <param name="SiloCpuMsEach">Each silo's CPU milliseconds per image of the whole run, in the order given: an uneven
/// spread of shards shows here before it shows in throughput.</param>
public sealed record ScaleResult(string Workload, int Requests, double Throughput, double P50Ms, double P99Ms, int Errors, double HitRate,
    double GatewayCpuMs, double SiloCpuMs, double ClientCpuMs, double[] SiloCpuMsEach);

/// <summary>
/// One silo count's measurement for <c>scripts/scale-check.sh</c>: requests go to the gateways in turn (request i to
/// gateway i mod G), after the cluster is warmed to steady state with fresh misses; then all-miss and a Zipf(1.1)
/// mix over 1000 images, each with the gateways', silos' and this client's CPU per image from their
/// <c>process_cpu_seconds_total</c>.
/// </summary>
public static class Scale
{
    public static async Task<ScaleResult[]> RunAsync(HttpClient http, string[] gateways, string[] gatewayMetrics, string[] siloMetrics,
        string model, int requests, int concurrency, int? warmUpPass = null)
    {
        var urls = gateways.Select(g => $"{g.TrimEnd('/')}/predict?model={Uri.EscapeDataString(model)}").ToArray();
        string UrlFor(int i) => urls[i % urls.Length];
        var seed = Random.Shared.Next(1 << 20) * 4096;
        var passSize = warmUpPass ?? Math.Max(1000, requests / 3);
        await Steady.UntilSteadyAsync(
            async pass => (await Bench.DriveAsync(http, urls[0], "warm-up", passSize, concurrency, i => Soak.Image(seed + 500_000 + pass * passSize + i), urlFor: UrlFor)).Throughput,
            maxPasses: 8);

        var misses = Enumerable.Range(0, requests).Select(i => Soak.Image(seed + i)).ToArray();
        var allMiss = await MeasureAsync("all-miss", i => misses[i]);

        var pool = Enumerable.Range(0, 1000).Select(i => Soak.Image(seed + requests + i)).ToArray();
        var zipf = new Bench.Zipf(pool.Length, 1.1, new Random(7));
        var picks = Enumerable.Range(0, requests).Select(_ => zipf.Next()).ToArray();
        var mixed = await MeasureAsync("Zipf(1.1) over 1000", i => pool[picks[i]]);
        return [allMiss, mixed];

        async Task<ScaleResult> MeasureAsync(string workload, Func<int, byte[]> image)
        {
            var gatewaysBefore = await CpuAsync(gatewayMetrics);
            var silosBefore = await CpuAsync(siloMetrics);
            var clientBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var run = await Bench.DriveAsync(http, urls[0], workload, requests, concurrency, image, urlFor: UrlFor);
            var client = (Process.GetCurrentProcess().TotalProcessorTime - clientBefore).TotalMilliseconds / requests;
            var gatewaysAfter = await CpuAsync(gatewayMetrics);
            var silosAfter = await CpuAsync(siloMetrics);
            var silos = silosAfter.Zip(silosBefore, (a, b) => (a - b) * 1000 / requests).ToArray();
            return new ScaleResult(workload, requests, run.Throughput, run.P50Ms, run.P99Ms, run.Errors, run.HitRate,
                gatewaysAfter.Zip(gatewaysBefore, (a, b) => (a - b) * 1000 / requests).Sum(), silos.Sum(), client, silos);
        }

        async Task<double[]> CpuAsync(string[] metricsUrls) =>
            await Task.WhenAll(metricsUrls.Select(url => Bench.ProcessCpuSecondsAsync(http, url)));
    }
}
