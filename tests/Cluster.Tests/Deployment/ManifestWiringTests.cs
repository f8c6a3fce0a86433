using k8s.Models;

namespace Classifier.Tests.Deployment;

/// <summary>The objects in <c>k8s/</c> refer to each other correctly: selectors, ports, accounts, scale targets.</summary>
public sealed class ManifestWiringTests
{
    [Fact]
    public void EveryWorkloadSelectorMatchesItsOwnPodTemplateAndNoOtherWorkloadsPods()
    {
        var deployments = Manifests.All<V1Deployment>().ToList();

        Assert.Equal(["classifier-gateway", "classifier-redis", "classifier-silo"], deployments.Select(d => d.Metadata.Name).Order(StringComparer.Ordinal));
        foreach (var deployment in deployments)
        {
            Assert.True(Manifests.Selects(deployment.Spec.Selector.MatchLabels, deployment.Spec.Template.Metadata.Labels), $"{deployment.Metadata.Name}: selector does not match its pods");
            Assert.Null(deployment.Spec.Selector.MatchExpressions);
            foreach (var other in deployments.Where(o => o != deployment))
            {
                Assert.False(Manifests.Selects(deployment.Spec.Selector.MatchLabels, other.Spec.Template.Metadata.Labels), $"{deployment.Metadata.Name} selects {other.Metadata.Name}'s pods");
            }
        }
    }

    [Fact]
    public void EveryServiceSelectsExactlyOneWorkloadAndTargetsPortsItsContainerNames()
    {
        var deployments = Manifests.All<V1Deployment>().ToList();

        foreach (var service in Manifests.All<V1Service>())
        {
            var selected = deployments.Where(d => Manifests.Selects(service.Spec.Selector, d.Spec.Template.Metadata.Labels)).ToList();
            Assert.True(selected.Count == 1, $"Service {service.Metadata.Name} selects {selected.Count} workloads");
            var ports = selected[0].Spec.Template.Spec.Containers.SelectMany(c => c.Ports).ToList();
            foreach (var port in service.Spec.Ports)
            {
                Assert.False(string.IsNullOrEmpty(port.Name), $"Service {service.Metadata.Name}: unnamed port {port.Port}");
                var target = port.TargetPort.Value;
                Assert.True(ports.Any(p => p.Name == target || p.ContainerPort.ToString(System.Globalization.CultureInfo.InvariantCulture) == target),
                    $"Service {service.Metadata.Name} port {port.Name} targets {target}, which {selected[0].Metadata.Name} does not expose");
            }
        }
    }

    [Fact]
    public void EveryProbeUsesAPortTheContainerExposes()
    {
        foreach (var deployment in Manifests.All<V1Deployment>())
        {
            var container = deployment.Spec.Template.Spec.Containers.Single();
            foreach (var probe in new[] { container.StartupProbe, container.LivenessProbe, container.ReadinessProbe }.Where(p => p is not null))
            {
                var port = probe.HttpGet?.Port.Value ?? probe.TcpSocket?.Port.Value;
                if (port is not null)
                {
                    Assert.Contains(container.Ports, p => p.Name == port || p.ContainerPort.ToString(System.Globalization.CultureInfo.InvariantCulture) == port);
                }
            }

            Assert.NotNull(container.LivenessProbe);
            Assert.NotNull(container.ReadinessProbe);
        }
    }

    [Fact]
    public void ServiceMonitorsSelectTheSiloAndGatewayServicesAndScrapePortsTheyName()
    {
        var services = Manifests.All<V1Service>().ToList();

        foreach (var (monitor, component) in new[] { ("classifier-silo", "silo"), ("classifier-gateway", "gateway") })
        {
            var spec = (Dictionary<string, object?>)Manifests.Custom("ServiceMonitor", monitor).Tree["spec"]!;
            var matchLabels = ((Dictionary<string, object?>)((Dictionary<string, object?>)spec["selector"]!)["matchLabels"]!).ToDictionary(kv => kv.Key, kv => (string)kv.Value!);

            var selected = services.Where(s => Manifests.Selects(matchLabels, s.Metadata.Labels)).ToList();
            var service = Assert.Single(selected);
            Assert.Equal(component, service.Metadata.Labels["app.kubernetes.io/component"]);
            foreach (var endpoint in ((List<object?>)spec["endpoints"]!).Cast<Dictionary<string, object?>>())
            {
                Assert.Contains(service.Spec.Ports, p => p.Name == (string)endpoint["port"]!);
                Assert.Equal("/metrics", endpoint["path"]);
            }
        }
    }

