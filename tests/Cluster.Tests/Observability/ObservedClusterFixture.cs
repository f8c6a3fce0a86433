using System.Text;
using System.Text.Json;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;

namespace Classifier.Tests.Observability;

/// <summary>
/// Two real silo processes and a gateway, scraped every second by a real Prometheus, after a known
/// mix of traffic: unique images, repeated images, undecodable images (refused by a silo) and
/// requests refused by the gateway itself.
/// </summary>
public sealed class ObservedClusterFixture : IAsyncLifetime
{
    public const int Unique = 12;
    public const int Repeated = 5;
    public const int Undecodable = 3;
    public const int WrongMediaType = 2;
    public const int UnknownModel = 1;

    private readonly List<ClusterProcess> _processes = [];

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

    public PrometheusServer Prometheus { get; private set; } = null!;

    public string GatewayTarget { get; private set; } = "";

    public string[] SiloTargets { get; private set; } = [];

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var clusterId = "obs-" + Guid.NewGuid().ToString("N")[..8];
        var (httpA, portA, gwA) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var (httpB, portB, gwB) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var gatewayHttp = ClusterProcess.FreePort();
        SiloTargets = [$"127.0.0.1:{httpA}", $"127.0.0.1:{httpB}"];
        GatewayTarget = $"127.0.0.1:{gatewayHttp}";

        var siloA = Track(ClusterProcess.StartSilo("obs-silo-a", httpA, portA, gwA, portA, clusterId, Repo.Models));
        await siloA.WaitUntilOkAsync(Http, $"http://{SiloTargets[0]}/readyz", TimeSpan.FromSeconds(60));
        var siloB = Track(ClusterProcess.StartSilo("obs-silo-b", httpB, portB, gwB, portA, clusterId, Repo.Models));
        var gateway = Track(ClusterProcess.StartGateway("obs-gateway", gatewayHttp, [gwA, gwB], clusterId));
        await siloB.WaitUntilOkAsync(Http, $"http://{SiloTargets[1]}/readyz", TimeSpan.FromSeconds(60));
        await gateway.WaitUntilOkAsync(Http, $"http://{GatewayTarget}/readyz", TimeSpan.FromSeconds(60));
        await WaitForBothSilosInTheGatewayViewAsync();

        Prometheus = await PrometheusServer.StartAsync(new Dictionary<string, string[]>
        {
            ["classifier-gateway"] = [GatewayTarget],
            ["classifier-silo"] = SiloTargets,
        });

        // Prometheus must hold a sample of every target from before the traffic, or rate() would see no increase.
        if (await Prometheus.WaitForValueAsync("count(up == 1)", 3, TimeSpan.FromSeconds(30)) != 3)
        {
            throw new TimeoutException("Prometheus did not scrape all three targets:\n" + Logs());
        }

        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await DriveTrafficAsync();
    }

    private async Task WaitForBothSilosInTheGatewayViewAsync()
    {
        for (var i = 0; i < 100; i++)
        {
            var json = JsonDocument.Parse(await Http.GetStringAsync($"http://{GatewayTarget}/models/text-orientation")).RootElement;
            if (json.GetProperty("versions")[0].GetProperty("silos").GetArrayLength() == 2)
            {
                return;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException("the gateway never saw both silos:\n" + Logs());
    }

    private async Task DriveTrafficAsync()
    {
        var predict = $"http://{GatewayTarget}/predict";
        var images = Enumerable.Range(0, Unique).Select(i => TextImages.Numbered(7000 + i)).ToArray();
        foreach (var image in images.Concat(images.Take(Repeated)))
        {
            using var response = await Http.PostAsync(predict, HttpHelpers.Raw(image, "image/png"));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }

        for (var i = 0; i < Undecodable; i++)
        {
            using var response = await Http.PostAsync(predict, HttpHelpers.Raw(Encoding.ASCII.GetBytes($"not an image {i}"), "image/png"));
            Assert.Equal(400, (int)response.StatusCode);
        }

        for (var i = 0; i < WrongMediaType; i++)
        {
            using var response = await Http.PostAsync(predict, new StringContent("hello", Encoding.UTF8, "text/plain"));
            Assert.Equal(415, (int)response.StatusCode);
        }

        using var unknown = await Http.PostAsync(predict + "?model=no-such-model", HttpHelpers.Raw(images[0], "image/png"));
        Assert.Equal(404, (int)unknown.StatusCode);
    }

    private ClusterProcess Track(ClusterProcess process)
    {
        _processes.Add(process);
        return process;
    }

    public string Logs() => string.Join("\n", _processes.Select(p => $"--- {p.Name} ---\n{p.Output}"))
        + (Prometheus is null ? "" : $"\n--- prometheus ---\n{Prometheus.Output}");

    public async ValueTask DisposeAsync()
    {
        if (Prometheus is not null)
        {
            await Prometheus.DisposeAsync();
        }

        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        Http.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class ObservedClusterCollection : ICollectionFixture<ObservedClusterFixture>
{
    public const string Name = "cluster scraped by prometheus";
}
