using System.Reflection;
using Classifier.Gateway;
using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Classifier.Tests.Unit;

public sealed class ClusterViewTests
{
    [Fact]
    public async Task ConcurrentRefreshesShareOneGrainCall()
    {
        var grain = new SlowClusterGrain();
        var view = new ClusterView(ClientFor(grain), Options.Create(new GatewayOptions()), TimeProvider.System, NullLogger<ClusterView>.Instance);

        await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => view.RefreshAsync()));

        Assert.Equal(1, grain.Calls);
        Assert.NotNull(view.Snapshot);
    }

    [Fact]
    public async Task ARefreshAfterTheLastOneEndedFetchesAgain()
    {
        var grain = new SlowClusterGrain();
        var view = new ClusterView(ClientFor(grain), Options.Create(new GatewayOptions()), TimeProvider.System, NullLogger<ClusterView>.Instance);

        await view.RefreshAsync();
        await view.RefreshAsync();

        Assert.Equal(2, grain.Calls);
    }

    /// <summary>
    /// The near cache keys answers by the fingerprint the route carries and serves them only from the silos it lists:
    /// both come from what the silos report, and a version whose silos disagree (a reload under way) carries none.
    /// </summary>
    [Fact]
    public async Task TheRouteCarriesTheVersionsFingerprintAndReadySilosAndNoneWhileSilosDisagree()
    {
        static ModelVersionStatus Status(string fingerprint, ModelState state = ModelState.Ready) => new(
            "m", "1", state, "CPU", new InputSpec("x", [3, 8, 8], "NCHW", "RGB", "stretch"), "y", 2, 2, 1, null, Fingerprint: fingerprint);
        static SiloReport Silo(string name, params ModelVersionStatus[] models) => new(name, models, CacheStatistics.Empty, DateTime.UtcNow);
        async Task<ModelRoute> RouteWith(params SiloReport[] silos)
        {
            var view = new ClusterView(ClientFor(new FixedClusterGrain(new ClusterSnapshot(silos, CacheStatistics.Empty))), Options.Create(new GatewayOptions()),
                TimeProvider.System, NullLogger<ClusterView>.Instance);
            await view.RefreshAsync();
            return await view.RouteAsync("m", null, CancellationToken.None);
        }

        var agreed = await RouteWith(Silo("a", Status("f1")), Silo("b", Status("f1")), Silo("c", Status("f9", ModelState.Error)));
        var reloading = await RouteWith(Silo("a", Status("f1")), Silo("b", Status("f2")));

        Assert.Equal("f1", agreed.Serving?.Fingerprint);
        Assert.Equal(["a", "b"], agreed.Serving!.ReadySilos.Order());
        Assert.Equal(200, reloading.StatusCode);
        Assert.Null(reloading.Serving);
    }

    private sealed class FixedClusterGrain(ClusterSnapshot snapshot) : IClusterGrain
    {
        public Task<ClusterSnapshot> GetSnapshotAsync() => Task.FromResult(snapshot);

        public Task<ClusterSnapshot> ReportAsync(SiloReport report) => throw new NotSupportedException();
    }

    /// <summary>A cluster client whose only grain is <paramref name="grain"/>; anything else it is asked for fails the test.</summary>
    private static IClusterClient ClientFor(IClusterGrain grain)
    {
        var client = DispatchProxy.Create<IClusterClient, OnlyClusterGrain>();
        ((OnlyClusterGrain)(object)client).Grain = grain;
        return client;
    }

    public class OnlyClusterGrain : DispatchProxy
    {
        public IClusterGrain Grain { get; set; } = null!;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) =>
            targetMethod is { Name: "GetGrain", IsGenericMethod: true } && targetMethod.GetGenericArguments()[0] == typeof(IClusterGrain)
                ? Grain
                : throw new NotSupportedException($"the test client has no {targetMethod?.Name}");
    }

    private sealed class SlowClusterGrain : IClusterGrain
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public async Task<ClusterSnapshot> GetSnapshotAsync()
        {
            Interlocked.Increment(ref _calls);
            await Task.Delay(200);
            return new ClusterSnapshot([], CacheStatistics.Empty);
        }

        public Task<ClusterSnapshot> ReportAsync(SiloReport report) => throw new NotSupportedException();
    }
}
