using System.Globalization;
using System.Text.Json;
using Classifier.Gateway.Cluster;
using Microsoft.Extensions.Options;

namespace Classifier.Gateway.Api;

/// <summary>
/// <c>POST /v2/models/{m}[/versions/{v}]/infer</c> of the Open Inference Protocol over REST (<see cref="InferenceCore"/>
/// does the work): encoded images as input <c>image</c>, BYTES <c>[N]</c>, sent with the binary data extension (the
/// JSON header's length in <c>Inference-Header-Content-Length</c>, then each element as a 4-byte little-endian length
/// and its bytes), or the model's own FP32 input as binary or JSON numbers. The answer is the output as FP32
/// <c>[N, K]</c>, or with the classification extension BYTES <c>[N, k]</c> of <c>"score:index:label"</c>; in JSON or,
/// with <c>"binary_data": true</c> on the output (or <c>"binary_data_output": true</c> on the request), as binary after
/// the JSON header.
/// </summary>
public static class InferenceProtocolInfer
{
    /// <summary>The largest JSON header accepted before binary data: the protocol's JSON for images is small, the images travel as binary.</summary>
    public const int MaxHeaderBytes = 64 * 1024;

    private const string HeaderLengthName = "Inference-Header-Content-Length";

    public static IEndpointRouteBuilder MapInferenceProtocolInfer(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v2/models/{name}/infer", (string name, HttpRequest request, ClusterView cluster, PredictionRouter router, UploadBudget budget, IOptions<GatewayOptions> options, CancellationToken ct) =>
            InferAsync(name, null, request, cluster, router, budget, options, ct)).WithTags("Open Inference Protocol").RequireApiKey(routes);
        routes.MapPost("/v2/models/{name}/versions/{version}/infer", InferAsync).WithTags("Open Inference Protocol").RequireApiKey(routes);
        return routes;
    }

    private static IResult Error(HttpResponse response, InferenceError error)
    {
        if (error.RetryAfterSeconds > 0)
        {
            Problems.RetryAfter(response, error.RetryAfterSeconds);
        }

        return Results.Json(new { error = error.Message }, statusCode: error.Status);
    }

    public static async Task<IResult> InferAsync(string name, string? version, HttpRequest request, ClusterView cluster, PredictionRouter router,
        UploadBudget budget, IOptions<GatewayOptions> options, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        try
        {
            var (route, status) = await InferenceCore.ResolveAsync(name, version, cluster, cancellationToken);

            // The body: admitted whole within the upload budget, as /predict's, at most a batch's bytes plus the header.
            var maxBody = settings.MaxBatchBytes + MaxHeaderBytes;
            ImageUploads.SetBodyLimit(request, maxBody);
            if (request.ContentLength > maxBody)
            {
                throw new InferenceError(StatusCodes.Status413PayloadTooLarge, $"The request body is {request.ContentLength} bytes; at most {maxBody} (Gateway:MaxBatchBytes and a {MaxHeaderBytes / 1024} KiB header) are accepted.");
            }

            using var reader = new UploadReader(request.HttpContext, budget, settings);
            if (request.ContentLength is { } length && !reader.Prepay(length, UploadReader.HoldingCost(length)))
            {
                throw new InferenceError(StatusCodes.Status503ServiceUnavailable, reader.BusyProblem(null).Problem!, UploadReader.BusyRetryAfterSeconds);
            }

            var body = await reader.ReadAsync(request.Body, maxBody, null, request.ContentLength);
            if (body.Bytes is null)
            {
                throw new InferenceError(body.Status, body.Problem!, body.Status == StatusCodes.Status503ServiceUnavailable ? UploadReader.BusyRetryAfterSeconds : 0);
            }

            var (id, input, output) = Parse(request, body.Bytes, status);
            var (images, tensor) = InferenceCore.Images(input, status, settings);
            var predictions = await InferenceCore.PredictAllAsync(router, name, route, status, images, tensor, cancellationToken);
            return Answer(request.HttpContext.Response, name, route.Version!, id, InferenceCore.Tensor(status, output, predictions), output.Binary);
        }
        catch (InferenceError error)
        {
            return Error(request.HttpContext.Response, error);
        }
    }

    /// <summary>The JSON header, its one input (with its binary part, if any) and the requested output.</summary>
    private static (string? Id, InferInput Input, OutputRequest Output) Parse(HttpRequest request, byte[] body, Grains.Interfaces.ModelVersionStatus status)
    {
        var headerLength = body.Length;
        if (request.Headers[HeaderLengthName].ToString() is { Length: > 0 } declared)
        {
            if (!int.TryParse(declared, NumberStyles.None, CultureInfo.InvariantCulture, out headerLength) || headerLength > body.Length)
            {
                throw InferenceError.BadRequest($"Header {HeaderLengthName} is '{Echo.Of(declared, 32)}'; it must be the byte length of the JSON at the start of the body ({body.Length} bytes in all).");
            }

            if (headerLength > MaxHeaderBytes)
            {
                throw InferenceError.BadRequest($"The JSON part of the request is {headerLength} bytes; at most {MaxHeaderBytes} are accepted before binary data.");
            }
        }

        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(body.AsMemory(0, headerLength), new JsonDocumentOptions { MaxDepth = 16 });
            root = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw InferenceError.BadRequest($"The request's JSON is not valid: {e.Message}");
        }

        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("inputs", out var inputs) || inputs.ValueKind != JsonValueKind.Array || inputs.GetArrayLength() != 1)
        {
            throw InferenceError.BadRequest($"The request must be a JSON object with \"inputs\" holding one input: '{InferenceProtocolApi.ImageInput}' (BYTES, shape [N]) or '{status.Input.Name}' (FP32, shape [N, {string.Join(", ", status.Input.Shape)}]).");
        }

        var id = root.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.String ? idElement.GetString() : null;
        var input = inputs[0];
        var name = String(input, "name") ?? "";
        var shape = input.TryGetProperty("shape", out var s) && s.ValueKind == JsonValueKind.Array
            ? s.EnumerateArray().Select(e => e.TryGetInt64(out var v) ? v : -1).ToArray()
            : [];
        byte[]? raw = null;
        if (input.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object && parameters.TryGetProperty("binary_data_size", out var size))
        {
            if (!size.TryGetInt64(out var binarySize) || binarySize != body.Length - headerLength)
            {
                throw InferenceError.BadRequest($"Input '{name}' declares binary_data_size {Echo.Of(size.ToString(), 32)}, but {body.Length - headerLength} bytes follow the JSON.");
            }

            raw = body[headerLength..];
        }

        List<float>? floats = null;
        if (raw is null && input.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Array && String(input, "datatype") == "FP32")
        {
            floats = [];
            if (!Flatten(data, floats, shape.Aggregate(1L, (a, b) => a * Math.Max(b, 1))))
            {
                throw InferenceError.BadRequest($"Input '{name}': \"data\" must hold numbers only, as many as its shape's product, row-major.");
            }
        }

        return (id, new InferInput(name, String(input, "datatype"), shape, raw, null, floats), ParseOutput(root, status));
    }

    private static string? String(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>Appends the numbers of a (possibly nested) JSON array; false on a non-number or past <paramref name="limit"/> values.</summary>
    private static bool Flatten(JsonElement array, List<float> values, long limit)
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

    private static OutputRequest ParseOutput(JsonElement root, Grains.Interfaces.ModelVersionStatus status)
    {
        var binary = root.TryGetProperty("parameters", out var requestParameters) && requestParameters.ValueKind == JsonValueKind.Object
            && requestParameters.TryGetProperty("binary_data_output", out var all) && all.ValueKind == JsonValueKind.True;
        if (!root.TryGetProperty("outputs", out var outputs) || outputs.ValueKind != JsonValueKind.Array || outputs.GetArrayLength() == 0)
        {
            return new OutputRequest(0, binary);
        }

        if (outputs.GetArrayLength() > 1)
        {
            throw InferenceError.BadRequest($"Model '{status.Model}' has one output, '{status.Output}'.");
        }

        var output = outputs[0];
        long? classification = null;
        if (output.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object)
        {
            if (parameters.TryGetProperty("classification", out var k))
            {
                classification = k.TryGetInt64(out var value) ? value : -1;
            }

            if (parameters.TryGetProperty("binary_data", out var b))
            {
                binary = b.ValueKind == JsonValueKind.True;
            }
        }

        return InferenceCore.Output(String(output, "name") ?? "", classification, binary, status);
    }

    /// <summary>The protocol's <c>$inference_response</c>, the output in JSON or as binary after the JSON header.</summary>
    private static IResult Answer(HttpResponse response, string model, string version, string? id, OutputTensor tensor, bool binary)
    {
        object output = binary
            ? new { name = tensor.Name, datatype = tensor.Datatype, shape = tensor.Shape, parameters = new { binary_data_size = tensor.Raw().Length } }
            : tensor.Values is { } values
                ? new { name = tensor.Name, datatype = tensor.Datatype, shape = tensor.Shape, data = (object)values }
                : new { name = tensor.Name, datatype = tensor.Datatype, shape = tensor.Shape, data = (object)tensor.Strings! };
        var answer = new Dictionary<string, object?> { ["model_name"] = model, ["model_version"] = version };
        if (id is not null)
        {
            answer["id"] = id;
        }

        answer["outputs"] = new[] { output };
        if (!binary)
        {
            return Results.Json(answer);
        }

        var header = JsonSerializer.SerializeToUtf8Bytes(answer);
        response.Headers[HeaderLengthName] = header.Length.ToString(CultureInfo.InvariantCulture);
        return Results.Bytes([.. header, .. tensor.Raw()], "application/octet-stream");
    }
}
