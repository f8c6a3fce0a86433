using Classifier.Grains.Interfaces;
using Classifier.Tests.Support;

namespace Classifier.Tests.Unit;

/// <summary>Device selection on a machine without a GPU: auto falls back to CPU, cuda refuses to.</summary>
public sealed class ExecutionProviderTests
{
    private static bool HasNvidiaGpu => File.Exists("/dev/nvidia0");

    [Fact]
    public void AutoDeviceFallsBackToCpuWithoutCuda()
    {
        Assert.SkipWhen(HasNvidiaGpu, "this machine has an NVIDIA GPU; auto picks CUDA here");
        var (runtime, metrics) = DefaultModel.Load("auto");
        using var _ = runtime;

        Assert.Equal(ModelState.Ready, runtime.State);
        Assert.Equal("CPU", runtime.Provider);
        Assert.Equal(1, metrics.ModelState.WithLabels("text-orientation", "1").Value);
    }

    [Theory]
    [InlineData("HEURISTIC")]
    [InlineData("EXHAUSTIVE")]
    public void AutoDeviceWithCudnnSearchSetStillFallsBackToCpuWithoutCuda(string search)
    {
        Assert.SkipWhen(HasNvidiaGpu, "this machine has an NVIDIA GPU; auto picks CUDA here");
        var (runtime, _) = DefaultModel.Load("auto", configure: o => o.CudnnConvAlgoSearch = search);
        using var _ = runtime;

        Assert.Equal(ModelState.Ready, runtime.State);
        Assert.Equal("CPU", runtime.Provider);
    }

    [Fact]
    public void CudaDeviceWithCudnnSearchSetAndNoCudaGivesTheInstallHintNotACrash()
    {
        Assert.SkipWhen(HasNvidiaGpu, "this machine has an NVIDIA GPU");
        var (runtime, _) = DefaultModel.Load("cuda", configure: o => o.CudnnConvAlgoSearch = "HEURISTIC");
        using var _ = runtime;

        Assert.Equal(ModelState.Error, runtime.State);
        Assert.Contains("CUDA 13 and cuDNN 9", runtime.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("HEURISTIC", true)]
    [InlineData("", true)]
    [InlineData("heuristic", false)]
    [InlineData("FASTEST", false)]
    public void CudnnSearchSettingAcceptsOnlyTheProvidersValues(string value, bool valid)
    {
        var options = new Classifier.Grains.ModelsOptions { CudnnConvAlgoSearch = value };
        var results = new List<System.ComponentModel.DataAnnotations.ValidationResult>();

        var ok = System.ComponentModel.DataAnnotations.Validator.TryValidateObject(options, new(options), results, validateAllProperties: true);

        Assert.Equal(valid, ok);
    }

    [Fact]
    public void CudaDeviceWithoutCudaPutsTheModelInTheErrorStateInsteadOfFallingBack()
    {
        Assert.SkipWhen(HasNvidiaGpu, "this machine has an NVIDIA GPU");
        var (runtime, metrics) = DefaultModel.Load("cuda");
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
        var (runtime, _) = DefaultModel.Load("cuda");
        using var __ = runtime;

        var outcome = await runtime.PredictAsync(TextImages.Render("no model"));

        Assert.Equal(PredictionErrorKind.ModelUnavailable, outcome.Error?.Kind);
        Assert.Contains("CUDA", outcome.Error!.Message, StringComparison.Ordinal);
    }
}
