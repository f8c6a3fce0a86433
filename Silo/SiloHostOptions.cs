using System.ComponentModel.DataAnnotations;
using Classifier.ServiceDefaults;

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

    /// <summary>Name shown in answers and logs; defaults to POD_NAME, else <c>silo-{SiloPort}</c>.</summary>
    public string? SiloName { get; set; }
}
