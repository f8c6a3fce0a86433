using System.Text.RegularExpressions;
using Classifier.Tests.Support;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace Classifier.Tests.Deployment;

/// <summary>
/// What can be checked of the Helm chart without helm: Chart.yaml, values used versus values defined, templates
/// that are YAML once their actions are stripped, helper labels, and a values flag in front of every optional object.
/// (helm lint / helm template are not run: helm is not installable here.)
/// </summary>
public sealed partial class ChartTests
{
    private static string ChartDir => Path.Combine(Repo.Root, "charts", "classifier");

    private static string TemplatesDir => Path.Combine(ChartDir, "templates");

    private static Dictionary<string, object?> Values { get; } = Load(Path.Combine(ChartDir, "values.yaml"));

    private static IEnumerable<string> YamlTemplates() => Directory.GetFiles(TemplatesDir, "*.yaml").Order(StringComparer.Ordinal);

    private static IEnumerable<string> AllTemplates() => Directory.GetFiles(TemplatesDir).Order(StringComparer.Ordinal);

    [GeneratedRegex(@"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")]
    private static partial Regex ValuesPath();

    [GeneratedRegex(@"\{\{.*?\}\}")]
    private static partial Regex Action();

    [GeneratedRegex(@"^\s*(\{\{.*?\}\}\s*)+$")]
    private static partial Regex ActionOnlyLine();

    [Fact]
    public void ChartYamlDeclaresAnApplicationChartWithSemverVersionAndAppVersion()
    {
        var chart = Load(Path.Combine(ChartDir, "Chart.yaml"));

        Assert.Equal("v2", chart["apiVersion"]);
        Assert.Equal("classifier", chart["name"]);
        Assert.Equal("application", chart["type"]);
        Assert.Matches(@"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$", (string)chart["version"]!);
        Assert.False(string.IsNullOrWhiteSpace((string?)chart["appVersion"]));
        Assert.False(string.IsNullOrWhiteSpace((string?)chart["description"]));
        Assert.Equal(Path.GetFileName(ChartDir), chart["name"]);
    }

    [Fact]
    public void EveryValuesPathUsedInTemplatesExistsInValuesYaml()
    {
        var used = UsedValuePaths().ToList();

        Assert.NotEmpty(used);
        foreach (var (file, path) in used)
        {
            Assert.True(Resolve(path) is not null, $"{file}: .Values.{path} is not in values.yaml");
        }
    }

    [Fact]
    public void EveryValueInValuesYamlIsUsedByATemplate()
    {
        var used = UsedValuePaths().Select(u => u.Path).ToHashSet(StringComparer.Ordinal);

        foreach (var leaf in Leaves(Values, ""))
        {
            Assert.True(used.Any(u => leaf == u || leaf.StartsWith(u + ".", StringComparison.Ordinal)), $"values.yaml: {leaf} is used by no template");
        }
    }

    [Fact]
    public void EveryTemplateIsYamlOnceTemplateActionsAreStripped()
    {
        foreach (var file in YamlTemplates())
        {
            var documents = ParseStripped(file);

            Assert.NotEmpty(documents);
            foreach (var document in documents)
            {
                Assert.True(document.ContainsKey("apiVersion") && document.ContainsKey("kind") && document.ContainsKey("metadata"), $"{file}: a document without apiVersion, kind or metadata");
            }
        }
    }

    [Fact]
    public void TheChartProducesEveryKindOfObjectThePlainManifestsDo()
    {
        var chartKinds = YamlTemplates().SelectMany(ParseStripped).Select(d => $"{d["apiVersion"]}/{d["kind"]}").ToHashSet();

        // The chart installs into the release's namespace instead of creating one.
        foreach (var kind in Manifests.Documents.Where(d => d.Kind != "Namespace").Select(d => $"{d.ApiVersion}/{d.Kind}").Distinct())
        {
            Assert.Contains(kind, chartKinds);
        }
    }

