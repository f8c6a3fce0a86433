using System.Text.Json;
using System.Text.Json.Serialization;

namespace Classifier.Grains.Models;

/// <summary>The contents of <c>&lt;repo&gt;/&lt;model&gt;/config.json</c>, as written by the user.</summary>
public sealed class ModelConfig
{
    /// <summary>Free text shown by <c>GET /models</c>.</summary>
    public string? Description { get; set; }

    /// <summary>The model's input tensor and the preprocessing that produces it.</summary>
    public InputConfig? Input { get; set; }

    /// <summary>The model's output tensor.</summary>
    public OutputConfig? Output { get; set; }

    /// <summary>Class labels, in output order. Give either this or <see cref="LabelsFile"/>.</summary>
    public string[]? Labels { get; set; }

    /// <summary>A text file beside config.json with one label per line, in output order.</summary>
    public string? LabelsFile { get; set; }

    /// <summary>How many classes an answer holds when the request does not say; default 5, or fewer when the model has fewer classes.</summary>
    public int? TopK { get; set; }

    /// <summary>Dynamic batching; absent: one image per run, one run at a time.</summary>
    public BatchingConfig? Batching { get; set; }

    /// <summary>
    /// Which version folders are served, as Triton's <c>version_policy</c>: <c>{"all": {}}</c> (the default),
    /// <c>{"latest": {"numVersions": N}}</c> or <c>{"specific": {"versions": [1, 3]}}</c>.
    /// </summary>
    public VersionPolicyConfig? VersionPolicy { get; set; }

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };
}

/// <summary>The input tensor and its preprocessing.</summary>
public sealed class InputConfig
{
    /// <summary>The ONNX input name, as the model declares it.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// The shape of one image without the batch dimension: [channels, height, width] for NCHW,
    /// [height, width, channels] for NHWC.
    /// </summary>
    public int[]? Shape { get; set; }

    /// <summary><c>NCHW</c> (PyTorch, Paddle) or <c>NHWC</c> (TensorFlow).</summary>
    public string Layout { get; set; } = "NCHW";

    /// <summary><c>RGB</c>, <c>BGR</c> or <c>GRAY</c> (one channel).</summary>
    public string ColorOrder { get; set; } = "RGB";

    /// <summary>See <see cref="ResizeMode"/>: <c>center-crop</c>, <c>keep-aspect-pad</c> or <c>stretch</c>.</summary>
    public string Resize { get; set; } = "center-crop";

    /// <summary>For <c>center-crop</c>: the shorter side is resized to this before cropping (torchvision's Resize(256) then CenterCrop(224)). Default: the crop size.</summary>
    public int? ResizeShorterSide { get; set; }

    /// <summary>Each 0-255 pixel value is multiplied by this before the mean is subtracted; 1/255 maps to 0-1.</summary>
    public float Scale { get; set; } = 1f / 255f;

    /// <summary>Per-channel mean, in the model's channel order (one value applies to all channels).</summary>
    public float[] Mean { get; set; } = [0f];

    /// <summary>Per-channel standard deviation, in the model's channel order (one value applies to all channels).</summary>
    public float[] Std { get; set; } = [1f];

    /// <summary>The value written into padding, after normalisation.</summary>
    public float PadValue { get; set; }

    /// <summary>
    /// A mean image subtracted after scaling (Caffe-style models such as ML.NET's ResNet featurizers):
    /// a file beside config.json of little-endian float32 values in the input tensor's layout and channel
    /// order, one per tensor element. Divided by <see cref="Std"/> like <see cref="Mean"/>. Not with
    /// <c>keep-aspect-pad</c>, whose padding has no pixels to subtract from.
    /// </summary>
    public string? MeanImageFile { get; set; }
}

/// <summary>Dynamic batching of cache misses, per silo, like Triton's <c>dynamic_batching</c>.</summary>
public sealed class BatchingConfig
{
    /// <summary>Most images per run (Triton's <c>max_batch_size</c>); capped at 1 when the model file fixes its batch dimension.</summary>
    public int MaxBatchSize { get; set; } = 1;

