using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Classifier.ServiceDefaults;

/// <summary>What silos and gateways must agree on to form one cluster (section <c>Cluster</c>).</summary>
public abstract class ClusterMembershipSettings
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

    /// <summary>Mutual TLS on the Orleans connections (<c>Cluster:Tls:*</c>); silos and gateways must agree.</summary>
    public ClusterTlsSettings Tls { get; set; } = new();

    /// <summary>The Redis connection string, or a validation failure that says which setting to give.</summary>
    public string RequireRedisConnectionString() => string.IsNullOrWhiteSpace(RedisConnectionString)
        ? throw new OptionsValidationException(SectionName, GetType(),
            ["Cluster:Clustering is 'redis' but Cluster:RedisConnectionString is empty; set it (env Cluster__RedisConnectionString), e.g. redis:6379."])
        : RedisConnectionString;
}
