using System.Globalization;
using Classifier.LoadGenerator;

// Usage: Classifier.LoadGenerator soak --gateway URL --silo-metrics URL[,URL...] [--requests N] [--concurrency N]
//        [--unique N] [--bad-share F] [--max-growth-mib F]
// Exits 1 when any request got an unexpected status or a silo's RSS grew past the margin after warm-up.
var arguments = args.Skip(1).Chunk(2).Where(p => p.Length == 2).ToDictionary(p => p[0].TrimStart('-'), p => p[1]);
string Arg(string name, string fallback) => arguments.GetValueOrDefault(name, fallback);
if (args.Length > 0 && args[0] == "bench" && arguments.ContainsKey("gateway"))
{
    // Usage: Classifier.LoadGenerator bench --gateway URL --models DIR [--model text-orientation] [--requests 3000]
    //        [--concurrency 8] [--device cpu|cuda] [--cpu-from GATEWAY_METRICS_URL,SILO_METRICS_URL] [--baseline first|last]
    //        [--warm-up steady|none] [--grpc HOST:PORT] [--one-process URL] [--json bench.json] [--markdown bench.md]
    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
    var concurrency = int.Parse(Arg("concurrency", "8"), CultureInfo.InvariantCulture);
    var cpuFrom = Arg("cpu-from", "").Split(',', StringSplitOptions.RemoveEmptyEntries) is [var gatewayMetrics, var siloMetrics] ? (gatewayMetrics, siloMetrics) : ((string, string)?)null;
    var results = await Bench.RunAsync(Arg("gateway", ""), Arg("models", "models"), Arg("model", "text-orientation"),
        int.Parse(Arg("requests", "3000"), CultureInfo.InvariantCulture), concurrency, client, Arg("device", "cpu"), cpuFrom, Arg("baseline", "first") == "first",
        Arg("warm-up", "steady") != "none", Arg("grpc", "") is { Length: > 0 } grpc ? grpc : null, Arg("one-process", "") is { Length: > 0 } one ? one : null);
    var title = $"{DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, {concurrency} clients, model {Arg("model", "text-orientation")}, baseline on {Arg("device", "cpu")}";
    var markdown = Bench.Markdown(results, title);
    Console.WriteLine(markdown);
    await File.WriteAllTextAsync(Arg("markdown", "bench.md"), markdown);
    await File.WriteAllTextAsync(Arg("json", "bench.json"), System.Text.Json.JsonSerializer.Serialize(new { title, results }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    return results.Any(r => r.Errors > 0) ? 1 : 0;
}

if (args.Length > 0 && args[0] == "compare" && arguments.ContainsKey("gateway-a") && arguments.ContainsKey("gateway-b"))
{
    // Usage: Classifier.LoadGenerator compare --gateway-a URL --gateway-b URL [--label-a A] [--label-b B] [--rounds 7]
    //        [--requests 3000] [--concurrency 8] [--markdown compare.md]
    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
    var (labelA, labelB) = (Arg("label-a", "A"), Arg("label-b", "B"));
    var concurrency = int.Parse(Arg("concurrency", "8"), CultureInfo.InvariantCulture);
    var compared = await Compare.RunAsync(client, Arg("gateway-a", ""), Arg("gateway-b", ""),
        int.Parse(Arg("rounds", "7"), CultureInfo.InvariantCulture), int.Parse(Arg("requests", "3000"), CultureInfo.InvariantCulture), concurrency);
    var markdown = Compare.Markdown(compared, $"{DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, {concurrency} clients, {labelA} vs {labelB}", labelA, labelB);
    Console.WriteLine(markdown);
    await File.WriteAllTextAsync(Arg("markdown", "compare.md"), markdown);
    return 0;
}

if (args.Length > 0 && args[0] == "switch" && arguments.ContainsKey("gateway") && arguments.ContainsKey("settings") && arguments.ContainsKey("metrics"))
{
    // Usage: Classifier.LoadGenerator switch --gateway URL --metrics GATEWAY_METRICS_URL,SILO_METRICS_URL --settings FILE[,FILE...]
    //        [--rounds 40] [--requests 3000] [--concurrency 8] [--workloads all-hit,all-miss] [--aa true] [--markdown switch.md] [--json switch.json]
    // Metrics on and off in the same running cluster: between rounds, Metrics:Enabled is rewritten in the settings
    // files the silo and gateway watch, and each round waits until both follow. --aa true keeps it on in both arms.
    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
    var (gateway, concurrency) = (Arg("gateway", ""), int.Parse(Arg("concurrency", "8"), CultureInfo.InvariantCulture));
    var metricsUrls = Arg("metrics", "").Split(',', StringSplitOptions.RemoveEmptyEntries);
    var live = new LiveSwitch(client, gateway, Arg("settings", "").Split(',', StringSplitOptions.RemoveEmptyEntries), metricsUrls);
    var aa = Arg("aa", "false") == "true";
    var (labelA, labelB) = aa ? ("metrics on", "metrics on (again)") : ("metrics on", "metrics off");
    var compared = await Compare.RunAsync(client, new Arm(gateway, () => live.SetAsync(true)), new Arm(gateway, () => live.SetAsync(aa)),
        int.Parse(Arg("rounds", "40"), CultureInfo.InvariantCulture), int.Parse(Arg("requests", "3000"), CultureInfo.InvariantCulture), concurrency, metricsUrls,
        Arg("workloads", "all-hit,all-miss").Split(',', StringSplitOptions.RemoveEmptyEntries));
    await live.SetAsync(true);
    var title = $"{DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, {concurrency} clients, one cluster switched live: {labelA} vs {labelB}";
    var markdown = Compare.Markdown(compared, title, labelA, labelB);
    Console.WriteLine(markdown);
    await File.WriteAllTextAsync(Arg("markdown", "switch.md"), markdown);
    await File.WriteAllTextAsync(Arg("json", "switch.json"), System.Text.Json.JsonSerializer.Serialize(new { title, labelA, labelB, compared }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    return 0;
}

if (args.Length > 0 && args[0] == "measure" && arguments.ContainsKey("gateway"))
{
    // Usage: Classifier.LoadGenerator measure --gateway URL [--requests 3000] [--concurrency 8]
    // One cluster, warmed to steady state, then all-hit (5x the requests) and all-miss; prints one JSON
    // line of throughputs. For A/B runs that start each cluster alone (scripts/metrics-overhead.sh).
    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
    var (requests, concurrency) = (int.Parse(Arg("requests", "3000"), CultureInfo.InvariantCulture), int.Parse(Arg("concurrency", "8"), CultureInfo.InvariantCulture));
    var measured = await Compare.MeasureAsync(client, Arg("gateway", ""), requests, concurrency);
    Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(measured));
    return 0;
}

if (args.Length > 0 && args[0] == "cold" && arguments.ContainsKey("gateway"))
{
    // Usage: Classifier.LoadGenerator cold --gateway URL --models DIR [--model text-orientation] [--requests 3000] [--concurrency 8] [--device cpu]
    // For a cluster started moments ago: the in-process batch-1 baseline, then the cluster's first all-miss run; one JSON line.
    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
    var (baseline, first) = await Bench.ColdAsync(client, Arg("gateway", ""), Arg("models", "models"), Arg("model", "text-orientation"),
        int.Parse(Arg("requests", "3000"), CultureInfo.InvariantCulture), int.Parse(Arg("concurrency", "8"), CultureInfo.InvariantCulture), Arg("device", "cpu"),
        Arg("cpu-from", "").Split(',', StringSplitOptions.RemoveEmptyEntries) is [var g, var s] ? (g, s) : null);
    Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { baseline = baseline.Throughput, first = first.Throughput, ratio = first.RatioToBatch1, p50 = first.P50Ms, errors = first.Errors }));
    return first.Errors > 0 ? 1 : 0;
}

if (args.Length > 0 && args[0] == "scale" && arguments.ContainsKey("gateways") && arguments.ContainsKey("gateway-metrics") && arguments.ContainsKey("silo-metrics"))
{
    // Usage: Classifier.LoadGenerator scale --gateways URL[,URL...] --gateway-metrics URL[,URL...] --silo-metrics URL[,URL...]
    //        [--model text-orientation] [--requests 6000] [--concurrency 32]
    // One silo count of scripts/scale-check.sh: warmed to steady state, then all-miss and Zipf(1.1) with requests spread
    // over the gateways in turn; one JSON line (an array, one entry per workload).
    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
    static string[] List(string value) => value.Split(',', StringSplitOptions.RemoveEmptyEntries);
    var scaled = await Scale.RunAsync(client, List(Arg("gateways", "")), List(Arg("gateway-metrics", "")), List(Arg("silo-metrics", "")),
        Arg("model", "text-orientation"), int.Parse(Arg("requests", "6000"), CultureInfo.InvariantCulture), int.Parse(Arg("concurrency", "32"), CultureInfo.InvariantCulture));
    Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(scaled));
    return scaled.Any(r => r.Errors > 0) ? 1 : 0;
}

