using System.Collections.Concurrent;
using System.Text.Json;
using Classifier.Tests.Support;
using k8s;

namespace Classifier.Tests.Deployment;

/// <summary>
/// The deployment as the real tools render it: <c>kubectl kustomize</c> for <c>k8s/</c> and every overlay, helm for
/// the chart (lint, template with the defaults and with every option, an unsupported Kubernetes version), every
/// rendered object against the kubernetes-models schemas and types (unknown fields rejected), the rendered
/// PrometheusRule through promtool and the rendered dashboards parsed. The chart's defaults render the kustomize
/// base, object by object.
/// </summary>
public sealed class RenderedDeploymentTests
{
    private static readonly ConcurrentDictionary<string, Lazy<Task<string>>> Rendered = new();

    public static TheoryData<string> Kustomizations() => ["k8s", "k8s/base", "k8s/gpu", "k8s/keda", "k8s/no-operator"];

    /// <summary>Values files for the chart beside this test (none: the defaults).</summary>
    public static TheoryData<string> ChartValues() => ["defaults", "chart-every-option.yaml", "chart-hpa-queue-depth.yaml"];

    /// <summary>Every rendering: "kustomize k8s/gpu", "helm chart-every-option.yaml".</summary>
    public static TheoryData<string> Renderings() =>
        [.. Kustomizations().Select(k => $"kustomize {k.Data}"), .. ChartValues().Select(v => $"helm {v.Data}")];

    private static string ValuesPath(string values) => Path.Combine(Repo.Root, "tests", "Cluster.Tests", "Deployment", values);

    private static string[] HelmArgs(string values) =>
        ["template", "classifier", Path.Combine(Repo.Root, "charts", "classifier"), "--namespace", "classifier", .. values == "defaults" ? Array.Empty<string>() : ["-f", ValuesPath(values)]];

    /// <summary>What a rendering produced, rendered once per test run.</summary>
    private static Task<string> RenderAsync(string rendering) => Rendered.GetOrAdd(rendering, r => new Lazy<Task<string>>(async () =>
    {
        var (tool, argument) = (r.Split(' ')[0], r.Split(' ')[1]);
        if (tool == "kustomize")
        {
            return await DeploymentTools.KustomizeAsync(Path.Combine(Repo.Root, argument));
        }

        var (exitCode, stdout, stderr) = await DeploymentTools.HelmAsync(HelmArgs(argument));
        return exitCode == 0 ? stdout : throw new InvalidOperationException($"helm {string.Join(' ', HelmArgs(argument))} failed: {stderr}");
    })).Value;

    private static async Task<List<ManifestDocument>> ObjectsAsync(string rendering) => [.. Manifests.Parse(await RenderAsync(rendering), rendering)];

    private static string Key(ManifestDocument d) => $"{d.Kind}/{d.Name}";

    private static Dictionary<string, object?> Child(Dictionary<string, object?> tree, params string[] path) =>
        path.Aggregate(tree, (node, key) => (Dictionary<string, object?>)node[key]!);

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public async Task EveryKustomizationRendersWithEveryObjectInTheClassifierNamespace(string directory)
    {
        var objects = await ObjectsAsync($"kustomize {directory}");

        Assert.True(objects.Count > 10, $"{directory} rendered {objects.Count} objects");
        Assert.All(objects.Where(o => o.Kind != "Namespace"), o => Assert.Equal("classifier", Child(o.Tree, "metadata")["namespace"]));
    }

    [Fact]
    public async Task ApplyingK8sDeploysTheBaseUnchanged() =>
        Assert.Equal(await RenderAsync("kustomize k8s/base"), await RenderAsync("kustomize k8s"));

    /// <summary>The overlay's objects against the base's: which were added, which removed, which differ.</summary>
    private static async Task<(List<ManifestDocument> Added, List<string> Removed, List<ManifestDocument> Changed)> AgainstBaseAsync(string overlay)
    {
        var baseObjects = (await ObjectsAsync("kustomize k8s/base")).ToDictionary(Key);
        var overlayObjects = (await ObjectsAsync($"kustomize {overlay}")).ToDictionary(Key);
        return (
            [.. overlayObjects.Values.Where(o => !baseObjects.ContainsKey(Key(o)))],
            [.. baseObjects.Keys.Where(k => !overlayObjects.ContainsKey(k))],
            [.. overlayObjects.Values.Where(o => baseObjects.TryGetValue(Key(o), out var b) && Differences(b.Tree, o.Tree, "").Any())]);
    }

