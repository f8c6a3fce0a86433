using Classifier.LoadGenerator;

namespace Classifier.Tests.Unit;

public sealed class ComparisonStatisticsTests
{
    [Fact]
    public void BootstrapIntervalOfIdenticalRoundsIsThatValue()
    {
        var interval = Interval.OfMedian([1.02, 1.02, 1.02, 1.02]);

        Assert.Equal(new Interval(1.02, 1.02), interval);
    }

    [Fact]
    public void BootstrapIntervalContainsTheMedianAndNarrowsWithMoreRounds()
    {
        var random = new Random(7);
        double[] Rounds(int n) => Enumerable.Range(0, n).Select(_ => 1.0 + (random.NextDouble() - 0.5) * 0.2).ToArray();
        var (few, many) = (Rounds(10), Rounds(400));

        var (narrow, wide) = (Interval.OfMedian(many), Interval.OfMedian(few));

        Assert.InRange(Steady.Median(many), narrow.Low, narrow.High);
        Assert.InRange(Steady.Median(few), wide.Low, wide.High);
        Assert.True(narrow.High - narrow.Low < (wide.High - wide.Low) / 2, $"400 rounds gave {narrow}, 10 rounds {wide}");
    }

    [Fact]
    public void RatiosAreOfBOverAInTheSameRound()
    {
        var result = new ComparisonResult("all-hit", [100, 200, 400], [110, 180, 400], [10, 10, 10], [9, 10, 11]);

        Assert.Equal(1.0, result.MedianRatio, 6);    // 1.1, 0.9, 1.0
        Assert.Equal(1.0, result.MedianCpuRatio, 6); // 0.9, 1.0, 1.1
        Assert.Equal(0.9, result.MinRatio, 6);
        Assert.Equal(1.1, result.MaxRatio, 6);
    }

    [Fact]
    public void ExpositionSumAddsEveryLabelSetOfTheNamedMetricOnly()
    {
        const string text = """
            # TYPE predictions_total counter
            predictions_total{status="success"} 3
            predictions_total{status="cache_hit"} 4
            predictions_total_created 1700000000
            http_requests_total{endpoint="/predict"} 9
            process_cpu_seconds_total 1.25
            """;

        Assert.Equal(7, LiveSwitch.Sum(text, "predictions_total"));
        Assert.Equal(1.25, LiveSwitch.Sum(text, "process_cpu_seconds_total"));
        Assert.Equal(0, LiveSwitch.Sum(text, "cache_hits_total"));
    }
}