    [Fact]
    public void SilosAreEachTheirOwnScrapeTargetBehindAHeadlessService()
    {
        var service = Manifests.All<V1Service>().Single(s => s.Metadata.Name == "classifier-silo");

        // A ServiceMonitor scrapes every endpoint of the Service; headless, because nothing should load-balance to silos.
        Assert.Equal("None", service.Spec.ClusterIP);
        Assert.Equal(["metrics"], service.Spec.Ports.Select(p => p.Name));
    }

    [Fact]
    public void MonitoringObjectsCarryTheKubePrometheusStackReleaseLabel()
    {
        foreach (var document in Manifests.Documents.Where(d => d.Kind is "ServiceMonitor" or "PrometheusRule"))
        {
            var labels = (Dictionary<string, object?>)((Dictionary<string, object?>)document.Tree["metadata"]!)["labels"]!;
            Assert.Equal("kube-prometheus-stack", labels["release"]);
        }
    }

    [Fact]
    public void TheHpaScalesTheSiloDeploymentWhichLeavesReplicasToIt()
    {
        var hpa = Manifests.All<V2HorizontalPodAutoscaler>().Single();

        Assert.Equal(("apps/v1", "Deployment", "classifier-silo"), (hpa.Spec.ScaleTargetRef.ApiVersion, hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name));
        Assert.Null(Manifests.Deployment("classifier-silo").Spec.Replicas);
        Assert.Contains(hpa.Spec.Metrics, m => m.Type == "Resource" && m.Resource.Name == "cpu" && m.Resource.Target.Type == "Utilization");
        Assert.True(hpa.Spec.MinReplicas >= 2, "one silo is a single point of failure");
        Assert.True(hpa.Spec.Behavior.ScaleDown.StabilizationWindowSeconds >= 300, "scale-down must wait: every removed silo drops its caches");
        Assert.All(hpa.Spec.Behavior.ScaleDown.Policies, p => Assert.True(p.Type == "Pods" && p.Value == 1, "silos leave one at a time"));
    }

    [Fact]
    public void TheShardCountIsAFewTimesTheLargestSiloCount()
    {
        var hpa = Manifests.All<V2HorizontalPodAutoscaler>().Single();
        var shards = int.Parse(Manifests.Container("classifier-silo").Env.Single(e => e.Name == "Cluster__ShardCount").Value, System.Globalization.CultureInfo.InvariantCulture);

        Assert.True(shards >= 4 * hpa.Spec.MaxReplicas, $"Cluster__ShardCount {shards} spreads too coarsely over {hpa.Spec.MaxReplicas} silos");
    }

    private static long Setting(string deployment, string name) =>
        long.Parse(Manifests.Container(deployment).Env.Single(e => e.Name == name).Value, System.Globalization.CultureInfo.InvariantCulture);

    private static long MemoryLimit(string deployment) => (long)Manifests.Container(deployment).Resources.Limits["memory"].ToDecimal();

    /// <summary>
    /// The silo's memory model (README, Security): its own ~250 MiB (measured at rest after load), the decode budget
    /// (native pixels), the encoded images waiting for it, and two largest Orleans messages in flight.
    /// </summary>
    [Fact]
    public void TheSilosMemoryLimitHoldsItsDecodeBudgets()
    {
        const long own = 256L << 20;
        const long messages = 2 * (32L << 20); // Cluster:MaxMessageBytes, default
        var needed = own + Setting("classifier-silo", "Images__DecodeMemoryBytes") + Setting("classifier-silo", "Images__MaxWaitingBytes") + messages;

        Assert.True(MemoryLimit("classifier-silo") >= needed, $"the silo needs {needed >> 20} MiB by its settings, more than its {MemoryLimit("classifier-silo") >> 20} MiB limit");
    }

