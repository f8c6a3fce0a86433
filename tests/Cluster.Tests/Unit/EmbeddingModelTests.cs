using Classifier.Tests.Support;
using Microsoft.ML.OnnxRuntime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Classifier.Tests.Unit;

/// <summary>The optional resnet18 model (ML.NET's ResNet-18 featurizer), run as the silo runs it.</summary>
public sealed class EmbeddingModelTests
{
    [Fact]
    public void PreprocessingEqualsThePackagesOwnPreprocessingModel()
    {
        using var runtime = DefaultModel.LoadResnet18();
        Assert.Null(runtime.Error);
        using var image = Picture(224, 224, seed: 3); // already the input size: no resampling on either side
        var ours = new float[runtime.Model.TensorLength];
        runtime.Preprocessor.WriteTensor(image, ours);

        // ML.NET feeds ResNetPreprocess.onnx RGB planes of 0-255; it swaps to BGR and subtracts its mean image.
        var rgb = new float[3 * 224 * 224];
        for (var y = 0; y < 224; y++)
        {
            for (var x = 0; x < 224; x++)
            {
                var p = image[x, y];
                (rgb[y * 224 + x], rgb[224 * 224 + y * 224 + x], rgb[2 * 224 * 224 + y * 224 + x]) = (p.R, p.G, p.B);
            }
        }

        using var session = new InferenceSession(Path.Combine(Repo.Resnet18Cache, "ResNetPreprocess.onnx"));
        using var input = OrtValue.CreateTensorValueFromMemory(rgb, [1, 3, 224, 224]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["OriginalInput"], [input], ["PreprocessedInput"]);
        var reference = outputs[0].GetTensorDataAsSpan<float>().ToArray();

        var worst = ours.Zip(reference, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-3, $"largest difference from the package's preprocessing: {worst}");
    }

    [Fact]
    public async Task EmbeddingsAreUnitVectorsThatPlaceTheSamePictureCloserThanAnotherPicture()
    {
        using var runtime = DefaultModel.LoadResnet18();
        Assert.Null(runtime.Error);
        using var picture = Picture(320, 240, seed: 1);
        using var other = Picture(320, 240, seed: 2);
        using var resized = picture.Clone(ctx => ctx.Resize(480, 360));

        var a = await Embed(runtime, Encode(picture, new PngEncoder()));
        var aAgain = await Embed(runtime, Encode(resized, new JpegEncoder { Quality = 85 }));
        var b = await Embed(runtime, Encode(other, new PngEncoder()));

        Assert.Equal(512, a.Length);
        foreach (var v in new[] { a, aAgain, b })
        {
            Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 3);
        }

        var same = Dot(a, aAgain);
        var different = Dot(a, b);
        Assert.True(same > 0.9, $"the same picture resized and re-encoded: cosine {same}");
        Assert.True(same > different + 0.05, $"same picture {same} vs another picture {different}");
    }

    [Fact]
    public void TheModelFileFixesItsBatchSoBatchingIsCappedAtOne()
    {
        using var runtime = DefaultModel.LoadResnet18(m => m with { MaxBatchSize = 8 });

        Assert.Null(runtime.Error);
        Assert.Equal(1, runtime.MaxBatchSize);
        Assert.Equal(512, runtime.OutputLength);
    }

    private static async Task<float[]> Embed(Grains.Inference.ModelRuntime runtime, byte[] image)
    {
        var outcome = await runtime.PredictAsync(image);
        Assert.Null(outcome.Error);
        return outcome.Output!;
    }

    private static double Dot(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum();

    private static byte[] Encode(Image image, SixLabors.ImageSharp.Formats.IImageEncoder encoder)
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    /// <summary>A smooth colour field with a few solid discs: something with structure, different for each seed.</summary>
    private static Image<Rgba32> Picture(int width, int height, int seed)
    {
        var random = new Random(seed);
        var (r0, g0, b0) = (random.Next(256), random.Next(256), random.Next(256));
        var discs = Enumerable.Range(0, 6).Select(_ => (X: random.Next(width), Y: random.Next(height), R: random.Next(15, 60), C: new Rgba32((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256)))).ToArray();
        var image = new Image<Rgba32>(width, height);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var pixel = new Rgba32((byte)((r0 + x) % 256), (byte)((g0 + y) % 256), (byte)((b0 + x + y) / 2 % 256));
                foreach (var d in discs)
                {
                    if ((x - d.X) * (x - d.X) + (y - d.Y) * (y - d.Y) < d.R * d.R)
                    {
                        pixel = d.C;
                    }
                }

                image[x, y] = pixel;
            }
        }

        return image;
    }
}
