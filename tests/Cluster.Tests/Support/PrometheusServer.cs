using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Classifier.Tests.Support;

/// <summary>A real Prometheus server on loopback, scraping the given targets every second, with the project's alert rules loaded.</summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;
    private readonly StringBuilder _output = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private PrometheusServer(Process process, string dir, string url)
    {
        _process = process;
        _dir = dir;
        Url = url;
    }

    public string Url { get; }

    /// <summary>Starts Prometheus with one scrape job per entry of <paramref name="jobs"/> (job name to host:port targets).</summary>
    public static async Task<PrometheusServer> StartAsync(IReadOnlyDictionary<string, string[]> jobs)
    {
        var binary = Tool.Find("prometheus", "prometheus");
        var dir = Directory.CreateTempSubdirectory("prometheus-").FullName;
        var rules = Path.Combine(Repo.Root, "observability", "prometheus", "alerts.yml");
        var config = new StringBuilder()
            .AppendLine("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s")
            .AppendLine($"rule_files:\n  - {rules}")
            .AppendLine("scrape_configs:");
        foreach (var (job, targets) in jobs)
        {
            config.AppendLine($"  - job_name: {job}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{string.Join(", ", targets.Select(t => $"'{t}'"))}]");
        }

        var configFile = Path.Combine(dir, "prometheus.yml");
        await File.WriteAllTextAsync(configFile, config.ToString());
        var port = ClusterProcess.FreePort();
        var info = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { $"--config.file={configFile}", $"--storage.tsdb.path={Path.Combine(dir, "data")}", $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn" })
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info)!;
        var server = new PrometheusServer(process, dir, $"http://127.0.0.1:{port}");
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await server.WaitReadyAsync();
        return server;
    }

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

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private async Task WaitReadyAsync()
    {
        for (var i = 0; i < 150; i++)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"prometheus exited with {_process.ExitCode}:\n{Output}");
            }

            try
            {
                using var response = await _http.GetAsync(Url + "/-/ready");
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

        throw new TimeoutException("prometheus did not become ready:\n" + Output);
    }

    /// <summary>Evaluates an instant query; fails the test on a query error, answers the result vector.</summary>
    public async Task<IReadOnlyList<Sample>> QueryAsync(string promql)
    {
        var body = await _http.GetStringAsync($"{Url}/api/v1/query?query={Uri.EscapeDataString(promql)}");
        using var json = JsonDocument.Parse(body);
        var root = json.RootElement;
        Assert.True(root.GetProperty("status").GetString() == "success", $"query failed: {promql}\n{body}");
        var data = root.GetProperty("data");
        if (data.GetProperty("resultType").GetString() == "scalar")
        {
            return [new Sample(new Dictionary<string, string>(), ParseValue(data.GetProperty("result")[1]))];
        }

        return data.GetProperty("result").EnumerateArray()
            .Select(r => new Sample(
                r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
                ParseValue(r.GetProperty("value")[1])))
            .ToList();
    }

    /// <summary>The single value of a query that must return exactly one series.</summary>
    public async Task<double> ScalarAsync(string promql)
    {
        var result = await QueryAsync(promql);
        Assert.True(result.Count == 1, $"expected one series from {promql}, got {result.Count}");
        return result[0].Value;
    }

    /// <summary>Polls until <paramref name="promql"/> returns one series equal to <paramref name="expected"/>; answers the last value seen.</summary>
    public async Task<double> WaitForValueAsync(string promql, double expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        double last = double.NaN;
        while (DateTime.UtcNow < deadline)
        {
            var result = await QueryAsync(promql);
            if (result.Count == 1)
            {
                last = result[0].Value;
                if (Math.Abs(last - expected) < 1e-9)
                {
                    return last;
                }
            }

            await Task.Delay(250);
        }

        return last;
    }

    /// <summary>The rule groups Prometheus loaded, as its API reports them.</summary>
    public async Task<JsonElement> RulesAsync()
    {
        var body = await _http.GetStringAsync(Url + "/api/v1/rules");
        return JsonDocument.Parse(body).RootElement.GetProperty("data").Clone();
    }

    private static double ParseValue(JsonElement value) => value.GetString() switch
    {
        "NaN" => double.NaN,
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        var s => double.Parse(s!, CultureInfo.InvariantCulture),
    };

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        _http.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>One series of a query result.</summary>
public sealed record Sample(IReadOnlyDictionary<string, string> Labels, double Value);
