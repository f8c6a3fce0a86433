using Classifier.Gateway;
using Classifier.Gateway.Cluster;
using Classifier.Grains;
using Classifier.Grains.Cluster;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Telemetry;
using Classifier.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.TestingHost;
using Prometheus;

namespace Classifier.Tests.Orleans;

/// <summary>Two silos in this process, each with its own metrics registry, serving the real default model.</summary>
public class ClusterFixture : IAsyncLifetime
{
    /// <summary>Silos to start with.</summary>
    protected virtual int InitialSilos => 2;

    public const int CacheCapacity = 4;
    public const int ShardCount = 32;

    /// <summary>Shards the silos accept (Cluster:ShardCount): tests route with this many or fewer.</summary>
    public const int SiloShardCount = 64;

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public ValueTask InitializeAsync() => StartAsync();

    protected async ValueTask StartAsync()
    {
        Repo.RequireDefaultModel();
        var builder = new InProcessTestClusterBuilder((short)InitialSilos);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddSingleton(Metrics.NewCustomRegistry());
            silo.AddClassifierGrains();
            silo.Services.Configure<ModelsOptions>(o =>
            {
                o.Repository = Repo.Models;
                o.Device = "cpu";
                o.IntraOpThreads = 1;
            });
            silo.Services.Configure<CacheOptions>(o => o.Capacity = CacheCapacity);
            silo.Services.Configure<ShardingOptions>(o => o.ShardCount = SiloShardCount);
            silo.Services.Configure<ClusterStatsOptions>(o => o.ReportInterval = TimeSpan.FromSeconds(15));
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();

        // Placement spreads shards over the silos each silo's cluster view lists as serving the model: wait until
        // every silo's view lists them all (they catch up within a second of each other's first report).
        for (var i = 0; i < 100 && !SiloServices.All(s => ReporterOf(s).Latest?.Silos.Length == Cluster.Silos.Count); i++)
        {
            await Task.Delay(100);
        }
    }

    /// <summary>The gateway's own router, so tests route exactly as the gateway does.</summary>
    public PredictionRouter Router() =>
        new(Cluster.Client, Options.Create(new GatewayOptions()), NullLogger<PredictionRouter>.Instance);

    /// <summary>Classifies through the gateway's router, over <paramref name="shardCount"/> shards (at most <see cref="SiloShardCount"/>).</summary>
    public async Task<Prediction> ClassifyAsync(byte[] image, int shardCount = ShardCount)
    {
        var reply = await Router().PredictAsync("text-orientation", "1", image, 0, shardCount, CancellationToken.None);
        Assert.NotNull(reply);
        Assert.Null(reply.Error);
        return reply.Prediction!;
    }

    public IEnumerable<IServiceProvider> SiloServices => Cluster.Silos.Select(s => s.ServiceProvider);

    public static SiloMetrics MetricsOf(IServiceProvider silo) => silo.GetRequiredService<SiloMetrics>();

    public static ClusterReporter ReporterOf(IServiceProvider silo) => silo.GetRequiredService<ClusterReporter>();

    public async ValueTask DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}

/// <summary>A second, separate cluster for tests that need cumulative counts to start at zero.</summary>
public sealed class FreshClusterFixture : ClusterFixture;

/// <summary>A cluster that starts with one silo, for scale-out tests.</summary>
public sealed class SingleSiloClusterFixture : ClusterFixture
{
    protected override int InitialSilos => 1;
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "in-process cluster";
}

[CollectionDefinition(Name)]
public sealed class FreshClusterCollection : ICollectionFixture<FreshClusterFixture>
{
    public const string Name = "fresh in-process cluster";
}
