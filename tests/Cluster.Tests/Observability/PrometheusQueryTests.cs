using System.Text.Json;
using Classifier.Tests.Support;
using F = Classifier.Tests.Observability.ObservedClusterFixture;

namespace Classifier.Tests.Observability;

/// <summary>Every query, panel and rule, evaluated by a real Prometheus against real silos and a gateway after known traffic.</summary>
[Collection(ObservedClusterCollection.Name)]
public sealed class PrometheusQueryTests(ObservedClusterFixture fixture)
{
    private PrometheusServer Prometheus => fixture.Prometheus;

    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task EachSiloAndTheGatewayAreSeparateTargetsWithTheirOwnSeries()
    {
        Assert.Equal(2, await Prometheus.WaitForValueAsync("""count(up{job="classifier-silo"} == 1)""", 2, Settle));
        Assert.Equal(1, await Prometheus.WaitForValueAsync("""count(up{job="classifier-gateway"} == 1)""", 1, Settle));

        var silos = await Prometheus.QueryAsync("""app_info{role="silo"}""");
        Assert.Equal(fixture.SiloTargets.Order(), silos.Select(s => s.Labels["instance"]).Order());
        var predictionSeries = await Prometheus.QueryAsync("""predictions_total{status="success"}""");
        Assert.Equal(2, predictionSeries.Select(s => s.Labels["instance"]).Distinct().Count());
    }

    [Fact]
    public async Task GatewayCountsEveryRequestByStatusExactly()
    {
        Assert.Equal(F.Unique + F.Repeated, await Prometheus.WaitForValueAsync("""sum(http_requests_total{endpoint="/predict",method="POST",status="200"})""", F.Unique + F.Repeated, Settle));
        Assert.Equal(F.Undecodable, await Prometheus.WaitForValueAsync("""sum(http_requests_total{endpoint="/predict",status="400"})""", F.Undecodable, Settle));
        Assert.Equal(F.WrongMediaType, await Prometheus.WaitForValueAsync("""sum(http_requests_total{endpoint="/predict",status="415"})""", F.WrongMediaType, Settle));
        Assert.Equal(F.UnknownModel, await Prometheus.WaitForValueAsync("""sum(http_requests_total{endpoint="/predict",status="404"})""", F.UnknownModel, Settle));
    }

    [Fact]
    public async Task SilosCountPredictionsByOutcomeExactly()
    {
        // Undecodable images reached a silo and were counted as errors there; the 415s and the 404 never left the gateway.
        Assert.Equal(F.Unique, await Prometheus.WaitForValueAsync("""sum(predictions_total{status="success"})""", F.Unique, Settle));
        Assert.Equal(F.Repeated, await Prometheus.WaitForValueAsync("""sum(predictions_total{status="cache_hit"})""", F.Repeated, Settle));
        Assert.Equal(F.Undecodable, await Prometheus.WaitForValueAsync("""sum(predictions_total{status="error"})""", F.Undecodable, Settle));
    }

    [Fact]
    public async Task CacheHitRatesMatchTheHitsAndMissesSent()
    {
        // Misses: every unique and every undecodable image. Hits: the repeats.
        const double clusterRate = (double)F.Repeated / (F.Repeated + F.Unique + F.Undecodable);
        Assert.Equal(F.Repeated, await Prometheus.WaitForValueAsync("sum(cache_hits_total)", F.Repeated, Settle));
        Assert.Equal(F.Unique + F.Undecodable, await Prometheus.WaitForValueAsync("sum(cache_misses_total)", F.Unique + F.Undecodable, Settle));

        // The cluster gauge is the same on every silo once the reports have gone round.
        Assert.Equal(clusterRate, await Prometheus.WaitForValueAsync("min(cluster_cache_hit_rate)", clusterRate, Settle), 9);
        Assert.Equal(clusterRate, await Prometheus.WaitForValueAsync("max(cluster_cache_hit_rate)", clusterRate, Settle), 9);

        // Each silo's own gauge is its own hits over its own lookups.
        foreach (var silo in fixture.SiloTargets)
        {
            var hits = await Prometheus.ScalarAsync($$"""sum(cache_hits_total{instance="{{silo}}"})""");
            var misses = await Prometheus.ScalarAsync($$"""sum(cache_misses_total{instance="{{silo}}"})""");
            var expected = hits + misses == 0 ? 0 : hits / (hits + misses);
            Assert.Equal(expected, await Prometheus.WaitForValueAsync($$"""cache_hit_rate{instance="{{silo}}"}""", expected, Settle), 9);
        }
    }

