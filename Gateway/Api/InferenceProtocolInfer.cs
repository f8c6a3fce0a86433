using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;
using Microsoft.Extensions.Options;

namespace Classifier.Gateway.Api;

/// <summary>
/// <c>POST /v2/models/{m}[/versions/{v}]/infer</c> of the Open Inference Protocol for encoded images: the input
/// <c>image</c> is a BYTES tensor of shape <c>[N]</c>, sent with the binary data extension (the JSON header's length in
/// <c>Inference-Header-Content-Length</c>, then each element as a 4-byte little-endian length and its bytes). Each image
/// goes to its shard as <c>/predict</c> sends it, so it is cached by its content hash alike. The answer is the model's
/// output as FP32 <c>[N, K]</c>, or with the classification extension (<c>"classification": k</c> on the output) BYTES
/// <c>[N, k]</c> of <c>"score:index:label"</c>; either in JSON or, with <c>"binary_data": true</c> on the output (or
/// <c>"binary_data_output": true</c> on the request), as binary after the JSON header.
/// </summary>
public static class InferenceProtocolInfer
{
    /// <summary>The largest JSON header accepted: the protocol's JSON for images is small, the images travel as binary.</summary>
    public const int MaxHeaderBytes = 64 * 1024;

    private const string HeaderLengthName = "Inference-Header-Content-Length";

