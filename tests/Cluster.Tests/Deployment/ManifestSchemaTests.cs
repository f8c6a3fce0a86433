using k8s;
using k8s.Models;

namespace Classifier.Tests.Deployment;

/// <summary>Every manifest in <c>k8s/</c> is an object the API server would accept: typed models read strictly, CRDs against their schema.</summary>
public sealed class ManifestSchemaTests
{
    /// <summary>
    /// The fields of the two Prometheus Operator kinds used here (monitoring.coreos.com/v1), by path; "*"
    /// stands for any key (labels, annotations). Not the whole CRD: enough to catch a misspelt or misplaced field.
    /// </summary>
    private static readonly Dictionary<string, HashSet<string>> CustomResourceSchema = new()
    {
        [""] = ["apiVersion", "kind", "metadata", "spec"],
        ["metadata"] = ["name", "namespace", "labels", "annotations"],
        ["metadata.labels"] = ["*"],
        ["metadata.annotations"] = ["*"],
        ["ServiceMonitor.spec"] = ["jobLabel", "targetLabels", "podTargetLabels", "endpoints", "selector", "namespaceSelector", "sampleLimit", "targetLimit", "attachMetadata"],
        ["ServiceMonitor.spec.selector"] = ["matchLabels", "matchExpressions"],
        ["ServiceMonitor.spec.selector.matchLabels"] = ["*"],
        ["ServiceMonitor.spec.endpoints[]"] = ["port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels", "honorTimestamps", "metricRelabelings", "relabelings", "tlsConfig", "authorization", "followRedirects", "enableHttp2", "filterRunning"],
        ["ServiceMonitor.spec.endpoints[].relabelings[]"] = ["sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"],
        ["PrometheusRule.spec"] = ["groups"],
        ["PrometheusRule.spec.groups[]"] = ["name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"],
        ["PrometheusRule.spec.groups[].rules[]"] = ["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"],
        ["PrometheusRule.spec.groups[].rules[].labels"] = ["*"],
        ["PrometheusRule.spec.groups[].rules[].annotations"] = ["*"],
    };

    public static TheoryData<string> Documents() => [.. Manifests.Documents.Select(d => d.ToString())];

    [Theory]
    [MemberData(nameof(Documents))]
    public void EveryManifestReadsIntoItsTypedModelOrCrdSchemaWithNoUnknownField(string id)
    {
        var document = Manifests.Documents.Single(d => d.ToString() == id);

        if (Manifests.CustomKinds.Contains($"{document.ApiVersion}/{document.Kind}"))
        {
            var unknown = UnknownCustomFields(document.Kind, "", document.Tree).ToList();
            Assert.True(unknown.Count == 0, $"{id}: fields outside the {document.Kind} schema: {string.Join(", ", unknown)}");
            Assert.Equal("classifier", ((Dictionary<string, object?>)document.Tree["metadata"]!)["namespace"]);
        }
        else
        {
            var typed = Manifests.Typed(document);
            Assert.Equal(document.Kind, typed.Kind);
            Assert.Equal(document.ApiVersion, typed.ApiVersion);
            var metadata = ((IMetadata<V1ObjectMeta>)typed).Metadata;
            Assert.Equal(document.Name, metadata.Name);
            if (typed is not V1Namespace)
            {
                Assert.Equal("classifier", metadata.NamespaceProperty);
            }
        }
    }

    [Fact]
    public void NetworkPoliciesReadIntoTheNetworkingV1Model()
    {
        var documents = Manifests.Documents.Where(d => d.Kind == "NetworkPolicy").ToList();

        Assert.NotEmpty(documents);
        Assert.All(documents, d => Assert.IsType<V1NetworkPolicy>(Manifests.Typed(d)));
        Assert.All(documents, d => Assert.Equal("networking.k8s.io/v1", d.ApiVersion));
    }

    [Fact]
    public void TheStrictReaderRejectsAFieldTheModelDoesNotKnow()
    {
        // The check above is only worth something if the reader really is strict.
        var silo = Manifests.Documents.Single(d => d.Kind == "Deployment" && d.Name == "classifier-silo");
        var misspelt = silo.Text.Replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:", StringComparison.Ordinal);

        Assert.NotEqual(silo.Text, misspelt);
        Assert.ThrowsAny<Exception>(() => KubernetesYaml.LoadAllFromString(misspelt, typeMap: null, strict: true));
    }

