using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

namespace Classifier.Tests.Support;

/// <summary>A real Silo or Gateway process, started from the solution's build output, its output kept for diagnostics.</summary>
public sealed class ClusterProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private bool _disposed;

    private ClusterProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int Pid => _process.Id;

    /// <summary>Peak resident memory since start or the last <see cref="ResetPeakRss"/>, in bytes (the kernel's VmHWM).</summary>
    public long PeakRssBytes => StatusKilobytes("VmHWM:") * 1024;

    /// <summary>Resident memory now, in bytes.</summary>
    public long RssBytes => StatusKilobytes("VmRSS:") * 1024;

    /// <summary>Restarts the peak-RSS measurement (Linux: clear_refs 5).</summary>
    public void ResetPeakRss()
    {
        try
        {
            File.WriteAllText($"/proc/{_process.Id}/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The peak then covers the whole life of the process.
        }
    }

    /// <summary>CPU time the process has used, user and system, in seconds.</summary>
    public double CpuSeconds
    {
        get
        {
            var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
            return (long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture)) / 100.0;
        }
    }

    private long StatusKilobytes(string field)
    {
        var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line[field.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>The build configuration of this test assembly, so the processes match what was just built.</summary>
    private static string Configuration => typeof(ClusterProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";

    public static string DllPath(string project, string assembly)
    {
        var path = Path.Combine(Repo.Root, project, "bin", Configuration, "net10.0", assembly + ".dll");
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is missing; build the solution (dotnet build Cluster.sln -c {Configuration}) before the tests.");
    }

    public static ClusterProcess StartSilo(string name, int httpPort, int siloPort, int gatewayPort, int primarySiloPort, string clusterId, string modelRepository, params string[] extra) =>
        StartSilo(name, httpPort, siloPort, gatewayPort, primarySiloPort, clusterId, modelRepository, null, extra);

    /// <param name="limit">The memory the process may use, as a pod's limit; null: unlimited.</param>
    public static ClusterProcess StartSilo(string name, int httpPort, int siloPort, int gatewayPort, int primarySiloPort, string clusterId, string modelRepository, MemoryLimit? limit, params string[] extra) =>
        Start(name, limit, DllPath("Silo", "Classifier.Silo"),
        [
            "--urls", $"http://127.0.0.1:{httpPort}",
            "--Cluster:ClusterId", clusterId, "--Cluster:ServiceId", clusterId,
            "--Cluster:SiloPort", $"{siloPort}", "--Cluster:GatewayPort", $"{gatewayPort}", "--Cluster:PrimarySiloPort", $"{primarySiloPort}",
            "--Cluster:SiloName", name,
            "--Models:Repository", modelRepository, "--Models:Device", "cpu", "--Models:IntraOpThreads", "1",
            "--ClusterStats:ReportInterval", "00:00:00.500",
            .. extra,
        ]);

    public static ClusterProcess StartGateway(string name, int httpPort, int[] siloGatewayPorts, string clusterId, params string[] extra) =>
        StartGateway(name, httpPort, siloGatewayPorts, clusterId, null, extra);

    /// <param name="limit">The memory the process may use, as a pod's limit; null: unlimited.</param>
    public static ClusterProcess StartGateway(string name, int httpPort, int[] siloGatewayPorts, string clusterId, MemoryLimit? limit, params string[] extra) =>
        Start(name, limit, DllPath("Gateway", "Classifier.Gateway"),
        [
            "--urls", $"http://127.0.0.1:{httpPort}",
            "--Cluster:ClusterId", clusterId, "--Cluster:ServiceId", clusterId,
            .. siloGatewayPorts.SelectMany((p, i) => new[] { $"--Cluster:GatewayPorts:{i}", $"{p}" }),
            "--Gateway:RefreshInterval", "00:00:00.500",
            .. extra,
        ]);

    private static ClusterProcess Start(string name, MemoryLimit? limit, string dll, string[] args)
    {
        var (file, arguments, environment) = limit is null
            ? ("dotnet", (IReadOnlyList<string>)[dll, .. args], new Dictionary<string, string>())
            : limit.Wrap("dotnet", [dll, .. args]);
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Repo.Root,
        };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["Logging__LogLevel__Default"] = "Warning";

        // Several processes share two cores in CI; a memory-limited process runs as its pod does (server GC on two cores).
        info.Environment["DOTNET_gcServer"] = limit is null ? "0" : "1";
        if (limit is not null)
        {
            info.Environment["DOTNET_PROCESSOR_COUNT"] = "2";
        }

        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        var process = new Process { StartInfo = info };
        var handle = new ClusterProcess(name, process);
        process.OutputDataReceived += (_, e) => handle.Append(e.Data);
        process.ErrorDataReceived += (_, e) => handle.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return handle;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    /// <summary>Waits until <paramref name="url"/> answers 200, failing with this process's output if it exits or times out.</summary>
    public async Task WaitUntilOkAsync(HttpClient http, string url, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode}:\n{Output}");
            }

            try
            {
                using var response = await http.GetAsync(url);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"{url} was not OK within {timeout}; {Name} output:\n{Output}");
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>A port nothing listens on right now.</summary>
    /// <summary>
    /// A loopback port free now and never handed out before in this test run. The kernel may give a just-released
    /// ephemeral port again at once, so two calls in a row could answer the same port (a CI run's silo once got its
    /// HTTP and silo port equal, and could not bind); every port handed out is remembered and skipped.
    /// </summary>
    public static int FreePort()
    {
        while (true)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            lock (HandedOut)
            {
                if (HandedOut.Add(port))
                {
                    return port;
                }
            }
        }
    }

    private static readonly HashSet<int> HandedOut = [];

    /// <summary>SIGKILL: no shutdown, no goodbye to the cluster, as when a machine dies.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM: the graceful stop Kubernetes asks for before it kills a pod.</summary>
    public void Terminate()
    {
        if (!_process.HasExited)
        {
            using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await KillAsync();
        _process.Dispose();
    }
}
