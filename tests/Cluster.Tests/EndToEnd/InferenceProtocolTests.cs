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
}
