using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;

namespace Classifier.LoadGenerator;

/// <summary>What an overload run is asked to do.</summary>
/// <param name="Clients">Closed-loop clients, each sending a new (never cached) image when it has its answer.</param>
/// <param name="HonourRetryAfter">Whether a refused client waits its <c>Retry-After</c> before sending again, as well-behaved clients do.</param>
/// <param name="MetricsUrls">/metrics URLs (silos, gateway) whose resident memory is sampled every second.</param>
public sealed record OverloadOptions(string GatewayUrl, string Model, int Clients, TimeSpan Duration, bool HonourRetryAfter, string[] MetricsUrls);

/// <summary>
/// More clients than the model can serve, every request a cache miss: how fast the excess is refused, how long the
/// admitted wait, whether anything else fails, and whether memory stays flat. First measures the service time (one
/// client alone), so the admitted latency can be read against queue timeout + service time.
/// </summary>
public static partial class Overload
{
    public static async Task<string> RunAsync(OverloadOptions options, HttpClient http)
    {
        var url = $"{options.GatewayUrl}/predict?model={options.Model}";
        var image = Random.Shared.Next(1 << 20) * 8; // fresh images each run (Soak.Image is distinct over 2^24 indexes)

        // Service time: one client alone, after a short warm-up.
        var alone = new List<double>();
        for (var i = 0; i < 40; i++)
        {
            var (status, _, ms) = await SendAsync(http, url, Soak.Image(Interlocked.Increment(ref image)));
            if (status == HttpStatusCode.OK && i >= 10)
            {
                alone.Add(ms);
            }
        }

        var served = new ConcurrentBag<double>();
        var refused = new ConcurrentBag<double>();
        var others = new ConcurrentDictionary<int, int>();
        var memory = options.MetricsUrls.ToDictionary(u => u, _ => new List<double>());
        using var stop = new CancellationTokenSource(options.Duration);
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (var metrics in options.MetricsUrls)
                {
                    memory[metrics].Add(await RssMiBAsync(http, metrics));
                }

                await Task.Delay(1000, CancellationToken.None);
            }
        });

        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, options.Clients).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (status, retryAfter, ms) = await SendAsync(http, url, Soak.Image(Interlocked.Increment(ref image)));
                if (status == HttpStatusCode.OK)
                {
                    served.Add(ms);
                }
                else if (status == HttpStatusCode.TooManyRequests && retryAfter is { } wait)
                {
                    refused.Add(ms);
                    if (options.HonourRetryAfter)
                    {
                        await Task.Delay(wait, CancellationToken.None);
                    }
                }
                else
                {
                    others.AddOrUpdate((int)status, 1, (_, n) => n + 1);
                }
            }
        })));
        var seconds = clock.Elapsed.TotalSeconds;
        await sampler;

        var ok = served.Order().ToArray();
        var no = refused.Order().ToArray();
        var service = alone.Order().ToArray();
        var lines = new List<string>
        {
            $"{options.Clients} closed-loop clients for {seconds:F0} s, every image a miss, {(options.HonourRetryAfter ? "refused clients wait Retry-After" : "refused clients send again at once")}:",
            $"  service time alone: p50 {P(service, 0.5):F1} ms, p99 {P(service, 0.99):F1} ms",
            $"  200: {ok.Length} ({ok.Length / seconds:F0}/s), p50 {P(ok, 0.5):F0} ms, p99 {P(ok, 0.99):F0} ms, max {P(ok, 1):F0} ms",
            $"  429 with Retry-After: {no.Length}, p50 {P(no, 0.5):F1} ms, p99 {P(no, 0.99):F1} ms, max {P(no, 1):F1} ms",
            $"  anything else: {(others.IsEmpty ? "none" : string.Join(", ", others.OrderBy(o => o.Key).Select(o => $"{o.Key} x{o.Value}")))}",
        };
        lines.AddRange(memory.Select(m => m.Value.Count == 0 ? $"  {m.Key}: no samples"
            : $"  {m.Key}: RSS first {m.Value[0]:F0} MiB, max {m.Value.Max():F0} MiB, last {m.Value[^1]:F0} MiB ({m.Value.Count} samples)"));
        return string.Join("\n", lines);
    }

    private static async Task<(HttpStatusCode Status, TimeSpan? RetryAfter, double Ms)> SendAsync(HttpClient http, string url, byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        var sent = Stopwatch.GetTimestamp();
        try
        {
            using var response = await http.PostAsync(url, content);
            await response.Content.ReadAsByteArrayAsync();
            return (response.StatusCode, response.Headers.RetryAfter?.Delta, Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
        }
        catch (HttpRequestException)
        {
            return ((HttpStatusCode)599, null, Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
        }
    }

    private static double P(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

    private static async Task<double> RssMiBAsync(HttpClient http, string metricsUrl)
    {
        var text = await http.GetStringAsync(metricsUrl);
        return double.Parse(RssLine().Match(text).Groups[1].Value, CultureInfo.InvariantCulture) / 1048576;
    }

    /// <summary>The silo's own RSS gauge, or prometheus-net's working set (the gateway).</summary>
    [GeneratedRegex(@"^(?:process_memory_bytes\{type=""rss""\}|process_working_set_bytes) (\S+)$", RegexOptions.Multiline)]
    private static partial Regex RssLine();
}
