using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;

namespace Classifier.Gateway.Api;

/// <summary>Why an Open Inference Protocol request cannot be answered: the HTTP status (mapped to a gRPC code there) and a reason a person can act on.</summary>
public sealed class InferenceError(int status, string message, int retryAfterSeconds = 0) : Exception(message)
{
    public int Status { get; } = status;

    /// <summary>Seconds to wait before retrying (429, 503); 0 when none applies.</summary>
    public int RetryAfterSeconds { get; } = retryAfterSeconds;

    public static InferenceError BadRequest(string message) => new(StatusCodes.Status400BadRequest, message);
}

/// <summary>One input tensor as a request gave it: its data as raw bytes, as BYTES elements, or as FP32 numbers.</summary>
public sealed record InferInput(string Name, string? Datatype, long[] Shape, byte[]? Raw, IReadOnlyList<byte[]>? Elements, IReadOnlyList<float>? Floats);

/// <summary>What the answer's output is to be: the classification extension's k (0: the full tensor), and binary or not (REST).</summary>
public readonly record struct OutputRequest(int Classification, bool Binary);

/// <summary>The answer's output tensor: FP32 values or BYTES strings, with its shape.</summary>
public sealed record OutputTensor(string Name, string Datatype, long[] Shape, float[]? Values, string[]? Strings)
{
    /// <summary>The tensor's raw bytes: little-endian FP32 values, or each string as a 4-byte little-endian length and its UTF-8 bytes.</summary>
    public byte[] Raw()
    {
        if (Values is { } values)
        {
            var raw = new byte[values.Length * sizeof(float)];
            for (var i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * sizeof(float)), values[i]);
            }

            return raw;
        }

        using var stream = new MemoryStream();
        Span<byte> length = stackalloc byte[4];
        foreach (var s in Strings!)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)bytes.Length);
            stream.Write(length);
            stream.Write(bytes);
        }

        return stream.ToArray();
    }
}

/// <summary>
/// The Open Inference Protocol's inference, whatever carries it (REST or gRPC): which model version answers, the images
/// an input holds (encoded images as BYTES, or the model's own FP32 tensor), each sent to its shard as <c>/predict</c>
/// sends it, and the output tensor. Every refusal is an <see cref="InferenceError"/> that names the input or output and
/// what was expected.
/// </summary>
public static class InferenceCore
{
    /// <summary>The model version that answers, and its status; throws for a bad name, an unknown model or version, or no silo.</summary>
    public static async Task<(ModelRoute Route, ModelVersionStatus Status)> ResolveAsync(string name, string? version, ClusterView cluster, CancellationToken cancellationToken)
    {
        if (!RequestRules.IsModelName(name))
        {
            throw InferenceError.BadRequest($"'{Echo.Of(name)}' is not a model name: lower-case letters, digits, '.', '_' or '-', at most 64.");
        }

        var route = await cluster.RouteAsync(name, string.IsNullOrEmpty(version) ? null : version, cancellationToken);
        if (route.Problem is not null)
        {
            throw new InferenceError(route.StatusCode, route.Problem, route.StatusCode == StatusCodes.Status503ServiceUnavailable ? Problems.DefaultRetryAfterSeconds : 0);
        }

        return (route, cluster.Snapshot!.Silos.SelectMany(s => s.Models).First(m => m.Model == name && m.Version == route.Version));
    }

