using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Models;
using Microsoft.ML.OnnxRuntime;

namespace Classifier.LoadGenerator;

/// <summary>One measured figure: a workload through the cluster, or the in-process baseline.</summary>
public sealed record BenchResult(string Name, int Requests, double Seconds, double Throughput, double P50Ms, double P95Ms, double P99Ms, int Errors, double HitRate)
{
    public double? RatioToBatch1 { get; init; }

    public double? RatioToBestBatch { get; init; }

    /// <summary>This cluster run's throughput over the one-process server's on the same workload in the same run.</summary>
    public double? RatioToOneProcess { get; init; }

    /// <summary>CPU milliseconds per request spent by the gateway process, the silo process, and this process (the client, or the baseline itself).</summary>
    public double? GatewayCpuMs { get; init; }

    public double? SiloCpuMs { get; init; }

    public double? ClientCpuMs { get; init; }
}

/// <summary>
/// Drives the gateway with all-miss, all-hit and Zipf workloads, and measures in the same run the same
/// model with the same preprocessing called directly through ONNX Runtime, so every cluster figure is
/// also a ratio to that baseline (the machine is shared and noisy; absolute numbers drift, ratios less).
/// </summary>
public static class Bench
{
    /// <param name="cpuFrom">The gateway's and the silo's <c>/metrics</c> URLs, to account CPU per request to each process; null to skip.</param>
    /// <param name="grpcAddress">The gateway's gRPC address (host:port), to run the all-miss workload over gRPC too; null to skip.</param>
    /// <param name="oneProcessUrl">The one-process server (tools/OneProcessServer), to run the same workloads against as a second baseline; null to skip.</param>
    public static async Task<List<BenchResult>> RunAsync(string gatewayUrl, string modelRepository, string model, int requests, int concurrency, HttpClient http, string device = "cpu", (string Gateway, string Silo)? cpuFrom = null, bool baselineFirst = true, bool warmUp = true, string? grpcAddress = null, string? oneProcessUrl = null)
    {
        var results = await RunClusterAsync(gatewayUrl, modelRepository, model, requests, concurrency, http, device, cpuFrom, baselineFirst, warmUp, grpcAddress);
        if (oneProcessUrl is null)
        {
            return results;
        }

        // The same workloads through the original's one-process design, warmed the same way, after the cluster's.
        var seed = Random.Shared.Next(1 << 20) * 4096;
        var url = $"{oneProcessUrl}/predict";
        await WarmUpAsync(http, url, concurrency, seed + 30_000, Math.Min(1000, requests));
        var misses = Enumerable.Range(0, requests).Select(i => Soak.Image(seed + i)).ToArray();
        var hot = Enumerable.Range(0, 64).Select(i => Soak.Image(seed + requests + i)).ToArray();
        var zipfPool = Enumerable.Range(0, 1000).Select(i => Soak.Image(seed + requests + 64 + i)).ToArray();
        var zipf = new Zipf(zipfPool.Length, 1.1, new Random(7));
        var picks = Enumerable.Range(0, requests).Select(_ => zipf.Next()).ToArray();
        var one = new List<BenchResult>
        {
            await DriveAsync(http, url, "one-process all-miss", requests, concurrency, i => misses[i]),
        };
        await DriveAsync(http, url, "warm-up", hot.Length, concurrency, i => hot[i]);
        one.Add(await DriveAsync(http, url, "one-process all-hit", requests, concurrency, i => hot[i % hot.Length]));
        one.Add(await DriveAsync(http, url, "one-process all-hit, 1 client", Math.Min(requests, 2000), 1, i => hot[i % hot.Length]));
        one.Add(await DriveAsync(http, url, "one-process Zipf(1.1) over 1000", requests, concurrency, i => zipfPool[picks[i]]));
        var batch1 = results.First(r => !r.Name.StartsWith("cluster", StringComparison.Ordinal)).Throughput;
        one = one.Select(r => r with { RatioToBatch1 = r.Throughput / batch1 }).ToList();

        // Each cluster row against the one-process row of its workload ("all-miss, after the others" and the protocols' against all-miss).
        BenchResult? Match(string name) => one.FirstOrDefault(o => name == "cluster" + o.Name["one-process".Length..])
            ?? (name.StartsWith("cluster all-miss", StringComparison.Ordinal) ? one[0] : null);
        return [.. results.Select(r => r.Name.StartsWith("cluster", StringComparison.Ordinal) && Match(r.Name) is { } o ? r with { RatioToOneProcess = r.Throughput / o.Throughput } : r), .. one];
    }

