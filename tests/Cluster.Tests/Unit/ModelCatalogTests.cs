using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Classifier.Grains.Telemetry;
using Classifier.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Classifier.Tests.Unit;

/// <summary>A silo's catalog loads a version beside those it serves and unloads one under traffic without failing what it admitted.</summary>
public sealed class ModelCatalogTests : IAsyncLifetime
{
    private readonly string _repository = Directory.CreateTempSubdirectory("catalog-").FullName;
    private readonly SiloMetrics _metrics = new(Metrics.NewCustomRegistry());
    private ModelCatalog _catalog = null!;

    public ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var model = Path.Combine(_repository, "text-orientation");
        Directory.CreateDirectory(model);
        File.Copy(Path.Combine(Repo.Models, "text-orientation", "config.json"), Path.Combine(model, "config.json"));
        AddVersion("1", Repo.DefaultModelFile);
        _catalog = new ModelCatalog(
            Options.Create(new ModelsOptions { Repository = _repository, Device = "cpu", IntraOpThreads = 1, WarmUp = TimeSpan.Zero }),
            Options.Create(new ImageOptions()), _metrics, NullLoggerFactory.Instance);
        _catalog.LoadAll();
        return ValueTask.CompletedTask;
    }

    private ModelVersionDefinition AddVersion(string version, string? linkTo = null, byte[]? bytes = null)
    {
        var folder = Path.Combine(_repository, "text-orientation", version);
        Directory.CreateDirectory(folder);
        var file = Path.Combine(folder, "model.onnx");
        if (linkTo is not null)
        {
            File.CreateSymbolicLink(file, linkTo);
        }
        else
        {
            File.WriteAllBytes(file, bytes!);
        }

        var definition = ModelRepository.ReadConfig(Path.Combine(_repository, "text-orientation", "config.json"), "text-orientation");
        return new ModelVersionDefinition(definition, version, file);
    }

    private double StateGauge(string version) => _metrics.ModelState.WithLabels("text-orientation", version).Value;

    [Fact]
    public async Task AVersionLoadedAtRunTimeServesBesideTheOthers()
    {
        var two = await _catalog.LoadAsync(AddVersion("2", Repo.DefaultModelFile));

        Assert.Equal(ModelState.Ready, two.State);
        Assert.Same(two, _catalog.Find("text-orientation", "2"));
        Assert.Equal(ModelState.Ready, _catalog.Find("text-orientation", "1")!.State);
        Assert.NotNull((await two.PredictAsync(TextImages.Numbered(1))).Output);
        Assert.Equal(1, StateGauge("2"));
        Assert.Same(two, await _catalog.LoadAsync(two.Definition)); // loading a ready version again changes nothing
    }

    [Fact]
    public async Task AVersionWhoseFileOrConfigChangedIsReloadedAndAFailedReloadKeepsTheLoadedOneServing()
    {
        var onnx = await File.ReadAllBytesAsync(Repo.DefaultModelFile);
        var first = await _catalog.LoadAsync(AddVersion("2", bytes: onnx));

        // Other bytes (a valid model with one more protobuf field): loaded anew, the old load leaves.
        var changed = await _catalog.LoadAsync(AddVersion("2", bytes: [.. onnx, 0xA2, 0x06, 0x01, 0x00]));
        Assert.NotSame(first, changed);
        Assert.Equal(ModelState.Ready, changed.State);
        Assert.Same(changed, _catalog.Find("text-orientation", "2"));
        Assert.NotEqual(first.Sha256, changed.Sha256);
        Assert.NotEqual(first.Fingerprint, changed.Fingerprint); // the gateways' near caches never meet the old answers
        Assert.Equal(1, StateGauge("2"));

        // A config that answers differently (top-k 1): loaded anew too.
        var config = ModelRepository.ReadConfig(Path.Combine(_repository, "text-orientation", "config.json"), "text-orientation") with { TopK = 1 };
        var reconfigured = await _catalog.LoadAsync(new ModelVersionDefinition(config, "2", changed.Definition.ModelPath));
        Assert.NotSame(changed, reconfigured);
        Assert.Equal(1, reconfigured.Model.TopK);
        Assert.NotEqual(changed.Fingerprint, reconfigured.Fingerprint);
        Assert.Equal(reconfigured.Fingerprint, _catalog.Statuses().Single(s => s.Version == "2").Fingerprint);

        // A broken file: the attempt fails with its reason, and the loaded version keeps serving.
        var failed = await _catalog.LoadAsync(AddVersion("2", bytes: onnx[..(onnx.Length / 2)]) with { Model = config });
        Assert.Equal(ModelState.Error, failed.State);
        Assert.Contains("could not load model.onnx", failed.Error, StringComparison.Ordinal);
        Assert.Same(reconfigured, _catalog.Find("text-orientation", "2"));
        Assert.NotNull((await reconfigured.PredictAsync(TextImages.Numbered(3))).Output);
        Assert.Equal(1, StateGauge("2"));
    }

    [Fact]
    public async Task AFailedLoadLeavesTheOtherVersionsServingAndSaysWhy()
    {
        var onnx = await File.ReadAllBytesAsync(Repo.DefaultModelFile);
        var broken = await _catalog.LoadAsync(AddVersion("3", bytes: onnx[..(onnx.Length / 2)]));

        Assert.Equal(ModelState.Error, broken.State);
        Assert.Contains("could not load model.onnx", broken.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(_repository, broken.Error, StringComparison.Ordinal);
        Assert.Equal(2, StateGauge("3"));
        var one = _catalog.Find("text-orientation", "1")!;
        Assert.NotNull((await one.PredictAsync(TextImages.Numbered(2))).Output);
    }

    [Fact]
    public async Task UnloadingAVersionUnderTrafficFinishesWhatItAdmittedAndReleasesTheSession()
    {
        var one = _catalog.Find("text-orientation", "1")!;
        var images = Enumerable.Range(0, 16).Select(i => TextImages.Numbered(100 + i)).ToArray();
        using var stop = new CancellationTokenSource();
        var outcomes = new System.Collections.Concurrent.ConcurrentBag<InferenceOutcome>();
        var clients = Enumerable.Range(0, 4).Select(c => Task.Run(async () =>
        {
            for (var i = c; !stop.IsCancellationRequested; i += 4)
            {
                outcomes.Add(await one.PredictAsync(images[i % images.Length]));
            }
        })).ToArray();

        await Task.Delay(300);
        Assert.True(await _catalog.UnloadAsync("text-orientation", "1"));
        await Task.Delay(100);
        await stop.CancelAsync();
        await Task.WhenAll(clients); // nothing threw: no run met a released session

        var answered = outcomes.Count(o => o.Output is not null);
        var refused = outcomes.Where(o => o.Output is null).ToList();
        Assert.True(answered > 0, "nothing was answered before the unload");
        Assert.NotEmpty(refused);
        Assert.All(refused, o => Assert.Equal(PredictionErrorKind.ModelUnavailable, o.Error?.Kind));
        Assert.Contains(refused, o => o.Error!.Message.Contains("unloaded", StringComparison.Ordinal));
        Assert.Null(_catalog.Find("text-orientation", "1"));
        Assert.Equal(0, StateGauge("1"));
        Assert.False(await _catalog.UnloadAsync("text-orientation", "1"));
    }

    [Fact]
    public async Task AnUnloadedVersionShowsStateZeroThenItsSeriesGoesSoTheNotLoadedAlertStaysSilent()
    {
        _catalog.UnloadedSeriesLifetime = TimeSpan.FromMilliseconds(300);
        var two = await _catalog.LoadAsync(AddVersion("2", Repo.DefaultModelFile));
        Assert.True(await _catalog.UnloadAsync("text-orientation", "2"));

        Assert.Contains(_metrics.ModelState.GetAllLabelValues(), l => l.SequenceEqual(["text-orientation", "2"]));
        Assert.Equal(0, StateGauge("2"));
        await Task.Delay(1000);
        Assert.DoesNotContain(_metrics.ModelState.GetAllLabelValues(), l => l.SequenceEqual(["text-orientation", "2"]));
        Assert.Contains(_metrics.ModelState.GetAllLabelValues(), l => l.SequenceEqual(["text-orientation", "1"]));
        Assert.NotNull(two);
    }

    public async ValueTask DisposeAsync()
    {
        await _catalog.DisposeAsync();
        Directory.Delete(_repository, recursive: true);
    }
}
