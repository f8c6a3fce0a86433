// The original one-process classifier, rebuilt from this project's packages as a benchmark baseline (issue 17):
// POST /predict with the image as the body, an LRU of 128 predictions keyed by the image's SHA-256 prefix, the
// silo's preprocessing and ONNX Runtime session on a miss, and the seed's metrics at GET /metrics.
// Usage: Classifier.OneProcessServer --urls http://127.0.0.1:8590 --models models [--model text-orientation] [--cache 128]
using System.Diagnostics;
using Classifier.Grains;
using Classifier.Grains.Caching;
using Classifier.Grains.Inference;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Classifier.OneProcessServer;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
var repository = builder.Configuration["models"] ?? "models";
var modelName = builder.Configuration["model"] ?? "text-orientation";
var definition = ModelRepository.Load(repository).Where(v => v.Model.Name == modelName).MaxBy(v => int.Parse(v.Version, System.Globalization.CultureInfo.InvariantCulture))
    ?? throw new InvalidOperationException($"model {modelName} is not in {repository}");
var server = new OneProcessClassifier(definition, int.Parse(builder.Configuration["cache"] ?? "128", System.Globalization.CultureInfo.InvariantCulture));
builder.Services.AddSingleton(server);
var app = builder.Build();

var requests = Metrics.CreateCounter("http_requests_total", "HTTP requests.", "endpoint", "method", "status");
var duration = Metrics.CreateHistogram("http_request_duration_seconds", "HTTP request latency.",
    new HistogramConfiguration { LabelNames = ["endpoint", "method"], Buckets = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30] });
var predictOk = requests.WithLabels("/predict", "POST", "200");
var predictDuration = duration.WithLabels("/predict", "POST");
app.Use(async (context, next) =>
{
    var started = Stopwatch.GetTimestamp();
    await next(context);
    if (context.Request.Path == "/predict")
    {
        (context.Response.StatusCode == 200 ? predictOk : requests.WithLabels("/predict", "POST", $"{context.Response.StatusCode}")).Inc();
        predictDuration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }
});
app.MapMetrics();
app.MapGet("/healthz", () => "ok");
app.MapPost("/predict", async (HttpRequest request, OneProcessClassifier classifier) =>
{
    var started = Stopwatch.GetTimestamp();
    using var body = new MemoryStream();
    await request.Body.CopyToAsync(body);
    var answer = classifier.Predict(body.ToArray());
    return answer.Error is { } error
        ? Results.Problem(error.Message, statusCode: 400)
        : Results.Json(answer with { Timings = answer.Timings with { TotalMs = Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 3) } },
            OneProcessJson.Default.Answer);
});
app.Run();

namespace Classifier.OneProcessServer
{
    public sealed record Score(string Label, int Index, float Probability);

    public sealed record Timings(double PreprocessingMs, double InferenceMs, double TotalMs);

    public sealed record Answer(string Model, string Version, Score[] Predictions, bool Cached, Timings Timings)
    {
        [System.Text.Json.Serialization.JsonIgnore]
        public PredictionError? Error { get; init; }
    }

    [System.Text.Json.Serialization.JsonSerializable(typeof(Answer))]
    [System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
    internal sealed partial class OneProcessJson : System.Text.Json.Serialization.JsonSerializerContext;

    /// <summary>The model, its session and the one LRU; misses run on the request's thread, as the original's did.</summary>
    public sealed class OneProcessClassifier
    {
        private static readonly Counter Predictions = Metrics.CreateCounter("predictions_total", "Predictions.", "status");
        private static readonly Gauge HitRate = Metrics.CreateGauge("cache_hit_rate", "hits / (hits + misses)");
        private static readonly Gauge Size = Metrics.CreateGauge("cache_size_current", "Entries held.");
        private static readonly Histogram Inference = Metrics.CreateHistogram("inference_duration_seconds", "Model time.",
            new HistogramConfiguration { Buckets = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5] });

        private readonly Counter.Child _hit = Predictions.WithLabels("cache_hit");
        private readonly Counter.Child _success = Predictions.WithLabels("success");
        private readonly Counter.Child _error = Predictions.WithLabels("error");
        private readonly ModelVersionDefinition _definition;
        private readonly ModelBackend _backend;
        private readonly ImagePreprocessor _preprocessor;
        private readonly LruCache<ImageHash, Answer> _cache;
        private readonly Lock _lock = new();

        public OneProcessClassifier(ModelVersionDefinition definition, int capacity)
        {
            _definition = definition;
            _backend = ModelBackend.Create(definition, new ModelsOptions { Device = "cpu" }, NullLogger.Instance);
            _preprocessor = new ImagePreprocessor(definition.Model, new ImageOptions());
            _cache = new LruCache<ImageHash, Answer>(capacity, a => 64 + a.Predictions.Length * 32);
        }

        public Answer Predict(byte[] image)
        {
            var hash = ImageHash.Of(image);
            lock (_lock)
            {
                if (_cache.TryGet(hash, out var cached))
                {
                    _hit.Inc();
                    Publish();
                    return cached with { Cached = true };
                }
            }

            var tensor = new float[_definition.Model.TensorLength];
            var started = Stopwatch.GetTimestamp();
            if (_preprocessor.Preprocess(image, tensor) is { } error)
            {
                _error.Inc();
                return new Answer(_definition.Model.Name, _definition.Version, [], false, new Timings(0, 0, 0)) { Error = error };
            }

            var preprocessed = Stopwatch.GetTimestamp();
            var probabilities = _backend.Run(tensor, 1);
            var inference = Stopwatch.GetElapsedTime(preprocessed);
            Inference.Observe(inference.TotalSeconds);
            var answer = new Answer(_definition.Model.Name, _definition.Version,
                [.. ModelBackend.TopK(_definition.Model, probabilities, _definition.Model.TopK).Select(s => new Score(s.Label, s.Index, s.Probability))],
                false, new Timings(Math.Round(Stopwatch.GetElapsedTime(started, preprocessed).TotalMilliseconds, 3), Math.Round(inference.TotalMilliseconds, 3), 0));
            lock (_lock)
            {
                _cache.Set(hash, answer);
                _success.Inc();
                Publish();
            }

            return answer;
        }

        private void Publish()
        {
            var (hits, misses) = (_cache.Hits, _cache.Misses);
            HitRate.Set(hits + misses == 0 ? 0 : (double)hits / (hits + misses));
            Size.Set(_cache.Count);
        }
    }
}
