namespace Classifier.Grains.Interfaces;

/// <summary>The cluster-wide fan-in point: silos push their reports, everyone reads the combined view.</summary>
/// <remarks>Use the single key <see cref="Key"/>.</remarks>
[Alias("classifier.IClusterGrain")]
public interface IClusterGrain : IGrainWithIntegerKey
{
    public const long Key = 0;

    /// <summary>Records one silo's report and answers the cluster view including it.</summary>
    [Alias("Report")]
    Task<ClusterSnapshot> ReportAsync(SiloReport report);

    /// <summary>The latest cluster view.</summary>
    [Alias("GetSnapshot")]
    Task<ClusterSnapshot> GetSnapshotAsync();
}