    /// <summary>
    /// The gateway's memory model: the upload budget and what Kestrel buffers per connection (64 KiB) live in the managed
    /// heap, which .NET keeps within 75 % of the container's limit, beside the gateway's own ~64 MiB of heap.
    /// </summary>
    [Fact]
    public void TheGatewaysHeapHoldsItsUploadBudgetAndConnectionBuffers()
    {
        const long ownHeap = 64L << 20;
        var needed = ownHeap + Setting("classifier-gateway", "Gateway__MaxUploadBytesInFlight") + Setting("classifier-gateway", "Gateway__MaxConnections") * (64L << 10);
        var heap = MemoryLimit("classifier-gateway") * 3 / 4;

        Assert.True(heap >= needed, $"the gateway needs {needed >> 20} MiB of heap by its settings, more than the {heap >> 20} MiB .NET allows under its limit");
    }

    [Fact]
    public void DisruptionBudgetsLetSilosGoOneAtATime()
    {
        var budgets = Manifests.All<V1PodDisruptionBudget>().ToList();
        var silo = Manifests.Deployment("classifier-silo");

        var siloBudget = Assert.Single(budgets, b => Manifests.Selects(b.Spec.Selector.MatchLabels, silo.Spec.Template.Metadata.Labels));
        Assert.Equal("1", siloBudget.Spec.MaxUnavailable.Value);
        Assert.All(budgets, b => Assert.Contains(Manifests.All<V1Deployment>(), d => Manifests.Selects(b.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)));
    }