if (args.Length > 0 && args[0] == "protocols" && arguments.ContainsKey("gateway") && arguments.ContainsKey("grpc"))
{
    // Usage: Classifier.LoadGenerator protocols --gateway URL --grpc HOST:PORT --cpu-from GATEWAY_METRICS_URL,SILO_METRICS_URL
    //        [--model text-orientation] [--rounds 7] [--requests 2000] [--concurrency 8] [--markdown protocols.md]
    // All-miss through /predict, OIP REST and OIP gRPC in interleaved rounds; each path's median ratio to /predict.
    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
    var cpu = Arg("cpu-from", "").Split(',');
    var rounds = await Protocols.RunAsync(client, Arg("gateway", ""), Arg("grpc", ""), Arg("model", "text-orientation"), (cpu[0], cpu[1]),
        int.Parse(Arg("rounds", "7"), CultureInfo.InvariantCulture), int.Parse(Arg("requests", "2000"), CultureInfo.InvariantCulture),
        int.Parse(Arg("concurrency", "8"), CultureInfo.InvariantCulture));
    var markdown = Protocols.Markdown(rounds, $"{DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores");
    Console.WriteLine(markdown);
    await File.WriteAllTextAsync(Arg("markdown", "protocols.md"), markdown);
    return 0;
}

