using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Classifier.Grains.Interfaces;
using Classifier.ServiceDefaults;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>A certificate authority of the cluster's own and one of a stranger, with one certificate each, as PEM files.</summary>
public sealed class TestCertificates : IDisposable
{
    public TestCertificates()
    {
        Folder = Directory.CreateTempSubdirectory("cluster-tls-").FullName;
        Cluster = Issue("cluster");
        Stranger = Issue("stranger");
    }

    public string Folder { get; }

    public ClusterTlsSettings Cluster { get; }

    public ClusterTlsSettings Stranger { get; }

    /// <summary>A CA and a certificate it signs for both server and client authentication, as a cert-manager Secret holds them.</summary>
    private ClusterTlsSettings Issue(string name)
    {
        var now = DateTimeOffset.UtcNow; // one instant: a leaf may not outlive its CA by the time between two clock reads
        using var caKey = RSA.Create(2048);
        var caRequest = new CertificateRequest($"CN={name} test CA", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(60));

        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name} silo", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        using var certificate = request.Create(ca, now.AddDays(-1), now.AddDays(30), RandomNumberGenerator.GetBytes(8));

        var settings = new ClusterTlsSettings
        {
            Enabled = true,
            CertificatePath = Path.Combine(Folder, $"{name}-tls.crt"),
            KeyPath = Path.Combine(Folder, $"{name}-tls.key"),
            CaPath = Path.Combine(Folder, $"{name}-ca.crt"),
        };
        File.WriteAllText(settings.CertificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(settings.KeyPath, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(settings.CaPath, ca.ExportCertificatePem());
        return settings;
    }

    public static string[] Arguments(ClusterTlsSettings tls) =>
    [
        "--Cluster:Tls:Enabled", "true", "--Cluster:Tls:CertificatePath", tls.CertificatePath,
        "--Cluster:Tls:KeyPath", tls.KeyPath, "--Cluster:Tls:CaPath", tls.CaPath,
    ];

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}

/// <summary>A silo and a gateway that speak Orleans only over mutual TLS with the cluster's certificate.</summary>
public sealed class TlsClusterFixture : IAsyncLifetime
{
    private readonly ProcessGroup _processes = new();

    public TestCertificates Certificates { get; } = new();

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

    public string ClusterId { get; } = "tls-" + Guid.NewGuid().ToString("N")[..8];

    public string GatewayUrl { get; private set; } = "";

    public int SiloGatewayPort { get; private set; }

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var (siloHttp, siloPort, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        SiloGatewayPort = ClusterProcess.FreePort();
        var tls = TestCertificates.Arguments(Certificates.Cluster);
        var silo = _processes.Track(ClusterProcess.StartSilo("tls-silo", siloHttp, siloPort, SiloGatewayPort, siloPort, ClusterId, Repo.Models, tls));
        await silo.WaitUntilOkAsync(Http, $"http://127.0.0.1:{siloHttp}/readyz", TimeSpan.FromSeconds(90));

        // A second silo joins through the first: silo-to-silo traffic (membership, directory, reports) is TLS too.
        var (secondHttp, secondPort, secondGateway) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        var second = _processes.Track(ClusterProcess.StartSilo("tls-silo-2", secondHttp, secondPort, secondGateway, siloPort, ClusterId, Repo.Models, tls));
        var gateway = _processes.Track(ClusterProcess.StartGateway("tls-gateway", gatewayHttp, [SiloGatewayPort, secondGateway], ClusterId, tls));
        GatewayUrl = $"http://127.0.0.1:{gatewayHttp}";
        await second.WaitUntilOkAsync(Http, $"http://127.0.0.1:{secondHttp}/readyz", TimeSpan.FromSeconds(90));
        await gateway.WaitUntilOkAsync(Http, GatewayUrl + "/readyz", TimeSpan.FromSeconds(90));
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();

        Http.Dispose();
        Certificates.Dispose();
    }
}

public sealed class OrleansTlsTests(TlsClusterFixture cluster) : IClassFixture<TlsClusterFixture>
{
    [Fact]
    public async Task PredictionsFlowThroughTheGatewayOverMutualTls()
    {
        using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(TextImages.Render("over TLS"), "image/png"));

        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        Assert.Equal("0", (await response.JsonAsync()).GetProperty("predictions")[0].GetProperty("label").GetString());
    }

    [Fact]
    public async Task TwoSilosFormOneClusterOverTls()
    {
        string[] silos = [];
        for (var attempt = 0; attempt < 40 && silos.Length < 2; attempt++)
        {
            var model = await (await cluster.Http.GetAsync(cluster.GatewayUrl + "/models/text-orientation")).JsonAsync();
            silos = [.. model.GetProperty("versions")[0].GetProperty("silos").EnumerateArray().Select(s => s.GetProperty("silo").GetString()!)];
            await Task.Delay(250);
        }

        Assert.Equal(["tls-silo", "tls-silo-2"], silos.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task AClientWithTheClustersCertificateCanCallAGrain()
    {
        var reply = await CallAsync(cluster.Certificates.Cluster, trustAnyServer: false);

        Assert.Equal("0", reply.Prediction?.Scores[0].Label);
    }

    [Fact]
    public async Task AClientWithoutTlsCannotCallAGrain()
    {
        await Assert.ThrowsAnyAsync<Exception>(() => CallAsync(tls: null, trustAnyServer: true));
    }

    /// <summary>An attacker speaks TLS and accepts any server certificate, but has no certificate of its own.</summary>
    [Fact]
    public async Task AClientSpeakingTlsWithoutACertificateCannotCallAGrain()
    {
        await Assert.ThrowsAnyAsync<Exception>(() => CallAsync(new ClusterTlsSettings { Enabled = true }, trustAnyServer: true));
    }

    /// <summary>An attacker with a certificate from its own CA, accepting any server certificate: only the silo's check stops it.</summary>
    [Fact]
    public async Task AClientWithACertificateFromAnotherAuthorityCannotCallAGrain()
    {
        await Assert.ThrowsAnyAsync<Exception>(() => CallAsync(cluster.Certificates.Stranger, trustAnyServer: true));
    }

    /// <summary>
    /// Connects an Orleans client to the silo's gateway port (giving up after the first failed attempt) and classifies
    /// one image. <paramref name="tls"/> null: plain TCP; without files: TLS with no client certificate.
    /// </summary>
    private async Task<PredictionReply> CallAsync(ClusterTlsSettings? tls, bool trustAnyServer)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleansClient(client =>
        {
            client.UseLocalhostClustering(cluster.SiloGatewayPort, cluster.ClusterId, cluster.ClusterId);
            client.UseConnectionRetryFilter((_, _) => Task.FromResult(false));
            client.Configure<global::Orleans.Configuration.ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
            if (tls is null)
            {
                return;
            }

            client.UseTls(options =>
            {
                if (File.Exists(tls.CertificatePath))
                {
                    var (certificate, authorities) = tls.Load();
                    tls.Configure(options, authorities);
                    options.LocalCertificate = certificate;
                }

                if (trustAnyServer)
                {
                    options.AllowAnyRemoteCertificate();
                }
            });
        });
        using var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await host.StartAsync(timeout.Token);
        try
        {
            var image = TextImages.Render("direct call");
            return await host.Services.GetRequiredService<IClusterClient>()
                .GetGrain<IModelGrain>(ModelGrainKey.Format("text-orientation", "1", ImageHash.Of(image).ShardOf(32)))
                .PredictAsync(new PredictionRequest(image, 0))
                .WaitAsync(timeout.Token);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }
}
