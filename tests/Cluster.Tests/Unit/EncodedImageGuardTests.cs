using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Classifier.Tests.Support;
using SixLabors.ImageSharp;

namespace Classifier.Tests.Unit;

/// <summary>Decoder bombs are defused from the container's structure, before a decoder sees the bytes.</summary>
public sealed class EncodedImageGuardTests
{
    private static ModelDefinition TextOrientation => ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");

    [Fact]
    public void WithoutTheGuardImageSharpInflatesACompressedTextChunk()
    {
        // The reason for the guard, shown small: 64 MiB of text for a header read.
        var bomb = AttackImages.PngWithCompressedChunks("zTXt", 64L << 20);

        var allocated = AllocatedDuring(() => Image.Identify(bomb));

        Assert.True(allocated > 64L << 20, $"Identify allocated only {allocated >> 20} MiB");
    }

    [Theory]
    [InlineData("zTXt")]
    [InlineData("iTXt")]
    [InlineData("iCCP")]
    public void ACompressedAncillaryChunkIsDroppedAndTheImageStillDecodes(string chunk)
    {
        var bomb = AttackImages.PngWithCompressedChunks(chunk, 1L << 30);
        var preprocessor = new ImagePreprocessor(TextOrientation, new ImageOptions());
        var tensor = new float[TextOrientation.TensorLength];
        PredictionError? error = null;

        var allocated = AllocatedDuring(() => error = preprocessor.Preprocess(bomb, tensor));

        Assert.Null(error);
        Assert.True(allocated < 32L << 20, $"preprocessing a {bomb.Length / 1024} KiB file allocated {allocated >> 20} MiB");
        Assert.Contains(tensor, v => v != 0);

        // Dropped, not merely left alone: ImageSharp 2.1 happens not to inflate iCCP, but a decoder that applies
        // colour profiles (ImageSharp 3 does) would.
        Assert.Null(EncodedImageGuard.CleanPng(bomb, out var cleaned));
        Assert.True(cleaned.Length <= AttackImages.BasePng.Length, $"{cleaned.Length} bytes left of {bomb.Length}");
        Assert.Equal(-1, cleaned.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(chunk)));
    }

    [Fact]
    public void APngWithNothingToDropIsPassedOnWithoutACopy()
    {
        Assert.Null(EncodedImageGuard.CleanPng(AttackImages.PngWithCompressedChunks("zTXt", 1024), out var once));

        Assert.Null(EncodedImageGuard.CleanPng(once, out var twice));

        Assert.Same(once, twice);
    }

    [Fact]
    public void AChunkThatRunsPastTheEndOfThePngIsRefusedAsTruncated()
    {
        var png = TextImages.Render("cut");

        var error = EncodedImageGuard.CleanPng(png[..(png.Length - 20)], out _);

        Assert.Equal(PredictionErrorKind.InvalidImage, error?.Kind);
        Assert.Contains("truncated", error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AJpegWithMoreScansThanTheLimitIsRefusedAsTooComplex()
    {
        var jpeg = await AttackImages.ProgressiveJpegWithScansAsync(64, 64, scans: 101);

        var error = EncodedImageGuard.CheckJpeg(jpeg, maxScans: 100, out var progressive);

        Assert.True(progressive);
        Assert.Equal(PredictionErrorKind.TooComplex, error?.Kind);
        Assert.Contains("100 scans", error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AJpegAtTheScanLimitIsAccepted()
    {
        var jpeg = await AttackImages.ProgressiveJpegWithScansAsync(64, 64, scans: 100);

        Assert.Null(EncodedImageGuard.CheckJpeg(jpeg, maxScans: 100, out _));
    }

    [Fact]
    public void AJpegWithoutItsEndOfImageMarkerIsRefused()
    {
        var jpeg = AttackImages.Jpeg(64, 64);

        var error = EncodedImageGuard.CheckJpeg(jpeg.AsSpan(0, jpeg.Length - 2), 100, out var progressive);

        Assert.False(progressive);
        Assert.Equal(PredictionErrorKind.InvalidImage, error?.Kind);
    }

    [Theory]
    [InlineData("ICCP")]
    [InlineData("EXIF")]
    public void AWebpChunkClaimingMoreThanTheFileIsRefusedBeforeAnyDecoderAllocatesIt(string chunk)
    {
        var webp = AttackImages.WebpClaimingAHugeChunk(chunk);
        var preprocessor = new ImagePreprocessor(TextOrientation, new ImageOptions());
        PredictionError? error = null;

        var allocated = AllocatedDuring(() => error = preprocessor.Preprocess(webp, new float[TextOrientation.TensorLength]));

        Assert.Equal(PredictionErrorKind.InvalidImage, error?.Kind);
        Assert.Contains("truncated", error!.Message, StringComparison.Ordinal);
        Assert.True(allocated < 1L << 20, $"a {webp.Length}-byte file made the silo allocate {allocated >> 20} MiB");
    }

    private static long AllocatedDuring(Action action)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }
}