if (args.Length > 0 && args[0] == "overload" && arguments.ContainsKey("gateway"))
{
    // Usage: Classifier.LoadGenerator overload --gateway URL [--model text-orientation] [--clients 256] [--seconds 20]
    //        [--honour-retry-after true] [--metrics URL[,URL...]]
    // Every request a miss, from more clients than the model serves; prints served and refused latency and memory.
    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
    var overload = new OverloadOptions(Arg("gateway", ""), Arg("model", "text-orientation"),
        int.Parse(Arg("clients", "256"), CultureInfo.InvariantCulture), TimeSpan.FromSeconds(double.Parse(Arg("seconds", "20"), CultureInfo.InvariantCulture)),
        bool.Parse(Arg("honour-retry-after", "true")), Arg("metrics", "").Split(',', StringSplitOptions.RemoveEmptyEntries));
    Console.WriteLine(await Overload.RunAsync(overload, client));
    return 0;
}

if (args.Length > 0 && args[0] == "tune")
{
    // Usage: Classifier.LoadGenerator tune --models DIR --model NAME [--images 200] [--rounds 5] [--device cpu|cuda] [--markdown tune.md]
    var model = Arg("model", "text-orientation");
    var tuned = Tune.Run(Arg("models", "models"), model, int.Parse(Arg("images", "200"), CultureInfo.InvariantCulture), Arg("device", "cpu"),
        int.Parse(Arg("rounds", "5"), CultureInfo.InvariantCulture));
    var markdown = Tune.Markdown(tuned, $"{DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, model {model}, {Arg("device", "cpu")}, inference only");
    Console.WriteLine(markdown);
    await File.WriteAllTextAsync(Arg("markdown", "tune.md"), markdown);
    return 0;
}

if (args.Length == 0 || args[0] != "soak" || !arguments.ContainsKey("gateway"))
{
    Console.Error.WriteLine("usage: Classifier.LoadGenerator bench --gateway URL --models DIR [--requests 3000] [--concurrency 8] [--json F] [--markdown F]");
    Console.Error.WriteLine("       Classifier.LoadGenerator compare --gateway-a URL --gateway-b URL [--label-a A] [--label-b B] [--rounds 7] [--requests 3000] [--concurrency 8] [--markdown F]");
    Console.Error.WriteLine("       Classifier.LoadGenerator switch --gateway URL --metrics GATEWAY_METRICS_URL,SILO_METRICS_URL --settings FILE[,FILE...] [--rounds 40] [--requests 3000] [--concurrency 8] [--workloads all-hit,all-miss] [--aa true] [--markdown F] [--json F]");
    Console.Error.WriteLine("       Classifier.LoadGenerator measure --gateway URL [--requests 3000] [--concurrency 8]");
    Console.Error.WriteLine("       Classifier.LoadGenerator scale --gateways URL[,URL...] --gateway-metrics URL[,URL...] --silo-metrics URL[,URL...] [--model M] [--requests 6000] [--concurrency 32]");
    Console.Error.WriteLine("       Classifier.LoadGenerator protocols --gateway URL --grpc HOST:PORT --cpu-from GATEWAY_METRICS_URL,SILO_METRICS_URL [--model M] [--rounds 7] [--requests 2000] [--concurrency 8] [--markdown F]");
    Console.Error.WriteLine("       Classifier.LoadGenerator overload --gateway URL [--model text-orientation] [--clients 256] [--seconds 20] [--honour-retry-after true] [--metrics URL[,URL...]]");
    Console.Error.WriteLine("       Classifier.LoadGenerator tune --models DIR --model NAME [--images 200] [--rounds 5] [--device cpu|cuda] [--markdown F]");
    Console.Error.WriteLine("       Classifier.LoadGenerator soak --gateway URL --silo-metrics URL[,URL...] [--requests 20000] [--concurrency 8] [--unique 2000] [--bad-share 0.05] [--max-growth-mib 100]");
    return 2;
}

var options = new SoakOptions(
    Arg("gateway", ""),
    Arg("silo-metrics", "").Split(',', StringSplitOptions.RemoveEmptyEntries),
    int.Parse(Arg("requests", "20000"), CultureInfo.InvariantCulture),
    int.Parse(Arg("concurrency", "8"), CultureInfo.InvariantCulture),
    int.Parse(Arg("unique", "2000"), CultureInfo.InvariantCulture),
    double.Parse(Arg("bad-share", "0.05"), CultureInfo.InvariantCulture));
var maxGrowth = double.Parse(Arg("max-growth-mib", "100"), CultureInfo.InvariantCulture);

using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
var report = await Soak.RunAsync(options, http);
Console.WriteLine($"{DateTime.UtcNow:yyyy-MM-dd} soak: {report}");
Console.WriteLine($"largest RSS growth after warm-up: {report.MaxGrowthMiB:F0} MiB (margin {maxGrowth:F0} MiB)");
return report.UnexpectedStatuses == 0 && report.MaxGrowthMiB <= maxGrowth ? 0 : 1;
