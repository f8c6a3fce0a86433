using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Classifier.Tests.Support;
using Microsoft.Extensions.Configuration;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Classifier.Tests.Unit;

/// <summary>The tensor the silo builds equals one computed here from the pixels, by the model's documented rules.</summary>
public sealed class PreprocessingTests
{
    private static byte[] Png(int width, int height, Func<int, int, Rgb24> pixel)
    {
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                image[x, y] = pixel(x, y);
            }
        }

        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    private static Rgb24 Pattern(int x, int y) => new((byte)(x * 2 + y), (byte)(y * 5), (byte)((x + y * 3) % 256));

    [Fact]
    public void TextOrientationTensorEqualsPaddleOcrPreprocessingComputedIndependently()
    {
        // 96x48 keeps its size (height is already 48, width under the 192 cap): no resampling,
        // so every value follows from PaddleOCR's rule (x / 255 - 0.5) / 0.5 and zero padding on the right.
        var model = ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");
        var tensor = new float[model.TensorLength];

        var error = new ImagePreprocessor(model, new ImageOptions()).Preprocess(Png(96, 48, Pattern), tensor);

        Assert.Null(error);
        Assert.Equal(3 * 48 * 192, tensor.Length);
        for (var c = 0; c < 3; c++)
        {
            for (var y = 0; y < 48; y++)
            {
                for (var x = 0; x < 192; x++)
                {
                    var p = Pattern(x, y);
                    var channel = c switch { 0 => p.R, 1 => p.G, _ => p.B };
                    var expected = x < 96 ? (float)((channel / 255.0 - 0.5) / 0.5) : 0f;
                    var actual = tensor[c * 48 * 192 + y * 192 + x];
                    Assert.True(Math.Abs(expected - actual) < 1e-6, $"c={c} y={y} x={x}: expected {expected}, got {actual}");
                }
            }
        }
    }

    [Fact]
    public void CenterCropBgrTensorEqualsImageNetPreprocessingComputedIndependently()
    {
        // A 6x4 image, 4x4 crop, shorter side already 4: the crop keeps columns 1..4 unscaled.
        float[] mean = [0.406f, 0.456f, 0.485f]; // B, G, R: config values are in the model's channel order
        float[] std = [0.225f, 0.224f, 0.229f];
        var model = new ModelDefinition("m", null, "input", Nhwc: false, Channels: 3, Height: 4, Width: 4, ColorOrder.Bgr,
            ResizeMode.CenterCrop, ResizeShorterSide: 4, Scale: 1f / 255f, mean, std, PadValue: 0, "out", OutputKind.Logits, ["a", "b"], TopK: 1);
        var tensor = new float[model.TensorLength];

        var error = new ImagePreprocessor(model, new ImageOptions()).Preprocess(Png(6, 4, Pattern), tensor);

        Assert.Null(error);
        for (var y = 0; y < 4; y++)
        {
            for (var x = 0; x < 4; x++)
            {
                var p = Pattern(x + 1, y);
                byte[] bgr = [p.B, p.G, p.R];
                for (var c = 0; c < 3; c++)
                {
                    var expected = (float)((bgr[c] / 255.0 - mean[c]) / std[c]);
                    Assert.Equal(expected, tensor[c * 16 + y * 4 + x], 5);
                }
            }
        }
    }

    [Fact]
    public void KeepAspectPadScalesToInputHeightAndPadsTheRest()
    {
        var model = ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");
        var tensor = new float[model.TensorLength];

        // 200x100 scales to 96x48: columns 96.. are padding; the image area holds the (white) image value 1.
        var error = new ImagePreprocessor(model, new ImageOptions()).Preprocess(Png(200, 100, (_, _) => new Rgb24(255, 255, 255)), tensor);

        Assert.Null(error);
        for (var y = 0; y < 48; y++)
        {
            Assert.Equal(1f, tensor[y * 192 + 95], 5);
            Assert.Equal(0f, tensor[y * 192 + 96]);
        }
    }

    [Fact]
    public void ImageLargerThanTheLimitsIsRefusedBeforeDecoding()
    {
        var model = ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");
        var limits = new ImageOptions { MaxWidth = 100, MaxHeight = 100, MaxPixels = 5_000 };

        var error = new ImagePreprocessor(model, limits).Preprocess(Png(101, 10, Pattern), new float[model.TensorLength]);

        Assert.NotNull(error);
        Assert.Equal(PredictionErrorKind.ImageTooLarge, error.Kind);
        Assert.Contains("101x10", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FormatOutsideTheAllowListIsRefusedAsUnsupported()
    {
        var model = ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");
        using var image = new Image<Rgb24>(8, 8);
        using var stream = new MemoryStream();
        image.SaveAsBmp(stream);

        var error = new ImagePreprocessor(model, new ImageOptions()).Preprocess(stream.ToArray(), new float[model.TensorLength]);

        Assert.NotNull(error);
        Assert.Equal(PredictionErrorKind.UnsupportedFormat, error.Kind);
    }

    [Fact]
    public void TruncatedPngIsReportedAsDamaged()
    {
        var model = ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");
        var png = TextImages.Render("truncated");

        var error = new ImagePreprocessor(model, new ImageOptions()).Preprocess(png[..(png.Length / 2)], new float[model.TensorLength]);

        Assert.NotNull(error);
        Assert.Equal(PredictionErrorKind.InvalidImage, error.Kind);
    }

    [Fact]
    public void ConfiguredAllowListReplacesTheDefaultOneRatherThanExtendingIt()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Images:AllowedFormats:0"] = "png" })
            .Build();
        var options = configuration.GetSection(ImageOptions.SectionName).Get<ImageOptions>()!;
        var model = ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");
        using var image = new Image<Rgb24>(8, 8);
        using var jpeg = new MemoryStream();
        image.SaveAsJpeg(jpeg);

        var error = new ImagePreprocessor(model, options).Preprocess(jpeg.ToArray(), new float[model.TensorLength]);

        Assert.Equal(["png"], options.EffectiveFormats);
        Assert.Equal(PredictionErrorKind.UnsupportedFormat, error?.Kind);
    }
}
