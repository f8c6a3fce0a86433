using Classifier.Tests.Support;

namespace Classifier.Tests.Unit;

public sealed class TextOrientationModelTests
{
    [Theory]
    [InlineData("The quick brown fox jumps")]
    [InlineData("Orleans cluster 2026")]
    [InlineData("Hello, world")]
    public async Task UprightAndRotatedLinesOfTextAreClassifiedCorrectly(string text)
    {
        var (runtime, _) = DefaultModel.Load();
        using var __ = runtime;
        Assert.Null(runtime.Error);

        var upright = await runtime.PredictAsync(TextImages.Render(text));
        var rotated = await runtime.PredictAsync(TextImages.Render(text, upsideDown: true));

        Assert.Null(upright.Error);
        Assert.Null(rotated.Error);
        var up = runtime.TopK(upright.Output!, 1)[0];
        var down = runtime.TopK(rotated.Output!, 1)[0];
        Assert.Equal("0", up.Label);
        Assert.True(up.Probability > 0.9, $"upright '{text}': P(0) = {up.Probability}");
        Assert.Equal("180", down.Label);
        Assert.True(down.Probability > 0.9, $"rotated '{text}': P(180) = {down.Probability}");
    }
}
