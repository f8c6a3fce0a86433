namespace Classifier.Tests.Support;

/// <summary>The real processes a fixture started, stopped together when it is done.</summary>
public sealed class ProcessGroup : IAsyncDisposable
{
    private readonly List<ClusterProcess> _processes = [];

    /// <summary>Keeps <paramref name="process"/> for disposal, and answers it.</summary>
    public ClusterProcess Track(ClusterProcess process)
    {
        lock (_processes)
        {
            _processes.Add(process);
        }

        return process;
    }

    /// <summary>Everything the processes printed, for failure messages.</summary>
    public string Logs()
    {
        lock (_processes)
        {
            return string.Join("\n", _processes.Select(p => $"--- {p.Name} ---\n{p.Output}"));
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }
    }
}