    /// <summary>The images one input holds (encoded, or tensors of the model's shape), and whether they are tensors.</summary>
    public static (byte[][] Images, bool Tensor) Images(InferInput input, ModelVersionStatus status, GatewayOptions settings)
    {
        if (input.Name == status.Input.Name && input.Name != InferenceProtocolApi.ImageInput)
        {
            return (Tensors(input, status, settings), true);
        }

        if (input.Name != InferenceProtocolApi.ImageInput)
        {
            throw InferenceError.BadRequest($"Input '{Echo.Of(input.Name)}' is not an input of model '{status.Model}'; send encoded images as input '{InferenceProtocolApi.ImageInput}' (BYTES, shape [N]) or preprocessed ones as '{status.Input.Name}' (FP32, shape [N, {string.Join(", ", status.Input.Shape)}]).");
        }

        if (input.Datatype != "BYTES")
        {
            throw InferenceError.BadRequest($"Input '{input.Name}' has datatype '{Echo.Of(input.Datatype ?? "(none)")}'; it must be BYTES, one element per encoded image.");
        }

        if (input.Shape.Length != 1 || input.Shape[0] < 1 || input.Shape[0] > settings.MaxBatchImages)
        {
            throw InferenceError.BadRequest($"Input '{input.Name}' must have shape [N] with N from 1 to {settings.MaxBatchImages} (Gateway:MaxBatchImages), the number of images.");
        }

        var count = (int)input.Shape[0];
        var images = input.Elements is { } elements ? [.. elements]
            : input.Raw is { } raw ? Elements(raw, count, input.Name)
            : throw InferenceError.BadRequest($"Input '{input.Name}' must come as binary data: its \"parameters\": {{\"binary_data_size\": <bytes>}} with the JSON's length in Inference-Header-Content-Length over REST, raw_input_contents or bytes_contents over gRPC (JSON strings cannot carry image bytes).");
        if (images.Length != count)
        {
            throw InferenceError.BadRequest($"Input '{input.Name}' has {images.Length} elements but its shape says {count}.");
        }

        for (var i = 0; i < images.Length; i++)
        {
            if (images[i].Length == 0)
            {
                throw InferenceError.BadRequest($"Element {i} of input '{input.Name}' is empty.");
            }

            if (images[i].Length > settings.MaxImageBytes)
            {
                throw new InferenceError(StatusCodes.Status413PayloadTooLarge, $"Element {i} of input '{input.Name}' is {images[i].Length} bytes; an image may be at most {settings.MaxImageBytes} (Gateway:MaxImageBytes).");
            }
        }

        return (images, false);
    }

    /// <summary>BYTES elements from their raw form: each a 4-byte little-endian length, then its bytes; exactly <paramref name="count"/> of them.</summary>
    private static byte[][] Elements(byte[] raw, int count, string name)
    {
        var images = new byte[count][];
        var offset = 0;
        for (var i = 0; i < count; i++)
        {
            if (raw.Length - offset < 4)
            {
                throw InferenceError.BadRequest($"Input '{name}' holds fewer than the {count} elements its shape says: element {i} is missing (each is a 4-byte little-endian length, then its bytes).");
            }

            var size = BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(offset, 4));
            offset += 4;
            if (size > raw.Length - offset)
            {
                throw InferenceError.BadRequest($"Element {i} of input '{name}' says {size} bytes, but only {raw.Length - offset} remain.");
            }

            images[i] = raw.AsSpan(offset, (int)size).ToArray();
            offset += (int)size;
        }

        if (offset != raw.Length)
        {
            throw InferenceError.BadRequest($"Input '{name}' has {raw.Length - offset} bytes after its {count} elements; its shape and its data disagree.");
        }

