using System.Globalization;
using System.Net.Http.Headers;

namespace Classifier.LoadGenerator;

/// <summary>
/// Switches a running cluster's <c>Metrics:Enabled</c> by rewriting the settings files its silo and gateway
/// watch (<c>appsettings.{environment}.json</c> beside each binary), and returns once both processes are seen
/// to follow: a probe request moves their request counters when recording is on and leaves them still when off.
/// Measuring on and off in the same processes takes away the differences between two processes (where the
/// scheduler put them, what the JIT made of them), which on a shared machine outweigh the effect sought.
/// </summary>
public sealed class LiveSwitch(HttpClient http, string gateway, string[] settingsFiles, string[] metricsUrls)
{
    private static readonly string[] RequestCounters = ["http_requests_total", "predictions_total"];

    private readonly byte[] _probe = Soak.Image(-1);

    public async Task SetAsync(bool enabled)
    {
        var json = $"{{\"Metrics\": {{\"Enabled\": {(enabled ? "true" : "false")}}}}}\n";
        foreach (var file in settingsFiles)
        {
            if (!File.Exists(file) || await File.ReadAllTextAsync(file) != json)
            {
                await File.WriteAllTextAsync(file, json);
            }
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var before = await CountsAsync();
            using (var content = new ByteArrayContent(_probe))
            {
                content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                using var response = await http.PostAsync(gateway + "/predict", content);
                response.EnsureSuccessStatusCode();
            }

            var after = await CountsAsync();
            if (before.Zip(after, (b, a) => a > b).All(moved => moved == enabled))
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Metrics:Enabled={(enabled ? "true" : "false")} was written to {string.Join(", ", settingsFiles)}, but after 30 s the request counters at " +
                    $"{string.Join(", ", metricsUrls)} still do not follow it (before {string.Join("/", before)}, after {string.Join("/", after)}); " +
                    "were the processes started with --environment naming those files?");
            }

            await Task.Delay(100);
        }
    }

    private async Task<double[]> CountsAsync()
    {
        var counts = new double[metricsUrls.Length];
        for (var i = 0; i < metricsUrls.Length; i++)
        {
            var text = await http.GetStringAsync(metricsUrls[i]);
            counts[i] = RequestCounters.Sum(name => Sum(text, name));
        }

        return counts;
    }

    /// <summary>The sum of every sample of metric <paramref name="name"/> (all its label sets) in a text exposition.</summary>
    public static double Sum(string exposition, string name)
    {
        var total = 0.0;
        foreach (var line in exposition.AsSpan().EnumerateLines())
        {
            if (line.StartsWith(name) && line.Length > name.Length && line[name.Length] is '{' or ' ')
            {
                var value = line[(line.LastIndexOf(' ') + 1)..];
                total += double.Parse(value, CultureInfo.InvariantCulture);
            }
        }

        return total;
    }
}
