using Classifier.Grains.Interfaces;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Classifier.Grains.Placement;

/// <summary>Places a ModelGrain shard only on a silo where its model version is ready (<see cref="ModelReadyPlacementDirector"/>).</summary>
[GenerateSerializer, Immutable, Alias("classifier.ModelReadyPlacement")]
public sealed class ModelReadyPlacement : PlacementStrategy
{
    public static readonly ModelReadyPlacement Instance = new();
}

/// <summary>Marks a grain class for <see cref="ModelReadyPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class ModelReadyPlacementAttribute() : PlacementAttribute(ModelReadyPlacement.Instance);

/// <summary>
/// Chooses the silo for a new ModelGrain activation among those where the shard's model version is ready, so a
/// cluster serves as well as its best silo: a silo whose model failed to load, is still loading or failed at run
/// time receives none of that version's shards. Among ready silos, shard <c>s</c> goes to the <c>s mod n</c>-th in
/// address order: every silo gets its share of fresh shards however stale the activation statistics are (they
/// put all 30 fresh shards of a test on one silo of three), and no silo is picked by chance. A migration's target
/// (the placement hint) is honoured when the model is ready there.
/// </summary>
public sealed class ModelReadyPlacementDirector(ModelAvailability availability, Cluster.ClusterReporter reporter) : IPlacementDirector
{
    public async Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var candidates = context.GetCompatibleSilos(target);
        var hint = IPlacementDirector.GetPlacementHint(target.RequestContextData, candidates);
        if (!ModelGrainKey.TryParse(target.GrainIdentity.Key.ToString(), out var key))
        {
            // Not a key the cluster serves: the grain refuses it wherever it lands, so land it here, cheaply.
            return Local(context, candidates);
        }

        var ready = availability.ReadySilos(key.Model, key.Version, candidates);
        if (ready.Length == 0 && hint is null)
        {
            // A gateway routed here a version this silo's view has nowhere: a silo joined with it, or loaded it, since
            // this silo's last report. Without a fresh view the shard would land here and answer "not loaded".
            await reporter.RefreshViewAsync();
            ready = availability.ReadySilos(key.Model, key.Version, candidates);
        }

        if (hint is not null && (ready.Length == 0 || ready.Contains(hint)))
        {
            return hint;
        }

        // Nowhere ready: the grain answers why (503), and is placed where that costs least.
        return ready.Length == 0 ? Local(context, candidates) : ready[key.Shard % ready.Length];
    }

    private static SiloAddress Local(IPlacementContext context, SiloAddress[] candidates) =>
        candidates.Contains(context.LocalSilo) ? context.LocalSilo : candidates[Random.Shared.Next(candidates.Length)];
}
