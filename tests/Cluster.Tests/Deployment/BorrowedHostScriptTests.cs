using System.Security.Cryptography;
using Classifier.Tests.Support;

namespace Classifier.Tests.Deployment;

/// <summary>
/// The scripts prepared for a borrowed multi-core or GPU host (issue 18), checked here where they can be: a host
/// too small for scale-check is told so before anything is built or started, and a bundle carried in pieces is
/// checked part by part before it is unpacked, naming what is missing or damaged.
/// </summary>
public sealed class BorrowedHostScriptTests
{
    [Fact]
    public async Task ScaleCheckRefusesAHostWithoutACoreForEverySilo()
    {
        // 64 cores per silo fits no host that runs these tests: refused either for having under 8 cores or for the sum.
        var (exitCode, stdout, stderr) = await Tool.RunSeparatelyAsync("env", ["SILO_CORES=64", "OUT=" + Directory.CreateTempSubdirectory("scale-").FullName, "bash", "scripts/scale-check.sh"]);

        Assert.Equal(2, exitCode);
        Assert.Contains("scale-check: ", stderr);
        Assert.Contains("cores", stderr);
        Assert.DoesNotContain("Build succeeded", stdout + stderr); // refused before building or starting anything
    }

    [Fact]
    public async Task ColdStartRefusesToPinMoreCoresThanTheHostHas()
    {
        // device-run.sh cold pins each process to cores of its own (PIN=2); 64 each fits no host that runs these tests.
        var (exitCode, stdout, stderr) = await Tool.RunSeparatelyAsync("env", ["PIN=64", "bash", "scripts/cold-start.sh"]);

        Assert.Equal(2, exitCode);
        Assert.Contains("cold-start: PIN=64 needs 192 cores and taskset; this host has ", stderr);
        Assert.DoesNotContain("Build succeeded", stdout + stderr);
    }

    [Fact]
    public async Task ABundleMissingAPartIsRefusedNamingThePart()
    {
        var root = Directory.CreateTempSubdirectory("bundle-").FullName;
        var parts = Path.Combine(root, ".gpu", "cpu");
        Directory.CreateDirectory(parts);
        byte[] first = [1, 2, 3], second = [4, 5, 6];
        await File.WriteAllBytesAsync(Path.Combine(parts, "part-00"), first, TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(Path.Combine(parts, "SHA256SUMS"),
            $"{Convert.ToHexStringLower(SHA256.HashData(first))}  part-00\n{Convert.ToHexStringLower(SHA256.HashData(second))}  part-01\n", TestContext.Current.CancellationToken);

        var missing = await UnpackAsync(root);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("part-01", missing.Output);
        Assert.Contains(".gpu/cpu is incomplete or damaged", missing.Output);

        // A damaged part is refused too, not handed to zstd.
        await File.WriteAllBytesAsync(Path.Combine(parts, "part-01"), [4, 5, 7], TestContext.Current.CancellationToken);
        var damaged = await UnpackAsync(root);
        Assert.Equal(1, damaged.ExitCode);
        Assert.Contains("part-01: FAILED", damaged.Output);
    }

    private static Task<(int ExitCode, string Output)> UnpackAsync(string root) =>
        Tool.RunAsync("env", ["USE_BUNDLE=1", "BUNDLE_DIR=" + Path.Combine(root, "unpacked"), "bash", "-c", "source scripts/lib/bundle.sh && use_bundle_or_build \"$0\"", root]);
}
