using Classifier.Tests.Support;

namespace Classifier.Tests.EndToEnd;

/// <summary>
/// One real silo process and one real gateway process on loopback, plus a gateway that points at no
/// silo at all (for 503s). The gateway's image limit is lowered to 1 MiB so 413 is cheap to provoke.
/// </summary>
public sealed class ProcessClusterFixture : IAsyncLifetime
{
    public const long MaxImageBytes = 1024 * 1024;

    private readonly List<ClusterProcess> _processes = [];

    public string ClusterId { get; } = "e2e-" + Guid.NewGuid().ToString("N")[..8];

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

    public string GatewayUrl { get; private set; } = "";

    public string SiloUrl { get; private set; } = "";

    /// <summary>Every silo of the cluster now: silo-a, and any a test added (<see cref="AddSilo"/>).</summary>
    public IReadOnlyList<string> SiloUrls => _siloUrls;

    private readonly List<string> _siloUrls = [];

    /// <summary>Records a silo a test started in this cluster, for tests that sum over every silo.</summary>
    public void AddSilo(string url)
    {
        lock (_siloUrls)
        {
            _siloUrls.Add(url);
        }
    }

    public string OrphanGatewayUrl { get; private set; } = "";

    /// <summary>A gateway with API keys and a separate management port, on the same silo.</summary>
    public string SecuredGatewayUrl { get; private set; } = "";

    /// <summary>The gateway's gRPC (h2c) address, host:port.</summary>
    public string GrpcAddress { get; private set; } = "";

    /// <summary>The secured gateway's gRPC address: API keys required.</summary>
    public string SecuredGrpcAddress { get; private set; } = "";

    public string SecuredManagementUrl { get; private set; } = "";

    public const string ApiKey = "test-key-0123";

    public int PrimarySiloPort { get; private set; }

    /// <summary>
    /// The default model, the optional <c>resnet18</c> embedding model, and <c>broken</c>, whose model.onnx is
    /// not an ONNX file: it must fail alone.
    /// </summary>
    public string ModelRepository { get; } = Directory.CreateTempSubdirectory("e2e-models-").FullName;

    public const string BrokenModel = "broken";

    private void CreateModelRepository()
    {
        foreach (var model in new[] { "text-orientation", BrokenModel })
        {
            Directory.CreateDirectory(Path.Combine(ModelRepository, model, "1"));
            File.Copy(Path.Combine(Repo.Models, "text-orientation", "config.json"), Path.Combine(ModelRepository, model, "config.json"));
        }

        File.Copy(Repo.DefaultModelFile, Path.Combine(ModelRepository, "text-orientation", "1", "model.onnx"));
        File.WriteAllBytes(Path.Combine(ModelRepository, BrokenModel, "1", "model.onnx"), "this is not an ONNX model"u8.ToArray());
        Repo.CreateResnet18Repository(into: ModelRepository);
    }

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        CreateModelRepository();
        var (siloHttp, siloPort, siloGateway, gatewayHttp, orphanHttp) =
            (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        PrimarySiloPort = siloPort;
        SiloUrl = $"http://127.0.0.1:{siloHttp}";
        _siloUrls.Add(SiloUrl);
        GatewayUrl = $"http://127.0.0.1:{gatewayHttp}";
        OrphanGatewayUrl = $"http://127.0.0.1:{orphanHttp}";

        var silo = Track(ClusterProcess.StartSilo("silo-a", siloHttp, siloPort, siloGateway, siloPort, ClusterId, ModelRepository));
        var (grpc, securedGrpc) = (ClusterProcess.FreePort(), ClusterProcess.FreePort());
        GrpcAddress = $"127.0.0.1:{grpc}";
        SecuredGrpcAddress = $"127.0.0.1:{securedGrpc}";
        var gateway = Track(ClusterProcess.StartGateway("gateway", gatewayHttp, [siloGateway], ClusterId, "--Gateway:MaxImageBytes", $"{MaxImageBytes}", "--Gateway:GrpcPort", $"{grpc}"));
        var orphan = Track(ClusterProcess.StartGateway("orphan-gateway", orphanHttp, [ClusterProcess.FreePort()], ClusterId));
        var (securedHttp, securedManagement) = (ClusterProcess.FreePort(), ClusterProcess.FreePort());
        SecuredGatewayUrl = $"http://127.0.0.1:{securedHttp}";
        SecuredManagementUrl = $"http://127.0.0.1:{securedManagement}";
        var secured = Track(ClusterProcess.StartGateway("secured-gateway", securedHttp, [siloGateway], ClusterId,
            "--Auth:ApiKeys:0", "other-key", "--Auth:ApiKeys:1", ApiKey, "--Gateway:ManagementPort", $"{securedManagement}", "--Gateway:GrpcPort", $"{securedGrpc}"));

        await silo.WaitUntilOkAsync(Http, SiloUrl + "/readyz", TimeSpan.FromSeconds(60));
        await gateway.WaitUntilOkAsync(Http, GatewayUrl + "/readyz", TimeSpan.FromSeconds(60));
        await orphan.WaitUntilOkAsync(Http, OrphanGatewayUrl + "/healthz", TimeSpan.FromSeconds(60));
        await secured.WaitUntilOkAsync(Http, SecuredManagementUrl + "/readyz", TimeSpan.FromSeconds(60));
    }

    public ClusterProcess Track(ClusterProcess process)
    {
        lock (_processes)
        {
            _processes.Add(process);
        }

        return process;
    }

    /// <summary>Everything the processes printed, for failure messages.</summary>
    public string Logs() => string.Join("\n", _processes.Select(p => $"--- {p.Name} ---\n{p.Output}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        Http.Dispose();
        Directory.Delete(ModelRepository, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class ProcessClusterCollection : ICollectionFixture<ProcessClusterFixture>
{
    public const string Name = "process cluster";
}
