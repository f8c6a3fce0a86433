using System.Diagnostics;

namespace Classifier.Tests.Support;

/// <summary>Runs a command-line tool that users of the project have too (promtool, prometheus).</summary>
public static class Tool
{
    /// <summary>The full path of <paramref name="name"/> on PATH, or a failure that says how to install it.</summary>
    public static string Find(string name, string debianPackage)
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
        return path ?? throw new InvalidOperationException($"{name} is not on PATH; install Debian's {debianPackage} package (.ci/run does).");
    }

    /// <summary>Runs the tool to completion and answers its exit code and combined output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, IEnumerable<string> args, string? stdin = null, string? workingDirectory = null)
    {
        var (exitCode, stdout, stderr) = await RunSeparatelyAsync(file, args, stdin, workingDirectory);
        return (exitCode, stdout + stderr);
    }

    /// <summary>Runs the tool to completion and answers its exit code, standard output and standard error apart.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunSeparatelyAsync(string file, IEnumerable<string> args, string? stdin = null, string? workingDirectory = null, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Repo.Root,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(limit.Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
