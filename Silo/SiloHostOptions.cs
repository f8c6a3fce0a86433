using System.ComponentModel.DataAnnotations;

namespace Classifier.Silo;

/// <summary>How this silo joins its cluster.</summary>
public sealed class SiloHostOptions
{
    public const string SectionName = "Cluster";

    /// <summary>Silos and clients with the same cluster id form one cluster.</summary>
    [Required]
    public string ClusterId { get; set; } = "classifier";

    /// <summary>Stable across deployments of the same service.</summary>
    [Required]
    public string ServiceId { get; set; } = "classifier";

    /// <summary>
    /// <c>localhost</c>: silos on one machine find each other through the primary silo, no external store.
    /// <c>redis</c>: membership in Redis (<see cref="RedisConnectionString"/>); any silo can fail, and silos
    /// may run on several machines or pods.
    /// </summary>
    [Required, RegularExpression("^(localhost|redis)$", ErrorMessage = "Cluster:Clustering must be 'localhost' or 'redis'.")]
    public string Clustering { get; set; } = "localhost";

    /// <summary>StackExchange.Redis connection string for <c>redis</c> clustering, e.g. <c>redis:6379</c>.</summary>
    public string? RedisConnectionString { get; set; }

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
