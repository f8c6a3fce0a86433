using System.Collections.Concurrent;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Classifier.Grains.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using Orleans.Runtime;

namespace Classifier.Grains.Inference;

/// <summary>Every model version of the repository, loaded once per silo and borrowed by the grains.</summary>
public sealed class ModelCatalog : ILifecycleParticipant<ISiloLifecycle>, IDisposable, IAsyncDisposable
{
    private static readonly Lock EnvironmentGate = new();
    private static bool _environmentCreated;

    private readonly ConcurrentDictionary<(string Model, string Version), ModelRuntime> _runtimes = new();
    private readonly ModelsOptions _options;
    private readonly ImageOptions _images;
    private readonly SiloMetrics _metrics;
    private readonly ILogger _logger;

    /// <summary>One load or unload at a time on this silo: two loads of one version must not both create sessions.</summary>
    private readonly SemaphoreSlim _changes = new(1, 1);

    public ModelCatalog(IOptions<ModelsOptions> options, IOptions<ImageOptions> imageOptions, SiloMetrics metrics, ILoggerFactory loggers)
    {
        _options = options.Value;
        EnsureQuietEnvironment();
        _logger = loggers.CreateLogger<ModelCatalog>();
        _images = imageOptions.Value;
        _metrics = metrics;
        Decodes = new DecodeGate(_images.DecodeMemoryBytes, _images.EffectiveMaxConcurrentDecodes, metrics.DecodeGate(), _images.MaxWaitingBytes);
        foreach (var definition in ModelRepository.Load(_options.Repository))
        {
            _runtimes[(definition.Model.Name, definition.Version)] = NewRuntime(definition);
        }
    }

    private ModelRuntime NewRuntime(ModelVersionDefinition definition) =>
        new(definition, _images, _metrics.ForModel(definition.Model.Name, definition.Version), _logger, Decodes);

    public IEnumerable<ModelRuntime> Runtimes => _runtimes.Values;

    /// <summary>Decode admission for every model on this silo: the memory budget is the silo's, not a model's.</summary>
    public DecodeGate Decodes { get; }

    /// <summary>Models load before the silo accepts grain calls, so no request meets a half-loaded catalog.</summary>
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe<ModelCatalog>(ServiceLifecycleStage.ApplicationServices, _ => Task.Run(LoadAll));

    /// <summary>Loads every session. A model that fails is put in the error state; the others still load.</summary>
    public void LoadAll()
    {
        foreach (var runtime in _runtimes.Values)
        {
            Load(runtime);
        }
    }

