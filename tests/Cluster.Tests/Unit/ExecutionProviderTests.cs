using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Classifier.Grains.Telemetry;
using Classifier.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;

namespace Classifier.Tests.Unit;

/// <summary>Device selection on a machine without a GPU: auto falls back to CPU, cuda refuses to.</summary>
public sealed class ExecutionProviderTests
{
    private static bool HasNvidiaGpu => File.Exists("/dev/nvidia0");

    private static (ModelRuntime Runtime, SiloMetrics Metrics) Load(string device)
    {
        Repo.RequireDefaultModel();
        var version = ModelRepository.Load(Repo.Models).Single(v => v.Model.Name == "text-orientation");
        var metrics = new SiloMetrics(Metrics.NewCustomRegistry());
        var runtime = new ModelRuntime(version, new ImageOptions(), metrics.ForModel("text-orientation", "1"), NullLogger.Instance);
        runtime.Load(new ModelsOptions { Device = device });
        return (runtime, metrics);
    }

    [Fact]
    public void AutoDeviceFallsBackToCpuWithoutCuda()
    {
        Assert.SkipWhen(HasNvidiaGpu, "this machine has an NVIDIA GPU; auto picks CUDA here");
        var (runtime, metrics) = Load("auto");
        using var _ = runtime;

        Assert.Equal(ModelState.Ready, runtime.State);
        Assert.Equal("CPU", runtime.Provider);
        Assert.Equal(1, metrics.ModelState.WithLabels("text-orientation", "1").Value);
    }

    [Fact]
    public void CudaDeviceWithoutCudaPutsTheModelInTheErrorStateInsteadOfFallingBack()
    {
        Assert.SkipWhen(HasNvidiaGpu, "this machine has an NVIDIA GPU");
        var (runtime, metrics) = Load("cuda");
        using var _ = runtime;

        Assert.Equal(ModelState.Error, runtime.State);
        Assert.Equal("none", runtime.Provider);
        Assert.Contains("Models:Device", runtime.Error, StringComparison.Ordinal);
        Assert.Equal(2, metrics.ModelState.WithLabels("text-orientation", "1").Value);
    }

    [Fact]
    public async Task ModelInTheErrorStateAnswersUnavailableWithTheReason()
    {
        Assert.SkipWhen(HasNvidiaGpu, "this machine has an NVIDIA GPU");
        var (runtime, _) = Load("cuda");
        using var __ = runtime;

        var outcome = await runtime.PredictAsync(TextImages.Render("no model"));

        Assert.Equal(PredictionErrorKind.ModelUnavailable, outcome.Error?.Kind);
        Assert.Contains("CUDA", outcome.Error!.Message, StringComparison.Ordinal);
    }
}