    private static async Task<List<BenchResult>> RunClusterAsync(string gatewayUrl, string modelRepository, string model, int requests, int concurrency, HttpClient http, string device, (string Gateway, string Silo)? cpuFrom, bool baselineFirst, bool warmUp, string? grpcAddress)
    {
        var results = new List<BenchResult>();
        var baseline = baselineFirst ? Baseline(modelRepository, model, Math.Min(requests, 2000), concurrency, device) : [];

        var seed = Random.Shared.Next(1 << 20) * 4096; // fresh images every run: misses are real misses
        gatewayUrl = $"{gatewayUrl}/predict?model={Uri.EscapeDataString(model)}";
        var missImages = Enumerable.Range(0, requests).Select(i => Soak.Image(seed + i)).ToArray();
        if (warmUp)
        {
            await WarmUpAsync(http, gatewayUrl, concurrency, seed + 30_000, Math.Min(1000, requests));
        }
        async Task<BenchResult> Accounted(Task<BenchResult> drive, (double Gateway, double Silo, TimeSpan Client) before)
        {
            var result = await drive;
            if (cpuFrom is not { } urls)
            {
                return result;
            }

            var after = await CpuAsync(http, urls);
            return result with
            {
                GatewayCpuMs = (after.Gateway - before.Gateway) * 1000 / result.Requests,
                SiloCpuMs = (after.Silo - before.Silo) * 1000 / result.Requests,
                ClientCpuMs = (after.Client - before.Client).TotalMilliseconds / result.Requests,
            };
        }

        async Task<(double, double, TimeSpan)> Before() => cpuFrom is { } urls ? await CpuAsync(http, urls) : default;

        results.Add(await Accounted(DriveAsync(http, gatewayUrl, "cluster all-miss", requests, concurrency, i => missImages[i]), await Before()));

        var hot = Enumerable.Range(0, 64).Select(i => Soak.Image(seed + requests + i)).ToArray();
        await DriveAsync(http, gatewayUrl, "warm-up", hot.Length, concurrency, i => hot[i]);
        results.Add(await Accounted(DriveAsync(http, gatewayUrl, "cluster all-hit", requests, concurrency, i => hot[i % hot.Length]), await Before()));
        results.Add(await Accounted(DriveAsync(http, gatewayUrl, "cluster all-hit, 1 client", Math.Min(requests, 2000), 1, i => hot[i % hot.Length]), await Before()));

        var zipfPool = Enumerable.Range(0, 1000).Select(i => Soak.Image(seed + requests + 64 + i)).ToArray();
        var zipf = new Zipf(zipfPool.Length, 1.1, new Random(7));
        var picks = Enumerable.Range(0, requests).Select(_ => zipf.Next()).ToArray();
        results.Add(await Accounted(DriveAsync(http, gatewayUrl, "cluster Zipf(1.1) over 1000", requests, concurrency, i => zipfPool[picks[i]]), await Before()));

        // All-miss again, now that every path has run many thousands of times: the figure to compare with the baseline.
        var moreMisses = Enumerable.Range(0, requests).Select(i => Soak.Image(seed + 20_000 + i)).ToArray();
        results.Add(await Accounted(DriveAsync(http, gatewayUrl, "cluster all-miss, after the others", requests, concurrency, i => moreMisses[i]), await Before()));

        // The same all-miss workload through the Open Inference Protocol's REST infer (binary data extension), right after.
        var inferUrl = $"{gatewayUrl[..gatewayUrl.IndexOf("/predict", StringComparison.Ordinal)]}/v2/models/{Uri.EscapeDataString(model)}/infer";
        var oipMisses = Enumerable.Range(0, requests).Select(i => Soak.Image(seed + 40_000 + i)).ToArray();
        await Steady.UntilSteadyAsync( // its own code paths warmed as /predict's were, so neither is measured cold
            async pass => (await DriveAsync(http, inferUrl, "warm-up", Math.Min(1000, requests), concurrency, i => Soak.Image(seed + 60_000 + pass * 1000 + i), oip: true)).Throughput,
            maxPasses: 6);
        results.Add(await Accounted(DriveAsync(http, inferUrl, "cluster all-miss, Open Inference Protocol REST", requests, concurrency, i => oipMisses[i], oip: true), await Before()));

        if (grpcAddress is not null)
        {
            var grpcMisses = Enumerable.Range(0, requests).Select(i => Soak.Image(seed + 80_000 + i)).ToArray();
            using var grpc = new GrpcClients(grpcAddress, concurrency);
            await Steady.UntilSteadyAsync(
                async pass => (await DriveGrpcAsync(grpc, model, "warm-up", Math.Min(1000, requests), i => Soak.Image(seed + 100_000 + pass * 1000 + i))).Throughput,
                maxPasses: 6);
            results.Add(await Accounted(DriveGrpcAsync(grpc, model, "cluster all-miss, Open Inference Protocol gRPC", requests, i => grpcMisses[i]), await Before()));
        }

        if (!baselineFirst)
        {
            baseline = Baseline(modelRepository, model, Math.Min(requests, 2000), concurrency, device);
        }

        results.InsertRange(0, baseline);
        var batch1 = baseline[0].Throughput;
        var best = baseline.Max(b => b.Throughput);
        return results.Select(r => r.Name.StartsWith("cluster", StringComparison.Ordinal)
            ? r with { RatioToBatch1 = r.Throughput / batch1, RatioToBestBatch = r.Throughput / best }
            : r).ToList();
    }