    /// <summary>Loads and warms one runtime, observing the whole time in <c>model_load_duration_seconds</c> when it succeeds.</summary>
    private void Load(ModelRuntime runtime)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        runtime.Load(_options);
        if (runtime.State == ModelState.Ready)
        {
            _metrics.ModelLoad.WithLabels(runtime.Model.Name).Observe(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    public ModelRuntime? Find(string model, string version) => _runtimes.GetValueOrDefault((model, version));

    /// <summary>
    /// Loads one model version beside those already served: its session is created and warmed off the caller's
    /// thread, and only then does the version count as ready here. A version already ready with the same file
    /// (SHA-256) and the same config is left as it is; one that failed before is loaded anew. A version whose file or
    /// config changed since it loaded is reloaded as Triton does: the new load is made beside the serving one, which
    /// it replaces only once ready (the old one's admitted images finish first, and its shards, whose caches hold
    /// the old answers, leave); a reload that fails leaves the old one serving. Answers this load's runtime: the one
    /// now served, or a failed reload's, which is not installed (<see cref="Find"/> still answers the old one).
    /// </summary>
    public async Task<ModelRuntime> LoadAsync(ModelVersionDefinition definition, CancellationToken cancellationToken = default)
    {
        var key = (definition.Model.Name, definition.Version);
        await _changes.WaitAsync(cancellationToken);
        try
        {
            if (_runtimes.TryGetValue(key, out var existing) && existing.State == ModelState.Ready
                && existing.Model.ServingFingerprint() == definition.Model.ServingFingerprint()
                && existing.Sha256 == await FileSha256OrNullAsync(definition.ModelPath))
            {
                return existing;
            }

            var runtime = NewRuntime(definition);
            await Task.Run(() => Load(runtime), CancellationToken.None);
            if (runtime.State != ModelState.Ready && existing is { State: ModelState.Ready })
            {
                // A failed reload: the serving runtime stays, and so does its state series, which the failed attempt
                // (holding no session: a failed load releases it) shares and had set to error.
                existing.Metrics.State.Set((int)ModelState.Ready);
                _logger.LogWarning("Model {Model} version {Version} was not reloaded ({Reason}); the loaded one keeps serving", definition.Model.Name, definition.Version, runtime.Error);
                return runtime;
            }

            _runtimes[key] = runtime;
            if (existing is not null)
            {
                await existing.DisposeAsync();
                runtime.Metrics.State.Set((int)runtime.State); // the old runtime's disposal zeroed the shared series
                if (existing.State == ModelState.Ready)
                {
                    MemoryRelease.AfterUnload();
                    _logger.LogInformation("Model {Model} version {Version} reloaded: its file or config changed", definition.Model.Name, definition.Version);
                }
            }

            return runtime;
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>The SHA-256 of a model file (lower-case hex), or null when it cannot be read.</summary>
    public static async Task<string?> FileSha256OrNullAsync(string path)
    {
        try
        {
            await using var file = File.OpenRead(path);
            return Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(file));
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Keeps a version out of service here, with the reason, in place of whatever runtime it had (whose queued images
    /// finish first): its file differs from the one the cluster serves.
    /// </summary>
    public async Task RefuseAsync(ModelVersionDefinition definition, string reason, string? sha256)
    {
        var key = (definition.Model.Name, definition.Version);
        await _changes.WaitAsync();
        try
        {
            var refused = NewRuntime(definition);
            _runtimes.TryGetValue(key, out var previous);
            _runtimes[key] = refused;
            if (previous is not null)
            {
                await previous.DisposeAsync();
            }

            refused.Refuse(reason, sha256); // after the previous runtime's disposal, which sets the shared state gauge to 0

            _logger.LogWarning("Model {Model} version {Version} refused: {Reason}", definition.Model.Name, definition.Version, reason);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// Stops serving one model version here: it leaves the catalog at once (new requests for it answer "not loaded"),
    /// then the images already queued or running finish, and only then is its session released. Answers false when
    /// the version was not loaded.
    /// </summary>
    public async Task<bool> UnloadAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            if (!_runtimes.TryRemove((model, version), out var runtime))
            {
                return false;
            }

            await runtime.DisposeAsync();
            MemoryRelease.AfterUnload();
            _logger.LogInformation("Model {Model} version {Version} unloaded", model, version);
            _ = RetireSeriesAsync(model, version, runtime.Provider);
            return true;
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// How long an unloaded version's <c>model_state</c> shows 0 before its series goes: long enough for a scrape to
    /// see the unload, shorter than the <c>ModelNotLoaded</c> alert's <c>for: 1m</c>, which must not fire for a version
    /// unloaded on purpose (the alert's expression, <c>model_state != 1</c>, is the seed's and stays).
    /// </summary>
    public TimeSpan UnloadedSeriesLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Removes an unloaded version's state and provider series, unless it was loaded again meanwhile.</summary>
    private async Task RetireSeriesAsync(string model, string version, string provider)
    {
        await Task.Delay(UnloadedSeriesLifetime);
        await _changes.WaitAsync();
        try
        {
            // Under the lock that loads take: a version loaded again keeps the series its new runtime writes to.
            if (!_runtimes.ContainsKey((model, version)))
            {
                _metrics.ModelState.RemoveLabelled(model, version);
                _metrics.ModelProvider.RemoveLabelled(model, version, provider, _options.Device);
            }
        }
        finally
        {
            _changes.Release();
        }
    }

    public ModelVersionStatus[] Statuses() => _runtimes.Values.Select(r => new ModelVersionStatus(
        r.Model.Name, r.Definition.Version, r.State, r.Provider, r.Model.ToInputSpec(), r.Model.OutputName,
        r.Model.Labels.Length, r.Model.TopK, r.LoadMs, r.Error, r.Model.IsEmbedding ? "embedding" : "classes", r.OutputLength, r.Sha256, r.Fingerprint)).ToArray();

    /// <summary>
    /// ONNX Runtime's environment is process-wide and must be created before any session; at FATAL
    /// level it keeps the native loader's "no CUDA" text off stderr on CPU machines.
    /// </summary>
    private static void EnsureQuietEnvironment()
    {
        lock (EnvironmentGate)
        {
            if (_environmentCreated)
            {
                return;
            }

            var creation = new EnvironmentCreationOptions { logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL, logId = "classifier" };
            try
            {
                OrtEnv.CreateInstanceWithOptions(ref creation);
            }
            catch (OnnxRuntimeException)
            {
                // Already created by someone else in this process: that instance serves.
            }

            _environmentCreated = true;
        }
    }

    /// <summary>Every model's queued and running images finish before its session is released.</summary>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_runtimes.Values.Select(r => r.DisposeAsync().AsTask()));
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
