using Classifier.Tests.Support;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace Classifier.Tests.Deployment;

/// <summary>
/// The alert rules and dashboards shipped to Kubernetes (k8s/ and the chart) are the files in observability/ that
/// the observability tests check, byte for byte, not copies that drift.
/// </summary>
public sealed class ShippedObservabilityTests
{
    private static string AlertsFile => Path.Combine(Repo.Root, "observability", "prometheus", "alerts.yml");

    private static string[] DashboardFiles => Directory.GetFiles(Path.Combine(Repo.Root, "observability", "grafana"), "*.json").Order(StringComparer.Ordinal).ToArray();

    private static string ChartFiles => Path.Combine(Repo.Root, "charts", "classifier", "files");

    [Fact]
    public void PrometheusRuleSpecIsAlertsYmlIndentedByteForByte()
    {
        var text = File.ReadAllText(Path.Combine(Manifests.Dir, "prometheusrule.yaml"));
        var spec = text[(text.IndexOf("\nspec:\n", StringComparison.Ordinal) + "\nspec:\n".Length)..];

        var dedented = string.Join('\n', spec.Split('\n').Select(l => l.Length == 0 ? l : l.StartsWith("  ", StringComparison.Ordinal) ? l[2..] : throw new InvalidOperationException($"not indented under spec: {l}")));

        Assert.Equal(File.ReadAllText(AlertsFile), dedented);
    }

    [Fact]
    public void PrometheusRuleGroupsEqualTheAlertsYmlGroupsWhenParsed()
    {
        var rule = Manifests.Custom("PrometheusRule", "classifier-alerts");
        var alerts = new YamlStream();
        alerts.Load(new StringReader(File.ReadAllText(AlertsFile)));
        var expected = (Dictionary<string, object?>)Manifests.ToTree(alerts.Documents.Single().RootNode)!;

        var spec = (Dictionary<string, object?>)rule.Tree["spec"]!;
        Assert.Equal(["groups"], spec.Keys);
        Assert.Equal(Canonical(expected["groups"]), Canonical(spec["groups"]));
        Assert.Equal(12, ((List<object?>)spec["groups"]!).Cast<Dictionary<string, object?>>().Sum(g => ((List<object?>)g["rules"]!).Count));
    }

    [Fact]
    public void DashboardsConfigMapHoldsEachDashboardByteForByteForTheGrafanaSidecar()
    {
        var configMap = Manifests.All<V1ConfigMap>().Single(c => c.Metadata.Name == "classifier-dashboards");

        Assert.Equal("1", configMap.Metadata.Labels["grafana_dashboard"]);
        Assert.Equal(DashboardFiles.Select(Path.GetFileName), configMap.Data.Keys.Order(StringComparer.Ordinal));
        foreach (var file in DashboardFiles)
        {
            Assert.Equal(File.ReadAllText(file), configMap.Data[Path.GetFileName(file)]);
        }
    }

    [Fact]
    public void ChartCopiesOfRulesAndDashboardsAreByteIdenticalToObservability()
    {
        Assert.Equal(File.ReadAllBytes(AlertsFile), File.ReadAllBytes(Path.Combine(ChartFiles, "alerts.yml")));
        Assert.Equal(DashboardFiles.Select(Path.GetFileName), Directory.GetFiles(Path.Combine(ChartFiles, "dashboards")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (var file in DashboardFiles)
        {
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(Path.Combine(ChartFiles, "dashboards", Path.GetFileName(file))));
        }
    }

    [Fact]
    public async Task RenderScriptFindsNothingStale()
    {
        var (code, output) = await Tool.RunAsync("bash", [Path.Combine(Repo.Root, "scripts", "render-k8s-observability.sh"), "--check"], workingDirectory: Repo.Root);

        Assert.True(code == 0, output);
    }

    /// <summary>A parsed tree as text with sorted keys, so that two trees compare by content.</summary>
    private static string Canonical(object? node) => node switch
    {
        Dictionary<string, object?> m => "{" + string.Join(",", m.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}:{Canonical(kv.Value)}")) + "}",
        List<object?> s => "[" + string.Join(",", s.Select(Canonical)) + "]",
        string s => System.Text.Json.JsonSerializer.Serialize(s),
        null => "null",
        _ => throw new InvalidOperationException(node.GetType().Name),
    };
}