    /// <summary>
    /// Brings a freshly started cluster to steady state before anything is measured. A cold .NET process
    /// runs its hot paths as unoptimised tier-0 code until tiered compilation catches up, which under
    /// continuous load took thousands of requests here: all-miss ran at 0.4x of its later speed after 500
    /// misses of warm-up. So passes of misses, then of hits, each until two passes agree within 10 %.
    /// </summary>
    internal static async Task WarmUpAsync(HttpClient http, string predictUrl, int concurrency, int seed, int missesPerPass = 1000)
    {
        await Steady.UntilSteadyAsync(
            async pass => (await DriveAsync(http, predictUrl, "warm-up", missesPerPass, concurrency, i => Soak.Image(seed + pass * missesPerPass + i))).Throughput,
            maxPasses: 8);
        var hot = Enumerable.Range(0, 64).Select(i => Soak.Image(seed - 64 + i)).ToArray();
        await Steady.UntilSteadyAsync(
            async _ => (await DriveAsync(http, predictUrl, "warm-up", 3000, concurrency, i => hot[i % hot.Length])).Throughput,
            maxPasses: 12);
    }

    /// <param name="predictUrl">The gateway's <c>/predict</c> URL, with its query; with <paramref name="oip"/>, its <c>/v2/models/{m}/infer</c> URL.</param>
    /// <param name="oip">Send each image as an Open Inference Protocol request (BYTES input, binary data extension).</param>
    /// <param name="urlFor">Where request i goes, when not all to <paramref name="predictUrl"/> (several gateways, in turn).</param>
    internal static async Task<BenchResult> DriveAsync(HttpClient http, string predictUrl, string name, int requests, int concurrency, Func<int, byte[]> image, bool oip = false, Func<int, string>? urlFor = null)
    {
        var latencies = new ConcurrentBag<double>();
        var errors = 0;
        var hits = 0;
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                using var content = oip ? OipContent(image(i)) : new ByteArrayContent(image(i));
                content.Headers.ContentType = new MediaTypeHeaderValue(oip ? "application/octet-stream" : "image/png");
                var sent = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await http.PostAsync(urlFor?.Invoke(i) ?? predictUrl, content);
                    var body = await response.Content.ReadAsByteArrayAsync();
                    latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref errors);
                    }
                    else if (!oip && JsonDocument.Parse(body).RootElement.GetProperty("cached").GetBoolean())
                    {
                        Interlocked.Increment(ref hits);
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    // A refused connection or a request past the client's timeout: an error, not the end of the run.
                    Interlocked.Increment(ref errors);
                }
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        // Progress on stderr, so a run stopped part-way (a time limit on a borrowed machine) still says how far it got.
        Console.Error.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {name}: {requests} requests in {seconds:F1} s ({requests / seconds:F0}/s), {errors} errors");
        var sorted = latencies.Order().ToList();
        return new BenchResult(name, requests, seconds, requests / seconds, Q(sorted, 0.5), Q(sorted, 0.95), Q(sorted, 0.99), errors, (double)hits / requests);
    }

    /// <summary>One gRPC client per concurrent caller, each on its own HTTP/2 connection as the REST drive's callers each have theirs.</summary>
    internal sealed class GrpcClients : IDisposable
    {
        private readonly Grpc.Net.Client.GrpcChannel[] channels;

        public GrpcClients(string address, int concurrency)
        {
            channels = Enumerable.Range(0, concurrency)
                .Select(_ => Grpc.Net.Client.GrpcChannel.ForAddress($"http://{address}", new Grpc.Net.Client.GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20, MaxSendMessageSize = 64 << 20 }))
                .ToArray();
            Clients = channels.Select(c => new Classifier.Gateway.Grpc.GRPCInferenceService.GRPCInferenceServiceClient(c)).ToArray();
        }

        public Classifier.Gateway.Grpc.GRPCInferenceService.GRPCInferenceServiceClient[] Clients { get; }

        public void Dispose()
        {
            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }
    }

    /// <summary>Sends each image as a gRPC ModelInfer (BYTES input in raw_input_contents), one caller per client.</summary>
    internal static async Task<BenchResult> DriveGrpcAsync(GrpcClients grpc, string model, string name, int requests, Func<int, byte[]> image)
    {
        var latencies = new ConcurrentBag<double>();
        var errors = 0;
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(grpc.Clients.Select(async client =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                var bytes = image(i);
                var raw = new byte[bytes.Length + 4];
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(raw, bytes.Length);
                bytes.CopyTo(raw, 4);
                var request = new Classifier.Gateway.Grpc.ModelInferRequest
                {
                    ModelName = model,
                    Inputs = { new Classifier.Gateway.Grpc.ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "BYTES", Shape = { 1 } } },
                    RawInputContents = { Google.Protobuf.UnsafeByteOperations.UnsafeWrap(raw) },
                };
                var sent = Stopwatch.GetTimestamp();
                try
                {
                    await client.ModelInferAsync(request, deadline: DateTime.UtcNow.AddSeconds(60));
                }
                catch (Grpc.Core.RpcException)
                {
                    Interlocked.Increment(ref errors);
                }

                latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {name}: {requests} requests in {seconds:F1} s ({requests / seconds:F0}/s), {errors} errors");
        var sorted = latencies.Order().ToList();
        return new BenchResult(name, requests, seconds, requests / seconds, Q(sorted, 0.5), Q(sorted, 0.95), Q(sorted, 0.99), errors, 0);
    }

    /// <summary>One image as an Open Inference Protocol infer request: the JSON header, then the image as a length-prefixed BYTES element.</summary>
    private static ByteArrayContent OipContent(byte[] image)
    {
        var header = System.Text.Encoding.UTF8.GetBytes(
            $$$"""{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": {{{image.Length + 4}}}}}]}""");
        var body = new byte[header.Length + 4 + image.Length];
        header.CopyTo(body, 0);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(header.Length), image.Length);
        image.CopyTo(body, header.Length + 4);
        var content = new ByteArrayContent(body);
        content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return content;
    }

    /// <summary>The same preprocessing and model, in this process: batch 1 with one thread per core, then larger batches.</summary>
    /// <summary>
    /// The first all-miss run a freshly started cluster serves, against the in-process batch-1 baseline measured just
    /// before it (while the cluster waits, as a new pod waits for traffic): how far a cold cluster is from full speed.
    /// </summary>
    /// <summary>Requests the client's own path runs on loopback before a cold measurement (<see cref="ClientWarmUp"/>).</summary>
    private const int ClientWarmUpRequests = 3000;

    public static async Task<(BenchResult Baseline, BenchResult Cluster)> ColdAsync(HttpClient http, string gatewayUrl, string modelRepository, string model, int requests, int concurrency, string device, (string Gateway, string Silo)? cpuFrom = null)
    {
        var baseline = Baseline(modelRepository, model, Math.Min(requests, 2000), concurrency, device, batches: [1])[0];
        var seed = Random.Shared.Next(1 << 20) * 4096;
        var misses = Enumerable.Range(0, requests).Select(i => Soak.Image(seed + i)).ToArray();
        await ClientWarmUp.RunAsync(http, ClientWarmUpRequests, concurrency, i => misses[i % Math.Min(misses.Length, 200)]);
        // In sixths, to show how throughput climbs as the processes warm up.
        var url = $"{gatewayUrl}/predict?model={Uri.EscapeDataString(model)}";
        var part = Math.Max(1, requests / 6);
        var parts = new List<BenchResult>();
        var cpu = new List<string>();
        for (var start = 0; start < requests; start += part)
        {
            var offset = start;
            var before = cpuFrom is { } urls ? await CpuAsync(http, urls) : default;
            parts.Add(await DriveAsync(http, url, "cluster first all-miss", Math.Min(part, requests - start), concurrency, i => misses[offset + i]));
            if (cpuFrom is { } after)
            {
                var now = await CpuAsync(http, after);
                var n = parts[^1].Requests;
                cpu.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{(now.Gateway - before.Gateway) * 1000 / n:F2}/{(now.Silo - before.Silo) * 1000 / n:F2}"));
            }
        }

        if (cpu.Count > 0)
        {
            Console.Error.WriteLine($"first all-miss by sixths, CPU ms/img gateway/silo: {string.Join(", ", cpu)}");
        }

        var seconds = parts.Sum(p => p.Seconds);
        var first = new BenchResult("cluster first all-miss", requests, seconds, requests / seconds, Median(parts, p => p.P50Ms), parts.Max(p => p.P95Ms), parts.Max(p => p.P99Ms), parts.Sum(p => p.Errors), 0)
        {
            RatioToBatch1 = requests / seconds / baseline.Throughput,
        };
        Console.Error.WriteLine($"first all-miss by sixths, x baseline: {string.Join(", ", parts.Select(p => (p.Throughput / baseline.Throughput).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}");
        return (baseline, first);
    }

    private static double Median(List<BenchResult> parts, Func<BenchResult, double> value) => Steady.Median(parts.Select(value));

    private static List<BenchResult> Baseline(string modelRepository, string model, int images, int concurrency, string device, int[]? batches = null)
    {
        var version = ModelRepository.Load(modelRepository).Where(v => v.Model.Name == model).MaxBy(v => int.Parse(v.Version, System.Globalization.CultureInfo.InvariantCulture))
            ?? throw new InvalidOperationException($"model {model} not in {modelRepository}");
        var definition = version.Model;
        var preprocessor = new ImagePreprocessor(definition, new ImageOptions());
        var threads = Math.Min(concurrency, Environment.ProcessorCount);
        var inputs = Enumerable.Range(0, images).Select(i => Soak.Image(1_000_000 + i)).ToArray();
        var results = new List<BenchResult>();
        foreach (var batch in batches ?? [1, 4, 8, 16])
        {
            // The silo's session settings: batch 1 runs one per core, each with its share of the cores.
            var intraOp = ModelBackend.IntraOpThreads(0, batch == 1 ? threads : 1, Environment.ProcessorCount);
            using var options = new Microsoft.ML.OnnxRuntime.SessionOptions
            {
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
                IntraOpNumThreads = intraOp,
            };
            if (device == "cuda")
            {
                options.AppendExecutionProvider_CUDA(0);
            }

            using var session = new InferenceSession(version.ModelPath, options);
            using var runOptions = new RunOptions();
            if (batch > 1 && session.InputMetadata[definition.InputName].Dimensions[0] > 0)
            {
                break; // the file fixes the batch dimension
            }

            // Warm-up to steady state, as the cluster gets: passes until two agree within 10 %.
            Steady.UntilSteadyAsync(_ => Task.FromResult(Measure(session, runOptions, batch, Math.Min(inputs.Length, 500)).Throughput), maxPasses: 8)
                .GetAwaiter().GetResult();

            var (seconds, throughput, cpu, sorted) = Measure(session, runOptions, batch, inputs.Length);
            var name = batch == 1 ? $"baseline ORT {device} in-process, batch 1, {threads} callers x {intraOp} threads" : $"baseline ORT {device} in-process, batch {batch}, 1 caller x {intraOp} threads";
            results.Add(new BenchResult(name, inputs.Length, seconds, throughput, Q(sorted, 0.5), Q(sorted, 0.95), Q(sorted, 0.99), 0, 0)
            {
                ClientCpuMs = cpu.TotalMilliseconds / inputs.Length,
            });
            Console.Error.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {name}: {throughput:F0}/s");
        }

        return results;

        // Preprocesses and runs the first `count` inputs, `batch` at a time: batch 1 from one caller per core, larger batches from one caller with the batch preprocessed in parallel.
        (double Seconds, double Throughput, TimeSpan Cpu, List<double> Sorted) Measure(InferenceSession session, RunOptions runOptions, int batch, int count)
        {
            var latencies = new ConcurrentBag<double>();
            var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var next = -batch;
            var clock = Stopwatch.StartNew();
            Parallel.For(0, batch == 1 ? threads : 1, _ =>
            {
                var tensor = new float[definition.TensorLength * batch];
                int start;
                while ((start = Interlocked.Add(ref next, batch)) < count)
                {
                    var n = Math.Min(batch, count - start);
                    var sent = Stopwatch.GetTimestamp();
                    // A batch's images are preprocessed on every core, as the silo's requests are.
                    var first = start;
                    Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = threads }, j =>
                        preprocessor.Preprocess(inputs[first + j], tensor.AsSpan(j * definition.TensorLength, definition.TensorLength)));

                    using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(tensor, 0, n * definition.TensorLength), definition.TensorShape(n));
                    using var output = session.Run(runOptions, [definition.InputName], [input], [definition.OutputName]);
                    latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds / n);
                }
            });
            var seconds = clock.Elapsed.TotalSeconds;
            return (seconds, count / seconds, Process.GetCurrentProcess().TotalProcessorTime - cpuBefore, latencies.Order().ToList());
        }
    }

    /// <summary>CPU seconds so far of the gateway and silo processes (their <c>process_cpu_seconds_total</c>) and of this one.</summary>
    internal static async Task<(double Gateway, double Silo, TimeSpan Client)> CpuAsync(HttpClient http, (string Gateway, string Silo) urls)
    {
        var gateway = await ProcessCpuSecondsAsync(http, urls.Gateway);
        var silo = await ProcessCpuSecondsAsync(http, urls.Silo);
        return (gateway, silo, Process.GetCurrentProcess().TotalProcessorTime);
    }

    /// <summary>A process's <c>process_cpu_seconds_total</c>, read from its <c>/metrics</c>.</summary>
    internal static async Task<double> ProcessCpuSecondsAsync(HttpClient http, string metricsUrl) => double.Parse(
        (await http.GetStringAsync(metricsUrl)).Split('\n').First(l => l.StartsWith("process_cpu_seconds_total ", StringComparison.Ordinal)).Split(' ')[1],
        System.Globalization.CultureInfo.InvariantCulture);

    private static double Q(List<double> sorted, double q) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)(q * sorted.Count))];

    public static string Markdown(IEnumerable<BenchResult> results, string title)
    {
        var text = new StringBuilder()
            .AppendLine($"### {title}")
            .AppendLine()
            .AppendLine("| run | requests | img/s | p50 ms | p95 ms | p99 ms | errors | hit rate | x batch-1 baseline | x best baseline | x one-process | CPU ms/img: gateway | silo | client or baseline |")
            .AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            text.AppendLine(System.FormattableString.Invariant(
                $"| {r.Name} | {r.Requests} | {r.Throughput:F0} | {r.P50Ms:F2} | {r.P95Ms:F2} | {r.P99Ms:F2} | {r.Errors} | {r.HitRate:P0} | {(r.RatioToBatch1 is { } a ? $"{a:F2}" : "")} | {(r.RatioToBestBatch is { } b ? $"{b:F2}" : "")} | {(r.RatioToOneProcess is { } o ? $"{o:F2}" : "")} | {Ms(r.GatewayCpuMs)} | {Ms(r.SiloCpuMs)} | {Ms(r.ClientCpuMs)} |"));
        }

        return text.ToString();
    }

    private static string Ms(double? value) => value is { } v ? v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture) : "";

    /// <summary>Zipf-distributed indexes 0..n-1 (0 the most frequent), by inverse transform over the cumulative weights.</summary>
    internal sealed class Zipf(int n, double s, Random random)
    {
        private readonly double[] _cumulative = Cumulative(n, s);

        private static double[] Cumulative(int n, double s)
        {
            var weights = Enumerable.Range(1, n).Select(k => 1 / Math.Pow(k, s)).ToArray();
            var total = weights.Sum();
            var running = 0.0;
            return weights.Select(w => running += w / total).ToArray();
        }

        public int Next()
        {
            var index = Array.BinarySearch(_cumulative, random.NextDouble());
            return Math.Min(n - 1, index < 0 ? ~index : index);
        }
    }
}