    [Fact]
    public void HelpersDefineTheStandardNamesAndLabelsAndEveryObjectUsesThem()
    {
        var helpers = File.ReadAllText(Path.Combine(TemplatesDir, "_helpers.tpl"));
        foreach (var name in new[] { "classifier.name", "classifier.fullname", "classifier.labels", "classifier.selectorLabels" })
        {
            Assert.Contains($"{{{{- define \"{name}\" -}}}}", helpers, StringComparison.Ordinal);
        }

        foreach (var label in new[] { "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart" })
        {
            Assert.Contains(label + ":", helpers, StringComparison.Ordinal);
        }

        foreach (var file in YamlTemplates())
        {
            var text = File.ReadAllText(file);
            var objects = Regex.Matches(text, @"^kind: ", RegexOptions.Multiline).Count;
            var labelled = Regex.Matches(text, @"^  labels:\n    \{\{- include ""classifier\.(labels|commonLabels)""", RegexOptions.Multiline).Count;
            Assert.True(objects == labelled, $"{Path.GetFileName(file)}: {objects} objects but {labelled} with the helper labels");
            Assert.False(Regex.IsMatch(text, @"^\s+app\.kubernetes\.io/", RegexOptions.Multiline), $"{Path.GetFileName(file)}: labels spelt out instead of the helpers");
        }
    }

    [Theory]
    [InlineData("servicemonitor.yaml", "monitoring.serviceMonitor.enabled")]
    [InlineData("prometheusrule.yaml", "monitoring.prometheusRule.enabled")]
    [InlineData("dashboards.yaml", "monitoring.dashboards.enabled")]
    [InlineData("hpa.yaml", "autoscaling.enabled")]
    [InlineData("pdb.yaml", "podDisruptionBudget.enabled")]
    [InlineData("redis.yaml", "redis.enabled")]
    [InlineData("ingress.yaml", "gateway.ingress.enabled")]
    public void EveryOptionalObjectIsWhollyBehindItsValuesFlag(string template, string flag)
    {
        var actions = Action().Matches(File.ReadAllText(Path.Combine(TemplatesDir, template))).Select(m => m.Value).ToList();

        Assert.Equal($"{{{{- if .Values.{flag} }}}}", actions[0]);
        Assert.True(bool.TryParse((string?)Resolve(flag), out _), $"values.yaml: {flag} is not a boolean");
        // The if opened first closes last: nothing of the file is outside it.
        var depth = 0;
        for (var i = 0; i < actions.Count; i++)
        {
            var word = actions[i].TrimStart('{', '-', ' ').Split(' ', '}')[0];
            depth += word is "if" or "range" or "with" or "define" or "block" ? 1 : word == "end" ? -1 : 0;
            Assert.True(depth > 0 || i == actions.Count - 1, $"{template}: content after the {flag} block closes");
        }

        Assert.Equal(0, depth);
    }

    [Fact]
    public void GpuAndKubernetesHostingAreSwitchedByTheirFlags()
    {
        var silo = File.ReadAllText(Path.Combine(TemplatesDir, "silo.yaml"));
        var rbac = File.ReadAllText(Path.Combine(TemplatesDir, "rbac.yaml"));

        Assert.Equal("false", Resolve("gpu.enabled"));
        Assert.Contains("{{- if .Values.gpu.enabled }}", silo, StringComparison.Ordinal);
        Assert.Contains("ternary \"cuda\" .Values.silo.device .Values.gpu.enabled", silo, StringComparison.Ordinal);
        Assert.Contains("{{ .Values.gpu.resourceName }}: {{ .Values.gpu.count }}", silo, StringComparison.Ordinal);
        Assert.Equal("nvidia.com/gpu", Resolve("gpu.resourceName"));
        Assert.Contains("{{- if .Values.cluster.kubernetesHosting }}\n---\n# Orleans' Kubernetes hosting", rbac, StringComparison.Ordinal);
        Assert.Contains("{{- if not .Values.autoscaling.enabled }}\n  replicas:", silo, StringComparison.Ordinal);
    }

    [Fact]
    public void ValuesYamlDocumentsEveryTopLevelSettingWithAComment()
    {
        var lines = File.ReadAllLines(Path.Combine(ChartDir, "values.yaml"));

        for (var i = 0; i < lines.Length; i++)
        {
            if (Regex.IsMatch(lines[i], @"^[A-Za-z]"))
            {
                Assert.True(i > 0 && lines[i - 1].StartsWith("##", StringComparison.Ordinal), $"values.yaml line {i + 1} ({lines[i]}) has no ## comment above it");
            }
        }

        Assert.Equal("kube-prometheus-stack", Resolve("monitoring.release"));
    }

