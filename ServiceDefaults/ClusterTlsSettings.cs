using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;
using Orleans.Connections.Security;

namespace Classifier.ServiceDefaults;

/// <summary>
/// Mutual TLS on the Orleans connections (silo to silo, gateway to silo), section <c>Cluster:Tls</c>. Every
/// side presents a certificate and accepts only peers whose certificate chains to the configured CA, so a
/// program without one cannot call grains even where it can reach the ports. The files are the
/// <c>tls.crt</c>, <c>tls.key</c> and <c>ca.crt</c> of a Kubernetes TLS Secret (cert-manager writes that shape).
/// </summary>
public sealed class ClusterTlsSettings
{
    /// <summary>Off by default: a local cluster on loopback needs none.</summary>
    public bool Enabled { get; set; }

    /// <summary>PEM certificate this process presents (it needs both server and client authentication usages).</summary>
    public string CertificatePath { get; set; } = "/etc/classifier/tls/tls.crt";

    /// <summary>PEM private key of <see cref="CertificatePath"/>.</summary>
    public string KeyPath { get; set; } = "/etc/classifier/tls/tls.key";

    /// <summary>PEM bundle of the CA(s) every peer's certificate must chain to.</summary>
    public string CaPath { get; set; } = "/etc/classifier/tls/ca.crt";

    /// <summary>How long a peer has to finish the handshake.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Loads the certificate and the CA, failing with the setting to fix when a file is missing or unreadable.</summary>
    public (X509Certificate2 Certificate, X509Certificate2Collection Authorities) Load()
    {
        X509Certificate2 certificate;
        var authorities = new X509Certificate2Collection();
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
            authorities.ImportFromPemFile(CaPath);
        }
        catch (Exception e) when (e is IOException or CryptographicException or UnauthorizedAccessException)
        {
            throw new OptionsValidationException(ClusterMembershipSettings.SectionName, GetType(),
                [$"Cluster:Tls:Enabled is true but the certificate could not be loaded ({e.Message}); check Cluster:Tls:CertificatePath, Cluster:Tls:KeyPath and Cluster:Tls:CaPath (PEM files, e.g. a mounted kubernetes.io/tls Secret)."]);
        }

        if (authorities.Count == 0)
        {
            throw new OptionsValidationException(ClusterMembershipSettings.SectionName, GetType(),
                [$"Cluster:Tls:CaPath ({CaPath}) holds no certificate; it must be the PEM CA bundle that signed every silo's and gateway's certificate."]);
        }

        return (certificate, authorities);
    }

    /// <summary>Requires a certificate from every peer, in both directions, and trusts only the configured CA.</summary>
    public void Configure(TlsOptions options, X509Certificate2Collection authorities)
    {
        options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.HandshakeTimeout = HandshakeTimeout;
        options.CheckCertificateRevocation = false;

        // Peers are pods whose names and addresses change: the CA, not the host name, is what is trusted.
        options.RemoteCertificateValidation = (certificate, _, errors) =>
            certificate is not null && (errors & SslPolicyErrors.RemoteCertificateNotAvailable) == 0 && ChainsTo(certificate, authorities);
        options.OnAuthenticateAsClient = (_, client) => client.TargetHost = "classifier-cluster";
    }

    /// <summary>True when <paramref name="certificate"/> chains to one of <paramref name="authorities"/> and is valid now.</summary>
    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2Collection authorities)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}
