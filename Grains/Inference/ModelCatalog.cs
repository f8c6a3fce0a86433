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

    private readonly Dictionary<(string Model, string Version), ModelRuntime> _runtimes = [];
    private readonly Dictionary<string, string> _latest = [];
    private readonly ModelsOptions _options;

    public ModelCatalog(IOptions<ModelsOptions> options, IOptions<ImageOptions> imageOptions, SiloMetrics metrics, ILoggerFactory loggers)
    {
        _options = options.Value;
        EnsureQuietEnvironment();
        var logger = loggers.CreateLogger<ModelCatalog>();
        var images = imageOptions.Value;
        Decodes = new DecodeGate(images.DecodeMemoryBytes, images.EffectiveMaxConcurrentDecodes, metrics.DecodeGate(), images.MaxWaitingBytes);
        foreach (var definition in ModelRepository.Load(_options.Repository))
        {
            var runtime = new ModelRuntime(definition, images, metrics.ForModel(definition.Model.Name, definition.Version), logger, Decodes);
            _runtimes[(definition.Model.Name, definition.Version)] = runtime;
            _latest[definition.Model.Name] = definition.Version; // versions come in ascending order
        }
    }

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
            runtime.Load(_options);
        }
    }

    public ModelRuntime? Find(string model, string version) => _runtimes.GetValueOrDefault((model, version));

    public string? LatestVersion(string model) => _latest.GetValueOrDefault(model);

    public ModelVersionStatus[] Statuses() => _runtimes.Values.Select(r => new ModelVersionStatus(
        r.Model.Name, r.Definition.Version, r.State, r.Provider, r.Model.ToInputSpec(), r.Model.OutputName,
        r.Model.Labels.Length, r.Model.TopK, r.LoadMs, r.Error, r.Model.IsEmbedding ? "embedding" : "classes", r.OutputLength)).ToArray();

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
