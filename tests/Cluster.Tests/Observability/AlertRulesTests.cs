using Classifier.Tests.Support;

namespace Classifier.Tests.Observability;

/// <summary>The shipped alert rules, checked by Prometheus' own tool.</summary>
public sealed class AlertRulesTests
{
    private static string RulesDir => Path.Combine(Repo.Root, "observability", "prometheus");

    [Fact]
    public async Task AlertRulesPassPromtoolCheckRules()
    {
        var (code, output) = await Tool.RunAsync(Tool.Find("promtool", "prometheus"), ["check", "rules", "alerts.yml"], workingDirectory: RulesDir);

        Assert.True(code == 0, output);
        Assert.Contains("SUCCESS: 12 rules found", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryAlertFiresAndStaysSilentWhereItsRuleUnitTestsSay()
    {
        var (code, output) = await Tool.RunAsync(Tool.Find("promtool", "prometheus"), ["test", "rules", "alerts.test.yml"], workingDirectory: RulesDir);

        Assert.True(code == 0, output);
        Assert.Contains("SUCCESS", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryAlertHasAtLeastOneFiringUnitTest()
    {
        var rules = await File.ReadAllLinesAsync(Path.Combine(RulesDir, "alerts.yml"));
        var tests = await File.ReadAllTextAsync(Path.Combine(RulesDir, "alerts.test.yml"));
        var alerts = rules.Select(l => l.Trim()).Where(l => l.StartsWith("- alert: ", StringComparison.Ordinal)).Select(l => l["- alert: ".Length..]).ToList();

        Assert.Equal(12, alerts.Count);
        foreach (var alert in alerts)
        {
            // A firing expectation is an alertname line followed by exp_alerts with at least one entry.
            var firing = System.Text.RegularExpressions.Regex.IsMatch(tests, $@"alertname: {alert}\s*\n\s*exp_alerts:\s*\n\s*- exp_labels");
            Assert.True(firing, $"{alert} has no unit test where it fires");
        }
    }

    [Theory]
    [InlineData("HighErrorRate", """sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05""", "5m")]
    [InlineData("SlowResponses", "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) > 2.0", "10m")]
    [InlineData("HighMemoryUsage", "system_memory_percent > 90", "5m")]
    [InlineData("ModelNotLoaded", "model_state != 1", "1m")]
    public async Task OriginalAlertsKeepTheirExpressionsAndDurations(string alert, string expression, string duration)
    {
        var text = await File.ReadAllTextAsync(Path.Combine(RulesDir, "alerts.yml"));

        Assert.Contains($"- alert: {alert}\n        expr: {expression}\n        for: {duration}\n", text, StringComparison.Ordinal);
    }
}
