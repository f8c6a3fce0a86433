using System.Net;
using System.Text;
using System.Text.Json;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;

namespace Classifier.Tests.Reliability;

/// <summary><c>Models:ControlMode none</c>: the silo serves its folder and the repository API's changes are refused, saying why.</summary>
public sealed class ControlModeTests : IAsyncLifetime
{
    private readonly ProcessGroup _processes = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private string _gateway = "";

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var clusterId = "mode-" + Guid.NewGuid().ToString("N")[..8];
        var (siloHttp, siloPort, siloGateway, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var silo = _processes.Track(ClusterProcess.StartSilo("fixed-silo", siloHttp, siloPort, siloGateway, siloPort, clusterId, Repo.Models, "--Models:ControlMode", "none"));
        var gateway = _processes.Track(ClusterProcess.StartGateway("gateway", gatewayHttp, [siloGateway], clusterId));
        _gateway = $"http://127.0.0.1:{gatewayHttp}";
        await silo.WaitUntilOkAsync(_http, $"http://127.0.0.1:{siloHttp}/readyz", TimeSpan.FromSeconds(90));
        await gateway.WaitUntilOkAsync(_http, _gateway + "/readyz", TimeSpan.FromSeconds(90));
    }

    [Theory]
    [InlineData("load")]
    [InlineData("unload")]
    public async Task RepositoryChangesAreRefusedNamingTheSettingAndTheModelKeepsServing(string operation)
    {
        using var response = await _http.PostAsync($"{_gateway}/v2/repository/models/text-orientation/{operation}", new StringContent("", Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("fixed-silo has Models:ControlMode none", error, StringComparison.Ordinal);
        using var predicted = await _http.PostAsync(_gateway + "/predict", HttpHelpers.Raw(TextImages.Numbered(7), "image/png"));
        Assert.Equal(HttpStatusCode.OK, predicted.StatusCode);
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();
        _http.Dispose();
    }
}
