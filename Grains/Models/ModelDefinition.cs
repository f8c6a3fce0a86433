using Classifier.Grains.Interfaces;

namespace Classifier.Grains.Models;

/// <summary>A validated model config: everything preprocessing and inference need, resolved.</summary>
public sealed record ModelDefinition(
    string Name,
    string? Description,
    string InputName,
    bool Nhwc,
    int Channels,
    int Height,
    int Width,
    ColorOrder ColorOrder,
    ResizeMode Resize,
    int ResizeShorterSide,
    float Scale,
    float[] Mean,
    float[] Std,
    float PadValue,
    string OutputName,
    OutputKind Output,
    string[] Labels,
    int TopK,
    int MaxBatchSize = 1,
    TimeSpan MaxQueueDelay = default,
    int Instances = 1,
    bool NormalizeEmbedding = false,
    float[]? MeanImage = null,
    bool? PadToMaxBatch = null,
    int MaxQueueSize = ModelDefinition.DefaultMaxQueueSize,
    TimeSpan QueueTimeout = default)
{
    /// <summary>Images that may wait for a run on one silo unless config.json says otherwise.</summary>
    public const int DefaultMaxQueueSize = 256;

    /// <summary>How long an image may wait for its run unless config.json says otherwise.</summary>
    public static readonly TimeSpan DefaultQueueTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long an image may wait for its run (<see cref="DefaultQueueTimeout"/> when not set).</summary>
    public TimeSpan QueueTimeout { get; init; } = QueueTimeout == default ? DefaultQueueTimeout : QueueTimeout;

    /// <summary>Which version folders are served (config.json <c>versionPolicy</c>); all of them unless it says otherwise.</summary>
    public VersionPolicy VersionPolicy { get; init; } = VersionPolicy.All;

    /// <summary>
    /// Everything of the config that shapes a version's answers (preprocessing, labels, output, batching), as one
    /// string: a version loaded with another one is loaded anew. The version policy is left out: it picks versions,
    /// it does not change them.
    /// </summary>
    public string ServingFingerprint() => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
        System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(this with { VersionPolicy = VersionPolicy.All })));

    /// <summary>True when answers are feature vectors rather than labels.</summary>
    public bool IsEmbedding => Output == OutputKind.Embedding;

    /// <summary>Floats in one image's tensor.</summary>
    public int TensorLength => Channels * Height * Width;

    /// <summary>The tensor shape of a batch of <paramref name="batch"/> images.</summary>
    public long[] TensorShape(int batch) => Nhwc
        ? [batch, Height, Width, Channels]
        : [batch, Channels, Height, Width];

    public InputSpec ToInputSpec() => new(
        InputName,
        Nhwc ? [Height, Width, Channels] : [Channels, Height, Width],
        Nhwc ? "NHWC" : "NCHW",
        ColorOrder.ToString().ToUpperInvariant(),
        Resize switch
        {
            ResizeMode.CenterCrop => "center-crop",
            ResizeMode.KeepAspectPad => "keep-aspect-pad",
            _ => "stretch",
        });
}

/// <summary>One version folder of a model: <c>&lt;repo&gt;/&lt;model&gt;/&lt;version&gt;/model.onnx</c>.</summary>
public sealed record ModelVersionDefinition(ModelDefinition Model, string Version, string ModelPath);
