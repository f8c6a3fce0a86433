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
