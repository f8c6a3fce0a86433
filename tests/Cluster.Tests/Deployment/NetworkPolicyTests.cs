using k8s.Models;

namespace Classifier.Tests.Deployment;

/// <summary>The NetworkPolicies in <c>k8s/</c> let only silos and gateways reach the Orleans and Redis ports.</summary>
public sealed class NetworkPolicyTests
{
    private static List<V1NetworkPolicy> Policies => Manifests.All<V1NetworkPolicy>().ToList();

    private static List<PolicyTarget> Workloads => Manifests.All<V1Deployment>().Select(PolicyTarget.Of).ToList();

    /// <summary>Ports that carry cluster traffic: the workload's component, its port name, and the components that must reach it.</summary>
    public static TheoryData<string, string, string[]> ClusterPorts() => NetworkPolicyRules.ClusterPorts;

    [Fact]
    public void EveryWorkloadIsIsolatedForIngressByExactlyOnePolicyAndEgressStaysOpen()
    {
        var policies = Policies;

        Assert.Equal(["gateway", "redis", "silo"], Workloads.Select(w => w.Component).Order(StringComparer.Ordinal));
        foreach (var workload in Workloads)
        {
            // Without a policy selecting them, pods accept connections from anywhere.
            Assert.Single(policies, p => workload.IsSelectedBy(p.Spec.PodSelector));
        }

        Assert.All(policies, p => Assert.Equal(["Ingress"], p.Spec.PolicyTypes));
        Assert.All(policies, p => Assert.Null(p.Spec.Egress));
    }

    [Theory]
    [MemberData(nameof(ClusterPorts))]
    public void ClusterPortsAdmitOnlyThePodsOfTheRolesThatUseThem(string component, string port, string[] clients) =>
        NetworkPolicyRules.AssertOnlyFrom(Policies, Workloads, component, port, clients);

    [Theory]
    [InlineData("silo")]
    [InlineData("gateway")]
    public void MetricsPortsAdmitEveryPodInTheClusterButNothingOutsideIt(string component) =>
        // Prometheus runs in another namespace (kube-prometheus-stack's); the Ingress must not reach /metrics.
        NetworkPolicyRules.AssertFromWholeClusterOnly(Policies, Workloads, component, "metrics");

    [Fact]
    public void TheGatewayApiPortAdmitsClientsFromAnywhere() =>
        // An Ingress controller or a LoadBalancer forwards from outside the cluster.
        NetworkPolicyRules.AssertFromAnywhere(Policies, Workloads, "gateway", "http");

    [Fact]
    public void EveryPortAPolicyNamesIsAContainerPortOfThePodsItSelects() =>
        NetworkPolicyRules.AssertPortsExist(Policies, Workloads);

    [Fact]
    public void EveryPeerSelectsPodsThatExist() =>
        // A misspelt label in a peer selects nothing: the port is then closed to the role that needs it.
        NetworkPolicyRules.AssertPeersSelectWorkloads(Policies, Workloads);
}

/// <summary>A workload's pods as a NetworkPolicy sees them: component, pod labels, the workload's own selector, container ports.</summary>
public sealed record PolicyTarget(string Component, IDictionary<string, string> Labels, IDictionary<string, string> Selector, IReadOnlyList<(string? Name, int? Number)> Ports)
{
    public static PolicyTarget Of(V1Deployment deployment) => new(
        deployment.Spec.Template.Metadata.Labels["app.kubernetes.io/component"],
        deployment.Spec.Template.Metadata.Labels,
        deployment.Spec.Selector.MatchLabels,
        deployment.Spec.Template.Spec.Containers.SelectMany(c => c.Ports ?? []).Select(p => ((string?)p.Name, (int?)p.ContainerPort)).ToList());

    /// <summary>Whether a label selector with only matchLabels selects these pods (an empty selector counts as no match: it would select every pod).</summary>
    public bool IsSelectedBy(V1LabelSelector? selector) => selector?.MatchExpressions is null && Manifests.Selects(selector?.MatchLabels, Labels);

    public bool Declares(V1NetworkPolicyPort port)
    {
        var value = port.Port?.Value;
        return value is not null && Ports.Any(p => p.Name == value
            || (p.Number is { } n && int.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var v) && (n == v || (port.EndPort is { } end && v <= n && n <= end))));
    }
}

/// <summary>What a set of NetworkPolicies admits, asserted the same way for <c>k8s/</c> and the chart.</summary>
public static class NetworkPolicyRules
{
    public static readonly TheoryData<string, string, string[]> ClusterPorts = new()
    {
        { "silo", "orleans-silo", ["silo"] },    // Cluster:SiloPort, silo to silo
        { "silo", "orleans-gw", ["gateway"] },   // Cluster:GatewayPort, the gateway's Orleans client
        { "redis", "redis", ["silo", "gateway"] }, // the membership table
    };

