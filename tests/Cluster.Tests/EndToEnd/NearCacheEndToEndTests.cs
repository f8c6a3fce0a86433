using System.Text.RegularExpressions;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.EndToEnd;

/// <summary>The gateway's near cache (issue 17) against the real gateway and silo processes: hits answered there still count as their shard's.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class NearCacheEndToEndTests(ProcessClusterFixture cluster)
{
    private static double Value(string text, string series) =>
        Regex.Matches(text, $@"^{Regex.Escape(series)} (\S+)$", RegexOptions.Multiline).Sum(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

    private async Task<double> SilosAsync(string series) =>
        (await Task.WhenAll(cluster.SiloUrls.Select(url => cluster.Http.GetStringAsync(url + "/metrics")))).Sum(text => Value(text, series));

    private async Task<double> GatewayAsync(string series) => Value(await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/metrics"), series);

    /// <summary>
    /// The silos' count of <paramref name="series"/> once every near-cache hit of earlier tests has been reported and has
    /// arrived: the gateway has sent all it booked, and two reads of the silos a report interval apart agree.
    /// </summary>
    private async Task<double> SettledSilosAsync(string series)
    {
        var previous = -1.0;
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var gateway = await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/metrics");
            var booked = Regex.Matches(gateway, @"^gateway_near_cache_hits_total\{[^}]*\} (\S+)$", RegexOptions.Multiline).Sum(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            var current = await SilosAsync(series);
            if (booked == Value(gateway, "gateway_near_cache_hits_reported_total") && current == previous)
            {
                return current;
            }

            previous = current;
            await Task.Delay(300);
        }

        throw new TimeoutException("the near cache's hits never settled");
    }

    [Fact]
    public async Task RepeatsAreAnsweredAtTheGatewayAndCountedByTheSilosAsCacheHits()
    {
        const string siloHits = "predictions_total{status=\"cache_hit\"}";
        const string nearHits = "gateway_near_cache_hits_total{model=\"text-orientation\"}";
        var image = TextImages.Render("near cache " + Guid.NewGuid().ToString("N")[..6]);
        using (var first = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(image, "image/png")))
        {
            Assert.False((await first.JsonAsync()).GetProperty("cached").GetBoolean());
        }

        var (siloBefore, nearBefore) = (await SettledSilosAsync(siloHits), await GatewayAsync(nearHits));
        var answers = new List<System.Text.Json.JsonElement>();
        for (var i = 0; i < 5; i++)
        {
            using var again = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(image, "image/png"));
            answers.Add(await again.JsonAsync());
        }

        Assert.All(answers, a => Assert.True(a.GetProperty("cached").GetBoolean()));
        Assert.All(answers, a => Assert.Equal("0", a.GetProperty("predictions")[0].GetProperty("label").GetString()));
        Assert.Equal(5, await GatewayAsync(nearHits) - nearBefore);
        // Reported to the shard in the next batch (Gateway:NearCacheReportInterval): the silos count exactly five more hits.
        var counted = 0.0;
        for (var attempt = 0; attempt < 40 && counted < 5; attempt++)
        {
            await Task.Delay(100);
            counted = await SilosAsync(siloHits) - siloBefore;
        }

        Assert.Equal(5, counted);
    }

    [Fact]
    public async Task TheNearCacheIsBoundedAndExported()
    {
        var text = await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/metrics");

        Assert.Equal(4096, Value(text, "gateway_near_cache_capacity"));
        Assert.InRange(Value(text, "gateway_near_cache_entries"), 0, 4096);
        Assert.InRange(Value(text, "gateway_near_cache_bytes"), 0, 16 << 20);
    }

    [Fact]
    public async Task ATopKAskedForTheFirstTimeGoesToTheShard()
    {
        var image = TextImages.Render("near cache top k " + Guid.NewGuid().ToString("N")[..6]);
        using var all = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(image, "image/png"));
        using var one = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict?top_k=1", Raw(image, "image/png"));
        using var oneAgain = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict?top_k=1", Raw(image, "image/png"));

        Assert.Equal(2, (await all.JsonAsync()).GetProperty("predictions").GetArrayLength());
        var first = await one.JsonAsync();
        Assert.Equal(1, first.GetProperty("predictions").GetArrayLength());
        Assert.True(first.GetProperty("cached").GetBoolean()); // the shard's cache, which keeps every probability
        Assert.Equal(1, (await oneAgain.JsonAsync()).GetProperty("predictions").GetArrayLength());
    }
}
