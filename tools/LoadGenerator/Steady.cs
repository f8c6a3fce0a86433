namespace Classifier.LoadGenerator;

/// <summary>Small statistics shared by the benchmark modes.</summary>
public static class Steady
{
    /// <summary>
    /// Runs <paramref name="pass"/> (which answers a throughput) until two passes in a row agree within
    /// 10 %, at most <paramref name="maxPasses"/> times: how both the cluster and the baseline are brought
    /// to steady state before anything is measured.
    /// </summary>
    public static async Task UntilSteadyAsync(Func<int, Task<double>> pass, int maxPasses)
    {
        var previous = 0.0;
        for (var n = 0; n < maxPasses; n++)
        {
            var throughput = await pass(n);
            if (Math.Abs(throughput - previous) < 0.1 * throughput)
            {
                return;
            }

            previous = throughput;
        }
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
