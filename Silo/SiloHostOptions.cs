using System.ComponentModel.DataAnnotations;
using Classifier.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Classifier.Silo;

/// <summary>How this silo joins its cluster.</summary>
public sealed class SiloHostOptions : ClusterMembershipSettings
{
    /// <summary>The address other silos and clients reach this silo at (redis clustering); defaults to POD_IP, else 127.0.0.1.</summary>
    public string? AdvertisedIP { get; set; }

    /// <summary>Silo-to-silo port.</summary>
    [Range(1, 65535)]
    public int SiloPort { get; set; } = 11111;

    /// <summary>Port that clients (the HTTP gateway) connect to.</summary>
    [Range(1, 65535)]
    public int GatewayPort { get; set; } = 30000;

    /// <summary>Silo port of the primary silo, which every localhost silo contacts to join.</summary>
    [Range(1, 65535)]
    public int PrimarySiloPort { get; set; } = 11111;

    /// <summary>How long a silo waits for a peer's probe answer; with <see cref="MissedProbesLimit"/> it sets how fast a crashed silo is declared dead.</summary>
    [Range(typeof(TimeSpan), "00:00:00.500", "00:01:00")]
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Missed probes after which a peer is suspected; two suspicions declare it dead.</summary>
    [Range(1, 10)]
    public int MissedProbesLimit { get; set; } = 2;

    /// <summary>
    /// On SIGTERM the silo reports not-ready and keeps serving this long before it leaves the cluster,
    /// so probes and load balancers see it go before its grains move.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan DrainDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Largest Orleans message this silo accepts, in bytes (a larger one closes its connection). Keep it above
    /// Gateway:MaxImageBytes plus 1 MiB; default 32 MiB.
    /// </summary>
    [Range(1024 * 1024, int.MaxValue)]
    public int MaxMessageBytes { get; set; } = 32 * 1024 * 1024;

    /// <summary>Name shown in answers and logs; defaults to POD_NAME, else <c>silo-{SiloPort}</c>.</summary>
    public string? SiloName { get; set; }

    /// <summary>
    /// Run Orleans' Kubernetes hosting beside Redis membership: a silo whose pod is gone is declared dead at
    /// once instead of after failed probes, and the pod's <c>orleans/*</c> labels are kept equal to the
    /// cluster ids. Only in a pod, with RBAC to get, list, watch and patch pods in its namespace (k8s/base/rbac.yaml).
    /// </summary>
    public bool KubernetesHosting { get; set; }

    /// <summary>Fails, naming the setting, when <see cref="KubernetesHosting"/> is on where it cannot work.</summary>
    public void RequireKubernetesPod()
    {
        var problem = Clustering != "redis"
            ? "Cluster:KubernetesHosting needs Cluster:Clustering 'redis': Redis stays the membership table, Kubernetes hosting only watches the pods."
            : string.IsNullOrEmpty(Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST"))
                ? "Cluster:KubernetesHosting is true but this process is not in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set); leave it false outside Kubernetes."
                : null;
        if (problem is not null)
        {
            throw new OptionsValidationException(SectionName, GetType(), [problem]);
        }
    }
}
