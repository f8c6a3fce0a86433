using System.Security.Cryptography;
using System.Text;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Classifier.Grains.Inference;

/// <summary>
/// <c>Models:ControlMode poll</c>: looks at this silo's model folders every <see cref="ModelsOptions.PollInterval"/>
/// and tells the repository grain of a model whose folder changed (a version added, removed or replaced, its config
/// edited), which applies it as a load on every silo, or of a model whose folder went, which it unloads everywhere.
/// The grain keeps, in the cluster's record, the folder state it last applied per model, so a change is applied once
/// however many silos see it.
/// A folder's state is the SHA-256 of its files' contents, not their times, so silos sharing one volume, or holding
/// the same image, describe a change alike and the grain applies it once. A change is passed on only once two looks
/// in a row see it alike: a model file still being copied is not loaded half-written.
/// </summary>
public sealed class ModelFolderPoller(IOptions<ModelsOptions> options, IGrainFactory grains, ILocalSiloDetails silo, ILogger<ModelFolderPoller> logger)
    : ILifecycleParticipant<ISiloLifecycle>
{
    /// <summary>A folder's files as last hashed: rehashed only when a file's length or modification time moves.</summary>
    private readonly Dictionary<string, (long Length, DateTime Written, string Sha256)> _hashes = [];
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;

    /// <summary>What was last passed on, model by model.</summary>
    private readonly Dictionary<string, string> _applied = [];

    /// <summary>Changes seen once, waiting for the next look to see them alike.</summary>
    private readonly Dictionary<string, string?> _pending = [];

    public void Participate(ISiloLifecycle lifecycle)
    {
        if (options.Value.ControlMode == "poll")
        {
            lifecycle.Subscribe<ModelFolderPoller>(ServiceLifecycleStage.Active, Start, Stop);
        }
    }

    private Task Start(CancellationToken cancellationToken)
    {
        _loop = Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task Stop(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _loop.WaitAsync(TimeSpan.FromSeconds(3), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RunAsync()
    {
        try
        {
            // Nothing is taken as applied at start: the first looks pass every folder on, and the grain, which keeps
            // the last state it applied per model, ignores those it has (a folder changed while the cluster was down
            // is loaded, as Triton's poll mode loads the folder at start).
            using var timer = new PeriodicTimer(options.Value.PollInterval);
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                await PollOnceAsync();
            }
        }
        catch (OperationCanceledException)
        {
            // The silo is stopping.
        }
    }

    /// <summary>One look: passes on every change seen alike twice in a row.</summary>
    public async Task PollOnceAsync()
    {
        var seen = Scan();
        if (seen is null)
        {
            return;
        }

        foreach (var model in _applied.Keys.Union(seen.Keys).Order(StringComparer.Ordinal).ToList())
        {
            var now = seen.GetValueOrDefault(model);
            if (now == _applied.GetValueOrDefault(model))
            {
                _pending.Remove(model);
                continue;
            }

            if (!_pending.TryGetValue(model, out var before) || before != now)
            {
                _pending[model] = now;
                continue;
            }

            try
            {
                var changes = await grains.GetGrain<IModelRepositoryGrain>(IModelRepositoryGrain.Key).FolderChangedAsync(silo.Name, model, now);
                logger.LogInformation("Model {Model}'s folder {Change}; applied on the cluster: {Outcome}", model, now is null ? "went" : "changed",
                    changes.Length == 0 ? "already, by another silo" : string.Join("; ", changes.Select(c => c.Error is null ? $"{c.Silo} ok" : $"{c.Silo}: {c.Error}")));
                _pending.Remove(model);
                if (now is null)
                {
                    _applied.Remove(model);
                }
                else
                {
                    _applied[model] = now;
                }
            }
            catch (Exception e) when (!_stopping.IsCancellationRequested)
            {
                logger.LogWarning(e, "Could not pass on the change to model {Model}'s folder; trying again at the next look", model);
            }
        }
    }

    /// <summary>
    /// Each model folder's state, or null when the repository is missing or holds no model folder: a volume that came
    /// loose must not read as every model removed.
    /// </summary>
    private Dictionary<string, string>? Scan()
    {
        var root = Path.GetFullPath(options.Value.Repository);
        try
        {
            var models = Directory.Exists(root)
                ? Directory.EnumerateDirectories(root).Where(d => !Path.GetFileName(d).StartsWith('.')).ToList()
                : [];
            if (models.Count == 0)
            {
                logger.LogWarning("The model repository {Root} is missing or empty; leaving the served models as they are", root);
                return null;
            }

            var seen = new HashSet<string>();
            var states = models.ToDictionary(d => Path.GetFileName(d), d => FolderState(d, seen));
            foreach (var gone in _hashes.Keys.Where(p => !seen.Contains(p)).ToList())
            {
                _hashes.Remove(gone);
            }

            return states;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning(e, "Could not read the model repository; trying again at the next look");
            return null;
        }
    }

    /// <summary>The SHA-256 over every file of a model folder (dot-named ones aside): its relative path and its contents' hash.</summary>
    private string FolderState(string folder, HashSet<string> seen)
    {
        var lines = new StringBuilder();
        var files = Directory.EnumerateFiles(folder, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Where(f => !Path.GetRelativePath(folder, f).Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.')))
            .Order(StringComparer.Ordinal);
        foreach (var file in files)
        {
            lines.Append(Path.GetRelativePath(folder, file)).Append(' ').Append(FileHash(file, seen)).Append('\n');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(lines.ToString())));
    }

    private string FileHash(string path, HashSet<string> seen)
    {
        // Through links (Kubernetes volumes and test folders use them) to the file itself.
        var info = new FileInfo(path);
        if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target)
        {
            info = target;
        }

        if (!info.Exists)
        {
            return "missing";
        }

        seen.Add(info.FullName);
        if (_hashes.TryGetValue(info.FullName, out var known) && known.Length == info.Length && known.Written == info.LastWriteTimeUtc)
        {
            return known.Sha256;
        }

        using var stream = info.OpenRead();
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(stream));
        _hashes[info.FullName] = (info.Length, info.LastWriteTimeUtc, sha256);
        return sha256;
    }
}
