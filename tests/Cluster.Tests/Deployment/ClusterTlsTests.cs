using Classifier.Tests.Support;
using k8s.Models;

namespace Classifier.Tests.Deployment;

/// <summary>
/// Cluster TLS in <c>k8s/</c>: silos and gateways read the same kubernetes.io/tls Secret from where their
/// <c>Cluster:Tls</c> settings point, and the cert-manager example writes that Secret.
/// </summary>
public sealed class ClusterTlsTests
{
    /// <summary>Each path setting and the key of a kubernetes.io/tls Secret (as cert-manager writes it) it must name.</summary>
    public static readonly Dictionary<string, string> SettingKeys = new()
    {
        ["Cluster__Tls__CertificatePath"] = "tls.crt",
        ["Cluster__Tls__KeyPath"] = "tls.key",
        ["Cluster__Tls__CaPath"] = "ca.crt",
    };

    private static string ExamplePath => Path.Combine(Repo.Root, "docs", "cluster-tls-cert-manager.yaml");

    public static TheoryData<string> OrleansRoles() => ["classifier-silo", "classifier-gateway"];

    [Theory]
    [MemberData(nameof(OrleansRoles))]
    public void TheTlsSettingsPointAtTheKeysOfTheClusterTlsSecretMountedReadOnly(string deployment)
    {
        var pod = Manifests.Deployment(deployment).Spec.Template.Spec;
        var env = pod.Containers.Single().Env.ToDictionary(e => e.Name, e => e.Value);
        var volume = Assert.Single(pod.Volumes, v => v.Secret?.SecretName == "classifier-cluster-tls");
        var mount = Assert.Single(pod.Containers.Single().VolumeMounts, m => m.Name == volume.Name);

        // Optional: the pods start before anyone has created the Secret, with TLS off.
        Assert.True(volume.Secret.Optional, $"{deployment}: a missing Secret would keep the pods from starting");
        Assert.Null(volume.Secret.Items); // every key, under its own name
        Assert.True(mount.ReadOnlyProperty, $"{deployment}: the TLS mount is writable");
        Assert.Null(mount.SubPath); // a subPath mount would not see the Secret renewed
        foreach (var (setting, key) in SettingKeys)
        {
            Assert.True(env.TryGetValue(setting, out var path), $"{deployment}: {setting} is not set");
            Assert.Equal($"{mount.MountPath}/{key}", path);
        }
    }

    [Fact]
    public void TlsIsOffUntilTheSecretExistsAndSetAlikeOnSilosAndGateways()
    {
        var silo = Manifests.Container("classifier-silo").Env.Where(e => e.Name.StartsWith("Cluster__Tls__", StringComparison.Ordinal)).ToDictionary(e => e.Name, e => e.Value);
        var gateway = Manifests.Container("classifier-gateway").Env.Where(e => e.Name.StartsWith("Cluster__Tls__", StringComparison.Ordinal)).ToDictionary(e => e.Name, e => e.Value);

        // A silo and a gateway that disagree cannot connect.
        Assert.Equal(silo.OrderBy(kv => kv.Key, StringComparer.Ordinal), gateway.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        Assert.Equal("false", silo["Cluster__Tls__Enabled"]);
        Assert.Equal(
            Manifests.Deployment("classifier-silo").Spec.Template.Spec.Volumes.Single(v => v.Secret is not null).Secret.SecretName,
            Manifests.Deployment("classifier-gateway").Spec.Template.Spec.Volumes.Single(v => v.Secret is not null).Secret.SecretName);
    }

    [Fact]
    public void TheCertManagerExampleIssuesTheMountedSecretForServerAndClientAuthFromItsOwnCa()
    {
        var documents = Manifests.Read(ExamplePath).ToList();
        var mounted = Manifests.Deployment("classifier-silo").Spec.Template.Spec.Volumes.Single(v => v.Secret is not null).Secret.SecretName;
        Assert.All(documents, d => Assert.Equal("cert-manager.io/v1", d.ApiVersion));
        Assert.All(documents, d => Assert.Equal("classifier", Map(d.Tree, "metadata")["namespace"]));

        var leaf = Assert.Single(documents, d => d.Kind == "Certificate" && (string?)Map(d.Tree, "spec")["secretName"] == mounted);
        var leafSpec = Map(leaf.Tree, "spec");
        var usages = ((List<object?>)leafSpec["usages"]!).Cast<string>().ToList();
        // Each side presents the certificate: the accepting side as a server, the dialling side as a client.
        Assert.Contains("server auth", usages);
        Assert.Contains("client auth", usages);
        Assert.NotEqual("true", leafSpec.GetValueOrDefault("isCA"));

        // The leaf's issuer is a CA issuer over a CA certificate that a self-signed issuer makes: ca.crt is then that CA.
        var caIssuer = Issuer(documents, leafSpec);
        var caSecret = (string)Map(caIssuer.Tree, "spec", "ca")["secretName"]!;
        var ca = Assert.Single(documents, d => d.Kind == "Certificate" && (string?)Map(d.Tree, "spec")["secretName"] == caSecret);
        Assert.Equal("true", Map(ca.Tree, "spec")["isCA"]);
        var root = Issuer(documents, Map(ca.Tree, "spec"));
        Assert.True(Map(root.Tree, "spec").ContainsKey("selfSigned"), $"{root}: the CA is not self-signed");
        // Renewing the CA with a new key would leave running pods trusting a CA that no longer signs.
        Assert.Equal("Never", Map(ca.Tree, "spec", "privateKey")["rotationPolicy"]);
    }

    [Fact]
    public void NoCertManagerObjectIsPartOfTheKustomization()
    {
        Assert.True(File.Exists(ExamplePath));
        // Without cert-manager's CRDs, kubectl apply -k would fail on the first cert-manager object.
        Assert.DoesNotContain(Manifests.Documents, d => d.ApiVersion.StartsWith("cert-manager.io/", StringComparison.Ordinal));
    }

    private static ManifestDocument Issuer(List<ManifestDocument> documents, Dictionary<string, object?> certificateSpec)
    {
        var reference = Map(certificateSpec, "issuerRef");
        Assert.Equal("Issuer", reference["kind"]);
        return Assert.Single(documents, d => d.Kind == "Issuer" && d.Name == (string)reference["name"]!);
    }

    private static Dictionary<string, object?> Map(Dictionary<string, object?> tree, params string[] path) =>
        path.Aggregate(tree, (node, key) => (Dictionary<string, object?>)node[key]!);
}