    [Fact]
    public async Task TheGpuOverlayChangesOnlyTheSiloWhichRunsCudaOnOneGpuOnGpuNodes()
    {
        var (added, removed, changed) = await AgainstBaseAsync("k8s/gpu");

        Assert.Empty(added);
        Assert.Empty(removed);
        var silo = (k8s.Models.V1Deployment)Manifests.Typed(Assert.Single(changed));
        Assert.Equal("classifier-silo", silo.Metadata.Name);
        var container = silo.Spec.Template.Spec.Containers.Single();
        Assert.Equal("cuda", container.Env.Single(e => e.Name == "Models__Device").Value);
        Assert.Equal("1", container.Resources.Limits["nvidia.com/gpu"].ToString());
        Assert.EndsWith("-cuda", container.Image, StringComparison.Ordinal);
        Assert.Contains(silo.Spec.Template.Spec.Tolerations, t => t.Key == "nvidia.com/gpu");
        Assert.NotEmpty(silo.Spec.Template.Spec.NodeSelector);
    }

    [Fact]
    public async Task TheKedaOverlayReplacesTheHpaWithAScaledObjectOnQueueDepthAndCpu()
    {
        var (added, removed, changed) = await AgainstBaseAsync("k8s/keda");

        Assert.Empty(changed);
        Assert.Equal(["HorizontalPodAutoscaler/classifier-silo"], removed);
        var scaled = Assert.Single(added);
        Assert.Equal("ScaledObject", scaled.Kind);
        var spec = Child(scaled.Tree, "spec");
        Assert.Equal("classifier-silo", Child(spec, "scaleTargetRef")["name"]);
        Assert.Contains(await ObjectsAsync("kustomize k8s/keda"), o => o.Kind == "Deployment" && o.Name == "classifier-silo");
        var triggers = ((List<object?>)spec["triggers"]!).Cast<Dictionary<string, object?>>().ToList();
        Assert.Contains(triggers, t => (string)t["type"]! == "prometheus" && ((string)Child(t, "metadata")["query"]!).Contains("inference_queue_depth", StringComparison.Ordinal));
        Assert.Contains(triggers, t => (string)t["type"]! == "cpu");
    }

