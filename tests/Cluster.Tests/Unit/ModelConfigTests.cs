using Classifier.Grains.Models;

namespace Classifier.Tests.Unit;

public sealed class ModelConfigTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("model-repo-").FullName;

    private const string ValidInput = """
        "input": { "name": "input", "shape": [3, 224, 224], "layout": "NCHW", "colorOrder": "RGB", "resize": "center-crop",
                   "resizeShorterSide": 256, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225] }
        """;

    private string WriteModel(string name, string configJson, bool withVersion = true)
    {
        var dir = Path.Combine(_root, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), configJson);
        if (withVersion)
        {
            Directory.CreateDirectory(Path.Combine(dir, "1"));
        }

        return Path.Combine(dir, "config.json");
    }

    [Theory]
    [InlineData("""{ "input": { "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"] }""", "input.name")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224], "layout": "NCWH" }, "output": { "name": "o" }, "labels": ["a"] }""", "input.layout")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224] }, "output": { "name": "o" }, "labels": ["a"] }""", "input.shape")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224], "resize": "zoom" }, "output": { "name": "o" }, "labels": ["a"] }""", "input.resize")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224], "mean": [1, 2] }, "output": { "name": "o" }, "labels": ["a"] }""", "input.mean")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224], "std": [0] }, "output": { "name": "o" }, "labels": ["a"] }""", "input.std")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "type": "logits" }, "labels": ["a"] }""", "output.name")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o", "type": "scores" }, "labels": ["a"] }""", "output.type")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" } }""", "labels")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labelsFile": "missing.txt" }""", "labelsFile")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a", "b"], "topK": 3 }""", "topK")]
    [InlineData("""{ "input": { "name": "i", "shape": [1, 224, 224], "colorOrder": "RGB" }, "output": { "name": "o" }, "labels": ["a"] }""", "input.shape")]
    [InlineData("""{ "inptu": {}, "output": { "name": "o" }, "labels": ["a"] }""", "inptu")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "batching": { "maxBatchSize": 0 } }""", "batching.maxBatchSize")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "batching": { "maxQueueDelayMicroseconds": -1 } }""", "batching.maxQueueDelayMicroseconds")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "batching": { "padToMaxBatch": "yes" } }""", "padToMaxBatch")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "batching": { "instances": 0 } }""", "batching.instances")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o", "type": "embedding" }, "labels": ["a"] }""", "labels")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o", "type": "embedding" }, "topK": 1 }""", "topK")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o", "normalize": true }, "labels": ["a"] }""", "output.normalize")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224], "meanImageFile": "absent.f32" }, "output": { "name": "o", "type": "embedding" } }""", "input.meanImageFile")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224], "meanImageFile": "../outside.f32" }, "output": { "name": "o", "type": "embedding" } }""", "input.meanImageFile")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 2, 2], "meanImageFile": "mean.f32", "resize": "keep-aspect-pad" }, "output": { "name": "o", "type": "embedding" } }""", "input.meanImageFile")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "versionPolicy": {} }""", "versionPolicy")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "versionPolicy": { "all": {}, "latest": { "numVersions": 1 } } }""", "versionPolicy")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "versionPolicy": { "latest": { "numVersions": 0 } } }""", "versionPolicy.latest.numVersions")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "versionPolicy": { "specific": { "versions": [] } } }""", "versionPolicy.specific.versions")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "versionPolicy": { "specific": { "versions": [1, 7] } } }""", "versionPolicy.specific.versions")]
    [InlineData("""{ "input": { "name": "i", "shape": [3, 224, 224] }, "output": { "name": "o" }, "labels": ["a"], "versionPolicy": { "newest": {} } }""", "newest")]
    public void BadConfigIsRejectedNamingTheFileAndTheField(string json, string field)
    {
        var file = WriteModel("bad", json);

        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root));

        Assert.Contains(file, error.Message, StringComparison.Ordinal);
        Assert.Contains(field, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(11, "holds 44 bytes")]
    [InlineData(13, "holds 52 bytes")]
    public void MeanImageOfTheWrongSizeIsRejectedWithTheSizeItNeeds(int floats, string says)
    {
        var file = WriteModel("mean", """{ "input": { "name": "i", "shape": [3, 2, 2], "meanImageFile": "mean.f32" }, "output": { "name": "o", "type": "embedding" } }""");
        File.WriteAllBytes(Path.Combine(Path.GetDirectoryName(file)!, "mean.f32"), new byte[floats * sizeof(float)]);

        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root));

        Assert.Contains("input.meanImageFile", error.Message, StringComparison.Ordinal);
        Assert.Contains(says, error.Message, StringComparison.Ordinal);
        Assert.Contains("12 float32 values", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EmbeddingModelLoadsWithoutLabelsAndWithItsMeanImage()
    {
        var file = WriteModel("embed", """{ "input": { "name": "i", "shape": [3, 2, 2], "meanImageFile": "mean.f32" }, "output": { "name": "o", "type": "embedding", "normalize": true } }""");
        var mean = Enumerable.Range(0, 12).Select(i => i * 0.5f).ToArray();
        File.WriteAllBytes(Path.Combine(Path.GetDirectoryName(file)!, "mean.f32"), mean.SelectMany(BitConverter.GetBytes).ToArray());

        var model = ModelRepository.Load(_root).Single().Model;

        Assert.Equal(OutputKind.Embedding, model.Output);
        Assert.True(model.IsEmbedding);
        Assert.True(model.NormalizeEmbedding);
        Assert.Empty(model.Labels);
        Assert.Equal(mean, model.MeanImage);
    }

    [Fact]
    public void ModelFolderWithoutVersionIsRejectedWithTheExpectedPath()
    {
        WriteModel("noversion", $$"""{ {{ValidInput}}, "output": { "name": "o" }, "labels": ["a"] }""", withVersion: false);

        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root));

        Assert.Contains(Path.Combine("noversion", "1", "model.onnx"), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ImageNetStyleConfigWithLabelsFileLoadsEveryVersion()
    {
        var file = WriteModel("resnet50", $$"""
            { // comments are allowed
              "description": "torchvision ResNet-50",
              {{ValidInput}},
              "output": { "name": "logits", "type": "logits" },
              "labelsFile": "labels.txt",
              "topK": 5
            }
            """);
        File.WriteAllLines(Path.Combine(Path.GetDirectoryName(file)!, "labels.txt"), Enumerable.Range(0, 1000).Select(i => $"class {i}"));
        Directory.CreateDirectory(Path.Combine(_root, "resnet50", "2"));

        var versions = ModelRepository.Load(_root);

        Assert.Equal(["1", "2"], versions.Select(v => v.Version));
        var model = versions[0].Model;
        Assert.Equal(1000, model.Labels.Length);
        Assert.Equal((3, 224, 224, 256), (model.Channels, model.Height, model.Width, model.ResizeShorterSide));
        Assert.Equal(ResizeMode.CenterCrop, model.Resize);
        Assert.Equal(OutputKind.Logits, model.Output);
    }

    [Theory]
    [InlineData("", null)]
    [InlineData(""", "padToMaxBatch": true""", true)]
    [InlineData(""", "padToMaxBatch": false""", false)]
    public void BatchingSettingsAreReadWithPaddingLeftToTheDeviceUnlessSet(string padding, bool? expected)
    {
        WriteModel("batched", $$"""
            { {{ValidInput}}, "output": { "name": "o" }, "labels": ["a"],
              "batching": { "maxBatchSize": 16, "maxQueueDelayMicroseconds": 1500, "instances": 2{{padding}} } }
            """);

        var model = ModelRepository.Load(_root).Single().Model;

        Assert.Equal((16, TimeSpan.FromMicroseconds(1500), 2, expected), (model.MaxBatchSize, model.MaxQueueDelay, model.Instances, model.PadToMaxBatch));
    }

    [Fact]
    public void ModelFolderNameThatCannotBeAUrlSegmentIsRejected()
    {
        WriteModel("Bad Name", $$"""{ {{ValidInput}}, "output": { "name": "o" }, "labels": ["a"] }""");

        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root));

        Assert.Contains("Bad Name", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "1,2,10")]
    [InlineData(""", "versionPolicy": { "all": {} }""", "1,2,10")]
    [InlineData(""", "versionPolicy": { "latest": { "numVersions": 2 } }""", "2,10")]
    [InlineData(""", "versionPolicy": { "latest": { "numVersions": 5 } }""", "1,2,10")]
    [InlineData(""", "versionPolicy": { "specific": { "versions": [10, 1] } }""", "1,10")]
    public void TheVersionPolicySelectsWhichVersionFoldersAreServedInNumericOrder(string policy, string served)
    {
        WriteModel("m", "{" + ValidInput + """, "output": { "name": "o" }, "labels": ["a"]""" + policy + "}");
        Directory.CreateDirectory(Path.Combine(_root, "m", "2"));
        Directory.CreateDirectory(Path.Combine(_root, "m", "10"));

        var versions = ModelRepository.Load(_root).Select(v => v.Version);

        Assert.Equal(served.Split(','), versions);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
