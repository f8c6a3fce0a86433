using System.Globalization;
using System.Text;

namespace Classifier.LoadGenerator;

/// <summary>
/// All-miss through <c>/predict</c>, the Open Inference Protocol's REST infer and its gRPC ModelInfer, in
/// rounds that take the three in a new order each time, so that each ratio compares runs seconds apart on
/// the same warm processes (this machine's noise moves whole runs by more than the differences sought).
/// </summary>
public static class Protocols
{
    public sealed record Round(string Path, double Throughput, double GatewayCpuMs, double SiloCpuMs, double ClientCpuMs);

    public static async Task<List<Round>> RunAsync(HttpClient http, string gatewayUrl, string grpcAddress, string model, (string Gateway, string Silo) cpuFrom,
        int rounds, int requests, int concurrency)
    {
        var predictUrl = $"{gatewayUrl}/predict?model={Uri.EscapeDataString(model)}";
        var inferUrl = $"{gatewayUrl}/v2/models/{Uri.EscapeDataString(model)}/infer";
        var seed = Random.Shared.Next(1 << 20) * 4096;
        var next = 0;
        byte[][] Fresh() => Enumerable.Range(0, requests).Select(i => Soak.Image(seed + Interlocked.Add(ref next, 1))).ToArray();
        using var grpc = new Bench.GrpcClients(grpcAddress, concurrency);
        var paths = new (string Name, Func<byte[][], Task<BenchResult>> Drive)[]
        {
            ("/predict", images => Bench.DriveAsync(http, predictUrl, "/predict", images.Length, concurrency, i => images[i])),
            ("OIP REST", images => Bench.DriveAsync(http, inferUrl, "OIP REST", images.Length, concurrency, i => images[i], oip: true)),
            ("OIP gRPC", images => Bench.DriveGrpcAsync(grpc, model, "OIP gRPC", images.Length, i => images[i])),
        };
        foreach (var (_, drive) in paths) // every path warmed until steady, so none is measured at tier-0
        {
            await Steady.UntilSteadyAsync(async _ => (await drive(Fresh())).Throughput, maxPasses: 6);
        }

        var results = new List<Round>();
        var order = new Random(3);
        for (var r = 0; r < rounds; r++)
        {
            foreach (var (name, drive) in paths.OrderBy(_ => order.Next()))
            {
                var images = Fresh();
                var before = await Bench.CpuAsync(http, cpuFrom);
                var result = await drive(images);
                var after = await Bench.CpuAsync(http, cpuFrom);
                results.Add(new Round(name, result.Throughput,
                    (after.Gateway - before.Gateway) * 1000 / requests, (after.Silo - before.Silo) * 1000 / requests, (after.Client - before.Client).TotalMilliseconds / requests));
            }
        }

        return results;
    }

    public static string Markdown(List<Round> results, string title)
    {
        var text = new StringBuilder($"# All-miss by protocol, {title}\n\n| path | median img/s | median ratio to /predict in the same round (min-max) | gateway CPU ms/img | silo CPU ms/img | client CPU ms/img |\n|---|---|---|---|---|---|\n");
        var predict = results.Where(r => r.Path == "/predict").ToArray();
        foreach (var path in results.Select(r => r.Path).Distinct())
        {
            var mine = results.Where(r => r.Path == path).ToArray();
            var ratios = mine.Zip(predict, (m, p) => m.Throughput / p.Throughput).ToArray();
            text.Append(CultureInfo.InvariantCulture,
                $"| {path} | {Steady.Median(mine.Select(m => m.Throughput)):F0} | {Steady.Median(ratios):F2} ({ratios.Min():F2}-{ratios.Max():F2}) | {Steady.Median(mine.Select(m => m.GatewayCpuMs)):F3} | {Steady.Median(mine.Select(m => m.SiloCpuMs)):F3} | {Steady.Median(mine.Select(m => m.ClientCpuMs)):F3} |\n");
        }

        return text.ToString();
    }
}
