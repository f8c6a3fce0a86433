using Classifier.LoadGenerator;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.EndToEnd;

/// <summary>
/// <c>Metrics:Enabled</c> switched in a running silo and gateway through their environment's settings files,
/// as <c>scripts/metrics-overhead.sh</c> does to measure recording on and off in the same processes.
/// Its own cluster: switching recording off in the shared one would break other tests' metric assertions.
/// </summary>
public sealed class LiveMetricsSwitchTests
{
    [Fact]
    public async Task MetricsEnabledFollowsTheSettingsFilesOfARunningSiloAndGateway()
    {
        Repo.RequireDefaultModel();
        var environment = "metrics-switch-" + Guid.NewGuid().ToString("N")[..8];
        string[] files =
        [
            SettingsFile(ClusterProcess.DllPath("Silo", "Classifier.Silo"), environment),
            SettingsFile(ClusterProcess.DllPath("Gateway", "Classifier.Gateway"), environment),
        ];
        var repository = Directory.CreateTempSubdirectory("switch-models-").FullName;
        try
        {
            foreach (var file in files)
            {
                await File.WriteAllTextAsync(file, """{"Metrics": {"Enabled": false}}""", TestContext.Current.CancellationToken);
            }

            Directory.CreateDirectory(Path.Combine(repository, "text-orientation", "1"));
            File.Copy(Path.Combine(Repo.Models, "text-orientation", "config.json"), Path.Combine(repository, "text-orientation", "config.json"));
            File.Copy(Repo.DefaultModelFile, Path.Combine(repository, "text-orientation", "1", "model.onnx"));
            var (siloHttp, siloPort, siloGateway, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
            var clusterId = "switch-" + Guid.NewGuid().ToString("N")[..6];
            await using var silo = ClusterProcess.StartSilo("silo", siloHttp, siloPort, siloGateway, siloPort, clusterId, repository, "--environment", environment);
            await using var gateway = ClusterProcess.StartGateway("gateway", gatewayHttp, [siloGateway], clusterId, "--environment", environment);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var (siloUrl, gatewayUrl) = ($"http://127.0.0.1:{siloHttp}", $"http://127.0.0.1:{gatewayHttp}");
            await silo.WaitUntilOkAsync(http, siloUrl + "/readyz", TimeSpan.FromSeconds(60));
            await gateway.WaitUntilOkAsync(http, gatewayUrl + "/readyz", TimeSpan.FromSeconds(60));

            async Task<(double Gateway, double Silo)> PredictAndCountAsync(int image)
            {
                using var response = await http.PostAsync(gatewayUrl + "/predict", Raw(TextImages.Numbered(image), "image/png"));
                Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
                return (LiveSwitch.Sum(await http.GetStringAsync(gatewayUrl + "/metrics"), "http_requests_total"),
                        LiveSwitch.Sum(await http.GetStringAsync(siloUrl + "/metrics"), "predictions_total"));
            }

            var startedOff = await PredictAndCountAsync(1);
            Assert.Equal((0, 0), startedOff);

            var live = new LiveSwitch(http, gatewayUrl, files, [gatewayUrl + "/metrics", siloUrl + "/metrics"]);
            await live.SetAsync(true);
            var on1 = await PredictAndCountAsync(2);
            var on2 = await PredictAndCountAsync(3);
            Assert.Equal(1, on2.Silo - on1.Silo);
            Assert.True(on2.Gateway - on1.Gateway >= 2, $"the prediction and the /metrics read should both count at the gateway: {on1} then {on2}");

            await live.SetAsync(false);
            var off1 = await PredictAndCountAsync(4);
            var off2 = await PredictAndCountAsync(5);
            Assert.Equal(off1, off2);

            // A slip in a file while running: logged, the switch stays as it was, nothing stops.
            foreach (var file in files)
            {
                await File.WriteAllTextAsync(file, """{"Metrics": {"Enabled": "maybe"}}""", TestContext.Current.CancellationToken);
            }

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (DateTime.UtcNow < deadline && !new[] { silo, gateway }.All(p => p.Output.Contains("Metrics:Enabled was not changed (still False)", StringComparison.Ordinal)))
            {
                await Task.Delay(200, TestContext.Current.CancellationToken);
            }

            // The JSON console log escapes quotes, so the binder's reason is matched up to its first one.
            Assert.All(new[] { silo, gateway }, p => Assert.Contains("Metrics:Enabled was not changed (still False): Failed to convert configuration value", p.Output, StringComparison.Ordinal));
            Assert.Equal(off2, await PredictAndCountAsync(6));
            Assert.False(silo.HasExited || gateway.HasExited, silo.Output + gateway.Output);
        }
        finally
        {
            foreach (var file in files)
            {
                File.Delete(file);
            }

            Directory.Delete(repository, recursive: true);
        }
    }

    private static string SettingsFile(string dll, string environment) => Path.Combine(Path.GetDirectoryName(dll)!, $"appsettings.{environment}.json");

    [Fact]
    public async Task AMistypedMetricsEnabledStopsStartUpNamingTheSetting()
    {
        await using var gateway = ClusterProcess.StartGateway("gateway-bad-setting", ClusterProcess.FreePort(), [ClusterProcess.FreePort()], "bad-setting", "--Metrics:Enabled", "maybe");

        var code = await gateway.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(2, code);
        Assert.Contains("error: invalid configuration: Failed to convert configuration value 'maybe' at 'Metrics:Enabled' to type 'System.Boolean'.", gateway.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", gateway.Output, StringComparison.Ordinal); // no stack trace
    }
}
