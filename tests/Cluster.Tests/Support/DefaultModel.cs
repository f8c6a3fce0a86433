using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Models;
using Classifier.Grains.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;

namespace Classifier.Tests.Support;

/// <summary>The default model loaded outside any silo, with a private metrics registry.</summary>
public static class DefaultModel
{
    /// <param name="adjust">Changes to the model's config before loading, e.g. batching settings.</param>
    public static (ModelRuntime Runtime, SiloMetrics Metrics) Load(string device = "cpu", Func<ModelDefinition, ModelDefinition>? adjust = null)
    {
        Repo.RequireDefaultModel();
        var version = ModelRepository.Load(Repo.Models).Single(v => v.Model.Name == "text-orientation");
        version = version with { Model = (adjust ?? (m => m))(version.Model) };
        var metrics = new SiloMetrics(Metrics.NewCustomRegistry());
        var runtime = new ModelRuntime(version, new ImageOptions(), metrics.ForModel("text-orientation", "1"), NullLogger.Instance);
        runtime.Load(new ModelsOptions { Device = device });
        return (runtime, metrics);
    }
}
