using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Classifier.Tests.Support;

namespace Classifier.Tests.Reliability;

/// <summary>
/// One silo and one gateway with the memory the manifests give them (1 GiB and 512 MiB, as cgroup limits where
/// this machine allows, server GC on two cores as in their pods) and their default settings, except a body
/// deadline short enough to test. Every attack is measured: answer, time, peak memory, CPU left busy after.
/// </summary>
public sealed class LimitedClusterFixture : IAsyncLifetime
{
    public const long SiloLimitBytes = 1L << 30;
    public const long GatewayLimitBytes = 512L << 20;
    public static readonly TimeSpan BodyTimeout = TimeSpan.FromSeconds(10);

    private readonly List<string> _rows = [];
    private readonly Dictionary<string, int> _logSeen = [];

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(120) };

    public MemoryLimit SiloMemory { get; } = MemoryLimit.Create("silo", SiloLimitBytes);

    public MemoryLimit GatewayMemory { get; } = MemoryLimit.Create("gateway", GatewayLimitBytes);

    public ClusterProcess Silo { get; private set; } = null!;

    public ClusterProcess Gateway { get; private set; } = null!;

    public string GatewayUrl { get; private set; } = "";

    public string SiloUrl { get; private set; } = "";

    public string ClusterId { get; } = "limited-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>The silo's Orleans gateway port: what a program that is not the gateway could dial.</summary>
    public int SiloGatewayPort { get; private set; }

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var (siloHttp, siloPort, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        SiloGatewayPort = ClusterProcess.FreePort();
        Silo = ClusterProcess.StartSilo("limited-silo", siloHttp, siloPort, SiloGatewayPort, siloPort, ClusterId, Repo.Models, SiloMemory);
        Gateway = ClusterProcess.StartGateway("limited-gateway", gatewayHttp, [SiloGatewayPort], ClusterId, GatewayMemory,
            "--Gateway:BodyTimeout", BodyTimeout.ToString());
        (SiloUrl, GatewayUrl) = ($"http://127.0.0.1:{siloHttp}", $"http://127.0.0.1:{gatewayHttp}");
        await Silo.WaitUntilOkAsync(Http, SiloUrl + "/readyz", TimeSpan.FromSeconds(90));
        await Gateway.WaitUntilOkAsync(Http, GatewayUrl + "/readyz", TimeSpan.FromSeconds(90));
    }

    /// <summary>Fails with both processes' output when either died (an OOM kill shows in the cgroup's count).</summary>
    public void AssertBothAlive(string after)
    {
        var oom = $"OOM kills: silo {SiloMemory.OomKills}, gateway {GatewayMemory.OomKills}";
        Assert.False(Silo.HasExited, $"the silo exited after {after} ({oom}):\n{Silo.Output}");
        Assert.False(Gateway.HasExited, $"the gateway exited after {after} ({oom}):\n{Gateway.Output}");
        Assert.Equal(0, SiloMemory.OomKills);
        Assert.Equal(0, GatewayMemory.OomKills);
    }

    /// <summary>A counter or gauge from the silo's /metrics, summed over the series that match <paramref name="selector"/>.</summary>
    public async Task<double> SiloMetricAsync(string name, string selector = "")
    {
        var text = await Http.GetStringAsync(SiloUrl + "/metrics");
        return Regex.Matches(text, $@"^{Regex.Escape(name)}(\{{[^}}]*\}})? (\S+)$", RegexOptions.Multiline)
            .Where(m => m.Groups[1].Value.Contains(selector, StringComparison.Ordinal))
            .Sum(m => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Runs one attack and records what it cost: its answer (as <paramref name="attack"/> describes it), time,
    /// the peak memory of both processes during it, and how busy the silo stays in the two seconds after.
    /// </summary>
    public async Task<(string Answer, TimeSpan Elapsed, double SiloCoresAfter, long SiloPeakBytes, long GatewayPeakBytes)> MeasureAsync(
        string name, Func<Task<string>> attack, ITestOutputHelper output)
    {
        // The silo's own leftovers first (tiered compilation of what start-up or the previous test ran, in the
        // background): without this, the first attack after start-up was once charged 0.55 cores of compiling.
        await WaitUntilSiloQuietAsync();
        Silo.ResetPeakRss();
        Gateway.ResetPeakRss();
        SiloMemory.ResetPeak();
        GatewayMemory.ResetPeak();
        var (siloBefore, gatewayBefore) = (Silo.RssBytes, Gateway.RssBytes);
        var clock = Stopwatch.StartNew();
        var answer = await attack();
        var elapsed = clock.Elapsed;
        var (siloPeak, gatewayPeak) = (Silo.PeakRssBytes, Gateway.PeakRssBytes);
        var cpu = Silo.CpuSeconds;
        await Task.Delay(TimeSpan.FromSeconds(2));
        var coresAfter = (Silo.CpuSeconds - cpu) / 2;
        var row = string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {answer} | {elapsed.TotalSeconds:F2} s | {siloBefore >> 20} -> {siloPeak >> 20} MiB (cgroup {Mib(SiloMemory.PeakBytes)}) | {gatewayBefore >> 20} -> {gatewayPeak >> 20} MiB (cgroup {Mib(GatewayMemory.PeakBytes)}) | {coresAfter:F2} |");
        output.WriteLine(row);
        lock (_rows)
        {
            _rows.Add(row);
        }

        // What the processes logged meanwhile (warnings and errors), for whoever reads a failure.
        foreach (var process in new[] { Silo, Gateway })
        {
            var log = process.Output;
            var seen = _logSeen.GetValueOrDefault(process.Name);
            if (log.Length > seen)
            {
                output.WriteLine($"--- {process.Name} logged ---\n{log[seen..Math.Min(log.Length, seen + 20_000)]}");
                _logSeen[process.Name] = log.Length;
            }
        }

        return (answer, elapsed, coresAfter, siloPeak, gatewayPeak);
    }

    /// <summary>Waits (at most 15 s) until the silo spends under a tenth of a core over half a second.</summary>
    private async Task WaitUntilSiloQuietAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(15))
        {
            var cpu = Silo.CpuSeconds;
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            if ((Silo.CpuSeconds - cpu) / 0.5 < 0.1)
            {
                return;
            }
        }
    }

    private static string Mib(long? bytes) => bytes is { } b ? $"{b >> 20} MiB" : "n/a";

    /// <summary>Counts statuses as "200 x12, 503 x3".</summary>
    public static string Describe(IEnumerable<int> statuses) =>
        string.Join(", ", statuses.GroupBy(s => s).OrderBy(g => g.Key).Select(g => $"{g.Key} x{g.Count()}"));

    public async ValueTask DisposeAsync()
    {
        var report = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"Silo limit {SiloLimitBytes >> 20} MiB ({SiloMemory.Mode}), gateway limit {GatewayLimitBytes >> 20} MiB ({GatewayMemory.Mode}); {Environment.ProcessorCount} cores; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.")
            .AppendLine()
            .AppendLine("| attack | answer | time | silo RSS (peak) | gateway RSS (peak) | silo cores busy in the 2 s after |")
            .AppendLine("|---|---|---|---|---|---|");
        foreach (var row in _rows)
        {
            report.AppendLine(row);
        }

        var folder = Path.Combine(Repo.Root, ".run", "security");
        Directory.CreateDirectory(folder);
        await File.WriteAllTextAsync(Path.Combine(folder, "attacks.md"), report.ToString());

        // Both processes' logs beside the table, so a failed attack in CI can be read afterwards.
        await File.WriteAllTextAsync(Path.Combine(folder, "limited-silo.log"), Silo.Output);
        await File.WriteAllTextAsync(Path.Combine(folder, "limited-gateway.log"), Gateway.Output);

        await Silo.DisposeAsync();
        await Gateway.DisposeAsync();
        SiloMemory.Dispose();
        GatewayMemory.Dispose();
        Http.Dispose();
    }
}

/// <summary>Run alone, after the others: floods of large uploads would starve the timing of every other test on two cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LimitedClusterCollection : ICollectionFixture<LimitedClusterFixture>
{
    public const string Name = "memory-limited cluster";
}
