using System.Text.Json;
using Classifier.Tests.Support;

namespace Classifier.Tests.Observability;

/// <summary>The Grafana dashboards are valid, provisionable JSON and keep the original service's panels.</summary>
public sealed class DashboardTests
{
    private static IEnumerable<(string File, JsonElement Root)> Dashboards() =>
        Directory.GetFiles(Path.Combine(Repo.Root, "observability", "grafana"), "*.json").Order()
            .Select(f => (Path.GetFileName(f), JsonDocument.Parse(File.ReadAllText(f)).RootElement));

    private static IEnumerable<JsonElement> Panels(JsonElement root) =>
        root.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row");

    [Fact]
    public void EveryDashboardIsProvisionableWithAUidATitleAndADatasourceVariable()
    {
        var dashboards = Dashboards().ToList();

        Assert.Equal(2, dashboards.Count);
        Assert.Equal(dashboards.Count, dashboards.Select(d => d.Root.GetProperty("uid").GetString()).Distinct().Count());
        foreach (var (file, root) in dashboards)
        {
            Assert.False(string.IsNullOrWhiteSpace(root.GetProperty("title").GetString()), file);
            Assert.Contains(root.GetProperty("templating").GetProperty("list").EnumerateArray(),
                v => v.GetProperty("type").GetString() == "datasource" && v.GetProperty("query").GetString() == "prometheus");
        }
    }

    [Fact]
    public void EveryPanelHasAQueryAUniqueIdAndUsesTheDatasourceVariable()
    {
        foreach (var (file, root) in Dashboards())
        {
            var ids = root.GetProperty("panels").EnumerateArray().Select(p => p.GetProperty("id").GetInt32()).ToList();
            Assert.Equal(ids.Count, ids.Distinct().Count());
            foreach (var panel in Panels(root))
            {
                var title = $"{file}: {panel.GetProperty("title").GetString()}";
                var targets = panel.GetProperty("targets").EnumerateArray().ToList();
                Assert.True(targets.Count > 0, $"{title} has no query");
                Assert.All(targets, t => Assert.False(string.IsNullOrWhiteSpace(t.GetProperty("expr").GetString()), title));
                Assert.Equal("${datasource}", panel.GetProperty("datasource").GetProperty("uid").GetString());
            }
        }
    }

    [Theory]
    [InlineData("Request latency heatmap", "sum(rate(http_request_duration_seconds_bucket[5m])) by (le)")]
    [InlineData("Cache hit rate", "cache_hit_rate * 100")]
    [InlineData("Inference time distribution", "sum(rate(inference_duration_seconds_bucket[5m])) by (le)")]
    [InlineData("Error rate", """sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) * 100""")]
    [InlineData("System resources", "system_cpu_percent")]
    [InlineData("System resources", "system_memory_percent")]
    public void TheOriginalFivePanelsKeepTheirQueries(string title, string query)
    {
        var overview = Dashboards().Single(d => d.File == "classifier-overview.json").Root;

        var panel = Panels(overview).Single(p => p.GetProperty("title").GetString() == title);

        Assert.Contains(panel.GetProperty("targets").EnumerateArray(), t => t.GetProperty("expr").GetString() == query);
    }

    [Fact]
    public void ClusterGaugeIsAggregatedWithMaxAndQuantilesSumByLe()
    {
        var queries = Dashboards().SelectMany(d => Panels(d.Root))
            .SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("expr").GetString()!)).ToList();

        Assert.All(queries.Where(q => q.Contains("cluster_cache_hit_rate", StringComparison.Ordinal)), q => Assert.StartsWith("max(", q, StringComparison.Ordinal));
        Assert.All(queries.Where(q => q.StartsWith("histogram_quantile", StringComparison.Ordinal)), q => Assert.Contains("sum by (le", q, StringComparison.Ordinal));
    }
}