    /// <summary>The ingress rules of the policies selecting the component's pods that admit the named port.</summary>
    public static List<V1NetworkPolicyIngressRule> RulesFor(IEnumerable<V1NetworkPolicy> policies, IReadOnlyList<PolicyTarget> workloads, string component, string port)
    {
        var target = workloads.Single(w => w.Component == component);
        var selecting = policies.Where(p => target.IsSelectedBy(p.Spec.PodSelector)).ToList();
        Assert.True(selecting.Count > 0, $"no NetworkPolicy selects the {component} pods: every source may reach port {port}");

        // A rule without ports admits every port; one naming the port's number admits it as much as one naming it.
        var number = target.Ports.FirstOrDefault(p => p.Name == port).Number;
        bool Admits(V1NetworkPolicyPort p) =>
            p.Port?.Value == port
            || (number is { } n && int.TryParse(p.Port?.Value, System.Globalization.CultureInfo.InvariantCulture, out var v) && (v == n || (p.EndPort is { } end && v <= n && n <= end)));
        return selecting.SelectMany(p => p.Spec.Ingress ?? [])
            .Where(r => r.Ports is not { Count: > 0 } || r.Ports.Any(Admits))
            .ToList();
    }

    public static void AssertOnlyFrom(IReadOnlyList<V1NetworkPolicy> policies, IReadOnlyList<PolicyTarget> workloads, string component, string port, string[] clients)
    {
        var rules = RulesFor(policies, workloads, component, port);

        Assert.True(rules.Count > 0, $"no ingress rule admits {component} port {port}: its clients ({string.Join(", ", clients)}) cannot connect");
        foreach (var rule in rules)
        {
            Assert.True(rule.FromProperty is { Count: > 0 }, $"a rule admits {component} port {port} from every source");
            foreach (var peer in rule.FromProperty)
            {
                // A namespaceSelector or ipBlock admits pods of other namespaces or addresses; matchExpressions would need evaluating.
                Assert.True(peer.NamespaceSelector is null && peer.IpBlock is null && peer.PodSelector is { MatchExpressions: null }, $"{component} port {port}: a peer other than a matchLabels podSelector");
                var labels = peer.PodSelector.MatchLabels ?? new Dictionary<string, string>();
                var selected = workloads.Where(w => w.IsSelectedBy(peer.PodSelector)).ToList();
                Assert.True(selected.Count > 0, $"{component} port {port}: a peer selecting no workload ({string.Join(", ", labels)})");
                Assert.All(selected, w => Assert.Contains(w.Component, clients));
                // At least as narrow as the client's own Deployment selector: not "any pod called silo" of another release.
                Assert.Contains(selected, w => w.Selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value));
            }
        }

        foreach (var client in clients)
        {
            var pods = workloads.Single(w => w.Component == client);
            Assert.True(rules.SelectMany(r => r.FromProperty).Any(p => pods.IsSelectedBy(p.PodSelector)), $"{client} pods may not reach {component} port {port}");
        }
    }

    public static void AssertFromWholeClusterOnly(IReadOnlyList<V1NetworkPolicy> policies, IReadOnlyList<PolicyTarget> workloads, string component, string port)
    {
        var rules = RulesFor(policies, workloads, component, port);

        Assert.True(rules.Count > 0, $"no ingress rule admits {component} port {port}");
        Assert.All(rules, r => Assert.True(r.FromProperty is { Count: > 0 }, $"{component} port {port} is open to sources outside the cluster"));
        // An empty namespaceSelector without a podSelector: every pod of every namespace.
        Assert.Contains(rules.SelectMany(r => r.FromProperty), p => p.IpBlock is null && IsEmpty(p.NamespaceSelector) && (p.PodSelector is null || IsEmpty(p.PodSelector)));
    }

    public static void AssertFromAnywhere(IReadOnlyList<V1NetworkPolicy> policies, IReadOnlyList<PolicyTarget> workloads, string component, string port)
    {
        var rules = RulesFor(policies, workloads, component, port);

        Assert.Contains(rules, r => r.FromProperty is not { Count: > 0 });
    }

    public static void AssertPortsExist(IReadOnlyList<V1NetworkPolicy> policies, IReadOnlyList<PolicyTarget> workloads)
    {
        Assert.NotEmpty(policies);
        foreach (var policy in policies)
        {
            var target = Assert.Single(workloads, w => w.IsSelectedBy(policy.Spec.PodSelector));
            foreach (var port in (policy.Spec.Ingress ?? []).SelectMany(r => r.Ports ?? []))
            {
                Assert.True(target.Declares(port), $"NetworkPolicy {policy.Metadata.Name} names port {port.Port?.Value}, which the {target.Component} pods do not declare");
            }
        }
    }

    public static void AssertPeersSelectWorkloads(IReadOnlyList<V1NetworkPolicy> policies, IReadOnlyList<PolicyTarget> workloads)
    {
        var peers = policies.SelectMany(p => (p.Spec.Ingress ?? []).SelectMany(r => r.FromProperty ?? []).Select(f => (p.Metadata.Name, Peer: f))).Where(x => x.Peer.PodSelector is not null && !IsEmpty(x.Peer.PodSelector)).ToList();

        Assert.NotEmpty(peers);
        Assert.All(peers, x => Assert.True(workloads.Any(w => w.IsSelectedBy(x.Peer.PodSelector)), $"NetworkPolicy {x.Name}: a podSelector that selects no workload"));
    }

    private static bool IsEmpty(V1LabelSelector? selector) =>
        selector is not null && selector.MatchLabels is not { Count: > 0 } && selector.MatchExpressions is not { Count: > 0 };
}
