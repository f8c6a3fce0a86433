using Classifier.Grains.Inference;
using Classifier.Tests.Support;
using Prometheus;

namespace Classifier.Tests.Unit;

public sealed class SessionAndMetricsSettingsTests
{
    [Theory]
    [InlineData(0, 2, 2, 1)]   // one run per core on 2 cores: one thread each, not ONNX Runtime's every-core default
    [InlineData(0, 16, 16, 1)]
    [InlineData(0, 4, 16, 4)]  // four runs at once share 16 cores
    [InlineData(0, 3, 2, 1)]   // more runs than cores: never below one thread
    [InlineData(0, 1, 16, 16)] // one run at a time (batching): every core the process may use, not the machine's
    [InlineData(3, 16, 16, 3)] // Models:IntraOpThreads wins when set
    public void IntraOpThreadsShareTheCoresAmongConcurrentRuns(int configured, int instances, int cores, int expected)
    {
        Assert.Equal(expected, ModelBackend.IntraOpThreads(configured, instances, cores));
    }

    [Fact]
    public async Task WithMetricsOffPredictionsStillWorkAndRecordNothingPerRequest()
    {
        var (runtime, metrics) = DefaultModel.Load(recordRequests: false);
        using var __ = runtime;

        var outcome = await runtime.PredictAsync(TextImages.Render("metrics off"));

        Assert.Null(outcome.Error);
        metrics.PredictionSuccess.Inc();
        Assert.Equal(0, metrics.PredictionSuccess.Value);
        var text = await Scrape(metrics.Registry);
        Assert.Contains("inference_duration_seconds_count{model=\"text-orientation\",version=\"1\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("preprocessing_duration_seconds_count{model=\"text-orientation\",version=\"1\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("model_state{model=\"text-orientation\",version=\"1\"} 1", text, StringComparison.Ordinal); // not per request: kept
    }

    [Fact]
    public async Task SwitchingRecordingOnWhileRunningRecordsFromTheNextPredictionAndOffStopsIt()
    {
        var (runtime, metrics) = DefaultModel.Load(recordRequests: false);
        using var __ = runtime;
        await runtime.PredictAsync(TextImages.Render("before"));

        metrics.Recording.On = true;
        await runtime.PredictAsync(TextImages.Render("while on"));
        metrics.Recording.On = false;
        await runtime.PredictAsync(TextImages.Render("after"));

        var text = await Scrape(metrics.Registry);
        Assert.Contains("inference_duration_seconds_count{model=\"text-orientation\",version=\"1\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("preprocessing_duration_seconds_count{model=\"text-orientation\",version=\"1\"} 1", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithMetricsOnTheSamePredictionIsRecorded()
    {
        var (runtime, metrics) = DefaultModel.Load();
        using var __ = runtime;

        await runtime.PredictAsync(TextImages.Render("metrics on"));

        var text = await Scrape(metrics.Registry);
        Assert.Contains("inference_duration_seconds_count{model=\"text-orientation\",version=\"1\"} 1", text, StringComparison.Ordinal);
    }

    private static async Task<string> Scrape(CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream, TestContext.Current.CancellationToken);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
