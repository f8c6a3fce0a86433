using Classifier.Grains.Caching;
using Classifier.Grains.Inference;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Grains.Telemetry;

/// <summary>Refreshes the silo's point-in-time gauges from their sources just before each scrape.</summary>
/// <remarks>A lifecycle participant only so that every silo creates it, web host or not.</remarks>
public sealed class SiloGauges : ILifecycleParticipant<ISiloLifecycle>
{
    public SiloGauges(SiloMetrics metrics, SiloCacheStatistics statistics, ModelCatalog catalog, SystemMetricsSampler system, IOptions<ModelsOptions> models)
    {
        var requested = models.Value.Device;
        metrics.Registry.AddBeforeCollectCallback(() =>
        {
            var cache = statistics.Snapshot();
            metrics.CacheHitRate.Set(cache.HitRate);
            metrics.CacheSize.Set(cache.Entries);
            metrics.CacheCapacity.Set(cache.Capacity);
            metrics.CacheMemory.Set(cache.Bytes);
            foreach (var runtime in catalog.Runtimes)
            {
                var (model, version) = (runtime.Model.Name, runtime.Definition.Version);
                runtime.Metrics.State.Set((int)runtime.State);
                if (runtime.Provider != "none")
                {
                    metrics.ModelProvider.WithLabels(model, version, runtime.Provider, requested).Set(1);
                }
            }

            metrics.GpuDevices.Set(GpuDeviceCount());
            system.Sample();
        });
    }

    private static int GpuDeviceCount() => OperatingSystem.IsLinux() && Directory.Exists("/dev")
        ? Directory.EnumerateFiles("/dev", "nvidia*").Count(f => Path.GetFileName(f)["nvidia".Length..].All(char.IsAsciiDigit) && f.Length > "/dev/nvidia".Length)
        : 0;

    public void Participate(ISiloLifecycle lifecycle)
    {
        // Nothing to do at any stage: construction registered the scrape callback.
    }
}