    [Fact]
    public void EveryObjectCarriesTheStandardLabels()
    {
        foreach (var document in Manifests.Documents)
        {
            var labels = (Dictionary<string, object?>)((Dictionary<string, object?>)document.Tree["metadata"]!)["labels"]!;
            Assert.True(labels.ContainsKey("app.kubernetes.io/name") && labels.ContainsKey("app.kubernetes.io/part-of"), $"{document}: standard labels missing");
        }
    }

    [Fact]
    public void KustomizationListsEveryManifestAndOnlyExistingOnes()
    {
        var kustomization = Kustomization(Path.Combine(Manifests.Dir, "kustomization.yaml"));
        var resources = ((List<object?>)kustomization["resources"]!).Cast<string>().ToList();

        Assert.Equal(Manifests.ObjectFiles().Select(Path.GetFileName).Order(StringComparer.Ordinal), resources.Order(StringComparer.Ordinal));
        var images = ((List<object?>)kustomization["images"]!).Cast<Dictionary<string, object?>>().Select(i => (string)i["name"]!).ToHashSet();
        var used = Manifests.All<V1Deployment>().SelectMany(d => d.Spec.Template.Spec.Containers).Select(c => c.Image.Split(':')[0]).Where(i => i.StartsWith("classifier-", StringComparison.Ordinal));
        Assert.All(used, image => Assert.Contains(image, images));
    }

    [Fact]
    public void GpuOverlayPatchesTheSiloDeploymentWithAGpuCudaAndGpuNodes()
    {
        var overlayDir = Path.Combine(Classifier.Tests.Support.Repo.Root, "k8s", "gpu");
        var kustomization = Kustomization(Path.Combine(overlayDir, "kustomization.yaml"));
        Assert.Equal(["../base"], ((List<object?>)kustomization["resources"]!).Cast<string>());
        var patchPath = (string)((Dictionary<string, object?>)((List<object?>)kustomization["patches"]!).Single()!)["path"]!;

        var patch = (V1Deployment)KubernetesYaml.LoadAllFromString(File.ReadAllText(Path.Combine(overlayDir, patchPath)), typeMap: null, strict: true).Single();

        Assert.Equal("classifier-silo", patch.Metadata.Name);
        Assert.NotNull(Manifests.Deployment(patch.Metadata.Name));
        var container = patch.Spec.Template.Spec.Containers.Single();
        Assert.Equal(Manifests.Container("classifier-silo").Name, container.Name);
        Assert.Equal("cuda", container.Env.Single(e => e.Name == "Models__Device").Value);
        Assert.Equal("1", container.Resources.Limits["nvidia.com/gpu"].ToString());
        Assert.NotEmpty(patch.Spec.Template.Spec.NodeSelector);
        Assert.Contains(patch.Spec.Template.Spec.Tolerations, t => t.Key == "nvidia.com/gpu");
        Assert.Contains(((List<object?>)kustomization["images"]!).Cast<Dictionary<string, object?>>(), i => (string)i["name"]! == "classifier-silo");
    }

    private static Dictionary<string, object?> Kustomization(string path)
    {
        var document = Manifests.Read(path).Single();
        Assert.Equal("kustomize.config.k8s.io/v1beta1", document.ApiVersion);
        Assert.Equal("Kustomization", document.Kind);
        var unknown = document.Tree.Keys.Except(["apiVersion", "kind", "resources", "patches", "images", "namespace", "labels"]).ToList();
        Assert.True(unknown.Count == 0, $"{path}: unexpected keys {string.Join(", ", unknown)}");
        return document.Tree;
    }

    private static IEnumerable<string> UnknownCustomFields(string kind, string path, object? node)
    {
        switch (node)
        {
            case Dictionary<string, object?> mapping:
                var key = CustomResourceSchema.ContainsKey(path) ? path : $"{kind}.{path}";
                if (!CustomResourceSchema.TryGetValue(key, out var allowed))
                {
                    yield return $"{path} (no schema)";
                    yield break;
                }

                foreach (var (name, child) in mapping)
                {
                    if (allowed.Contains("*"))
                    {
                        if (child is not string)
                        {
                            yield return $"{path}.{name} (must be a string)";
                        }

                        continue;
                    }

                    if (!allowed.Contains(name))
                    {
                        yield return path.Length == 0 ? name : $"{path}.{name}";
                        continue;
                    }

                    foreach (var u in UnknownCustomFields(kind, path.Length == 0 ? name : $"{path}.{name}", child))
                    {
                        yield return u;
                    }
                }

                break;
            case List<object?> sequence:
                foreach (var item in sequence)
                {
                    foreach (var u in UnknownCustomFields(kind, path + "[]", item))
                    {
                        yield return u;
                    }
                }

                break;
        }
    }
}
