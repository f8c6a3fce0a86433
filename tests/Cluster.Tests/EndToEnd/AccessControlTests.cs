using System.Net.Http.Headers;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.EndToEnd;

/// <summary>API keys, the management port, and model names that could name files.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class AccessControlTests(ProcessClusterFixture cluster)
{
    private async Task<HttpResponseMessage> PredictAsync(string baseUrl, Action<HttpRequestHeaders>? headers = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, baseUrl + "/predict") { Content = Raw(TextImages.Render("access"), "image/png") };
        headers?.Invoke(request.Headers);
        return await cluster.Http.SendAsync(request);
    }

    [Fact]
    public async Task PredictionWithoutAKeyAnswers401WithAChallenge()
    {
        using var response = await PredictAsync(cluster.SecuredGatewayUrl);

        await response.AssertProblemAsync(401, "X-Api-Key");
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
    }

    [Fact]
    public async Task PredictionWithAWrongKeyAnswers401()
    {
        using var response = await PredictAsync(cluster.SecuredGatewayUrl, h => h.Add("X-Api-Key", ProcessClusterFixture.ApiKey + "x"));

        await response.AssertProblemAsync(401, "needs a key");
    }

    [Fact]
    public async Task AnyConfiguredKeyIsAcceptedAsHeaderOrBearerToken()
    {
        using var header = await PredictAsync(cluster.SecuredGatewayUrl, h => h.Add("X-Api-Key", ProcessClusterFixture.ApiKey));
        using var bearer = await PredictAsync(cluster.SecuredGatewayUrl, h => h.Authorization = new AuthenticationHeaderValue("Bearer", "other-key"));

        Assert.True(header.IsSuccessStatusCode, await header.Content.ReadAsStringAsync());
        Assert.True(bearer.IsSuccessStatusCode, await bearer.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ModelListNeedsAKeyToo()
    {
        using var response = await cluster.Http.GetAsync(cluster.SecuredGatewayUrl + "/models");

        await response.AssertProblemAsync(401, "X-Api-Key");
    }

    [Theory]
    [InlineData("/metrics")]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    public async Task MetricsAndProbesAreServedOnlyOnTheManagementPort(string path)
    {
        using var onPublic = await cluster.Http.GetAsync(cluster.SecuredGatewayUrl + path);
        using var onManagement = await cluster.Http.GetAsync(cluster.SecuredManagementUrl + path);

        Assert.Equal(404, (int)onPublic.StatusCode);
        Assert.Equal(200, (int)onManagement.StatusCode); // probes need no key
    }

    /// <summary>Routing tolerates a trailing slash, a dot segment, case and doubled slashes; none of them may reach a probe or the metrics on the public port.</summary>
    [Theory]
    [InlineData("/metrics/")]
    [InlineData("/metrics/.")]
    [InlineData("/METRICS")]
    [InlineData("//metrics")]
    [InlineData("/metrics?x=1")]
    [InlineData("/readyz/")]
    [InlineData("/healthz/")]
    [InlineData("/HealthZ")]
    [InlineData("/./readyz")]
    public async Task NoSpellingOfAManagementPathReachesItOnThePublicPort(string path)
    {
        var socket = await RawGetAsync(new Uri(cluster.SecuredGatewayUrl).Port, path);

        Assert.StartsWith("HTTP/1.1 404", socket, StringComparison.Ordinal);
        Assert.DoesNotContain("process_cpu_seconds_total", socket, StringComparison.Ordinal);
        Assert.DoesNotContain("\"status\":\"ready\"", socket, StringComparison.Ordinal);
        Assert.DoesNotContain("\"status\":\"live\"", socket, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/predict/")]
    [InlineData("/PREDICT")]
    [InlineData("/models/")]
    public async Task NoSpellingOfAnApiPathReachesItOnTheManagementPort(string path)
    {
        using var response = await cluster.Http.PostAsync(cluster.SecuredManagementUrl + path, Raw(TextImages.Render("spelling"), "image/png"));
        using var get = await cluster.Http.GetAsync(cluster.SecuredManagementUrl + path);

        Assert.Equal(404, (int)response.StatusCode);
        Assert.Equal(404, (int)get.StatusCode);
    }

    /// <summary>Sends the request line exactly as given (HttpClient would normalise the path) and answers the raw response.</summary>
    private static async Task<string> RawGetAsync(int port, string path)
    {
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, port);
        await using var stream = client.GetStream();
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync();
    }

    [Fact]
    public async Task TheApiIsNotServedOnTheManagementPort()
    {
        using var response = await PredictAsync(cluster.SecuredManagementUrl, h => h.Add("X-Api-Key", ProcessClusterFixture.ApiKey));

        Assert.Equal(404, (int)response.StatusCode);
    }

    [Fact]
    public async Task AGatewayWithoutKeysNeedsNone()
    {
        using var response = await PredictAsync(cluster.GatewayUrl);

        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("..%2F..%2Fmodels")]
    [InlineData("/etc")]
    [InlineData("Text-Orientation")]
    [InlineData("a b")]
    public async Task ModelNamesThatCouldReachOtherFilesAreRejected(string model)
    {
        using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict?model=" + model, Raw(TextImages.Render("path"), "image/png"));

        await response.AssertProblemAsync(400, "must be a model name");
    }
}
