using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Models;
using Classifier.Grains.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;

namespace Classifier.Tests.Support;

/// <summary>Models loaded outside any silo, each with a private metrics registry.</summary>
public static class DefaultModel
{
    /// <param name="adjust">Changes to the model's config before loading, e.g. batching settings.</param>
    /// <param name="recordRequests">False: the silo's <c>Metrics:Enabled=false</c>.</param>
    /// <param name="configure">Further silo settings (<c>Models:*</c>) beyond the device.</param>
    /// <param name="images">Decoding settings (<c>Images:*</c>); the decode gate is then the runtime's own, with the silo's metrics.</param>
    public static (ModelRuntime Runtime, SiloMetrics Metrics) Load(string device = "cpu", Func<ModelDefinition, ModelDefinition>? adjust = null, bool recordRequests = true, Action<ModelsOptions>? configure = null, Action<ImageOptions>? images = null)
    {
        Repo.RequireDefaultModel();
        return LoadFrom(Repo.Models, "text-orientation", device, adjust, recordRequests, configure, images);
    }

    /// <summary>The optional resnet18 embedding model, from the fetched files (see <see cref="Repo.CreateResnet18Repository"/>).</summary>
    /// <param name="modelFile">Which fetched file to serve: <c>model-dynamic.onnx</c> for the one with a symbolic batch dimension.</param>
    public static ModelRuntime LoadResnet18(Func<ModelDefinition, ModelDefinition>? adjust = null, string modelFile = "model.onnx") =>
        LoadFrom(Repo.CreateResnet18Repository(modelFile: modelFile), "resnet18", "cpu", adjust).Runtime;

    private static (ModelRuntime Runtime, SiloMetrics Metrics) LoadFrom(string repository, string name, string device, Func<ModelDefinition, ModelDefinition>? adjust, bool recordRequests = true, Action<ModelsOptions>? configure = null, Action<ImageOptions>? images = null)
    {
        var version = ModelRepository.Load(repository).Single(v => v.Model.Name == name);
        version = version with { Model = (adjust ?? (m => m))(version.Model) };
        var metrics = new SiloMetrics(Metrics.NewCustomRegistry(), recordRequests);
        var imageOptions = new ImageOptions();
        images?.Invoke(imageOptions);
        var gate = new DecodeGate(imageOptions.DecodeMemoryBytes, imageOptions.EffectiveMaxConcurrentDecodes, metrics.DecodeGate(), imageOptions.MaxWaitingBytes);
        var runtime = new ModelRuntime(version, imageOptions, metrics.ForModel(name, version.Version), NullLogger.Instance, gate);
        var options = new ModelsOptions { Device = device };
        configure?.Invoke(options);
        runtime.Load(options);
        return (runtime, metrics);
    }
}
