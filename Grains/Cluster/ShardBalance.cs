namespace Classifier.Grains.Cluster;

/// <summary>
/// How many shards a silo hands to the lightest silo in one rebalancing round. Every silo works it out from
/// the same snapshot, so the plan is one plan: the lightest silo is filled up to the floor of the mean (never
/// past it, so it does not turn heavy and send shards back), and that room is shared out among the silos
/// above the mean, most loaded first (ties by name), one shard at a time, none going below the floor. Once the
/// lightest holds the floor, a silo two or more above it sends it one, so every silo ends within one of another.
/// </summary>
/// <remarks>
/// The earlier rule moved only from a silo at least two shards above the ceiling of the mean: 32 shards on four
/// silos (8 each) gave a fifth silo a fair share of 7, an excess of 1 everywhere, and the newcomer nothing at all.
/// Here it receives 6 in one round (7, 7, 6, 6, 6), and a sixth, later, its 5 (32 over six: 6, 6, 5, 5, 5, 5).
/// </remarks>
public static class ShardBalance
{
    /// <param name="self">This silo's name.</param>
    /// <param name="silos">Every silo's name, ModelGrain count, and whether it serves the models of this silo's
    /// shards. One that does not (its model failed to load) takes no part: it would always be the lightest, and
    /// nothing could move to it, so the silos that could take shards would never get any.</param>
    /// <returns>The lightest silo (null when no move helps) and how many shards <paramref name="self"/> sends it.</returns>
    public static (string? Lightest, int Moves) Plan(string self, IReadOnlyList<(string Silo, int Shards, bool Serves)> silos)
    {
        var shards = silos.Where(s => s.Serves || s.Silo == self).Select(s => (s.Silo, s.Shards)).ToList();
        if (shards.Count < 2)
        {
            return (null, 0);
        }

        var floor = shards.Sum(s => s.Shards) / shards.Count;
        var mean = shards.Sum(s => s.Shards) / (double)shards.Count;
        var lightest = shards.OrderBy(s => s.Shards).ThenBy(s => s.Silo, StringComparer.Ordinal).First();
        var room = floor - lightest.Shards;
        var (above, keep) = (mean, floor); // who gives, and down to what
        if (room < 1)
        {
            // The lightest already holds the floor (8, 6, 6, 6, 6): one shard from a silo two or more above it,
            // so that silo and the lightest end at most one apart; never more than one, or it would overshoot.
            (room, above, keep) = (1, lightest.Shards + 1.5, lightest.Shards + 1);
        }

        if (lightest.Silo == self)
        {
            return (null, 0);
        }

        // The silos above the line, most loaded first; each may give down to its keep.
        var givers = shards.Where(s => s.Shards > above && s.Silo != lightest.Silo)
            .OrderByDescending(s => s.Shards).ThenBy(s => s.Silo, StringComparer.Ordinal)
            .Select(s => (s.Silo, Spare: s.Shards - keep))
            .ToArray();
        var given = new int[givers.Length];
        for (var left = room; left > 0;)
        {
            var progress = false;
            for (var i = 0; i < givers.Length && left > 0; i++)
            {
                if (given[i] < givers[i].Spare)
                {
                    given[i]++;
                    left--;
                    progress = true;
                }
            }

            if (!progress)
            {
                break;
            }
        }

        var index = Array.FindIndex(givers, g => g.Silo == self);
        return index < 0 || given[index] == 0 ? (null, 0) : (lightest.Silo, given[index]);
    }
}
