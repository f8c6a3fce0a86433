using Classifier.Tests.Support;
using Microsoft.ML.OnnxRuntime;

namespace Classifier.Tests.Unit;

/// <summary>
/// resnet18's model-dynamic.onnx: model.onnx with the batch dimension of its input and output rewritten from 1
/// to the symbolic "N" by tools/ModelFetch, for the resnet18-batched model (dynamic batching, e.g. on CUDA).
/// </summary>
public sealed class Resnet18DynamicBatchTests
{
    private const string Input = "Input247", Output = "Pooling395_Output_0";
    private const int ImageLength = 3 * 224 * 224, Features = 512, Batch = 4;

    [Fact]
    public void TheBatchDimensionIsSymbolic()
    {
        using var session = new InferenceSession(Repo.RequireResnet18Dynamic());

        Assert.Equal([-1, 3, 224, 224], session.InputMetadata[Input].Dimensions);
        Assert.Equal([-1, 512, 1, 1], session.OutputMetadata[Output].Dimensions);
    }

    [Fact]
    public void ABatchOfFourEqualsFourSingleRunsOfTheOriginal()
    {
        var dynamicFile = Repo.RequireResnet18Dynamic();
        var images = Enumerable.Range(0, Batch).Select(Image).ToArray();

        // The original file, one image per run.
        var singles = new float[Batch][];
        using (var original = new InferenceSession(Path.Combine(Repo.Resnet18Cache, "model.onnx")))
        {
            for (var i = 0; i < Batch; i++)
            {
                singles[i] = Run(original, images[i], 1);
            }
        }

        // The rewritten file, the four images in one run.
        using var dynamic = new InferenceSession(dynamicFile);
        var batched = Run(dynamic, images.SelectMany(x => x).ToArray(), Batch);

        Assert.Equal(Batch * Features, batched.Length);
        for (var i = 0; i < Batch; i++)
        {
            var worst = singles[i].Select((v, j) => Math.Abs(v - batched[i * Features + j])).Max();
            Assert.True(worst < 1e-4, $"image {i}: largest difference between its row of the batch and its single run: {worst}");
        }

        // Different images gave different rows: the batch did not answer one image four times.
        Assert.True(singles[0].Zip(singles[1], (a, b) => Math.Abs(a - b)).Max() > 1e-2);
    }

    [Fact]
    public void TheSiloBatchesItAsConfigured()
    {
        using var runtime = DefaultModel.LoadResnet18(m => m with { MaxBatchSize = 16 }, modelFile: "model-dynamic.onnx");

        Assert.Null(runtime.Error); // loading warmed it up at batch 16 too
        Assert.True(runtime.MaxBatchSize >= 16, $"the model's largest batch: {runtime.MaxBatchSize}");
        Assert.Equal(Features, runtime.OutputLength);
    }

    private static float[] Run(InferenceSession session, float[] tensor, int count)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(tensor, [count, 3, 224, 224]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [Input], [input], [Output]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>
    /// A preprocessed image as the model sees it (BGR, 0-255 minus a mean image, so about -128..128): smooth
    /// gradients and a bright square, different for each seed.
    /// </summary>
    private static float[] Image(int seed)
    {
        var random = new Random(seed);
        var (fx, fy, sx, sy) = (random.NextDouble() * 0.1, random.NextDouble() * 0.1, random.Next(20, 160), random.Next(20, 160));
        var tensor = new float[ImageLength];
        for (var c = 0; c < 3; c++)
        {
            for (var y = 0; y < 224; y++)
            {
                for (var x = 0; x < 224; x++)
                {
                    var square = x >= sx && x < sx + 48 && y >= sy && y < sy + 48 ? 100 : 0;
                    tensor[(c * 224 + y) * 224 + x] = (float)(100 * Math.Sin(fx * x * (c + 1) + fy * y) + square - 50 + random.Next(-10, 10));
                }
            }
        }

        return tensor;
    }
}