    [Fact]
    public async Task TheNoOperatorOverlayLeavesOutOnlyThePrometheusOperatorsKinds()
    {
        var (added, removed, changed) = await AgainstBaseAsync("k8s/no-operator");

        Assert.Empty(added);
        Assert.Empty(changed);
        Assert.Equal(["PrometheusRule/classifier-alerts", "ServiceMonitor/classifier-gateway", "ServiceMonitor/classifier-silo"], removed.Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(ChartValues))]
    public async Task HelmLintsTheChartStrictly(string values)
    {
        var (exitCode, stdout, stderr) = await DeploymentTools.HelmAsync(
            ["lint", "--strict", Path.Combine(Repo.Root, "charts", "classifier"), .. values == "defaults" ? Array.Empty<string>() : ["-f", ValuesPath(values)]]);

        Assert.True(exitCode == 0, stdout + stderr);
        Assert.Contains("0 chart(s) failed", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnUnsupportedKubernetesVersionIsRefusedNamingTheVersionTheChartNeeds()
    {
        var (exitCode, _, stderr) = await DeploymentTools.HelmAsync([.. HelmArgs("defaults"), "--kube-version", "1.24.0"]);

        Assert.NotEqual(0, exitCode);
        Assert.Contains(">=1.25.0-0", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// The chart's defaults and the kustomize base deploy the same objects. What differs on purpose is left out of the
    /// comparison: the labels only Helm sets, the namespace (Helm installs into the release's), the Namespace object
    /// (<c>helm install --create-namespace</c>), and the plain manifests' references to optional Secrets (API keys,
    /// cluster TLS), which take effect when those Secrets are created; the chart renders them only when its values
    /// name them. Everything else, container environment included (compared by name), must be equal.
    /// </summary>
    [Fact]
    public async Task TheChartsDefaultsRenderTheKustomizeBaseObjectByObject()
    {
        var chart = (await ObjectsAsync("helm defaults")).ToDictionary(Key, o => Normalized(o.Tree, dropOptionalSecrets: false));
        var plain = (await ObjectsAsync("kustomize k8s/base")).Where(o => o.Kind != "Namespace").ToDictionary(Key, o => Normalized(o.Tree, dropOptionalSecrets: true));

        Assert.Equal(plain.Keys.Order(StringComparer.Ordinal), chart.Keys.Order(StringComparer.Ordinal));
        var differences = plain.Keys.SelectMany(k => Differences(plain[k], chart[k], k)).ToList();
        Assert.True(differences.Count == 0, "kustomize vs helm:\n" + string.Join("\n", differences));
    }

    private static readonly string[] HelmOnlyLabels = ["app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart"];

    private static object? Normalized(object? node, bool dropOptionalSecrets)
    {
        switch (node)
        {
            case Dictionary<string, object?> mapping:
                var copy = new Dictionary<string, object?>();
                foreach (var (key, value) in mapping)
                {
                    if (key == "namespace" && value is string)
                    {
                        continue;
                    }

                    copy[key] = key switch
                    {
                        "labels" when value is Dictionary<string, object?> labels => labels.Where(l => !HelmOnlyLabels.Contains(l.Key)).ToDictionary(l => l.Key, l => l.Value),
                        "env" when value is List<object?> env => env.Cast<Dictionary<string, object?>>()
                            .Where(e => !dropOptionalSecrets || !IsOptionalSecret(e))
                            .ToDictionary(e => (string)e["name"]!, e => Normalized(e, dropOptionalSecrets)),
                        "volumes" when value is List<object?> volumes && dropOptionalSecrets => volumes.Cast<Dictionary<string, object?>>().Where(v => !IsOptionalSecret(v)).Select(v => Normalized(v, dropOptionalSecrets)).ToList(),
                        "volumeMounts" when value is List<object?> mounts && dropOptionalSecrets => mounts.Cast<Dictionary<string, object?>>()
                            .Where(m => (string)m["name"]! != "cluster-tls").Select(m => Normalized(m, dropOptionalSecrets)).ToList(),
                        _ => Normalized(value, dropOptionalSecrets),
                    };
                }

                return copy;
            case List<object?> sequence:
                return sequence.Select(i => Normalized(i, dropOptionalSecrets)).ToList();
            default:
                return node;
        }
    }

    /// <summary>An env entry or volume that reads a Secret which may be absent.</summary>
    private static bool IsOptionalSecret(Dictionary<string, object?> entry) =>
        (entry.GetValueOrDefault("valueFrom") is Dictionary<string, object?> from && from.GetValueOrDefault("secretKeyRef") is Dictionary<string, object?> key && key.GetValueOrDefault("optional") as string == "true")
        || (entry.GetValueOrDefault("secret") is Dictionary<string, object?> secret && secret.GetValueOrDefault("optional") as string == "true");

    private static IEnumerable<string> Differences(object? a, object? b, string path)
    {
        switch (a, b)
        {
            case (Dictionary<string, object?> x, Dictionary<string, object?> y):
                foreach (var key in x.Keys.Union(y.Keys).Order(StringComparer.Ordinal))
                {
                    if (!x.ContainsKey(key) || !y.ContainsKey(key))
                    {
                        yield return $"{path}.{key}: only in {(x.ContainsKey(key) ? "the first" : "the second")}";
                        continue;
                    }

                    foreach (var d in Differences(x[key], y[key], $"{path}.{key}"))
                    {
                        yield return d;
                    }
                }

                break;
            case (List<object?> x, List<object?> y):
                if (x.Count != y.Count)
                {
                    yield return $"{path}: {x.Count} items against {y.Count}";
                    yield break;
                }

                for (var i = 0; i < x.Count; i++)
                {
                    foreach (var d in Differences(x[i], y[i], $"{path}[{i}]"))
                    {
                        yield return d;
                    }
                }

                break;
            default:
                if (!Equals(a, b))
                {
                    yield return $"{path}: '{a}' against '{b}'";
                }

                break;
        }
    }

    [Theory]
    [MemberData(nameof(Renderings))]
    public async Task EveryRenderedObjectPassesItsSchemaAndTypesWithNoUnknownField(string rendering)
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("rendered-").FullName, rendering.Replace(' ', '_').Replace('/', '_') + ".yaml");
        await File.WriteAllTextAsync(file, await RenderAsync(rendering));
        try
        {
            var (problems, summary) = await DeploymentTools.CheckSchemasAsync(file);

            Assert.True(problems.Length == 0, $"{summary}:\n{string.Join("\n", problems)}");
            Assert.Matches(@"^[1-9]\d* objects checked", summary);

            // And the Kubernetes client's typed models, read strictly, for the built-in kinds.
            foreach (var document in Manifests.Parse(await RenderAsync(rendering), rendering).Where(d => !d.ApiVersion.Contains(".coreos.com", StringComparison.Ordinal) && !d.ApiVersion.StartsWith("keda.sh", StringComparison.Ordinal)))
            {
                Assert.Equal(document.Kind, Manifests.Typed(document).Kind);
            }
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
        }
    }

    [Fact]
    public async Task TheSchemaCheckFindsAnUnknownFieldAndAWrongType()
    {
        // The check above is worth something only if it can fail: a misspelt field and a number written as a word.
        var broken = (await RenderAsync("kustomize k8s/keda"))
            .Replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:", StringComparison.Ordinal)
            .Replace("minReplicaCount: 2", "minReplicaCount: two", StringComparison.Ordinal);
        var file = Path.Combine(Directory.CreateTempSubdirectory("broken-").FullName, "broken.yaml");
        await File.WriteAllTextAsync(file, broken);
        try
        {
            var (problems, _) = await DeploymentTools.CheckSchemasAsync(file);

            Assert.Contains(problems, p => p.Contains("Deployment/classifier-silo", StringComparison.Ordinal) && p.Contains("terminationGracePeriodSecond", StringComparison.Ordinal));
            Assert.Contains(problems, p => p.Contains("ScaledObject/classifier-silo", StringComparison.Ordinal) && p.Contains("minReplicaCount must be integer", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
        }
    }

    public static TheoryData<string> RenderingsWithMonitoring() => ["kustomize k8s/base", "kustomize k8s/gpu", "helm defaults", "helm chart-every-option.yaml"];

    [Theory]
    [MemberData(nameof(RenderingsWithMonitoring))]
    public async Task TheRenderedPrometheusRulePassesPromtool(string rendering)
    {
        var rule = (await ObjectsAsync(rendering)).Single(o => o.Kind == "PrometheusRule");
        var spec = new YamlDotNet.Serialization.SerializerBuilder().Build().Serialize(rule.Tree["spec"]);
        var file = Path.Combine(Directory.CreateTempSubdirectory("rule-").FullName, "rules.yml");
        await File.WriteAllTextAsync(file, spec);
        try
        {
            var (exitCode, output) = await Tool.RunAsync(Tool.Find("promtool", "prometheus"), ["check", "rules", file]);

            Assert.True(exitCode == 0, output);
            Assert.Matches(@"SUCCESS: [1-9]\d* rules found", output);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(RenderingsWithMonitoring))]
    public async Task TheRenderedDashboardsParseAndMatchTheShippedOnes(string rendering)
    {
        var configMap = (await ObjectsAsync(rendering)).Single(o => o.Kind == "ConfigMap" && ((Dictionary<string, object?>)o.Tree["data"]!).Keys.Any(k => k.EndsWith(".json", StringComparison.Ordinal)));
        var data = (Dictionary<string, object?>)configMap.Tree["data"]!;
        var shipped = Directory.GetFiles(Path.Combine(Repo.Root, "observability", "grafana"), "*.json").Select(Path.GetFileName).Order(StringComparer.Ordinal);

        Assert.Equal(shipped, data.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, text) in data)
        {
            using var dashboard = JsonDocument.Parse((string)text!);
            Assert.True(dashboard.RootElement.GetProperty("panels").GetArrayLength() > 0, name);
            Assert.Equal(
                JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Repo.Root, "observability", "grafana", name))).RootElement.GetProperty("uid").GetString(),
                dashboard.RootElement.GetProperty("uid").GetString());
        }
    }
}
