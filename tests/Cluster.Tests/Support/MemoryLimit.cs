using System.Globalization;

namespace Classifier.Tests.Support;

/// <summary>
/// A memory limit for one process, as Kubernetes gives a container: a cgroup of its own with that limit (v2 or v1,
/// whichever this machine mounts; needs root), so the kernel kills the process if it goes over, and .NET sizes its
/// heap from the limit as it does in a pod. Where no cgroup can be made, <c>DOTNET_GCHeapHardLimit</c> at .NET's
/// own share of it (75 %) stands in, which bounds the managed heap only.
/// </summary>
public sealed class MemoryLimit : IDisposable
{
    private const string V2Root = "/sys/fs/cgroup";
    private const string V1Root = "/sys/fs/cgroup/memory";

    private readonly string? _cgroup;
    private readonly bool _v2;

    private MemoryLimit(long bytes, string? cgroup, bool v2)
    {
        Bytes = bytes;
        _cgroup = cgroup;
        _v2 = v2;
    }

    public long Bytes { get; }

    /// <summary>How the limit is enforced, for test output.</summary>
    public string Mode => _cgroup is null ? "DOTNET_GCHeapHardLimit (no cgroup could be made)" : _v2 ? "cgroup v2 memory.max" : "cgroup v1 memory.limit_in_bytes";

    public bool IsCgroup => _cgroup is not null;

    public static MemoryLimit Create(string name, long bytes)
    {
        var unique = $"classifier-test-{name}-{Environment.ProcessId}-{Guid.NewGuid():N}"[..Math.Min(60, 40 + name.Length)];
        try
        {
            if (File.Exists(Path.Combine(V2Root, "cgroup.controllers")) && File.ReadAllText(Path.Combine(V2Root, "cgroup.controllers")).Contains("memory", StringComparison.Ordinal))
            {
                var dir = Path.Combine(V2Root, unique);
                Directory.CreateDirectory(dir);
                File.WriteAllText(Path.Combine(dir, "memory.max"), bytes.ToString(CultureInfo.InvariantCulture));
                TryWrite(Path.Combine(dir, "memory.swap.max"), "0");
                return CanJoin(dir) ? new MemoryLimit(bytes, dir, v2: true) : Abandon(dir, bytes);
            }

            if (Directory.Exists(V1Root))
            {
                var dir = Path.Combine(V1Root, unique);
                Directory.CreateDirectory(dir);
                File.WriteAllText(Path.Combine(dir, "memory.limit_in_bytes"), bytes.ToString(CultureInfo.InvariantCulture));
                TryWrite(Path.Combine(dir, "memory.memsw.limit_in_bytes"), bytes.ToString(CultureInfo.InvariantCulture)); // no swapping past it
                TryWrite(Path.Combine(dir, "memory.swappiness"), "0");
                return CanJoin(dir) ? new MemoryLimit(bytes, dir, v2: false) : Abandon(dir, bytes);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not root, or a read-only cgroup file system: fall back below.
        }

        return new MemoryLimit(bytes, null, v2: false);
    }

    /// <summary>
    /// Whether a process can be moved into the cgroup (cgroup v2 refuses it where the hierarchy's delegation does not
    /// allow it): a shell joins it and exits, which also leaves the cgroup empty again.
    /// </summary>
    private static bool CanJoin(string cgroup)
    {
        using var probe = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sh", ["-c", $"echo $$ > '{Path.Combine(cgroup, "cgroup.procs")}'"])
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        probe.WaitForExit(10_000);
        return probe.HasExited && probe.ExitCode == 0;
    }

    private static MemoryLimit Abandon(string cgroup, long bytes)
    {
        try
        {
            Directory.Delete(cgroup);
        }
        catch (IOException)
        {
            // Left behind empty; harmless.
        }

        return new MemoryLimit(bytes, null, v2: false);
    }

    /// <summary>Wraps a command so that it runs inside the limit: a shell joins the cgroup, then execs the command (same PID).</summary>
    public (string File, IReadOnlyList<string> Args, IReadOnlyDictionary<string, string> Environment) Wrap(string file, IReadOnlyList<string> args)
    {
        if (_cgroup is null)
        {
            var heap = (long)(Bytes * 0.75);
            return (file, args, new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = heap.ToString("X", CultureInfo.InvariantCulture) });
        }

        var procs = Path.Combine(_cgroup, "cgroup.procs");
        return ("sh", ["-c", $"echo $$ > '{procs}' && exec \"$0\" \"$@\"", file, .. args], new Dictionary<string, string>());
    }

    /// <summary>Most memory the cgroup has held since the last <see cref="ResetPeak"/>, in bytes; null without a cgroup (or a kernel without memory.peak).</summary>
    public long? PeakBytes => _cgroup is null ? null : ReadLong(Path.Combine(_cgroup, _v2 ? "memory.peak" : "memory.max_usage_in_bytes"));

    /// <summary>Times the kernel killed a process of this cgroup for memory.</summary>
    public long OomKills
    {
        get
        {
            if (_cgroup is null)
            {
                return 0;
            }

            var file = Path.Combine(_cgroup, _v2 ? "memory.events" : "memory.oom_control");
            var line = File.Exists(file) ? File.ReadAllLines(file).FirstOrDefault(l => l.StartsWith("oom_kill ", StringComparison.Ordinal)) : null;
            return line is null ? 0 : long.Parse(line["oom_kill ".Length..], CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Starts a new peak measurement where the kernel allows it.</summary>
    public void ResetPeak()
    {
        if (_cgroup is not null)
        {
            TryWrite(Path.Combine(_cgroup, _v2 ? "memory.peak" : "memory.max_usage_in_bytes"), "0");
        }
    }

    private static long? ReadLong(string file)
    {
        try
        {
            return File.Exists(file) && long.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static void TryWrite(string file, string value)
    {
        try
        {
            File.WriteAllText(file, value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Optional knob; not every kernel has it.
        }
    }

    public void Dispose()
    {
        if (_cgroup is null)
        {
            return;
        }

        for (var attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                Directory.Delete(_cgroup); // cgroup directories are removed empty, their control files with them
                return;
            }
            catch (IOException)
            {
                Thread.Sleep(100); // the killed process is still leaving
            }
        }
    }
}