    public static IEndpointRouteBuilder MapInferenceProtocolInfer(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v2/models/{name}/infer", (string name, HttpRequest request, ClusterView cluster, PredictionRouter router, UploadBudget budget, IOptions<GatewayOptions> options, CancellationToken ct) =>
            InferAsync(name, null, request, cluster, router, budget, options, ct)).WithTags("Open Inference Protocol").AddEndpointFilter<ApiKeyFilter>();
        routes.MapPost("/v2/models/{name}/versions/{version}/infer", InferAsync).WithTags("Open Inference Protocol").AddEndpointFilter<ApiKeyFilter>();
        return routes;
    }

    private static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);

    /// <summary>A request refused with its status and the reason to give.</summary>
    private sealed class Refusal(int status, string message) : Exception(message)
    {
        public int Status { get; } = status;
    }

    /// <summary>What one output of the answer is to be: its name, whether classification (k), whether binary.</summary>
    private readonly record struct OutputRequest(int Classification, bool Binary);

    public static async Task<IResult> InferAsync(string name, string? version, HttpRequest request, ClusterView cluster, PredictionRouter router,
        UploadBudget budget, IOptions<GatewayOptions> options, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!RequestRules.IsModelName(name))
        {
            return Error(StatusCodes.Status400BadRequest, $"'{Echo.Of(name)}' is not a model name: lower-case letters, digits, '.', '_' or '-', at most 64.");
        }

        var route = await cluster.RouteAsync(name, version, cancellationToken);
        if (route.Problem is not null)
        {
            if (route.StatusCode == StatusCodes.Status503ServiceUnavailable)
            {
                Problems.RetryAfter(request.HttpContext.Response, Problems.DefaultRetryAfterSeconds);
            }

            return Error(route.StatusCode, route.Problem);
        }

        var status = cluster.Snapshot!.Silos.SelectMany(s => s.Models).First(m => m.Model == name && m.Version == route.Version);

        // The body: admitted whole within the upload budget, as /predict's, at most a batch's bytes plus the header.
        var maxBody = settings.MaxBatchBytes + MaxHeaderBytes;
        ImageUploads.SetBodyLimit(request, maxBody);
        if (request.ContentLength > maxBody)
        {
            return Error(StatusCodes.Status413PayloadTooLarge, $"The request body is {request.ContentLength} bytes; at most {maxBody} (Gateway:MaxBatchBytes and a {MaxHeaderBytes / 1024} KiB header) are accepted.");
        }

        using var reader = new UploadReader(request.HttpContext, budget, settings);
        if (request.ContentLength is { } length && !reader.Prepay(length, UploadReader.HoldingCost(length)))
        {
            Problems.RetryAfter(request.HttpContext.Response, UploadReader.BusyRetryAfterSeconds);
            return Error(StatusCodes.Status503ServiceUnavailable, reader.BusyProblem(null).Problem!);
        }

        var body = await reader.ReadAsync(request.Body, maxBody, null, request.ContentLength);
        if (body.Bytes is null)
        {
            return Error(body.Status, body.Problem!);
        }

        try
        {
            var parsed = Parse(request, body.Bytes, status, settings);
            var replies = await Task.WhenAll(parsed.Images.Select(image =>
                router.PredictAsync(name, route.Version!, image, status.OutputKind == "embedding" ? 0 : status.LabelCount, route.ShardCount, cancellationToken,
                    parsed.Tensor ? status.Input.Shape : null)));
            for (var i = 0; i < replies.Length; i++)
            {
                switch (replies[i])
                {
                    case { Prediction: not null }:
                        continue;
                    case { Error: { } e }:
                        var code = Problems.StatusOf(e.Kind);
                        if (code is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status429TooManyRequests)
                        {
                            Problems.RetryAfter(request.HttpContext.Response, e.RetryAfterSeconds > 0 ? e.RetryAfterSeconds : Problems.DefaultRetryAfterSeconds);
                        }

                        return Error(code, parsed.Images.Length == 1 ? e.Message : $"Image {i} of the input: {e.Message}");
                    default:
                        Problems.RetryAfter(request.HttpContext.Response, Problems.DefaultRetryAfterSeconds);
                        return Error(StatusCodes.Status503ServiceUnavailable, "No silo could serve the request; retry shortly.");
                }
            }

            return Answer(request.HttpContext.Response, name, route.Version!, parsed.Id, status, parsed.Output, [.. replies.Select(r => r!.Prediction!)]);
        }
        catch (Refusal refusal)
        {
            return Error(refusal.Status, refusal.Message);
        }
    }

    private sealed record Parsed(string? Id, byte[][] Images, OutputRequest Output, bool Tensor = false);

    /// <summary>
    /// The model's own input, FP32 in shape [N, ...the model's shape], as binary data or as JSON numbers (flat or nested,
    /// row-major): one little-endian FP32 array per image.
    /// </summary>
    private static byte[][] TensorInput(JsonElement input, string name, byte[] body, int headerLength, ModelVersionStatus status, GatewayOptions settings)
    {
        var expected = $"FP32, shape [N, {string.Join(", ", status.Input.Shape)}] with N from 1 to {settings.MaxBatchImages}";
        var datatype = input.TryGetProperty("datatype", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        if (datatype != "FP32")
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{name}' has datatype '{Echo.Of(datatype ?? "(none)")}'; it must be {expected}.");
        }

        var shape = input.TryGetProperty("shape", out var s) && s.ValueKind == JsonValueKind.Array
            ? s.EnumerateArray().Select(e => e.TryGetInt64(out var v) ? v : -1).ToArray()
            : [];
        if (shape.Length != status.Input.Shape.Length + 1 || shape[0] < 1 || shape[0] > settings.MaxBatchImages || !shape.Skip(1).SequenceEqual(status.Input.Shape.Select(x => (long)x)))
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{name}' has shape [{string.Join(", ", shape)}]; it must be {expected}.");
        }

        var count = (int)shape[0];
        var perImage = status.Input.Shape.Aggregate(1, (a, b) => a * b) * sizeof(float);
        byte[] all;
        if (input.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object && parameters.TryGetProperty("binary_data_size", out var size))
        {
            if (!size.TryGetInt64(out var binarySize) || binarySize != body.Length - headerLength || binarySize != (long)count * perImage)
            {
                throw new Refusal(StatusCodes.Status400BadRequest,
                    $"Input '{name}' declares binary_data_size {Echo.Of(size.ToString(), 32)}; its shape needs {(long)count * perImage} bytes of FP32 and {body.Length - headerLength} follow the JSON.");
            }

            all = body[headerLength..];
        }
        else if (input.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Array)
        {
            var values = new List<float>(count * perImage / sizeof(float));
            if (!Flatten(data, values, count * perImage / sizeof(float)) || values.Count != count * perImage / sizeof(float))
            {
                throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{name}': \"data\" must hold {count * perImage / sizeof(float)} numbers (its shape's product), row-major.");
            }

            all = new byte[values.Count * sizeof(float)];
            for (var i = 0; i < values.Count; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(all.AsSpan(i * sizeof(float)), values[i]);
            }
        }
        else
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{name}' has neither \"data\" nor \"parameters\": {{\"binary_data_size\": <bytes>}}.");
        }

        return [.. Enumerable.Range(0, count).Select(i => all.AsSpan(i * perImage, perImage).ToArray())];
    }

    /// <summary>Appends the numbers of a (possibly nested) JSON array; false on a non-number or past <paramref name="limit"/> values.</summary>
    private static bool Flatten(JsonElement array, List<float> values, int limit)
    {
        foreach (var element in array.EnumerateArray())
        {
            if (element.ValueKind == JsonValueKind.Array)
            {
                if (!Flatten(element, values, limit))
                {
                    return false;
                }
            }
            else if (element.ValueKind != JsonValueKind.Number || !element.TryGetSingle(out var v) || values.Count >= limit)
            {
                return false;
            }
            else
            {
                values.Add(v);
            }
        }

        return true;
    }

    /// <summary>Reads the JSON header and the images out of the binary part; every mistake is a 400 that names the field.</summary>
    private static Parsed Parse(HttpRequest request, byte[] body, ModelVersionStatus status, GatewayOptions settings)
    {
        var headerLength = body.Length;
        if (request.Headers[HeaderLengthName].ToString() is { Length: > 0 } declared)
        {
            if (!int.TryParse(declared, NumberStyles.None, CultureInfo.InvariantCulture, out headerLength) || headerLength > body.Length)
            {
                throw new Refusal(StatusCodes.Status400BadRequest, $"Header {HeaderLengthName} is '{Echo.Of(declared, 32)}'; it must be the byte length of the JSON at the start of the body ({body.Length} bytes in all).");
            }
        }

        if (headerLength > MaxHeaderBytes && headerLength < body.Length)
        {
            throw new Refusal(StatusCodes.Status400BadRequest,
                $"The JSON part of the request is {headerLength} bytes; at most {MaxHeaderBytes} are accepted. Send the images with the binary data extension ({HeaderLengthName} and \"binary_data_size\").");
        }

        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(body.AsMemory(0, headerLength), new JsonDocumentOptions { MaxDepth = 16 });
            root = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"The request's JSON is not valid: {e.Message}");
        }

        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("inputs", out var inputs) || inputs.ValueKind != JsonValueKind.Array || inputs.GetArrayLength() != 1)
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"The request must be a JSON object with \"inputs\": one input named '{InferenceProtocolApi.ImageInput}' (BYTES, shape [N]).");
        }

        var id = root.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.String ? idElement.GetString() : null;
        var input = inputs[0];
        var inputName = input.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "";
        if (inputName != InferenceProtocolApi.ImageInput && inputName != status.Input.Name)
        {
            throw new Refusal(StatusCodes.Status400BadRequest,
                $"Input '{Echo.Of(inputName)}' is not an input of model '{status.Model}'; send encoded images as input '{InferenceProtocolApi.ImageInput}' (BYTES, shape [N]) or preprocessed ones as '{status.Input.Name}' (FP32, shape [N, {string.Join(", ", status.Input.Shape)}]).");
        }

        if (inputName == status.Input.Name && inputName != InferenceProtocolApi.ImageInput)
        {
            return new Parsed(id, TensorInput(input, inputName, body, headerLength, status, settings), ParseOutput(root, status), Tensor: true);
        }

        var datatype = input.TryGetProperty("datatype", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        if (datatype != "BYTES")
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{inputName}' has datatype '{Echo.Of(datatype ?? "(none)")}'; it must be BYTES, one element per encoded image.");
        }

        if (!input.TryGetProperty("shape", out var shape) || shape.ValueKind != JsonValueKind.Array || shape.GetArrayLength() != 1
            || !shape[0].TryGetInt32(out var count) || count < 1 || count > settings.MaxBatchImages)
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{inputName}' must have shape [N] with N from 1 to {settings.MaxBatchImages} (Gateway:MaxBatchImages), the number of images.");
        }

        if (!input.TryGetProperty("parameters", out var parameters) || !parameters.TryGetProperty("binary_data_size", out var sizeElement) || !sizeElement.TryGetInt64(out var binarySize))
        {
            throw new Refusal(StatusCodes.Status400BadRequest,
                $"Input '{inputName}' must come as binary data: set its \"parameters\": {{\"binary_data_size\": <bytes>}} and put the JSON's length in {HeaderLengthName} (JSON strings cannot carry image bytes).");
        }

        if (binarySize != body.Length - headerLength)
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{inputName}' declares binary_data_size {binarySize}, but {body.Length - headerLength} bytes follow the JSON.");
        }

        var images = new byte[count][];
        var offset = headerLength;
        for (var i = 0; i < count; i++)
        {
            if (body.Length - offset < 4)
            {
                throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{inputName}' holds fewer than the {count} elements its shape says: element {i} is missing (each is a 4-byte little-endian length, then its bytes).");
            }

            var size = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(offset, 4));
            offset += 4;
            if (size == 0 || size > settings.MaxImageBytes || size > body.Length - offset)
            {
                throw new Refusal(size > settings.MaxImageBytes ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status400BadRequest,
                    size == 0 ? $"Element {i} of input '{inputName}' is empty."
                    : size > settings.MaxImageBytes ? $"Element {i} of input '{inputName}' is {size} bytes; an image may be at most {settings.MaxImageBytes} (Gateway:MaxImageBytes)."
                    : $"Element {i} of input '{inputName}' says {size} bytes, but only {body.Length - offset} remain.");
            }

            images[i] = body.AsSpan(offset, (int)size).ToArray();
            offset += (int)size;
        }

        if (offset != body.Length)
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Input '{inputName}' has {body.Length - offset} bytes after its {count} elements; its shape and its data disagree.");
        }

        return new Parsed(id, images, ParseOutput(root, status));
    }

    private static OutputRequest ParseOutput(JsonElement root, ModelVersionStatus status)
    {
        var binary = root.TryGetProperty("parameters", out var requestParameters) && requestParameters.ValueKind == JsonValueKind.Object
            && requestParameters.TryGetProperty("binary_data_output", out var all) && all.ValueKind == JsonValueKind.True;
        if (!root.TryGetProperty("outputs", out var outputs) || outputs.ValueKind != JsonValueKind.Array || outputs.GetArrayLength() == 0)
        {
            return new OutputRequest(0, binary);
        }

        if (outputs.GetArrayLength() > 1)
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Model '{status.Model}' has one output, '{status.Output}'.");
        }

        var output = outputs[0];
        var name = output.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "";
        if (name != status.Output)
        {
            throw new Refusal(StatusCodes.Status400BadRequest, $"Output '{Echo.Of(name)}' is not an output of model '{status.Model}'; its output is '{status.Output}'.");
        }

        var classification = 0;
        if (output.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object)
        {
            if (parameters.TryGetProperty("classification", out var k))
            {
                if (status.OutputKind == "embedding")
                {
                    throw new Refusal(StatusCodes.Status400BadRequest, $"Model '{status.Model}' answers embeddings, not classes: the classification parameter does not apply.");
                }

                if (!k.TryGetInt32(out classification) || classification < 1 || classification > status.LabelCount)
                {
                    throw new Refusal(StatusCodes.Status400BadRequest, $"Output '{name}': classification must be a whole number from 1 to {status.LabelCount}, the model's classes.");
                }
            }

            if (parameters.TryGetProperty("binary_data", out var b))
            {
                binary = b.ValueKind == JsonValueKind.True;
            }
        }

        return new OutputRequest(classification, binary);
    }

    /// <summary>The protocol's <c>$inference_response</c>, the output in JSON or as binary after the JSON header.</summary>
    private static IResult Answer(HttpResponse response, string model, string version, string? id, ModelVersionStatus status, OutputRequest output, Prediction[] predictions)
    {
        var count = predictions.Length;
        object tensor;
        byte[]? binary = null;
        if (output.Classification > 0)
        {
            var k = output.Classification;
            var strings = predictions.SelectMany(p => p.Scores.Take(k).Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Probability}:{s.Index}:{s.Label}"))).ToArray();
            if (output.Binary)
            {
                binary = [.. strings.SelectMany(s =>
                {
                    var bytes = Encoding.UTF8.GetBytes(s);
                    var element = new byte[4 + bytes.Length];
                    BinaryPrimitives.WriteUInt32LittleEndian(element, (uint)bytes.Length);
                    bytes.CopyTo(element, 4);
                    return element;
                })];
                tensor = new { name = status.Output, datatype = "BYTES", shape = new[] { count, k }, parameters = new { binary_data_size = binary.Length } };
            }
            else
            {
                tensor = new { name = status.Output, datatype = "BYTES", shape = new[] { count, k }, data = strings };
            }
        }
        else
        {
            var values = predictions.SelectMany(p => p.Embedding ?? Probabilities(p, status.LabelCount)).ToArray();
            var width = count == 0 ? 0 : values.Length / count;
            if (output.Binary)
            {
                binary = new byte[values.Length * 4];
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(binary.AsSpan(i * 4), values[i]);
                }

                tensor = new { name = status.Output, datatype = "FP32", shape = new[] { count, width }, parameters = new { binary_data_size = binary.Length } };
            }
            else
            {
                tensor = new { name = status.Output, datatype = "FP32", shape = new[] { count, width }, data = values };
            }
        }

        var answer = new Dictionary<string, object?> { ["model_name"] = model, ["model_version"] = version };
        if (id is not null)
        {
            answer["id"] = id;
        }

        answer["outputs"] = new[] { tensor };
        if (binary is null)
        {
            return Results.Json(answer);
        }

        var header = JsonSerializer.SerializeToUtf8Bytes(answer);
        response.Headers[HeaderLengthName] = header.Length.ToString(CultureInfo.InvariantCulture);
        return Results.Bytes([.. header, .. binary], "application/octet-stream");
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
