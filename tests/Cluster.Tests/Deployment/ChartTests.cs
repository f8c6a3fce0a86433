using System.Text.RegularExpressions;
using Classifier.Tests.Support;
using k8s;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace Classifier.Tests.Deployment;

/// <summary>
/// What can be checked of the Helm chart without helm: Chart.yaml, values used versus values defined, templates
/// that are YAML once their actions are stripped, helper labels, a values flag in front of every optional object, and
/// what the NetworkPolicies admit once the label helpers are written out.
/// (helm lint / helm template are not run: no package installs helm on the project's machines or CI.)
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

    [GeneratedRegex(@"^\{\{- \$(\w+) := dict ""ctx"" \$ ""component"" ""(\w+)"" \}\}$", RegexOptions.Multiline)]
    private static partial Regex ComponentVariable();

    [GeneratedRegex(@"^ *\{\{- include ""classifier\.(?:selectorLabels|labels)"" \$(\w+) \| nindent (\d+) \}\}$", RegexOptions.Multiline)]
    private static partial Regex LabelsInclude();

    [GeneratedRegex(@"^ *\{\{- include ""(classifier\.\w+)"" \. \| nindent (\d+) \}\}$", RegexOptions.Multiline)]
    private static partial Regex HelperInclude();

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
    [InlineData("hpa.yaml", "autoscaling.enabled", "and .Values.autoscaling.enabled (not .Values.autoscaling.keda.enabled)")]
    [InlineData("keda.yaml", "autoscaling.keda.enabled", "and .Values.autoscaling.enabled .Values.autoscaling.keda.enabled")]
    [InlineData("pdb.yaml", "podDisruptionBudget.enabled")]
    [InlineData("redis.yaml", "redis.enabled")]
    [InlineData("ingress.yaml", "gateway.ingress.enabled")]
    [InlineData("networkpolicy.yaml", "networkPolicy.enabled")]
    [InlineData("cluster-tls.yaml", "clusterTls.enabled")]
    public void EveryOptionalObjectIsWhollyBehindItsValuesFlag(string template, string flag, string? condition = null)
    {
        var actions = Action().Matches(File.ReadAllText(Path.Combine(TemplatesDir, template))).Select(m => m.Value).ToList();

        Assert.Equal($"{{{{- if {condition ?? $".Values.{flag}"} }}}}", actions[0]);
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
        Assert.Equal(siloEnv["Images__DecodeMemoryBytes"], Resolve("silo.decodeMemoryBytes"));
        Assert.Equal(siloEnv["Images__MaxWaitingBytes"], Resolve("silo.maxWaitingBytes"));
        Assert.Equal(gatewayEnv["Gateway__MaxUploadBytesInFlight"], Resolve("gateway.maxUploadBytesInFlight"));
        Assert.Equal(gatewayEnv["Gateway__MaxConnections"], Resolve("gateway.maxConnections"));
        Assert.Equal(siloEnv["DOTNET_PROCESSOR_COUNT"], Resolve("silo.processorCount"));
        Assert.Equal(siloEnv["Models__IntraOpThreads"], Resolve("silo.intraOpThreads"));
        Assert.Equal(new Uri(siloEnv["Urls"]).Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Resolve("silo.httpPort"));
        Assert.Equal(siloEnv["Cluster__ShardCount"], Resolve("cluster.shardCount"));
        Assert.Equal(gatewayEnv["Gateway__ManagementPort"], Resolve("gateway.managementPort"));
        Assert.Equal($"{hpa.Spec.MinReplicas}/{hpa.Spec.MaxReplicas}", $"{Resolve("autoscaling.minReplicas")}/{Resolve("autoscaling.maxReplicas")}");
        Assert.Equal($"{Manifests.Deployment("classifier-silo").Spec.Template.Spec.TerminationGracePeriodSeconds}", Resolve("silo.terminationGracePeriodSeconds"));
        Assert.Equal(silo.Resources.Requests["cpu"].ToString(), Resolve("silo.resources.requests.cpu"));
        Assert.Equal(silo.Resources.Limits["memory"].ToString(), Resolve("silo.resources.limits.memory"));
        Assert.Equal(siloEnv["Cluster__Tls__Enabled"], Resolve("clusterTls.enabled"));
        Assert.Equal(Manifests.All<V1NetworkPolicy>().Any() ? "true" : "false", Resolve("networkPolicy.enabled"));
    }

    public static TheoryData<string, string, string[]> ClusterPorts() => NetworkPolicyRules.ClusterPorts;

    [Theory]
    [MemberData(nameof(ClusterPorts))]
    public void ChartPoliciesAdmitClusterPortsOnlyFromThePodsOfTheRolesThatUseThem(string component, string port, string[] clients) =>
        NetworkPolicyRules.AssertOnlyFrom(SketchedPolicies(), SketchedWorkloads(), component, port, clients);

    [Fact]
    public void ChartPoliciesLeaveTheApiOpenAndMetricsToTheClusterAndNamePortsThePodsDeclare()
    {
        var policies = SketchedPolicies();
        var workloads = SketchedWorkloads();

        NetworkPolicyRules.AssertFromAnywhere(policies, workloads, "gateway", "http");
        NetworkPolicyRules.AssertFromWholeClusterOnly(policies, workloads, "silo", "metrics");
        NetworkPolicyRules.AssertFromWholeClusterOnly(policies, workloads, "gateway", "metrics");
        NetworkPolicyRules.AssertPortsExist(policies, workloads);
        NetworkPolicyRules.AssertPeersSelectWorkloads(policies, workloads);
        Assert.All(policies, p => Assert.Equal(["Ingress"], p.Spec.PolicyTypes));
    }

    [Fact]
    public void MetricsSourcesAreTheWholeClusterUnlessNetworkPolicyMetricsFromNarrowsThem()
    {
        var helper = Define("classifier.metricsFrom");
        var template = File.ReadAllText(Path.Combine(TemplatesDir, "networkpolicy.yaml"));

        Assert.Equal(new List<object?>(), Resolve("networkPolicy.metricsFrom"));
        Assert.Contains("{{- if .Values.networkPolicy.metricsFrom }}\n{{- toYaml .Values.networkPolicy.metricsFrom }}\n{{- else }}\n- namespaceSelector: {}", helper, StringComparison.Ordinal);
        // Both metrics rules, the silos' and the gateways', take their peers from it.
        Assert.Equal(2, Regex.Matches(template, @"- from:\n +\{\{- include ""classifier\.metricsFrom"" \. \| nindent 8 \}\}\n +ports:\n +- port: metrics\n").Count);
    }

    [Fact]
    public void TheRedisPolicyComesOnlyWithTheBundledRedis()
    {
        var template = File.ReadAllText(Path.Combine(TemplatesDir, "networkpolicy.yaml"));
        var redisBlock = Regex.Match(template, @"\{\{- if \.Values\.redis\.enabled \}\}(.*?)\{\{- end \}\}", RegexOptions.Singleline);

        Assert.True(redisBlock.Success, "networkpolicy.yaml: no redis.enabled block");
        Assert.Contains("name: {{ include \"classifier.fullname\" . }}-redis", redisBlock.Groups[1].Value, StringComparison.Ordinal);
        Assert.Single(Regex.Matches(template, @"-redis\n"));
    }

    [Fact]
    public void TheGeneratedClusterCertificateIsKeptAcrossUpgradesAndNotMadeForAnExistingSecret()
    {
        var text = File.ReadAllText(Path.Combine(TemplatesDir, "cluster-tls.yaml"));
        var actions = Action().Matches(text).Select(m => m.Value).ToList();

        Assert.Equal("{{- if not .Values.clusterTls.existingSecret }}", actions[1]);
        Assert.Equal("", Resolve("clusterTls.existingSecret"));
        Assert.Contains("{{- $name := include \"classifier.clusterTlsSecret\" . }}", text, StringComparison.Ordinal);
        Assert.Contains("name: {{ $name }}", text, StringComparison.Ordinal);
        Assert.Contains("type: kubernetes.io/tls", text, StringComparison.Ordinal);
        // An upgrade reads back the installed Secret and keeps its keys; only an install generates a CA and a certificate.
        Assert.Contains("{{- $previous := (lookup \"v1\" \"Secret\" .Release.Namespace $name).data | default dict }}", text, StringComparison.Ordinal);
        var keys = string.Join(' ', ClusterTlsTests.SettingKeys.Values.Select(k => $"\"{k}\""));
        var reuse = actions.IndexOf($"{{{{- if and {string.Join(' ', ClusterTlsTests.SettingKeys.Values.Select(k => $"(hasKey $previous \"{k}\")"))} }}}}");
        Assert.True(reuse > 0, "cluster-tls.yaml: no branch that keeps a complete installed Secret");
        Assert.Equal($"{{{{- $data = pick $previous {keys} }}}}", actions[reuse + 1]);
        Assert.Equal("{{- else }}", actions[reuse + 2]);
        // genSignedCert's certificates carry both the server auth and client auth usages, which mutual TLS needs.
        Assert.StartsWith("{{- $ca := genCA ", actions[reuse + 3], StringComparison.Ordinal);
        Assert.Matches(@"^\{\{- \$cert := genSignedCert .* \$ca \}\}$", actions[reuse + 4]);
        Assert.Equal("{{- $data = dict \"tls.crt\" ($cert.Cert | b64enc) \"tls.key\" ($cert.Key | b64enc) \"ca.crt\" ($ca.Cert | b64enc) }}", actions[reuse + 5]);
        Assert.Equal("{{- end }}", actions[reuse + 6]);
        Assert.Contains("data:\n  {{- toYaml $data | nindent 2 }}\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void SilosAndGatewaysMountTheClusterTlsSecretWhereTheirSettingsPointOnlyWhenTlsIsOn()
    {
        var env = ParseYaml<List<object?>>(Define("classifier.clusterEnv")).Cast<Dictionary<string, object?>>().ToDictionary(e => (string)e["name"]!, e => (string?)e.GetValueOrDefault("value"));
        var mount = ParseYaml<List<object?>>(Define("classifier.clusterTlsVolumeMount")).Cast<Dictionary<string, object?>>().Single();
        var volume = Define("classifier.clusterTlsVolume");

        Assert.Equal("{{ .Values.clusterTls.enabled | quote }}", env["Cluster__Tls__Enabled"]);
        foreach (var (setting, key) in ClusterTlsTests.SettingKeys)
        {
            Assert.Equal($"{mount["mountPath"]}/{key}", env[setting]);
        }

        Assert.Equal("true", mount["readOnly"]);
        Assert.Equal(mount["name"], ParseYaml<List<object?>>(volume).Cast<Dictionary<string, object?>>().Single()["name"]);
        Assert.Contains("secretName: {{ include \"classifier.clusterTlsSecret\" . }}", volume, StringComparison.Ordinal);
        foreach (var role in new[] { "silo.yaml", "gateway.yaml" })
        {
            var text = File.ReadAllText(Path.Combine(TemplatesDir, role));
            Assert.Contains("{{- include \"classifier.clusterEnv\" . | nindent 12 }}", text, StringComparison.Ordinal);
            Assert.Matches(@" +\{\{- if \.Values\.clusterTls\.enabled \}\}\n +\{\{- include ""classifier\.clusterTlsVolumeMount"" \. \| nindent 12 \}\}\n +\{\{- end \}\}\n", text);
            Assert.Matches(@" +\{\{- if \.Values\.clusterTls\.enabled \}\}\n +\{\{- include ""classifier\.clusterTlsVolume"" \. \| nindent 8 \}\}\n +\{\{- end \}\}\n", text);
        }
    }

    /// <summary>The body of a <c>define</c> in _helpers.tpl.</summary>
    private static string Define(string name)
    {
        var match = Regex.Match(File.ReadAllText(Path.Combine(TemplatesDir, "_helpers.tpl")), $@"\{{\{{- define ""{Regex.Escape(name)}"" -\}}\}}\n(.*?)\n\{{\{{- end \}}\}}\n(?:\n|\{{\{{/\*|$)", RegexOptions.Singleline);
        Assert.True(match.Success, $"_helpers.tpl defines no {name}");
        return match.Groups[1].Value;
    }

    /// <summary>YAML with template actions in it, each read as the string of its own text.</summary>
    private static T ParseYaml<T>(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(Action().Replace(text, m => $"'{m.Value}'")));
        return (T)Manifests.ToTree(stream.Documents.Single().RootNode)!;
    }

    /// <summary>The chart's NetworkPolicies, sketched (see <see cref="Sketch"/>) and read strictly into the typed model.</summary>
    private static List<V1NetworkPolicy> SketchedPolicies() =>
        KubernetesYaml.LoadAllFromString(Sketch(Path.Combine(TemplatesDir, "networkpolicy.yaml")), typeMap: null, strict: true).Cast<V1NetworkPolicy>().ToList();

    /// <summary>The chart's Deployments as their NetworkPolicies see them; port numbers are template actions, so only names count.</summary>
    private static List<PolicyTarget> SketchedWorkloads() =>
        new[] { "silo.yaml", "gateway.yaml", "redis.yaml" }.Select(file =>
        {
            var deployment = ParseYaml<Dictionary<string, object?>>(Sketch(Path.Combine(TemplatesDir, file)).Split("\n---\n")[0]);
            Dictionary<string, object?> At(Dictionary<string, object?> node, params string[] path) => path.Aggregate(node, (n, k) => (Dictionary<string, object?>)n[k]!);
            var labels = At(deployment, "spec", "template", "metadata", "labels").ToDictionary(kv => kv.Key, kv => (string)kv.Value!);
            var ports = ((List<object?>)At(deployment, "spec", "template", "spec")["containers"]!).Cast<Dictionary<string, object?>>()
                .SelectMany(c => ((List<object?>)c["ports"]!).Cast<Dictionary<string, object?>>())
                .Select(p => ((string?)p["name"], int.TryParse((string?)p["containerPort"], System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : (int?)null)).ToList();
            return new PolicyTarget(labels["app.kubernetes.io/component"], labels, At(deployment, "spec", "selector", "matchLabels").ToDictionary(kv => kv.Key, kv => (string)kv.Value!), ports);
        }).ToList();

    private static IEnumerable<(string File, string Path)> UsedValuePaths() =>
        AllTemplates().SelectMany(f => ValuesPath().Matches(File.ReadAllText(f)).Select(m => (Path.GetFileName(f), m.Groups[1].Value[1..])));

    /// <summary>
    /// A template as plain YAML: lines holding only actions (if, range, with, end, include ... | nindent) go,
    /// inline actions become a scalar. What the actions would insert is not checked, only the shape around them.
    /// </summary>
    private static List<Dictionary<string, object?>> ParseStripped(string file)
    {
        var text = Strip(File.ReadAllText(file));
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            Assert.Fail($"{Path.GetFileName(file)} is not YAML once its actions are stripped: {e.Message}");
        }

        return stream.Documents.Where(d => d.RootNode is YamlMappingNode).Select(d => (Dictionary<string, object?>)Manifests.ToTree(d.RootNode)!).ToList();
    }

    private static string Strip(string text) =>
        string.Join('\n', text.Split('\n').Where(l => !ActionOnlyLine().IsMatch(l)).Select(l => Action().Replace(l, "x")));

    /// <summary>
    /// A template stripped as above, but with helpers written out first: each <c>include "classifier.selectorLabels"</c>
    /// or <c>"classifier.labels"</c> of a <c>$var := dict "ctx" $ "component" "NAME"</c> becomes the three selector
    /// labels of release "release" (what selection depends on), and each <c>include "classifier.X" . | nindent N</c>
    /// becomes the helper's own body, stripped (an if/else helper thus gives its else branch, the default).
    /// </summary>
    private static string Sketch(string file)
    {
        var text = File.ReadAllText(file);
        var components = ComponentVariable().Matches(text).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        var name = (string)Load(Path.Combine(ChartDir, "Chart.yaml"))["name"]!;
        static string Indent(string block, string count) =>
            string.Join('\n', block.Split('\n').Where(l => l.Trim().Length > 0).Select(l => new string(' ', int.Parse(count, System.Globalization.CultureInfo.InvariantCulture)) + l));

        text = LabelsInclude().Replace(text, m => Indent($"app.kubernetes.io/name: {name}\napp.kubernetes.io/instance: release\napp.kubernetes.io/component: {components[m.Groups[1].Value]}", m.Groups[2].Value));
        text = HelperInclude().Replace(text, m => Indent(Strip(Define(m.Groups[1].Value)), m.Groups[2].Value));
        return Strip(text);
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
