using Classifier.ServiceDefaults;
using System.Reflection;
using Classifier.Grains.Caching;
using Classifier.Grains.Cluster;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Grains;

/// <summary>Registers the classifier's grains and their silo-level services.</summary>
public static class SiloBuilderExtensions
{
    /// <summary>
    /// Adds model loading, caching statistics, metrics and cluster reporting to a silo. Options bind
    /// from the sections named by each options class. A silo that registered its own
    /// <see cref="Prometheus.CollectorRegistry"/> first keeps it; otherwise the default registry is used.
    /// </summary>
    public static ISiloBuilder AddClassifierGrains(this ISiloBuilder builder)
    {
        // What the cluster serves, for silos that start later; a host with shared storage (Redis) registers its own
        // provider under the same name after this, and that one is used.
        builder.AddMemoryGrainStorage(Cluster.ModelRepositoryGrain.StorageName);
        var services = builder.Services;
        services.AddOptions<ModelsOptions>().BindConfiguration(ModelsOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<CacheOptions>().BindConfiguration(CacheOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ImageOptions>().BindConfiguration(ImageOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ShardingOptions>().BindConfiguration(ShardingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ClusterStatsOptions>().BindConfiguration(ClusterStatsOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<ImageOptions>, ImageOptionsValidator>();

        services.TryAddSingleton(Prometheus.Metrics.DefaultRegistry);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(sp =>
        {
            var metrics = new SiloMetrics(sp.GetRequiredService<Prometheus.CollectorRegistry>(), exemplars: sp.GetRequiredService<IOptions<TracingOptions>>().Value.Enabled);
            metrics.Recording.Follow(sp.GetRequiredService<IConfiguration>(), sp.GetRequiredService<ILogger<SiloMetrics>>());
            var (version, build) = BuildInfo.Of(Assembly.GetExecutingAssembly());
            var orleans = BuildInfo.VersionOf(typeof(Grain).Assembly);
            var onnxRuntime = BuildInfo.VersionOf(typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly);
            metrics.AppInfo.WithLabels(version, build, "silo", orleans, onnxRuntime).Set(1);
            return metrics;
        });
        services.AddSingleton<SiloCacheStatistics>();
        services.AddSingleton<SystemMetricsSampler>();
        services.AddSingleton<ModelCatalog>();
        services.AddSingleton<ModelHost>();
        services.AddSingleton<ClusterReporter>();
        services.AddSingleton<ModelFolderPoller>();
        services.AddSingleton<Placement.ModelAvailability>();
        services.AddPlacementDirector<Placement.ModelReadyPlacement, Placement.ModelReadyPlacementDirector>();
        services.AddSingleton<SiloGauges>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ModelCatalog>());
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ClusterReporter>());
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<SiloGauges>());
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ModelFolderPoller>());
        return builder;
    }
}
