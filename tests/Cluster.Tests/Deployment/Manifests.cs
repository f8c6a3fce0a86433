using k8s;
using k8s.Models;
using Classifier.Tests.Support;
using YamlDotNet.RepresentationModel;

namespace Classifier.Tests.Deployment;

/// <summary>One YAML document of a manifest file, as a plain tree (mappings, sequences, strings) and its source text.</summary>
public sealed record ManifestDocument(string File, int Index, string Text, Dictionary<string, object?> Tree)
{
    public string ApiVersion => (string)Tree["apiVersion"]!;

    public string Kind => (string)Tree["kind"]!;

    public string Name => (string)((Dictionary<string, object?>)Tree["metadata"]!)["name"]!;

    public override string ToString() => $"{File} #{Index} {Kind}/{Name}";
}

/// <summary>Reads the plain manifests in <c>k8s/base/</c>: raw YAML trees for everything, the Kubernetes client's typed models for built-in kinds.</summary>
public static class Manifests
{
    public static string Dir => Path.Combine(Repo.Root, "k8s", "base");

    /// <summary>Kinds served by the Prometheus Operator's CRDs: no typed model, checked against <see cref="CustomResourceSchema"/>.</summary>
    public static readonly HashSet<string> CustomKinds = ["monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"];

    /// <summary>Kubernetes object files of the base (not the kustomization files, not the GPU overlay).</summary>
    public static IEnumerable<string> ObjectFiles() =>
        Directory.GetFiles(Dir, "*.yaml").Where(f => Path.GetFileName(f) != "kustomization.yaml").Order(StringComparer.Ordinal);

    public static IReadOnlyList<ManifestDocument> Documents { get; } = ObjectFiles().SelectMany(Read).ToList();

    public static IEnumerable<ManifestDocument> Read(string path) => Parse(File.ReadAllText(path), Path.GetRelativePath(Repo.Root, path));

    /// <summary>The documents of a YAML text (a file, or what kustomize or helm rendered), named after <paramref name="source"/>.</summary>
    public static IEnumerable<ManifestDocument> Parse(string text, string source)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        var sources = SplitDocuments(text);
        if (sources.Count != stream.Documents.Count)
        {
            throw new InvalidOperationException($"{source}: {stream.Documents.Count} YAML documents but {sources.Count} '---' sections");
        }

        return stream.Documents.Select((d, i) => new ManifestDocument(source, i, sources[i], (Dictionary<string, object?>)ToTree(d.RootNode)!));
    }

    /// <summary>The typed model of a built-in object, read strictly: a field the model does not know fails.</summary>
    public static IKubernetesObject Typed(ManifestDocument document) =>
        (IKubernetesObject)KubernetesYaml.LoadAllFromString(document.Text, typeMap: null, strict: true).Single();

    public static IEnumerable<T> All<T>() where T : IKubernetesObject =>
        Documents.Where(d => !CustomKinds.Contains($"{d.ApiVersion}/{d.Kind}")).Select(Typed).OfType<T>();

    public static V1Deployment Deployment(string name) => All<V1Deployment>().Single(d => d.Metadata.Name == name);

    public static V1Container Container(string deployment) => Deployment(deployment).Spec.Template.Spec.Containers.Single();

    public static ManifestDocument Custom(string kind, string name) => Documents.Single(d => d.Kind == kind && d.Name == name);

    /// <summary>Whether every pair of the selector is among the labels.</summary>
    public static bool Selects(IDictionary<string, string>? selector, IDictionary<string, string>? labels) =>
        selector is { Count: > 0 } && labels is not null && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    public static object? ToTree(YamlNode node) => node switch
    {
        YamlMappingNode m => m.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value!, kv => ToTree(kv.Value)),
        YamlSequenceNode s => s.Children.Select(ToTree).ToList(),
        YamlScalarNode s => s.Value,
        _ => throw new InvalidOperationException($"unexpected YAML node {node.NodeType}"),
    };

    /// <summary>The text of each document: split at lines that are exactly <c>---</c>, dropping sections that hold only comments.</summary>
    private static List<string> SplitDocuments(string text)
    {
        var sections = new List<string>();
        var current = new System.Text.StringBuilder();
        foreach (var line in text.Split('\n'))
        {
            if (line.TrimEnd() == "---")
            {
                sections.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(line).Append('\n');
            }
        }

        sections.Add(current.ToString());
        return sections.Where(s => s.Split('\n').Any(l => l.Trim().Length > 0 && !l.TrimStart().StartsWith('#'))).ToList();
    }
}
