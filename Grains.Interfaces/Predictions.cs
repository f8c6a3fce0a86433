namespace Classifier.Grains.Interfaces;

/// <summary>One image to classify, as the bytes the client sent.</summary>
/// <param name="Image">The encoded image (PNG, JPEG, ...); decoded on the silo, and only on a cache miss. With
/// <paramref name="Tensor"/>: the image's preprocessed input tensor instead, little-endian FP32 in the model's shape.</param>
/// <param name="TopK">How many classes to return; 0 means the model's default.</param>
/// <param name="Tensor">True when <paramref name="Image"/> is a tensor, which skips decoding and preprocessing; its
/// cache key (<see cref="ImageHash.OfTensor"/>) is kept apart from encoded images' keys.</param>
/// <remarks>
/// No hash travels with the image: the grain hashes the bytes itself, so a caller cannot file one image's
/// answer under another image's key (cache poisoning). Id 1 (the hash the gateway once sent) stays retired.
/// </remarks>
[GenerateSerializer, Immutable, Alias("classifier.PredictionRequest")]
public sealed record PredictionRequest(
    [property: Id(0)] byte[] Image,
    [property: Id(2)] int TopK,
    [property: Id(3)] bool Tensor = false);

/// <summary>One class of a prediction.</summary>
[GenerateSerializer, Immutable, Alias("classifier.ClassScore")]
public sealed record ClassScore(
    [property: Id(0)] string Label,
    [property: Id(1)] int Index,
    [property: Id(2)] float Probability);

/// <summary>Why a prediction could not be made; the gateway maps each to an HTTP status.</summary>
public enum PredictionErrorKind
{
    /// <summary>The bytes are not a decodable image (400).</summary>
    InvalidImage = 1,

    /// <summary>A recognised image format that this cluster does not decode (415).</summary>
    UnsupportedFormat = 2,

    /// <summary>The image exceeds the configured dimension limits (413).</summary>
    ImageTooLarge = 3,

    /// <summary>No such model or version on the silo (404).</summary>
    ModelNotFound = 4,

    /// <summary>The model exists but failed to load or is still loading (503).</summary>
    ModelUnavailable = 5,

    /// <summary>A bad request parameter, such as top_k (400).</summary>
    BadParameter = 6,

    /// <summary>The silo is at its decoding limits; the caller should retry after <see cref="PredictionError.RetryAfterSeconds"/> (429).</summary>
    Overloaded = 7,

    /// <summary>The image is well-formed but too costly to decode: too many JPEG scans, or over the decode time budget (422).</summary>
    TooComplex = 8,

    /// <summary>The caller cancelled the request (it disconnected or timed out); nobody reads this answer.</summary>
    Cancelled = 9,

    /// <summary>
    /// The model version is not ready on this shard's silo but is on another: the shard is leaving this silo, and
    /// the caller should send the request again, which places the shard where the model is ready (503 if retries run out).
    /// </summary>
    Relocating = 10,

    /// <summary>The model's queue on the silo is full, or the image waited there past its timeout: retry after <see cref="PredictionError.RetryAfterSeconds"/> (429).</summary>
    Throttled = 11,
}

/// <summary>A failed prediction: what went wrong, in words a caller can act on.</summary>
/// <remarks>The message goes to anonymous HTTP clients: never a path, host name or exception text.</remarks>
/// <param name="RetryAfterSeconds">For <see cref="PredictionErrorKind.Overloaded"/>: when a retry is likely to be accepted.</param>
[GenerateSerializer, Immutable, Alias("classifier.PredictionError")]
public sealed record PredictionError(
    [property: Id(0)] PredictionErrorKind Kind,
    [property: Id(1)] string Message,
    [property: Id(2)] int RetryAfterSeconds = 0);

/// <summary>A successful prediction.</summary>
/// <param name="Scores">The top-k classes, most probable first; empty for an embedding model.</param>
/// <param name="FromCache">True when no model run was needed for this image.</param>
/// <param name="PreprocessingMs">Decode and tensor time on the silo; 0 on a cache hit.</param>
/// <param name="InferenceMs">Model time only; 0 on a cache hit.</param>
/// <param name="Silo">The silo whose grain answered.</param>
/// <param name="Provider">The ONNX Runtime execution provider that ran the model (CPU, CUDA).</param>
/// <param name="Embedding">The image's feature vector, for a model whose output type is <c>embedding</c>; null otherwise.</param>
[GenerateSerializer, Immutable, Alias("classifier.Prediction")]
public sealed record Prediction(
    [property: Id(0)] string Model,
    [property: Id(1)] string Version,
    [property: Id(2)] ClassScore[] Scores,
    [property: Id(3)] bool FromCache,
    [property: Id(4)] double PreprocessingMs,
    [property: Id(5)] double InferenceMs,
    [property: Id(6)] string Silo,
    [property: Id(7)] string Provider,
    [property: Id(8)] float[]? Embedding = null);

/// <summary>Either a <see cref="Prediction"/> or a <see cref="PredictionError"/>.</summary>
/// <remarks>Expected failures travel as values, not exceptions: cheaper, and they never look like a silo fault.</remarks>
[GenerateSerializer, Immutable, Alias("classifier.PredictionReply")]
public sealed record PredictionReply(
    [property: Id(0)] Prediction? Prediction,
    [property: Id(1)] PredictionError? Error)
{
    public static PredictionReply Ok(Prediction prediction) => new(prediction, null);

    public static PredictionReply Fail(PredictionErrorKind kind, string message) => new(null, new PredictionError(kind, message));
}
