using Classifier.Gateway.Api;

namespace Classifier.Tests.Unit;

public sealed class EchoTests
{
    [Fact]
    public void LongValuesAreCutShortAndMarked()
    {
        var echoed = Echo.Of(new string('m', 7000));

        Assert.Equal(Echo.DefaultLength + 3, echoed.Length);
        Assert.EndsWith("...", echoed, StringComparison.Ordinal);
    }

    [Fact]
    public void ControlCharactersAreReplaced()
    {
        Assert.Equal("a?[31mb?c", Echo.Of("a\u001b[31mb\nc"));
    }

    [Fact]
    public void ShortPrintableValuesAreKeptAsTheyAre()
    {
        Assert.Equal("image/heic", Echo.Of("image/heic"));
    }
}
