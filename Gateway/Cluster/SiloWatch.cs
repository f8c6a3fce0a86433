using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Gateway.Cluster;

/// <summary>
/// Tells the gateway's callers the moment membership declares a silo dead. A call the gateway forwarded to a silo
/// that then died gets no answer from Orleans until the call timeout, even once the cluster knows the silo is gone
/// (dotnet/orleans#10165): the gateway silo that relayed it keeps no record of it. Callers waiting on such a call
/// use <see cref="NextDeath"/> to give it up and retry on a survivor at once.
/// </summary>
public sealed class SiloWatch(IClusterClient client, IOptions<GatewayOptions> options, ILogger<SiloWatch> logger) : BackgroundService
{
    private TaskCompletionSource<IReadOnlySet<string>> _nextDeath = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Dictionary<SiloAddress, string>? _active;
    private HashSet<string>? _activeNames;

    /// <summary>Whether membership's last read held an active silo of this name; false before the first read.</summary>
    public bool IsActive(string silo) => Volatile.Read(ref _activeNames)?.Contains(silo) == true;

    /// <summary>Longest one membership read may take before the next is tried.</summary>
    private TimeSpan PollTimeout => TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(1).Ticks, options.Value.MembershipPollInterval.Ticks));

    /// <summary>Completes, with the names of the silos, when membership next declares one or more silos dead.</summary>
    public Task<IReadOnlySet<string>> NextDeath => Volatile.Read(ref _nextDeath).Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.MembershipPollInterval);
        try
        {
            do
            {
                await PollAsync();
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
            // The gateway is stopping.
        }
    }

    /// <summary>Reads membership once and signals every silo that was active at the last poll and is dead now.</summary>
    public async Task PollAsync()
    {
        MembershipEntry[] hosts;
        try
        {
            // Bounded: the management grain may itself live on the silo that just died, and a call to it would then
            // hang until the call timeout; the next poll reaches a new activation once the death is declared.
            hosts = await client.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: false).WaitAsync(PollTimeout);
        }
        catch (Exception e)
        {
            // Not connected yet (the cluster's grain types are learnt on connecting), or no silo answered: next time.
            logger.LogDebug(e, "Membership poll failed; trying again next interval");
            return;
        }

        var active = hosts.Where(h => h.Status == SiloStatus.Active).ToDictionary(h => h.SiloAddress, h => h.SiloName);
        var previous = _active;
        _active = active;
        Volatile.Write(ref _activeNames, active.Values.ToHashSet());
        if (previous is null)
        {
            return;
        }

        // Only deaths: a silo that leaves gracefully answers the calls it has before it goes.
        var dead = hosts.Where(h => h.Status == SiloStatus.Dead && previous.ContainsKey(h.SiloAddress)).Select(h => h.SiloName).ToHashSet();
        if (dead.Count > 0)
        {
            logger.LogWarning("Membership declared {Silos} dead; calls waiting on them are retried on the survivors", string.Join(", ", dead));
            Interlocked.Exchange(ref _nextDeath, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(dead);
        }
    }
}
