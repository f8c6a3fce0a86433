using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Models;
using Classifier.Grains.Telemetry;
using Classifier.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;

namespace Classifier.Tests.Unit;

public sealed class TextOrientationModelTests
{
    private static ModelRuntime LoadDefaultModel()
    {
        Repo.RequireDefaultModel();
        var version = ModelRepository.Load(Repo.Models).Single(v => v.Model.Name == "text-orientation");
        var metrics = new SiloMetrics(Metrics.NewCustomRegistry());
        var runtime = new ModelRuntime(version, new ImageOptions(), metrics.ForModel("text-orientation", "1"), NullLogger.Instance);
        runtime.Load(new ModelsOptions { Device = "cpu" });
        Assert.Null(runtime.Error);
        return runtime;
    }

    [Theory]
    [InlineData("The quick brown fox jumps")]
    [InlineData("Orleans cluster 2026")]
    [InlineData("Hello, world")]
    public async Task UprightAndRotatedLinesOfTextAreClassifiedCorrectly(string text)
    {
        using var runtime = LoadDefaultModel();

        var upright = await runtime.PredictAsync(TextImages.Render(text));
        var rotated = await runtime.PredictAsync(TextImages.Render(text, upsideDown: true));

        Assert.Null(upright.Error);
        Assert.Null(rotated.Error);
        var up = runtime.TopK(upright.Probabilities!, 1)[0];
        var down = runtime.TopK(rotated.Probabilities!, 1)[0];
        Assert.Equal("0", up.Label);
        Assert.True(up.Probability > 0.9, $"upright '{text}': P(0) = {up.Probability}");
        Assert.Equal("180", down.Label);
        Assert.True(down.Probability > 0.9, $"rotated '{text}': P(180) = {down.Probability}");
    }
}
