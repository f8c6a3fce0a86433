using System.Text.Json;
using Classifier.Tests.Support;

namespace Classifier.Tests.EndToEnd;

/// <summary>
/// The Open Inference Protocol's health and metadata endpoints, asked with curl (a client this project did not write)
/// against the real gateway and silo.
/// </summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class InferenceProtocolTests(ProcessClusterFixture cluster)
{
    /// <summary>GETs with curl; answers the status and the parsed body.</summary>
    private static async Task<(int Status, JsonElement Body)> CurlAsync(string url, params string[] headers)
    {
        var body = Path.GetTempFileName();
        try
        {
            var (exitCode, output) = await Tool.RunAsync(Tool.Find("curl", "curl"),
                ["-s", "-o", body, "-w", "%{http_code}", .. headers.SelectMany(h => new[] { "-H", h }), url]);
            Assert.True(exitCode == 0, $"curl {url}: {output}");
            var text = await File.ReadAllTextAsync(body);
            return (int.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture), JsonDocument.Parse(text.Length == 0 ? "null" : text).RootElement);
        }
        finally
        {
            File.Delete(body);
        }
    }

    [Fact]
    public async Task TheServerIsLiveAndReadyAndAGatewayWithoutSilosIsNotReady()
    {
        var (live, liveBody) = await CurlAsync(cluster.GatewayUrl + "/v2/health/live");
        var (ready, readyBody) = await CurlAsync(cluster.GatewayUrl + "/v2/health/ready");
        var (orphan, orphanBody) = await CurlAsync(cluster.OrphanGatewayUrl + "/v2/health/ready");

        Assert.Equal((200, true), (live, liveBody.GetProperty("live").GetBoolean()));
        Assert.Equal((200, true), (ready, readyBody.GetProperty("ready").GetBoolean()));
        Assert.Equal(503, orphan);
        Assert.False(string.IsNullOrWhiteSpace(orphanBody.GetProperty("error").GetString()));
    }

    [Fact]
    public async Task ServerMetadataNamesTheServerItsVersionAndItsExtensions()
    {
        var (status, body) = await CurlAsync(cluster.GatewayUrl + "/v2");

        Assert.Equal(200, status);
        Assert.Equal("classifier", body.GetProperty("name").GetString());
        Assert.False(string.IsNullOrEmpty(body.GetProperty("version").GetString()));
        Assert.Contains("model_repository", body.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
    }

    [Theory]
    [InlineData("/v2/models/text-orientation")]
    [InlineData("/v2/models/text-orientation/versions/1")]
    public async Task ModelMetadataDescribesBothWaysInAndTheOutput(string path)
    {
        var (status, body) = await CurlAsync(cluster.GatewayUrl + path);

        Assert.Equal(200, status);
        Assert.Equal("text-orientation", body.GetProperty("name").GetString());
        Assert.Equal(["1"], body.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
        Assert.Equal("onnxruntime_onnx", body.GetProperty("platform").GetString());
        string Tensor(JsonElement t) => $"{t.GetProperty("name").GetString()} {t.GetProperty("datatype").GetString()} [{string.Join(",", t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()))}]";
        Assert.Equal(["image BYTES [-1]", "x FP32 [-1,3,48,192]"], body.GetProperty("inputs").EnumerateArray().Select(Tensor));
        Assert.Equal(["softmax_0.tmp_0 FP32 [-1,2]"], body.GetProperty("outputs").EnumerateArray().Select(Tensor));
    }

    [Theory]
    [InlineData("/v2/models/no-such-model", 404, "Unknown model")]
    [InlineData("/v2/models/text-orientation/versions/9", 404, "has no version '9'")]
    [InlineData("/v2/models/Bad..Name", 400, "not a model name")]
    [InlineData("/v2/models/no-such-model/ready", 404, "Unknown model")]
    public async Task UnknownModelsAndVersionsAnswerAnErrorBodyThatSaysWhy(string path, int expected, string says)
    {
        var (status, body) = await CurlAsync(cluster.GatewayUrl + path);

        Assert.Equal(expected, status);
        Assert.Contains(says, body.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v2/models/text-orientation/ready")]
    [InlineData("/v2/models/text-orientation/versions/1/ready")]
    public async Task AServedModelIsReady(string path)
    {
        var (status, body) = await CurlAsync(cluster.GatewayUrl + path);

        Assert.Equal(200, status);
        Assert.Equal("text-orientation", body.GetProperty("name").GetString());
        Assert.True(body.GetProperty("ready").GetBoolean());
    }

    [Fact]
    public async Task MetadataNeedsTheApiKeyWhenKeysAreConfiguredAndHealthDoesNot()
    {
        var (withoutKey, _) = await CurlAsync(cluster.SecuredGatewayUrl + "/v2/models/text-orientation");
        var (withKey, _) = await CurlAsync(cluster.SecuredGatewayUrl + "/v2/models/text-orientation", $"X-Api-Key: {ProcessClusterFixture.ApiKey}");
        var (live, _) = await CurlAsync(cluster.SecuredGatewayUrl + "/v2/health/live");

        Assert.Equal((401, 200, 200), (withoutKey, withKey, live));
    }

    private const string Output = "softmax_0.tmp_0";

    /// <summary>A request with the binary data extension: the JSON header, then each image as a 4-byte little-endian length and its bytes.</summary>
    private static (byte[] Body, int HeaderLength) InferBody(string id, string outputs, params byte[][] images)
    {
        var binary = images.SelectMany(i => BitConverter.GetBytes((uint)i.Length).Concat(i)).ToArray();
        var json = $$$"""{"id": "{{{id}}}", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [{{{images.Length}}}], "parameters": {"binary_data_size": {{{binary.Length}}}}}]{{{outputs}}}}""";
        var header = System.Text.Encoding.UTF8.GetBytes(json);
        return ([.. header, .. binary], header.Length);
    }

    /// <summary>POSTs with curl; answers the status, the body and the response's Inference-Header-Content-Length (null when absent).</summary>
    private static async Task<(int Status, byte[] Body, int? HeaderLength)> CurlPostAsync(string url, byte[] body, int? headerLength)
    {
        var folder = Directory.CreateTempSubdirectory("oip-").FullName;
        try
        {
            var (request, response, headers) = (Path.Combine(folder, "request"), Path.Combine(folder, "response"), Path.Combine(folder, "headers"));
            await File.WriteAllBytesAsync(request, body);
            string[] lengthHeader = headerLength is { } length ? ["-H", $"Inference-Header-Content-Length: {length}"] : [];
            var (exitCode, output) = await Tool.RunAsync(Tool.Find("curl", "curl"),
                ["-s", "-o", response, "-D", headers, "-w", "%{http_code}", "-H", "Content-Type: application/octet-stream", .. lengthHeader, "--data-binary", "@" + request, url]);
            Assert.True(exitCode == 0, $"curl {url}: {output}");
            var answered = (await File.ReadAllLinesAsync(headers))
                .Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Inference-Header-Content-Length", StringComparison.OrdinalIgnoreCase))
                .Select(p => (int?)int.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
            return (int.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture), await File.ReadAllBytesAsync(response), answered);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>What /predict answers for the image: each class's probability by index.</summary>
    private async Task<float[]> PredictProbabilitiesAsync(byte[] image)
    {
        using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict?top_k=2", HttpHelpers.Raw(image, "image/png"));
        var body = await response.JsonAsync();
        var probabilities = new float[2];
        foreach (var p in body.GetProperty("predictions").EnumerateArray())
        {
            probabilities[p.GetProperty("index").GetInt32()] = p.GetProperty("probability").GetSingle();
        }

        return probabilities;
    }

    [Fact]
    public async Task TwoImagesAnswerAnFp32RowEachEqualToPredictsProbabilitiesAndEchoTheId()
    {
        byte[][] images = [TextImages.Numbered(9101), TextImages.Render("upside down line", upsideDown: true)];
        var (body, length) = InferBody("req-7", "", images);

        var (status, answer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", body, length);

        Assert.True(status == 200, System.Text.Encoding.UTF8.GetString(answer));
        var json = JsonDocument.Parse(answer).RootElement;
        Assert.Equal("text-orientation", json.GetProperty("model_name").GetString());
        Assert.Equal("1", json.GetProperty("model_version").GetString());
        Assert.Equal("req-7", json.GetProperty("id").GetString());
        var output = json.GetProperty("outputs").EnumerateArray().Single();
        Assert.Equal((Output, "FP32"), (output.GetProperty("name").GetString(), output.GetProperty("datatype").GetString()));
        Assert.Equal([2L, 2L], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        var data = output.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        for (var i = 0; i < images.Length; i++)
        {
            var expected = await PredictProbabilitiesAsync(images[i]);
            Assert.Equal(expected[0], data[i * 2], 5);
            Assert.Equal(expected[1], data[(i * 2) + 1], 5);
        }
    }

    [Fact]
    public async Task TheClassificationExtensionAnswersScoreIndexLabelStrings()
    {
        var image = TextImages.Numbered(9102);
        var (body, length) = InferBody("c", $$$""", "outputs": [{"name": "{{{Output}}}", "parameters": {"classification": 1}}]""", image);

        var (status, answer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/versions/1/infer", body, length);

        Assert.True(status == 200, System.Text.Encoding.UTF8.GetString(answer));
        var output = JsonDocument.Parse(answer).RootElement.GetProperty("outputs")[0];
        Assert.Equal("BYTES", output.GetProperty("datatype").GetString());
        Assert.Equal([1L, 1L], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        var parts = output.GetProperty("data")[0].GetString()!.Split(':');
        var expected = await PredictProbabilitiesAsync(image);
        var top = expected[0] >= expected[1] ? 0 : 1;
        Assert.Equal(top, int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(top == 0 ? "0" : "180", parts[2]);
        Assert.Equal(expected[top], float.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), 5);
    }

    [Fact]
    public async Task ABinaryOutputFollowsTheJsonHeaderWhoseLengthTheResponseNames()
    {
        var image = TextImages.Numbered(9103);
        var (body, length) = InferBody("b", $$$""", "outputs": [{"name": "{{{Output}}}", "parameters": {"binary_data": true}}]""", image);

        var (status, answer, headerLength) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", body, length);

        Assert.Equal(200, status);
        Assert.NotNull(headerLength);
        var output = JsonDocument.Parse(answer.AsMemory(0, headerLength!.Value)).RootElement.GetProperty("outputs")[0];
        Assert.Equal(8, output.GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        Assert.False(output.TryGetProperty("data", out _));
        var values = new[] { BitConverter.ToSingle(answer, headerLength.Value), BitConverter.ToSingle(answer, headerLength.Value + 4) };
        Assert.Equal(await PredictProbabilitiesAsync(image), values);
    }

    public static TheoryData<string, string, int, string> BadInferRequests() => new()
    {
        { "datatype", """{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": SIZE}}]}""", 400, "datatype 'FP32'; it must be BYTES" },
        { "name", """{"inputs": [{"name": "pixels", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": SIZE}}]}""", 400, "Input 'pixels' is not an input" },
        { "no binary", """{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}]}""", 400, "must come as binary data" },
        { "size", """{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 12}}]}""", 400, "declares binary_data_size 12" },
        { "shape", """{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": SIZE}}]}""", 400, "element 1 is missing" },
        { "output", """{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": SIZE}}], "outputs": [{"name": "logits"}]}""", 400, "Output 'logits' is not an output" },
        { "classification", """{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": SIZE}}], "outputs": [{"name": "softmax_0.tmp_0", "parameters": {"classification": 3}}]}""", 400, "from 1 to 2" },
        { "json", """{"inputs": [""", 400, "not valid" },
    };

    [Theory]
    [MemberData(nameof(BadInferRequests))]
    public async Task BadInferRequestsAnswer400NamingTheInputAndWhatWasExpected(string what, string json, int expected, string says)
    {
        var image = TextImages.Numbered(9104);
        var binary = BitConverter.GetBytes((uint)image.Length).Concat(image).ToArray();
        var header = System.Text.Encoding.UTF8.GetBytes(json.Replace("SIZE", binary.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));

        var (status, answer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", [.. header, .. binary], header.Length);

        Assert.True(status == expected, $"{what}: {status} {System.Text.Encoding.UTF8.GetString(answer)}");
        Assert.Contains(says, JsonDocument.Parse(answer).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task BytesThatAreNotAnImageAnswer400AndAnUnknownModel404()
    {
        var (body, length) = InferBody("x", "", [1, 2, 3, 4, 5, 6, 7, 8]);

        var (status, answer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", body, length);
        var (unknown, unknownAnswer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/no-such-model/infer", body, length);

        Assert.Equal(400, status);
        Assert.Contains("not an image", JsonDocument.Parse(answer).RootElement.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(404, unknown);
        Assert.Contains("Unknown model", JsonDocument.Parse(unknownAnswer).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    /// <summary>The default model's input tensor for an image, made by the project's own preprocessing, as little-endian FP32 bytes.</summary>
    private static byte[] TensorOf(byte[] image)
    {
        var definition = Classifier.Grains.Models.ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");
        var tensor = new float[definition.TensorLength];
        Assert.Null(new Classifier.Grains.Inference.ImagePreprocessor(definition, new Classifier.Grains.ImageOptions()).Preprocess(image, tensor));
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(tensor.AsSpan()).ToArray();
    }

    private static string TensorJson(int images, string data) =>
        $$$"""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [{{{images}}}, 3, 48, 192]{{{data}}}}]}""";

    [Fact]
    public async Task TheModelsOwnTensorAsBinaryOrJsonAnswersAsTheEncodedImageDoes()
    {
        var image = TextImages.Render("a tensor sent as it is", upsideDown: true);
        var tensor = TensorOf(image);
        var expected = await PredictProbabilitiesAsync(image);

        // Binary, two images in one request.
        var header = System.Text.Encoding.UTF8.GetBytes(TensorJson(2, $$$""", "parameters": {"binary_data_size": {{{tensor.Length * 2}}}}"""));
        var (binaryStatus, binaryAnswer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", [.. header, .. tensor, .. tensor], header.Length);

        // JSON numbers, one image.
        var numbers = string.Join(",", System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(tensor).ToArray().Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        var (jsonStatus, jsonAnswer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", System.Text.Encoding.UTF8.GetBytes(TensorJson(1, $", \"data\": [{numbers}]")), null);

        Assert.True(binaryStatus == 200, System.Text.Encoding.UTF8.GetString(binaryAnswer));
        Assert.True(jsonStatus == 200, System.Text.Encoding.UTF8.GetString(jsonAnswer));
        var binaryData = JsonDocument.Parse(binaryAnswer).RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        var jsonData = JsonDocument.Parse(jsonAnswer).RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(4, binaryData.Length);
        Assert.Equal(2, jsonData.Length);
        foreach (var (row, offset) in new[] { (binaryData, 0), (binaryData, 2), (jsonData, 0) })
        {
            Assert.Equal(expected[0], row[offset], 4);
            Assert.Equal(expected[1], row[offset + 1], 4);
        }
    }

    [Fact]
    public async Task ATensorsBytesSentAsAnEncodedImageAreNotAnsweredFromTheTensorsCacheEntry()
    {
        // The tensor is answered (and cached) first; the same bytes as an "image" must be decoded, and fail, not hit.
        var tensor = TensorOf(TextImages.Numbered(9105));
        var header = System.Text.Encoding.UTF8.GetBytes(TensorJson(1, $$$""", "parameters": {"binary_data_size": {{{tensor.Length}}}}"""));
        var (first, _, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", [.. header, .. tensor], header.Length);
        var (body, length) = InferBody("same-bytes", "", tensor);

        var (second, answer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", body, length);

        Assert.Equal(200, first);
        Assert.Equal(400, second);
        Assert.Contains("not an image", JsonDocument.Parse(answer).RootElement.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("shape", """{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3, 192, 48], "data": [1]}]}""", "must be FP32, shape [N, 3, 48, 192]")]
    [InlineData("datatype", """{"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, 3, 48, 192], "data": [1]}]}""", "datatype 'INT64'")]
    [InlineData("count", """{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3, 48, 192], "data": [1, 2, 3]}]}""", "must hold 27648 numbers")]
    [InlineData("not a number", """{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3, 48, 192], "data": ["one"]}]}""", "must hold numbers only")]
    public async Task BadTensorsAnswer400NamingTheExpectedShapeAndDatatype(string what, string json, string says)
    {
        var (status, answer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", System.Text.Encoding.UTF8.GetBytes(json), null);

        Assert.True(status == 400, $"{what}: {status}");
        Assert.Contains(says, JsonDocument.Parse(answer).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATensorHoldingNaNIsRefusedByTheSilo()
    {
        var tensor = new float[3 * 48 * 192];
        tensor[5] = float.NaN;
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(tensor.AsSpan()).ToArray();
        var header = System.Text.Encoding.UTF8.GetBytes(TensorJson(1, $$$""", "parameters": {"binary_data_size": {{{bytes.Length}}}}"""));

        var (status, answer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", [.. header, .. bytes], header.Length);

        Assert.Equal(400, status);
        Assert.Contains("not a finite number", JsonDocument.Parse(answer).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task InferRequestsAreCountedUnderTheRouteTemplateAndTheSilosPredictionCounters()
    {
        static double Sum(string metrics, string pattern) =>
            System.Text.RegularExpressions.Regex.Matches(metrics, pattern, System.Text.RegularExpressions.RegexOptions.Multiline)
                .Sum(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        const string Route = @"^http_requests_total\{[^}]*endpoint=""/v2/models/\{name\}/infer""[^}]*\} (\S+)$";
        const string Predictions = @"^predictions_total\{[^}]*\} (\S+)$";
        // Every silo of the collection's cluster: another test may have added one, and the images' shards may live there.
        async Task<string> SilosAsync() => string.Join("\n", await Task.WhenAll(cluster.SiloUrls.Select(u => cluster.Http.GetStringAsync(u + "/metrics"))));
        var (gatewayBefore, siloBefore) = (await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/metrics"), await SilosAsync());
        var (body, length) = InferBody("m", "", TextImages.Numbered(9106), TextImages.Numbered(9107));

        var (status, _, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", body, length);

        var (gatewayAfter, siloAfter) = (await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/metrics"), await SilosAsync());
        Assert.Equal(200, status);
        Assert.Equal(1, Sum(gatewayAfter, Route) - Sum(gatewayBefore, Route));
        Assert.True(Sum(siloAfter, Predictions) - Sum(siloBefore, Predictions) >= 2, "the silos counted fewer than the two images");
        Assert.DoesNotContain("endpoint=\"/v2/models/text-orientation", gatewayAfter, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnImageOverTheSizeLimitAnswers413AndAFormatOutsideTheAllowList415()
    {
        var (big, bigLength) = InferBody("big", "", new byte[ProcessClusterFixture.MaxImageBytes + 1]);
        using var bmp = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(32, 16);
        using var bmpBytes = new MemoryStream();
        bmp.Save(bmpBytes, new SixLabors.ImageSharp.Formats.Bmp.BmpEncoder());
        var (bitmap, bitmapLength) = InferBody("bmp", "", bmpBytes.ToArray());

        var (tooLarge, tooLargeAnswer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", big, bigLength);
        var (unsupported, unsupportedAnswer, _) = await CurlPostAsync(cluster.GatewayUrl + "/v2/models/text-orientation/infer", bitmap, bitmapLength);

        Assert.Equal(413, tooLarge);
        Assert.Contains("Gateway:MaxImageBytes", JsonDocument.Parse(tooLargeAnswer).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(415, unsupported);
        Assert.Contains("Bmp", JsonDocument.Parse(unsupportedAnswer).RootElement.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
    }
}
