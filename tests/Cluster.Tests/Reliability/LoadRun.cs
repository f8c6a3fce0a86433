using System.Collections.Concurrent;
using System.Diagnostics;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;

namespace Classifier.Tests.Reliability;

/// <summary>One request of a load run: when it finished, its status, the silo that answered, which image, how long it took.</summary>
public sealed record Outcome(TimeSpan At, int Status, string? Silo, int Image, double LatencyMs, string? Problem = null);

/// <summary>Steady traffic from a few concurrent clients over a fixed pool of images, recording every outcome.</summary>
public sealed class LoadRun(HttpClient http, string gatewayUrl, int images, int seed)
{
    private readonly byte[][] _images = Enumerable.Range(0, images).Select(i => TextImages.Numbered(seed + i)).ToArray();
    private readonly ConcurrentBag<Outcome> _outcomes = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public TimeSpan Elapsed => _clock.Elapsed;

    public List<Outcome> Outcomes => [.. _outcomes.OrderBy(o => o.At)];

    /// <summary>Runs <paramref name="clients"/> clients until <paramref name="stop"/> is cancelled.</summary>
    public Task RunAsync(int clients, CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, clients).Select(id => Task.Run(() => ClientAsync(id, stop), CancellationToken.None)));

    private async Task ClientAsync(int id, CancellationToken stop)
    {
        var random = new Random(id);
        while (!stop.IsCancellationRequested)
        {
            var image = random.Next(_images.Length);
            var sent = _clock.Elapsed;
            try
            {
                using var response = await http.PostAsync(gatewayUrl + "/predict", HttpHelpers.Raw(_images[image], "image/png"), CancellationToken.None);
                var body = await response.JsonAsync();
                var silo = response.IsSuccessStatusCode ? body.GetProperty("silo").GetString() : null;
                var problem = response.IsSuccessStatusCode ? null : body.GetProperty("detail").GetString();
                _outcomes.Add(new Outcome(_clock.Elapsed, (int)response.StatusCode, silo, image, (_clock.Elapsed - sent).TotalMilliseconds, problem));
            }
            catch (HttpRequestException)
            {
                _outcomes.Add(new Outcome(_clock.Elapsed, 599, null, image, (_clock.Elapsed - sent).TotalMilliseconds));
            }

            await Task.Delay(20, CancellationToken.None);
        }
    }

    public static double Percentile(IEnumerable<Outcome> outcomes, double p)
    {
        var sorted = outcomes.Select(o => o.LatencyMs).Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];
    }
}
