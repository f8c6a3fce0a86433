using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Classifier.LoadGenerator;

/// <summary>What a soak run is asked to do.</summary>
/// <param name="GatewayUrl">The gateway's base URL.</param>
/// <param name="SiloMetricsUrls">Silo /metrics URLs whose RSS is sampled.</param>
/// <param name="Requests">Requests in all.</param>
/// <param name="Concurrency">Clients sending at once.</param>
/// <param name="UniqueImages">Distinct valid images; repeats of them become cache hits once each has been seen.</param>
/// <param name="BadShare">Share of requests that carry undecodable bytes (answered 400).</param>
/// <param name="WarmupShare">Share of the run after which the RSS baseline is taken.</param>
public sealed record SoakOptions(
    string GatewayUrl,
    string[] SiloMetricsUrls,
    int Requests = 20_000,
    int Concurrency = 8,
    int UniqueImages = 2_000,
    double BadShare = 0.05,
    double WarmupShare = 0.2);

/// <summary>What a soak run saw.</summary>
public sealed record SoakReport(
    int Requests,
    IReadOnlyDictionary<int, int> Statuses,
    int UnexpectedStatuses,
    double Seconds,
    double P50Ms,
    double P99Ms,
    IReadOnlyList<(string Silo, double WarmMiB, double PeakAfterWarmMiB, double EndMiB)> Memory)
{
    public double MaxGrowthMiB => Memory.Count == 0 ? 0 : Memory.Max(m => m.PeakAfterWarmMiB - m.WarmMiB);

    public override string ToString() =>
        $"{Requests} requests in {Seconds:F1} s ({Requests / Seconds:F0}/s), p50 {P50Ms:F1} ms, p99 {P99Ms:F1} ms; statuses " +
        string.Join(", ", Statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}")) + $"; unexpected: {UnexpectedStatuses}\n" +
        string.Join("\n", Memory.Select(m => $"  {m.Silo}: RSS {m.WarmMiB:F0} MiB after warm-up, peak {m.PeakAfterWarmMiB:F0} MiB, end {m.EndMiB:F0} MiB"));
}

/// <summary>A bounded run of mixed hits, misses and bad input, sampling silo memory as it goes.</summary>
public static partial class Soak
{
    public static async Task<SoakReport> RunAsync(SoakOptions options, HttpClient http, CancellationToken cancellationToken = default)
    {
        var images = Enumerable.Range(0, options.UniqueImages).Select(Image).ToArray();
        var statuses = new ConcurrentDictionary<int, int>();
        var latencies = new ConcurrentBag<double>();
        var unexpected = 0;
        var next = -1;
        var memory = options.SiloMetricsUrls.ToDictionary(u => u, _ => new List<double>());
        var warmAt = (int)(options.Requests * options.WarmupShare);
        var sampleEvery = Math.Max(1, options.Requests / 50);
        var clock = Stopwatch.StartNew();

        async Task Client(int id)
        {
            var random = new Random(id);
            int i;
            while ((i = Interlocked.Increment(ref next)) < options.Requests && !cancellationToken.IsCancellationRequested)
            {
                var bad = random.NextDouble() < options.BadShare;
                var body = bad ? BitConverter.GetBytes(random.NextInt64()) : images[random.Next(images.Length)];
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                var sent = Stopwatch.GetTimestamp();
                int status;
                try
                {
                    using var response = await http.PostAsync(options.GatewayUrl + "/predict", content, cancellationToken);
                    status = (int)response.StatusCode;
                }
                catch (HttpRequestException)
                {
                    status = 599;
                }

                latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                if (status != (bad ? 400 : 200))
                {
                    Interlocked.Increment(ref unexpected);
                }

                if (i % sampleEvery == 0 || i == warmAt)
                {
                    foreach (var url in options.SiloMetricsUrls)
                    {
                        var rss = await RssMiBAsync(http, url, cancellationToken);
                        lock (memory)
                        {
                            memory[url].Add(i >= warmAt ? rss : double.NaN);
                        }
                    }
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(Client));
        var seconds = clock.Elapsed.TotalSeconds;
        var report = new List<(string, double, double, double)>();
        foreach (var url in options.SiloMetricsUrls)
        {
            var afterWarm = memory[url].Where(v => !double.IsNaN(v)).ToList();
            var end = await RssMiBAsync(http, url, cancellationToken);
            afterWarm.Add(end);
            report.Add((url, afterWarm[0], afterWarm.Max(), end));
        }

        var sorted = latencies.Order().ToList();
        return new SoakReport(options.Requests, new Dictionary<int, int>(statuses), unexpected, seconds,
            sorted[sorted.Count / 2], sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * 0.99))], report);
    }

    private static async Task<double> RssMiBAsync(HttpClient http, string metricsUrl, CancellationToken cancellationToken)
    {
        var text = await http.GetStringAsync(metricsUrl, cancellationToken);
        var value = RssLine().Match(text).Groups[1].Value;
        return double.Parse(value, CultureInfo.InvariantCulture) / 1048576;
    }

    /// <summary>A distinct 96x48 PNG per index (a pattern, not text: the soak measures the system, not the model).</summary>
    public static byte[] Image(int index)
    {
        using var image = new Image<Rgb24>(96, 48);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    // Distinct for 2^24 consecutive indexes: the third channel carries the index's high byte too.
                    row[x] = new Rgb24((byte)(x * 3 + index), (byte)(y * 5 + (index >> 8)), (byte)(x ^ y ^ index ^ (index >> 16)));
                }
            }
        });
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    [GeneratedRegex(@"^process_memory_bytes\{type=""rss""\} (\S+)$", RegexOptions.Multiline)]
    private static partial Regex RssLine();
}
