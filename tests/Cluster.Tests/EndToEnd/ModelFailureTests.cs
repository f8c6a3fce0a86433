using System.Text.RegularExpressions;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.EndToEnd;

/// <summary>A model whose file does not load fails alone: the silo and the other models keep serving.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class ModelFailureTests(ProcessClusterFixture cluster)
{
    private const string Broken = ProcessClusterFixture.BrokenModel;

    [Fact]
    public async Task ModelThatFailsToLoadIsInTheErrorStateWhileTheOthersServe()
    {
        var metrics = await cluster.Http.GetStringAsync(cluster.SiloUrl + "/metrics");
        using var good = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(TextImages.Render("still serving"), "image/png"));

        Assert.Contains($"model_state{{model=\"{Broken}\",version=\"1\"}} 2", metrics, StringComparison.Ordinal);
        Assert.Contains("model_state{model=\"text-orientation\",version=\"1\"} 1", metrics, StringComparison.Ordinal);
        Assert.DoesNotMatch(new Regex($@"model_execution_provider\{{model=""{Broken}"""), metrics);
        Assert.True(good.IsSuccessStatusCode, await good.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RequestsForTheFailedModelAnswer503WithTheReason()
    {
        using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + $"/predict?model={Broken}", Raw(TextImages.Render("broken model"), "image/png"));

        await response.AssertProblemAsync(503, $"Model '{Broken}' is not loaded on any silo");
    }

    [Fact]
    public async Task ReadinessStaysReadyAndListsTheFailedModel()
    {
        using var response = await cluster.Http.GetAsync(cluster.GatewayUrl + "/readyz");

        Assert.Equal(200, (int)response.StatusCode);
        var body = await response.JsonAsync();
        var unavailable = Assert.Single(body.GetProperty("unavailableModels").EnumerateArray());
        Assert.Equal(Broken, unavailable.GetProperty("model").GetString());
        Assert.Equal("error", unavailable.GetProperty("state").GetString());
        Assert.False(string.IsNullOrWhiteSpace(unavailable.GetProperty("error").GetString()));
    }

    [Fact]
    public async Task ModelsEndpointShowsTheFailureReasonPerSilo()
    {
        var model = await (await cluster.Http.GetAsync(cluster.GatewayUrl + $"/models/{Broken}")).JsonAsync();

        Assert.Equal("error", model.GetProperty("versions")[0].GetProperty("state").GetString());
        Assert.Contains(model.GetProperty("versions")[0].GetProperty("silos").EnumerateArray(),
            s => s.GetProperty("state").GetString() == "error" && !string.IsNullOrEmpty(s.GetProperty("error").GetString()));
    }

    /// <summary>The silo's file paths and ONNX Runtime's own text stay in the silo's log: every answer that explains the failure says what failed, not where.</summary>
    [Fact]
    public async Task AnswersAboutTheFailedModelCarryNoPathOrRuntimeText()
    {
        using var predict = await cluster.Http.PostAsync(cluster.GatewayUrl + $"/predict?model={Broken}", Raw(TextImages.Render("broken model"), "image/png"));
        var answers = new[]
        {
            await predict.Content.ReadAsStringAsync(),
            await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/readyz"),
            await cluster.Http.GetStringAsync(cluster.GatewayUrl + $"/models/{Broken}"),
            await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/models"),
        };

        foreach (var answer in answers)
        {
            Assert.DoesNotContain(cluster.ModelRepository, answer, StringComparison.Ordinal);
            Assert.DoesNotContain("model.onnx failed", answer, StringComparison.Ordinal); // ONNX Runtime's "Load model from ... failed"
            Assert.DoesNotContain("/tmp/", answer, StringComparison.Ordinal);
            Assert.DoesNotContain("onnxruntime", answer, StringComparison.Ordinal);
        }

        Assert.Contains("could not load model.onnx", answers[1], StringComparison.Ordinal);
    }
}
