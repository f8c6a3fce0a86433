using Classifier.Grains.Cluster;

namespace Classifier.Tests.Unit;

/// <summary>
/// The rebalancing plan every silo works out from the same snapshot, run round after round as the silos would:
/// each round every silo plans from the counts at its start, then all moves land.
/// </summary>
public sealed class ShardBalanceTests
{
    [Fact]
    public void AFifthSiloJoiningFourWithEightShardsEachIsFilledInOneRound()
    {
        var after = Round([8, 8, 8, 8, 0]);

        Assert.Equal(6, after[4]);
        Assert.Equal([6, 6, 6, 7, 7], after.Order());
    }

    [Theory]
    [InlineData(new[] { 8, 8, 8, 8, 0 })]
    [InlineData(new[] { 8, 8, 8, 8, 0, 0 })]
    [InlineData(new[] { 24, 0 })]
    [InlineData(new[] { 11, 11, 10, 0 })]
    [InlineData(new[] { 17, 15 })]
    [InlineData(new[] { 60, 0, 0, 0, 0, 0 })]
    [InlineData(new[] { 20, 20, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]
    [InlineData(new[] { 3, 0, 0, 0, 0 })]
    [InlineData(new[] { 8, 6, 6, 6, 6 })]
    [InlineData(new[] { 9, 9, 6, 6, 6, 0 })]
    public void RoundsConvergeToAtMostOneShardApartWithoutOvershooting(int[] start)
    {
        var counts = start;
        var rounds = 0;
        while (true)
        {
            var next = Round(counts);
            if (next.SequenceEqual(counts))
            {
                break;
            }

            // A receiving silo never ends a round above the ceiling of the mean, so nothing flows back.
            var ceiling = (counts.Sum() + counts.Length - 1) / counts.Length;
            for (var i = 0; i < counts.Length; i++)
            {
                Assert.True(next[i] <= Math.Max(counts[i], ceiling), $"silo {i} went from {counts[i]} past the ceiling {ceiling}: {string.Join(",", next)}");
            }

            counts = next;
            Assert.True(++rounds <= 10, $"no convergence after 10 rounds: {string.Join(",", counts)}");
        }

        Assert.Equal(start.Sum(), counts.Sum());
        Assert.True(counts.Max() - counts.Min() <= 1, $"{string.Join(",", start)} settled at {string.Join(",", counts)}");
    }

    [Fact]
    public void AnEvenClusterMovesNothing()
    {
        Assert.Equal([8, 8, 8, 8], Round([8, 8, 8, 8]));
        Assert.Equal([7, 6, 6, 6, 7], Round([7, 6, 6, 6, 7]));
        Assert.Equal((null, 0), ShardBalance.Plan("a", [("a", 5, true)]));
    }

    [Fact]
    public void ASiloWhoseModelFailedTakesNoPartAndTheOthersStillBalance()
    {
        // silo-02's model failed to load: it holds nothing and can take nothing; silo-03 joined and can.
        bool[] serves = [true, true, false, true];
        var after = Round([12, 12, 0, 0], serves);

        Assert.Equal(0, after[2]);
        Assert.Equal([8, 8, 0, 8], after);
        Assert.Equal(after, Round(after, serves));
    }

    /// <summary>One round: every silo plans from the same counts, then every move lands.</summary>
    private static int[] Round(int[] counts, bool[]? serves = null)
    {
        var names = counts.Select((_, i) => $"silo-{i:D2}").ToArray();
        var snapshot = names.Select((n, i) => (n, counts[i], serves?[i] ?? true)).ToList();
        var next = counts.ToArray();
        for (var i = 0; i < names.Length; i++)
        {
            var (lightest, moves) = ShardBalance.Plan(names[i], snapshot);
            if (lightest is not null)
            {
                next[i] -= moves;
                next[Array.IndexOf(names, lightest)] += moves;
            }
        }

        return next;
    }
}