        return images;
    }

    /// <summary>The model's own input, FP32 in shape [N, ...the model's shape]: one little-endian FP32 array per image.</summary>
    private static byte[][] Tensors(InferInput input, ModelVersionStatus status, GatewayOptions settings)
    {
        var expected = $"FP32, shape [N, {string.Join(", ", status.Input.Shape)}] with N from 1 to {settings.MaxBatchImages}";
        if (input.Datatype != "FP32")
        {
            throw InferenceError.BadRequest($"Input '{input.Name}' has datatype '{Echo.Of(input.Datatype ?? "(none)")}'; it must be {expected}.");
        }

        var shape = input.Shape;
        if (shape.Length != status.Input.Shape.Length + 1 || shape[0] < 1 || shape[0] > settings.MaxBatchImages || !shape.Skip(1).SequenceEqual(status.Input.Shape.Select(x => (long)x)))
        {
            throw InferenceError.BadRequest($"Input '{input.Name}' has shape [{string.Join(", ", shape)}]; it must be {expected}.");
        }

        var count = (int)shape[0];
        var perImage = status.Input.Shape.Aggregate(1, (a, b) => a * b) * sizeof(float);
        byte[] all;
        if (input.Raw is { } raw)
        {
            if (raw.Length != (long)count * perImage)
            {
                throw InferenceError.BadRequest($"Input '{input.Name}' has {raw.Length} bytes of data; its shape needs {(long)count * perImage} bytes of FP32.");
            }

            all = raw;
        }
        else if (input.Floats is { } floats)
        {
            if (floats.Count != count * perImage / sizeof(float))
            {
                throw InferenceError.BadRequest($"Input '{input.Name}' must hold {count * perImage / sizeof(float)} numbers (its shape's product), row-major; it holds {floats.Count}.");
            }

            all = new byte[floats.Count * sizeof(float)];
            for (var i = 0; i < floats.Count; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(all.AsSpan(i * sizeof(float)), floats[i]);
            }
        }
        else
        {
            throw InferenceError.BadRequest($"Input '{input.Name}' holds no data: give its numbers, or its bytes as binary data.");
        }

        return [.. Enumerable.Range(0, count).Select(i => all.AsSpan(i * perImage, perImage).ToArray())];
    }

    /// <summary>Checks a requested output against the model: its one output, and the classification extension's k within its classes.</summary>
    public static OutputRequest Output(string? name, long? classification, bool binary, ModelVersionStatus status)
    {
        if (name is not null && name != status.Output)
        {
            throw InferenceError.BadRequest($"Output '{Echo.Of(name)}' is not an output of model '{status.Model}'; its output is '{status.Output}'.");
        }

        if (classification is { } k)
        {
            if (status.OutputKind == "embedding")
            {
                throw InferenceError.BadRequest($"Model '{status.Model}' answers embeddings, not classes: the classification parameter does not apply.");
            }

            if (k < 1 || k > status.LabelCount)
            {
                throw InferenceError.BadRequest($"Output '{status.Output}': classification must be a whole number from 1 to {status.LabelCount}, the model's classes.");
            }
        }

        return new OutputRequest((int)(classification ?? 0), binary);
    }

    /// <summary>Sends every image to its shard at once and answers the predictions in order; the first failure refuses the whole request.</summary>
    public static async Task<Prediction[]> PredictAllAsync(PredictionRouter router, string name, ModelRoute route, ModelVersionStatus status, byte[][] images, bool tensor, CancellationToken cancellationToken)
    {
        var replies = await Task.WhenAll(images.Select(image =>
            router.PredictAsync(name, route.Version!, image, status.OutputKind == "embedding" ? 0 : status.LabelCount, route.ShardCount, cancellationToken,
                tensor ? status.Input.Shape : null, route.Serving)));
        for (var i = 0; i < replies.Length; i++)
        {
            switch (replies[i])
            {
                case { Prediction: not null }:
                    continue;
                case { Error: { } e }:
                    var code = Problems.StatusOf(e.Kind);
                    var retry = code is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status429TooManyRequests
                        ? (e.RetryAfterSeconds > 0 ? e.RetryAfterSeconds : Problems.DefaultRetryAfterSeconds)
                        : 0;
                    throw new InferenceError(code, images.Length == 1 ? e.Message : $"Image {i} of the input: {e.Message}", retry);
                default:
                    throw new InferenceError(StatusCodes.Status503ServiceUnavailable, "No silo could serve the request; retry shortly.", Problems.DefaultRetryAfterSeconds);
            }
        }

        return [.. replies.Select(r => r!.Prediction!)];
    }

    /// <summary>The output tensor: FP32 [N, K] (probabilities in class order, or the embedding), or BYTES [N, k] of "score:index:label".</summary>
    public static OutputTensor Tensor(ModelVersionStatus status, OutputRequest output, Prediction[] predictions)
    {
        var count = predictions.Length;
        if (output.Classification > 0)
        {
            var k = output.Classification;
            return new OutputTensor(status.Output, "BYTES", [count, k], null,
                [.. predictions.SelectMany(p => p.Scores.Take(k).Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Probability}:{s.Index}:{s.Label}")))]);
        }

        var values = predictions.SelectMany(p => p.Embedding ?? Probabilities(p, status.LabelCount)).ToArray();
        return new OutputTensor(status.Output, "FP32", [count, count == 0 ? 0 : values.Length / count], values, null);
    }

    /// <summary>Every class's probability in class order, from an answer that holds all classes (asked with top-k = the class count).</summary>
    private static float[] Probabilities(Prediction prediction, int labelCount)
    {
        var probabilities = new float[labelCount];
        foreach (var score in prediction.Scores)
        {
            probabilities[score.Index] = score.Probability;
        }

        return probabilities;
    }
}
