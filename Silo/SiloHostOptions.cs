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

    /// <summary><c>localhost</c>: silos on one machine find each other through the primary silo, no external store.</summary>
    [Required, RegularExpression("^localhost$", ErrorMessage = "Cluster:Clustering must be 'localhost' (Redis and Kubernetes membership are planned).")]
    public string Clustering { get; set; } = "localhost";

    /// <summary>Silo-to-silo port.</summary>
    [Range(1, 65535)]
    public int SiloPort { get; set; } = 11111;

    /// <summary>Port that clients (the HTTP gateway) connect to.</summary>
    [Range(1, 65535)]
    public int GatewayPort { get; set; } = 30000;

    /// <summary>Silo port of the primary silo, which every localhost silo contacts to join.</summary>
    [Range(1, 65535)]
    public int PrimarySiloPort { get; set; } = 11111;

    /// <summary>Name shown in answers and logs; defaults to POD_NAME, else <c>silo-{SiloPort}</c>.</summary>
    public string? SiloName { get; set; }
}