    [Fact]
    public void SilosRunUnderTheAccountThatTheRoleBindingGrantsPodAccessTo()
    {
        var silo = Manifests.Deployment("classifier-silo").Spec.Template.Spec;
        var binding = Manifests.All<V1RoleBinding>().Single();
        var role = Manifests.All<V1Role>().Single(r => r.Metadata.Name == binding.RoleRef.Name);

        Assert.Equal("Role", binding.RoleRef.Kind);
        Assert.Contains(binding.Subjects, s => s.Kind == "ServiceAccount" && s.Name == silo.ServiceAccountName && s.NamespaceProperty == "classifier");
        Assert.Contains(Manifests.All<V1ServiceAccount>(), a => a.Metadata.Name == silo.ServiceAccountName && a.AutomountServiceAccountToken != false);
        Assert.NotEqual(false, silo.AutomountServiceAccountToken); // Orleans' Kubernetes hosting needs the token
        var rule = Assert.Single(role.Rules);
        Assert.Equal([""], rule.ApiGroups);
        Assert.Equal(["pods"], rule.Resources);
        // What Orleans.Hosting.Kubernetes 10.4.2 calls: read, list and watch pods, patch its own pod's labels.
        Assert.Equal(["get", "list", "patch", "watch"], rule.Verbs.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void SiloPodsCarryOrleansLabelsEqualToTheClusterIdsTheyAreConfiguredWith()
    {
        var silo = Manifests.Deployment("classifier-silo").Spec.Template;
        var env = silo.Spec.Containers.Single().Env.ToDictionary(e => e.Name, e => e.Value);

        // Kubernetes hosting watches pods by these labels, using the ids the silo runs with.
        Assert.Equal(env["Cluster__ServiceId"], silo.Metadata.Labels["orleans/serviceId"]);
        Assert.Equal(env["Cluster__ClusterId"], silo.Metadata.Labels["orleans/clusterId"]);
        Assert.Equal("true", env["Cluster__KubernetesHosting"]);
        Assert.DoesNotContain(env.Keys, k => k.StartsWith("ORLEANS_", StringComparison.Ordinal));

        var gateway = Manifests.Deployment("classifier-gateway").Spec.Template;
        var gatewayEnv = gateway.Spec.Containers.Single().Env.ToDictionary(e => e.Name, e => e.Value);
        Assert.Equal((env["Cluster__ServiceId"], env["Cluster__ClusterId"]), (gatewayEnv["Cluster__ServiceId"], gatewayEnv["Cluster__ClusterId"]));
        // Any pod with the orleans/* labels counts as a silo for Kubernetes hosting: the gateway must not carry them.
        Assert.DoesNotContain(gateway.Metadata.Labels.Keys, k => k.StartsWith("orleans/", StringComparison.Ordinal));
    }

    [Fact]
    public void SilosAndGatewaysFindRedisThroughItsService()
    {
        var redis = Manifests.All<V1Service>().Single(s => s.Metadata.Name == "classifier-redis");

        foreach (var name in new[] { "classifier-silo", "classifier-gateway" })
        {
            var env = Manifests.Container(name).Env.ToDictionary(e => e.Name, e => e.Value);
            Assert.Equal("redis", env["Cluster__Clustering"]);
            Assert.Equal($"{redis.Metadata.Name}:{redis.Spec.Ports.Single().Port}", env["Cluster__RedisConnectionString"]);
        }
    }

    [Fact]
    public void OrleansPodsGetTheirNameNamespaceAndIpFromTheDownwardApi()
    {
        foreach (var name in new[] { "classifier-silo", "classifier-gateway" })
        {
            var env = Manifests.Container(name).Env.ToDictionary(e => e.Name);
            Assert.Equal("metadata.name", env["POD_NAME"].ValueFrom.FieldRef.FieldPath);
            Assert.Equal("metadata.namespace", env["POD_NAMESPACE"].ValueFrom.FieldRef.FieldPath);
            Assert.Equal("status.podIP", env["POD_IP"].ValueFrom.FieldRef.FieldPath);
        }
    }

    [Fact]
    public void ContainersRequestCpuWithoutACpuLimitAndHaveAMemoryLimit()
    {
        foreach (var deployment in Manifests.All<V1Deployment>())
        {
            var resources = deployment.Spec.Template.Spec.Containers.Single().Resources;
            Assert.True(resources.Requests.ContainsKey("cpu") && resources.Requests.ContainsKey("memory"), $"{deployment.Metadata.Name}: requests");
            Assert.False(resources.Limits.ContainsKey("cpu"), $"{deployment.Metadata.Name}: a CPU limit throttles inference and Orleans' probes");
            Assert.True(resources.Limits.ContainsKey("memory"), $"{deployment.Metadata.Name}: memory limit");
            Assert.True(resources.Limits["memory"].ToDecimal() >= resources.Requests["memory"].ToDecimal());
        }
    }

    [Fact]
    public void EveryPodMeetsTheRestrictedPodSecurityStandard()
    {
        Assert.Equal("restricted", Manifests.All<V1Namespace>().Single().Metadata.Labels["pod-security.kubernetes.io/enforce"]);
        foreach (var deployment in Manifests.All<V1Deployment>())
        {
            var pod = deployment.Spec.Template.Spec;
            Assert.True(pod.SecurityContext.RunAsNonRoot, deployment.Metadata.Name);
            Assert.Equal("RuntimeDefault", pod.SecurityContext.SeccompProfile.Type);
            foreach (var container in pod.Containers)
            {
                Assert.False(container.SecurityContext.AllowPrivilegeEscalation ?? true, deployment.Metadata.Name);
                Assert.Equal(["ALL"], container.SecurityContext.Capabilities.Drop);
                Assert.True(container.SecurityContext.ReadOnlyRootFilesystem, deployment.Metadata.Name);
                foreach (var mount in container.VolumeMounts ?? [])
                {
                    // Volume types "restricted" allows; only scratch space is writable, Secrets (cluster TLS) are read-only.
                    var volume = pod.Volumes.Single(v => v.Name == mount.Name);
                    Assert.True(volume.EmptyDir is not null || (volume.Secret is not null && mount.ReadOnlyProperty == true), $"{deployment.Metadata.Name}: volume {mount.Name} is neither an emptyDir nor a read-only Secret");
                }
            }
        }

        // The .NET images' non-root "app" user, which the Dockerfiles run as.
        Assert.All(new[] { "classifier-silo", "classifier-gateway" }, n => Assert.Equal(1654, Manifests.Deployment(n).Spec.Template.Spec.SecurityContext.RunAsUser));
        Assert.All(new[] { "Silo", "Gateway" }, p => Assert.Contains("\nUSER 1654\n", File.ReadAllText(Path.Combine(Support.Repo.Root, p, "Dockerfile")), StringComparison.Ordinal));
    }

    [Fact]
    public void SilosSpreadOverNodesAndRollOutWithoutLosingCapacity()
    {
        var silo = Manifests.Deployment("classifier-silo");
        var term = silo.Spec.Template.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution.Single().PodAffinityTerm;

        Assert.Equal("kubernetes.io/hostname", term.TopologyKey);
        Assert.True(Manifests.Selects(term.LabelSelector.MatchLabels, silo.Spec.Template.Metadata.Labels));
        Assert.All(silo.Spec.Template.Spec.TopologySpreadConstraints, c => Assert.True(Manifests.Selects(c.LabelSelector.MatchLabels, silo.Spec.Template.Metadata.Labels)));
        Assert.Equal("0", silo.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);
    }
}