    [Fact]
    public void ChartDefaultsAreThePlainManifestsSettings()
    {
        var silo = Manifests.Container("classifier-silo");
        var siloEnv = silo.Env.ToDictionary(e => e.Name, e => e.Value);
        var gatewayEnv = Manifests.Container("classifier-gateway").Env.ToDictionary(e => e.Name, e => e.Value);
        var hpa = Manifests.All<V2HorizontalPodAutoscaler>().Single();

        Assert.Equal(siloEnv["Cluster__ServiceId"], Resolve("cluster.serviceId"));
        Assert.Equal(siloEnv["Cluster__ClusterId"], Resolve("cluster.clusterId"));
        Assert.Equal(siloEnv["Cluster__DrainDelay"], Resolve("cluster.drainDelay"));
        Assert.Equal(siloEnv["Cluster__SiloPort"], Resolve("silo.siloPort"));
        Assert.Equal(siloEnv["Cluster__GatewayPort"], Resolve("silo.gatewayPort"));
        Assert.Equal(siloEnv["Cache__Capacity"], Resolve("silo.cacheCapacity"));
        Assert.Equal(siloEnv["DOTNET_PROCESSOR_COUNT"], Resolve("silo.processorCount"));
        Assert.Equal(siloEnv["Models__IntraOpThreads"], Resolve("silo.intraOpThreads"));
        Assert.Equal(new Uri(siloEnv["Urls"]).Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Resolve("silo.httpPort"));
        Assert.Equal(gatewayEnv["Gateway__ShardCount"], Resolve("gateway.shardCount"));
        Assert.Equal(gatewayEnv["Gateway__ManagementPort"], Resolve("gateway.managementPort"));
        Assert.Equal($"{hpa.Spec.MinReplicas}/{hpa.Spec.MaxReplicas}", $"{Resolve("autoscaling.minReplicas")}/{Resolve("autoscaling.maxReplicas")}");
        Assert.Equal($"{Manifests.Deployment("classifier-silo").Spec.Template.Spec.TerminationGracePeriodSeconds}", Resolve("silo.terminationGracePeriodSeconds"));
        Assert.Equal(silo.Resources.Requests["cpu"].ToString(), Resolve("silo.resources.requests.cpu"));
        Assert.Equal(silo.Resources.Limits["memory"].ToString(), Resolve("silo.resources.limits.memory"));
    }

    private static IEnumerable<(string File, string Path)> UsedValuePaths() =>
        AllTemplates().SelectMany(f => ValuesPath().Matches(File.ReadAllText(f)).Select(m => (Path.GetFileName(f), m.Groups[1].Value[1..])));

    /// <summary>
    /// A template as plain YAML: lines holding only actions (if, range, with, end, include ... | nindent) go,
    /// inline actions become a scalar. What the actions would insert is not checked, only the shape around them.
    /// </summary>
    private static List<Dictionary<string, object?>> ParseStripped(string file)
    {
        var lines = File.ReadAllLines(file).Where(l => !ActionOnlyLine().IsMatch(l)).Select(l => Action().Replace(l, "x"));
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(string.Join('\n', lines)));
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            Assert.Fail($"{Path.GetFileName(file)} is not YAML once its actions are stripped: {e.Message}");
        }

        return stream.Documents.Where(d => d.RootNode is YamlMappingNode).Select(d => (Dictionary<string, object?>)Manifests.ToTree(d.RootNode)!).ToList();
    }

    private static object? Resolve(string path)
    {
        object? node = Values;
        foreach (var key in path.Split('.'))
        {
            if (node is not Dictionary<string, object?> mapping || !mapping.TryGetValue(key, out node))
            {
                return null;
            }
        }

        return node ?? "";
    }

    private static IEnumerable<string> Leaves(Dictionary<string, object?> mapping, string prefix)
    {
        foreach (var (key, value) in mapping)
        {
            var path = prefix.Length == 0 ? key : $"{prefix}.{key}";
            if (value is Dictionary<string, object?> child && child.Count > 0 && child.Keys.All(k => Regex.IsMatch(k, "^[A-Za-z_][A-Za-z0-9_]*$")))
            {
                foreach (var leaf in Leaves(child, path))
                {
                    yield return leaf;
                }
            }
            else
            {
                yield return path;
            }
        }
    }

    private static Dictionary<string, object?> Load(string path)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(path)));
        return (Dictionary<string, object?>)Manifests.ToTree(stream.Documents.Single().RootNode)!;
    }
}
