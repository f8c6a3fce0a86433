using System.Diagnostics;
using Classifier.Tests.Support;

namespace Classifier.Tests.Deployment;

/// <summary>
/// Cluster:KubernetesHosting, which k8s/base/silo.yaml turns on, binds from the environment and refuses to run where Orleans'
/// Kubernetes hosting cannot work. (Off, the default, every other silo test runs with it.)
/// </summary>
public sealed class SiloKubernetesHostingTests
{
    [Fact]
    public async Task KubernetesHostingOutsideAPodStopsTheSiloNamingTheSetting()
    {
        var (code, output) = await RunSiloAsync(new() { ["Cluster__KubernetesHosting"] = "true", ["Cluster__Clustering"] = "redis", ["Cluster__RedisConnectionString"] = "127.0.0.1:1" });

        Assert.True(code == 2, $"exit code {code}\n{output}");
        Assert.Contains("Cluster:KubernetesHosting is true but this process is not in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KubernetesHostingWithoutRedisClusteringStopsTheSiloNamingBothSettings()
    {
        var (code, output) = await RunSiloAsync(new() { ["Cluster__KubernetesHosting"] = "true" });

        Assert.True(code == 2, $"exit code {code}\n{output}");
        Assert.Contains("Cluster:KubernetesHosting needs Cluster:Clustering 'redis'", output, StringComparison.Ordinal);
    }

    /// <summary>Runs a silo with the given environment until it exits (a silo that started instead is killed after 60 s and fails the test).</summary>
    private static async Task<(int ExitCode, string Output)> RunSiloAsync(Dictionary<string, string> environment)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Repo.Root,
        };
        info.ArgumentList.Add(ClusterProcess.DllPath("Silo", "Classifier.Silo"));
        foreach (var (flag, value) in new[] { ("--urls", $"http://127.0.0.1:{ClusterProcess.FreePort()}"), ("--Cluster:SiloPort", $"{ClusterProcess.FreePort()}"), ("--Cluster:GatewayPort", $"{ClusterProcess.FreePort()}"), ("--Models:Repository", Repo.Models) })
        {
            info.ArgumentList.Add(flag);
            info.ArgumentList.Add(value);
        }

        // As outside any cluster, even when the tests themselves run in a CI pod.
        info.Environment.Remove("KUBERNETES_SERVICE_HOST");
        info.Environment.Remove("KUBERNETES_SERVICE_PORT");
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