    [Fact]
    public async Task SpecErrorRateQueryStaysEmptyOrZeroWithoutServerErrors()
    {
        await Prometheus.WaitForValueAsync("""sum(http_requests_total{status="400"})""", F.Undecodable, Settle);

        var result = await Prometheus.QueryAsync("""sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) * 100""");

        Assert.True(result.Count == 0 || result.All(s => s.Value == 0), $"5xx error rate: {string.Join(", ", result.Select(r => r.Value))}");
    }

    public static TheoryData<string, bool> SpecQueries => new()
    {
        // query, must return at least one series after the traffic
        { "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))", true },
        { "rate(http_requests_total[1m])", true },
        { "rate(inference_duration_seconds_sum[5m]) / rate(inference_duration_seconds_count[5m])", true },
        { "histogram_quantile(0.99, rate(inference_duration_seconds_bucket[5m]))", true },
        { "cache_hit_rate * 100", true },
        { "cache_size_current / 128 * 100", true },
        { "model_state != 1", false },
        { """rate(process_memory_bytes{type="rss"}[5m])""", true },
    };

    [Theory]
    [MemberData(nameof(SpecQueries))]
    public async Task EverySpecQueryEvaluates(string query, bool nonEmpty)
    {
        await Prometheus.WaitForValueAsync("sum(inference_duration_seconds_count)", F.Unique, Settle);
        await Task.Delay(TimeSpan.FromSeconds(2)); // at least two scrapes after the traffic, for rate()

        var result = await Prometheus.QueryAsync(query);

        if (nonEmpty)
        {
            // Series that saw no traffic (a probe route, say) are NaN or 0 under rate(); the ones with traffic must be numbers.
            Assert.NotEmpty(result);
            Assert.Contains(result, s => !double.IsNaN(s.Value));
        }
        else
        {
            Assert.Empty(result); // every model loaded on every silo
        }
    }

    public static TheoryData<string, string> DashboardQueries()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in Directory.GetFiles(Path.Combine(Repo.Root, "observability", "grafana"), "*.json").Order())
        {
            using var json = JsonDocument.Parse(File.ReadAllText(file));
            foreach (var panel in json.RootElement.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row"))
            {
                foreach (var target in panel.GetProperty("targets").EnumerateArray())
                {
                    data.Add($"{Path.GetFileName(file)}: {panel.GetProperty("title").GetString()}", target.GetProperty("expr").GetString()!);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(DashboardQueries))]
    public async Task EveryDashboardQueryEvaluatesWithoutError(string panel, string query)
    {
        await Prometheus.WaitForValueAsync("sum(inference_duration_seconds_count)", F.Unique, Settle);

        var result = await Prometheus.QueryAsync(query); // fails the test on a query error

        Assert.NotNull(result);
        Assert.False(string.IsNullOrWhiteSpace(panel));
    }

    [Fact]
    public async Task PrometheusLoadsEveryAlertRuleHealthy()
    {
        var shipped = File.ReadLines(Path.Combine(Repo.Root, "observability", "prometheus", "alerts.yml")).Count(l => l.TrimStart().StartsWith("- alert: ", StringComparison.Ordinal));
        for (var i = 0; i < 40; i++)
        {
            var rules = (await Prometheus.RulesAsync()).GetProperty("groups").EnumerateArray().SelectMany(g => g.GetProperty("rules").EnumerateArray()).ToList();
            if (rules.Count == shipped && rules.All(r => r.TryGetProperty("lastEvaluation", out var t) && !t.GetString()!.StartsWith("0001", StringComparison.Ordinal)))
            {
                Assert.All(rules, r => Assert.Equal("ok", r.GetProperty("health").GetString()));
                return;
            }

            await Task.Delay(250);
        }

        Assert.Fail($"Prometheus did not evaluate all {shipped} rules:\n" + fixture.Prometheus.Output);
    }
}
