using BenchmarkDotNet.Attributes;
using Classifier.Gateway.Cluster;
using Classifier.Gateway.Telemetry;
using Classifier.Grains;
using Classifier.Grains.Caching;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Classifier.Grains.Telemetry;
using Prometheus;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Classifier.Benchmarks;

/// <summary>
/// What one request costs in metrics, against the original service's claims (counter ~10 ns, histogram
/// with 8 buckets ~50 ns). The gateway records two series per request through a cached child lookup;
/// a silo records a handful of pre-resolved children.
/// </summary>
[MemoryDiagnoser]
public class MetricRecording
{
    private readonly SiloMetrics _silo = new(Metrics.NewCustomRegistry());
    private ModelMetrics _model = null!;

    [GlobalSetup]
    public void Setup() => _model = _silo.ForModel("text-orientation", "1");

    [Benchmark(Description = "counter child Inc")]
    public void CounterInc() => _silo.PredictionSuccess.Inc();

    [Benchmark(Description = "histogram child Observe (13 buckets)")]
    public void HistogramObserve() => _model.Inference.Observe(0.0021);

    [Benchmark(Description = "gauge child Set")]
    public void GaugeSet() => _model.QueueDepth.Set(3);

    [Benchmark(Description = "gateway: one request's HTTP metrics")]
    public void GatewayRequest() => GatewayMetrics.Record("/predict", "POST", 200, 0.0042);

    [Benchmark(Description = "an Activity started and stopped (what the next one adds to)")]
    public void ActivityAlone()
    {
        using var request = new System.Diagnostics.Activity("request").Start();
    }

    /// <remarks>
    /// ASP.NET Core starts an Activity per request even with tracing off, and prometheus-net's default
    /// records the current trace as an exemplar on every observation; silos and gateways now turn that off
    /// unless traces are exported. This process keeps prometheus-net's default, to show the cost.
    /// </remarks>
    [Benchmark(Description = "gateway: one request's HTTP metrics inside an Activity (exemplars recorded)")]
    public void GatewayRequestWithExemplars()
    {
        using var request = new System.Diagnostics.Activity("request").Start();
        GatewayMetrics.Record("/predict", "POST", 200, 0.0042);
    }

    [Benchmark(Description = "silo: one cache miss's metrics")]
    public void SiloMiss()
    {
        _model.CacheMisses.Inc();
        _model.Preprocessing.Observe(0.0012);
        _model.QueueDepth.Inc();
        _model.QueueDepth.Dec();
        _model.QueueWait.Observe(0.0001);
        _model.BatchSize.Observe(1);
        _model.Inference.Observe(0.0021);
        _silo.PredictionSuccess.Inc();
    }
}

/// <summary>The rest of a cache hit's path: hashing the upload, the LRU lookup, top-k.</summary>
[MemoryDiagnoser]
public class CacheHitPath
{
    private readonly LruCache<ImageHash, float[]> _cache = new(128, p => p.Length * 4);
    private readonly byte[] _image = new byte[8 * 1024];
    private ImageHash _key;

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_image);
        _key = PredictionRouter.Hash(_image);
        for (var i = 0; i < 128; i++)
        {
            _cache.Set(new ImageHash((ulong)i, 0), [0.5f, 0.5f]);
        }

        _cache.Set(_key, [0.9f, 0.1f]);
    }

    [Benchmark(Description = "SHA-256 routing hash of an 8 KB upload")]
    public ImageHash Hash() => PredictionRouter.Hash(_image);

    [Benchmark(Description = "LRU lookup, hit")]
    public bool Lookup() => _cache.TryGet(_key, out _);
}

/// <summary>Preprocessing allocations: the decode allocates; the tensor comes from the pool, not per request.</summary>
[MemoryDiagnoser]
public class Preprocessing
{
    private ImagePreprocessor _preprocessor = null!;
    private byte[] _small = [];
    private byte[] _large = [];
    private float[] _tensor = [];

    [GlobalSetup]
    public void Setup()
    {
        var model = new ModelDefinition("m", null, "x", false, 3, 48, 192, ColorOrder.Rgb, ResizeMode.KeepAspectPad, 48, 1 / 255f, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], 0, "y", OutputKind.Probabilities, ["0", "180"], 1);
        _preprocessor = new ImagePreprocessor(model, new ImageOptions());
        _tensor = new float[model.TensorLength];
        _small = Png(192, 48);
        _large = Png(768, 192);
    }

    private static byte[] Png(int width, int height)
    {
        using var image = new Image<Rgb24>(width, height);
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    [Benchmark(Description = "preprocess 192x48 PNG")]
    public PredictionError? Small() => _preprocessor.Preprocess(_small, _tensor);

    [Benchmark(Description = "preprocess 768x192 PNG")]
    public PredictionError? Large() => _preprocessor.Preprocess(_large, _tensor);
}

/// <summary>ImageNet-style preprocessing: shorter side to 256 (or 224), then the centre 224x224.</summary>
[MemoryDiagnoser]
public class CenterCropPreprocessing
{
    private ImagePreprocessor _imageNet = null!;
    private ImagePreprocessor _shorterSideIsCrop = null!;
    private byte[] _photo = [];
    private byte[] _wide = [];
    private float[] _tensor = [];

    [GlobalSetup]
    public void Setup()
    {
        ModelDefinition Model(int shorterSide) => new("m", null, "x", false, 3, 224, 224, ColorOrder.Rgb, ResizeMode.CenterCrop, shorterSide, 1 / 255f,
            [0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f], 0, "y", OutputKind.Logits, ["a"], 1);
        _imageNet = new ImagePreprocessor(Model(256), new ImageOptions());
        _shorterSideIsCrop = new ImagePreprocessor(Model(224), new ImageOptions());
        _tensor = new float[3 * 224 * 224];
        using var photo = new Image<Rgb24>(640, 480);
        photo.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    row[x] = new Rgb24((byte)x, (byte)y, (byte)(x ^ y));
                }
            }
        });
        using var stream = new MemoryStream();
        photo.SaveAsJpeg(stream);
        _photo = stream.ToArray();
        using var wide = new Image<Rgb24>(96, 48);
        using var wideStream = new MemoryStream();
        wide.SaveAsPng(wideStream);
        _wide = wideStream.ToArray();
    }

    [Benchmark(Description = "640x480 JPEG, 256 then centre 224")]
    public PredictionError? Photo() => _imageNet.Preprocess(_photo, _tensor);

    [Benchmark(Description = "96x48 PNG, 224 then centre 224 (the benchmark's resnet18 input)")]
    public PredictionError? Wide() => _shorterSideIsCrop.Preprocess(_wide, _tensor);
}
