using System.Text.Json;
using Classifier.Tests.Support;

namespace Classifier.Tests.EndToEnd;

/// <summary>
/// The Open Inference Protocol over gRPC, called with clients this project did not write: <c>@grpc/grpc-js</c> with
/// <c>@grpc/proto-loader</c> reading the gateway's <c>.proto</c>, and <c>buf curl</c>.
/// </summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class GrpcInferenceTests(ProcessClusterFixture cluster)
{
    private static readonly string Proto = Path.Combine(Repo.Root, "Gateway", "Protos", "open_inference.proto");

    /// <summary>Calls a method with grpc-js: answers ("OK", response) or (the gRPC code's name, details as a string).</summary>
    internal static async Task<(string Code, JsonElement Answer)> CallAsync(string address, string method, object request, Dictionary<string, string>? metadata = null)
    {
        var clients = await DeploymentTools.GrpcClientsAsync();
        var (exitCode, stdout, stderr) = await Tool.RunSeparatelyAsync(Tool.Find("node", "nodejs"),
            [Path.Combine(clients, "call.mjs"), Proto, address, method, "-", JsonSerializer.Serialize(metadata ?? [])], stdin: JsonSerializer.Serialize(request));
        Assert.True(exitCode == 0, $"grpc-js {method}: {stderr}{stdout}");
        var answer = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]).RootElement;
        return answer.TryGetProperty("ok", out var ok) ? ("OK", ok) : (answer.GetProperty("code").GetString()!, answer.GetProperty("details"));
    }

    internal static string Raw(params byte[][] elements) => Convert.ToBase64String(elements.SelectMany(e => BitConverter.GetBytes((uint)e.Length).Concat(e)).ToArray());

    private static object InferRequest(string id, object input, string[]? raw = null, object[]? outputs = null) => new Dictionary<string, object?>
    {
        ["model_name"] = "text-orientation",
        ["id"] = id,
        ["inputs"] = new[] { input },
        ["raw_input_contents"] = raw ?? [],
        ["outputs"] = outputs ?? [],
    };

    /// <summary>/predict's probabilities for the image, by class index.</summary>
    private async Task<float[]> PredictProbabilitiesAsync(byte[] image)
    {
        using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict?top_k=2", HttpHelpers.Raw(image, "image/png"));
        var probabilities = new float[2];
        foreach (var p in (await response.JsonAsync()).GetProperty("predictions").EnumerateArray())
        {
            probabilities[p.GetProperty("index").GetInt32()] = p.GetProperty("probability").GetSingle();
        }

        return probabilities;
    }

    private static float[] Floats(JsonElement answer) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Convert.FromBase64String(answer.GetProperty("raw_output_contents")[0].GetString()!)).ToArray();

    [Fact]
    public async Task HealthAndMetadataAnswerOverGrpc()
    {
        var (liveCode, live) = await CallAsync(cluster.GrpcAddress, "ServerLive", new { });
        var (readyCode, ready) = await CallAsync(cluster.GrpcAddress, "ServerReady", new { });
        var (_, server) = await CallAsync(cluster.GrpcAddress, "ServerMetadata", new { });
        var (_, model) = await CallAsync(cluster.GrpcAddress, "ModelMetadata", new { name = "text-orientation" });
        var (_, modelReady) = await CallAsync(cluster.GrpcAddress, "ModelReady", new { name = "text-orientation", version = "1" });

        Assert.Equal(("OK", true, "OK", true), (liveCode, live.GetProperty("live").GetBoolean(), readyCode, ready.GetProperty("ready").GetBoolean()));
        Assert.Equal("classifier", server.GetProperty("name").GetString());
        Assert.Contains("model_repository", server.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["image:BYTES", "x:FP32"], model.GetProperty("inputs").EnumerateArray().Select(i => $"{i.GetProperty("name").GetString()}:{i.GetProperty("datatype").GetString()}"));
        Assert.True(modelReady.GetProperty("ready").GetBoolean());
    }

    [Fact]
    public async Task RawBytesInputAnswersRawFp32RowsEqualToPredictsAndEchoesTheId()
    {
        byte[][] images = [TextImages.Numbered(9201), TextImages.Render("grpc upside down", upsideDown: true)];

        var (code, answer) = await CallAsync(cluster.GrpcAddress, "ModelInfer",
            InferRequest("g-7", new { name = "image", datatype = "BYTES", shape = new[] { 2 } }, [Raw(images)]));

        Assert.True(code == "OK", answer.ToString());
        Assert.Equal(("g-7", "1"), (answer.GetProperty("id").GetString(), answer.GetProperty("model_version").GetString()));
        var output = answer.GetProperty("outputs")[0];
        Assert.Equal(("FP32", "[2,2]"), (output.GetProperty("datatype").GetString(), output.GetProperty("shape").ToString().Replace(" ", "", StringComparison.Ordinal)));
        var values = Floats(answer);
        for (var i = 0; i < images.Length; i++)
        {
            var expected = await PredictProbabilitiesAsync(images[i]);
            Assert.Equal(expected[0], values[i * 2], 5);
            Assert.Equal(expected[1], values[(i * 2) + 1], 5);
        }
    }

    [Fact]
    public async Task TypedContentsAndTheClassificationExtensionAnswerAsRawDoes()
    {
        var image = TextImages.Numbered(9202);
        var expected = await PredictProbabilitiesAsync(image);
        var top = expected[0] >= expected[1] ? 0 : 1;

        var (code, answer) = await CallAsync(cluster.GrpcAddress, "ModelInfer", InferRequest("t",
            new { name = "image", datatype = "BYTES", shape = new[] { 1 }, contents = new { bytes_contents = new[] { Convert.ToBase64String(image) } } },
            outputs: [new { name = "softmax_0.tmp_0", parameters = new { classification = new { int64_param = 1 } } }]));

        Assert.True(code == "OK", answer.ToString());
        var raw = Convert.FromBase64String(answer.GetProperty("raw_output_contents")[0].GetString()!);
        var text = System.Text.Encoding.UTF8.GetString(raw, 4, BitConverter.ToInt32(raw, 0)).Split(':');
        Assert.Equal(("BYTES", top.ToString(System.Globalization.CultureInfo.InvariantCulture), top == 0 ? "0" : "180"),
            (answer.GetProperty("outputs")[0].GetProperty("datatype").GetString(), text[1], text[2]));
        Assert.Equal(expected[top], float.Parse(text[0], System.Globalization.CultureInfo.InvariantCulture), 5);
    }

    [Fact]
    public async Task TheModelsOwnTensorAsFp32ContentsAnswersAsTheImageDoes()
    {
        var image = TextImages.Render("grpc tensor");
        var definition = Classifier.Grains.Models.ModelRepository.ReadConfig(Path.Combine(Repo.Models, "text-orientation", "config.json"), "text-orientation");
        var tensor = new float[definition.TensorLength];
        Assert.Null(new Classifier.Grains.Inference.ImagePreprocessor(definition, new Classifier.Grains.ImageOptions()).Preprocess(image, tensor));

        var (code, answer) = await CallAsync(cluster.GrpcAddress, "ModelInfer",
            InferRequest("f", new { name = "x", datatype = "FP32", shape = new[] { 1, 3, 48, 192 }, contents = new { fp32_contents = tensor } }));

        Assert.True(code == "OK", answer.ToString());
        var expected = await PredictProbabilitiesAsync(image);
        var values = Floats(answer);
        Assert.Equal(expected[0], values[0], 4);
        Assert.Equal(expected[1], values[1], 4);
    }

    [Fact]
    public async Task ErrorsMapToGrpcCodesWithTheReason()
    {
        var (unknown, unknownDetails) = await CallAsync(cluster.GrpcAddress, "ModelInfer", new { model_name = "no-such-model", inputs = Array.Empty<object>() });
        var (datatype, datatypeDetails) = await CallAsync(cluster.GrpcAddress, "ModelInfer",
            InferRequest("d", new { name = "image", datatype = "FP32", shape = new[] { 1 } }, [Raw(TextImages.Numbered(9203))]));
        var (notImage, notImageDetails) = await CallAsync(cluster.GrpcAddress, "ModelInfer",
            InferRequest("n", new { name = "image", datatype = "BYTES", shape = new[] { 1 } }, [Raw([1, 2, 3, 4, 5, 6, 7, 8])]));
        var (load, loadDetails) = await CallAsync(cluster.GrpcAddress, "RepositoryModelLoad", new { model_name = "no-such-model" });

        Assert.Equal("NOT_FOUND", unknown);
        Assert.Contains("Unknown model", unknownDetails.GetString(), StringComparison.Ordinal);
        Assert.Equal("INVALID_ARGUMENT", datatype);
        Assert.Contains("it must be BYTES", datatypeDetails.GetString(), StringComparison.Ordinal);
        Assert.Equal("INVALID_ARGUMENT", notImage);
        Assert.Contains("not an image", notImageDetails.GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal("INVALID_ARGUMENT", load);
        Assert.Contains("has no folder 'no-such-model'", loadDetails.GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheRepositoryIndexAndALoadOfAServedModelAnswerOverGrpc()
    {
        var (indexCode, index) = await CallAsync(cluster.GrpcAddress, "RepositoryIndex", new { ready = true });
        var (loadCode, _) = await CallAsync(cluster.GrpcAddress, "RepositoryModelLoad", new { model_name = "text-orientation" });

        Assert.Equal("OK", indexCode);
        Assert.Contains(index.GetProperty("models").EnumerateArray(), m => m.GetProperty("name").GetString() == "text-orientation" && m.GetProperty("state").GetString() == "READY");
        Assert.Equal("OK", loadCode);
    }

    [Fact]
    public async Task ApiKeysGuardGrpcAsRestAndHealthStaysOpen()
    {
        var (without, _) = await CallAsync(cluster.SecuredGrpcAddress, "ModelMetadata", new { name = "text-orientation" });
        var (withKey, _) = await CallAsync(cluster.SecuredGrpcAddress, "ModelMetadata", new { name = "text-orientation" }, new() { ["x-api-key"] = ProcessClusterFixture.ApiKey });
        var (bearer, _) = await CallAsync(cluster.SecuredGrpcAddress, "ModelMetadata", new { name = "text-orientation" }, new() { ["authorization"] = $"Bearer {ProcessClusterFixture.ApiKey}" });
        var (live, _) = await CallAsync(cluster.SecuredGrpcAddress, "ServerLive", new { });

        Assert.Equal(("UNAUTHENTICATED", "OK", "OK", "OK"), (without, withKey, bearer, live));
    }

    [Fact]
    public async Task BufCurlReadingTheProjectsProtoGetsAnAnswer()
    {
        var clients = await DeploymentTools.GrpcClientsAsync();
        var (exitCode, stdout, stderr) = await Tool.RunSeparatelyAsync(Path.Combine(clients, "node_modules", ".bin", "buf"),
            ["curl", "--schema", Proto, "--protocol", "grpc", "--http2-prior-knowledge", "-d", """{"name": "text-orientation"}""",
                $"http://{cluster.GrpcAddress}/inference.GRPCInferenceService/ModelMetadata"]);

        Assert.True(exitCode == 0, stderr + stdout);
        Assert.Equal("onnxruntime_onnx", JsonDocument.Parse(stdout).RootElement.GetProperty("platform").GetString());
    }
}

/// <summary>gRPC messages are charged to the gateway's upload budget as they arrive: one the budget cannot hold is refused, and the budget is whole again after.</summary>
public sealed class GrpcUploadBudgetTests : IAsyncLifetime
{
    private readonly ProcessGroup _processes = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private string _grpc = "";
    private string _gateway = "";

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var clusterId = "grpc-budget-" + Guid.NewGuid().ToString("N")[..8];
        var (siloHttp, siloPort, siloGateway, gatewayHttp, grpc) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var silo = _processes.Track(ClusterProcess.StartSilo("budget-silo", siloHttp, siloPort, siloGateway, siloPort, clusterId, Repo.Models));
        var gateway = _processes.Track(ClusterProcess.StartGateway("budget-gateway", gatewayHttp, [siloGateway], clusterId,
            "--Gateway:GrpcPort", $"{grpc}", "--Gateway:MaxImageBytes", "100000", "--Gateway:MaxUploadBytesInFlight", "1048576"));
        (_grpc, _gateway) = ($"127.0.0.1:{grpc}", $"http://127.0.0.1:{gatewayHttp}");
        await silo.WaitUntilOkAsync(_http, $"http://127.0.0.1:{siloHttp}/readyz", TimeSpan.FromSeconds(90));
        await gateway.WaitUntilOkAsync(_http, _gateway + "/readyz", TimeSpan.FromSeconds(90));
    }

    private async Task<string> CallAsync(byte[] element)
    {
        var clients = await DeploymentTools.GrpcClientsAsync();
        var request = JsonSerializer.Serialize(new
        {
            model_name = "text-orientation",
            inputs = new[] { new { name = "image", datatype = "BYTES", shape = new[] { 1 } } },
            raw_input_contents = new[] { Convert.ToBase64String([.. BitConverter.GetBytes((uint)element.Length), .. element]) },
        });
        var (_, stdout, stderr) = await Tool.RunSeparatelyAsync(Tool.Find("node", "nodejs"),
            [Path.Combine(clients, "call.mjs"), Path.Combine(Repo.Root, "Gateway", "Protos", "open_inference.proto"), _grpc, "ModelInfer", "-"], stdin: request);
        return stdout + stderr;
    }

    [Fact]
    public async Task AMessageOverTheUploadBudgetIsRefusedWithResourceExhaustedAndTheBudgetRecovers()
    {
        var tooBig = await CallAsync([.. TextImages.Numbered(9301), .. new byte[600_000]]);
        var fine = await CallAsync(TextImages.Numbered(9302));
        var metrics = await _http.GetStringAsync(_gateway + "/metrics");

        Assert.Contains("RESOURCE_EXHAUSTED", tooBig, StringComparison.Ordinal);
        Assert.Contains("upload memory is full", tooBig, StringComparison.Ordinal);
        Assert.Contains("\"ok\"", fine, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^gateway_upload_bytes_in_flight 0$", metrics);
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();
        _http.Dispose();
    }
}