    /// <summary>Longest a waiting image holds its run back for more images to join (Triton's <c>max_queue_delay_microseconds</c>).</summary>
    public int MaxQueueDelayMicroseconds { get; set; }

    /// <summary>
    /// Runs that may execute at once on a silo (Triton's instance count). Default: one per core without
    /// batching (single-image runs of a small model leave cores idle), 1 with batching (a batch already
    /// keeps every core busy).
    /// </summary>
    public int? Instances { get; set; }

    /// <summary>
    /// Run every batch at <see cref="MaxBatchSize"/>, padded, so the model sees one input shape. Default:
    /// on where the model runs on CUDA (whose convolution plans are rebuilt at every change of shape), off on CPU.
    /// </summary>
    public bool? PadToMaxBatch { get; set; }

    /// <summary>
    /// Images that may wait for a run on one silo (Triton's <c>max_queue_size</c>); the next is refused at once with
    /// 429. Default 256.
    /// </summary>
    public int? MaxQueueSize { get; set; }

    /// <summary>
    /// Longest an image may wait for its run before it is refused with 429 rather than run late (Triton's
    /// <c>default_timeout_microseconds</c>). Default 2 000 000 (2 s).
    /// </summary>
    public int? QueueTimeoutMicroseconds { get; set; }
}

/// <summary>The output tensor.</summary>
public sealed class OutputConfig
{
    /// <summary>The ONNX output name, as the model declares it.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// <c>probabilities</c> (already softmaxed), <c>logits</c> (softmax is applied), or <c>embedding</c>
    /// (a feature vector, answered as it is; no labels).
    /// </summary>
    public string Type { get; set; } = "logits";

    /// <summary>For <c>embedding</c>: scale each vector to unit length (L2), so a dot product is the cosine similarity.</summary>
    public bool Normalize { get; set; }
}

/// <summary>What the output tensor holds, and so what an answer carries.</summary>
public enum OutputKind
{
    /// <summary>Class probabilities, answered as the top-k labels.</summary>
    Probabilities,

    /// <summary>Class scores before softmax; softmax is applied, then as <see cref="Probabilities"/>.</summary>
    Logits,

    /// <summary>A feature vector per image, answered whole.</summary>
    Embedding,
}

/// <summary>How an image of any size becomes the model's input size.</summary>
public enum ResizeMode
{
    /// <summary>Resize the shorter side, then cut the centre (ImageNet classifiers).</summary>
    CenterCrop,

    /// <summary>
    /// Resize to the input height keeping the aspect ratio, width capped at the input width, then pad
    /// the right side (PaddleOCR's text classifiers). An image wider than the cap is squeezed to it.
    /// </summary>
    KeepAspectPad,

    /// <summary>Resize both sides to the input size, ignoring the aspect ratio.</summary>
    Stretch,
}

/// <summary>Channel order of the input tensor.</summary>
public enum ColorOrder
{
    Rgb,
    Bgr,
    Gray,
}

/// <summary>One of <see cref="All"/>, <see cref="Latest"/> or <see cref="Specific"/>.</summary>
public sealed class VersionPolicyConfig
{
    /// <summary>Every version folder (an empty object).</summary>
    public AllVersionsConfig? All { get; set; }

    /// <summary>The highest-numbered version folders.</summary>
    public LatestVersionsConfig? Latest { get; set; }

    /// <summary>The listed version folders.</summary>
    public SpecificVersionsConfig? Specific { get; set; }
}

/// <summary><c>{"all": {}}</c>: no fields.</summary>
public sealed class AllVersionsConfig;

/// <summary><c>{"latest": {"numVersions": N}}</c>.</summary>
public sealed class LatestVersionsConfig
{
    public int NumVersions { get; set; }
}

/// <summary><c>{"specific": {"versions": [..]}}</c>.</summary>
public sealed class SpecificVersionsConfig
{
    public int[]? Versions { get; set; }
}
