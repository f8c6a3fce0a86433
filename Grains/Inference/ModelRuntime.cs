using System.Buffers;
using System.Diagnostics;
using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Classifier.Grains.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace Classifier.Grains.Inference;

/// <summary>
/// What one image got, the one result type from the scheduler up to the grain: its output values (probabilities in
/// label order, or an embedding), or why there are none.
/// </summary>
/// <param name="QueueMs">Time the image waited in the scheduler's queue.</param>
/// <param name="BatchSize">Images in the run it was part of.</param>
/// <param name="Failure">The exception behind a backend failure, for the log; never sent to a client.</param>
public readonly record struct InferenceOutcome(
    float[]? Output, PredictionError? Error, double PreprocessingMs, double InferenceMs, double QueueMs = 0, int BatchSize = 0, Exception? Failure = null);

/// <summary>
/// One model version loaded on this silo, shared by every grain of the version here: its backend (the ONNX Runtime
/// session and post-processing), its scheduler (the bounded batch queue and the threads that run it), and the
/// preprocessing that feeds them within the silo's decode budget.
/// </summary>
public sealed class ModelRuntime : IDisposable, IAsyncDisposable
{
    /// <summary>Spans of preprocessing and inference; the hosts subscribe to this source name when tracing is on.</summary>
    public static readonly ActivitySource Tracing = new("Classifier");

    private readonly ILogger _logger;
    private ModelBackend? _backend;
    private ModelScheduler? _scheduler;

    private readonly ImageOptions _imageOptions;
    private readonly DecodeGate _decodes;

    /// <param name="decodes">The silo's decode admission, shared by its models; null: one of this runtime's own, from <paramref name="imageOptions"/>.</param>
    public ModelRuntime(ModelVersionDefinition definition, ImageOptions imageOptions, ModelMetrics metrics, ILogger logger, DecodeGate? decodes = null)
    {
        Definition = definition;
        Metrics = metrics;
        _logger = logger;
        _imageOptions = imageOptions;
        _decodes = decodes ?? new DecodeGate(imageOptions.DecodeMemoryBytes, imageOptions.EffectiveMaxConcurrentDecodes, maxWaitingBytes: imageOptions.MaxWaitingBytes);
        Preprocessor = new ImagePreprocessor(definition.Model, imageOptions, logger);
        InputShape = definition.Model.ToInputSpec().Shape;
        metrics.State.Set((int)Interfaces.ModelState.NotReady);
    }

    /// <summary>One image's input tensor shape (without the batch dimension), as the model's metadata gives it.</summary>
    public int[] InputShape { get; }

    public ModelVersionDefinition Definition { get; }

    private static long s_generations;

    /// <summary>Tells this load of the version from any other on this silo (a reload makes a new runtime).</summary>
    public long Generation { get; } = Interlocked.Increment(ref s_generations);

    public ModelDefinition Model => Definition.Model;

    public ImagePreprocessor Preprocessor { get; }

    public ModelMetrics Metrics { get; }

    public ModelState State { get; private set; } = ModelState.NotReady;

    /// <summary><c>CUDA</c> or <c>CPU</c> once loaded; <c>none</c> before or after a failure.</summary>
    public string Provider { get; private set; } = "none";

    /// <summary>Why the model failed to load, in words fit for anyone who asks: no path, host name or exception text (those are logged).</summary>
    public string? Error { get; private set; }

    public double LoadMs { get; private set; }

    /// <summary>The SHA-256 of the model file as loaded (lower-case hex); null before loading or when the file could not be read.</summary>
    public string? Sha256 { get; private set; }

    /// <summary>
    /// What this load serves, for the gateways' near caches: the model file's hash and the hash of the config that
    /// shapes its answers, worked out once per load; null until the file has been read.
    /// </summary>
    public string? Fingerprint { get; private set; }

    /// <summary>Puts a version that must not serve here in the error state without loading it (its file differs from the cluster's).</summary>
    public void Refuse(string reason, string? sha256)
    {
        Sha256 = sha256;
        Error = reason;
        State = ModelState.Error;
        Metrics.State.Set((int)State);
    }

    /// <summary>Creates the backend, warms the whole path and starts the scheduler; on failure the model is put in the error state, never thrown.</summary>
    public void Load(ModelsOptions options)
    {
        var sw = Stopwatch.StartNew();
        try
        {
            using (var file = File.OpenRead(Definition.ModelPath))
            {
                Sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(file));
            }

            Fingerprint = $"{Sha256[..16]}-{Model.ServingFingerprint()[..16]}";

            _backend = ModelBackend.Create(Definition, options, _logger);
            Provider = _backend.Provider;
            MaxBatchSize = _backend.MaxBatchSize;
            var maxBatch = Math.Min(Model.MaxBatchSize, MaxBatchSize);
            var padToMax = maxBatch > 1 && (Model.PadToMaxBatch ?? Provider == "CUDA");
            var samples = WarmUp(maxBatch);
            LoadMs = sw.Elapsed.TotalMilliseconds;
            CompileHotPath(samples, options.WarmUp, padToMax ? maxBatch : 1);
            _failedRunsBeforeError = options.FailedRunsBeforeError;
            _scheduler = new ModelScheduler(WithDrillFailures(_backend.Run, options.FailRunsAfter), Model.TensorLength,
                new SchedulerSettings(maxBatch, Model.MaxQueueDelay, Model.Instances, padToMax, Model.MaxQueueSize, Model.QueueTimeout),
                Metrics, $"{Model.Name} version {Definition.Version}", RunEnded);
            State = ModelState.Ready;
            _logger.LogInformation("Model {Model} version {Version} ready on {Provider} in {LoadMs:F0} ms", Model.Name, Definition.Version, Provider, LoadMs);
        }
        catch (Exception e) when (e is OnnxRuntimeException or FileNotFoundException or InvalidOperationException)
        {
            _backend?.Dispose();
            _backend = null;
            Provider = "none";
            State = ModelState.Error;
            Error = PublicReason(e);
            _logger.LogError(e, "Model {Model} version {Version} failed to load", Model.Name, Definition.Version);
        }

        Metrics.State.Set((int)State);
    }

    private int _failedRunsBeforeError = int.MaxValue;
    private bool _unloaded;
    private int _failedRuns;

    /// <summary>
    /// Counts failed runs in a row; at <see cref="ModelsOptions.FailedRunsBeforeError"/> the version is taken out of
    /// service here, so that its shards leave for silos where it still runs (a GPU that fell off the bus fails every
    /// run; answering each request with an error would fail this silo's share of the cluster's traffic).
    /// </summary>
    private void RunEnded(Exception? failure)
    {
        if (failure is null)
        {
            Volatile.Write(ref _failedRuns, 0);
            return;
        }

        if (Interlocked.Increment(ref _failedRuns) == _failedRunsBeforeError && State == ModelState.Ready)
        {
            Error = $"ONNX Runtime failed {_failedRunsBeforeError} runs in a row on {Provider} after the model had served; it is out of service on this silo until the silo restarts. See the silo's log.";
            State = ModelState.Error;
            Metrics.State.Set((int)State);
            _logger.LogError(failure, "Model {Model} version {Version} failed {Runs} runs in a row and is out of service on this silo", Model.Name, Definition.Version, _failedRunsBeforeError);
        }
    }

    /// <summary>The run, failing every call after <paramref name="after"/> when a failure drill asks for it (<see cref="ModelsOptions.FailRunsAfter"/>).</summary>
    private static Func<float[], int, float[]> WithDrillFailures(Func<float[], int, float[]> run, int after)
    {
        if (after <= 0)
        {
            return run;
        }

        var runs = 0;
        return (tensor, count) => Interlocked.Increment(ref runs) > after
            ? throw new InvalidOperationException($"Failure drill: run {runs} fails (Models:FailRunsAfter is {after}).")
            : run(tensor, count);
    }

    /// <summary>
    /// What a load failure tells the cluster's clients (<c>/readyz</c>, <c>/models</c>, 503 details): the kind of
    /// failure and where to look, never the silo's paths or ONNX Runtime's text, which go to the silo's log.
    /// Configuration mismatches are worded by this code from config.json fields and stay whole.
    /// </summary>
    private static string PublicReason(Exception e) => e switch
    {
        FileNotFoundException => "model.onnx is missing from this version's folder on the silo; see the silo's log.",
        OnnxRuntimeException => "ONNX Runtime could not load model.onnx (damaged, truncated or not an ONNX model); see the silo's log.",
        InvalidOperationException { InnerException: OnnxRuntimeException } =>
            "Models:Device is 'cuda' but CUDA could not be used on this silo. Install the NVIDIA driver, CUDA 13 and cuDNN 9, or set Models:Device to 'auto' or 'cpu'; the silo's log has ONNX Runtime's reason.",
        _ => e.Message,
    };

    /// <summary>Values per image in the output: the label count, or the embedding's dimension; known once loaded.</summary>
    public int OutputLength { get; private set; }

    /// <summary>The largest batch the model accepts: 1 where the file fixes the batch dimension.</summary>
    public int MaxBatchSize { get; private set; } = 1;

    /// <summary>Decodes, resizes and runs once at batch 1 and once at the largest batch, checking the output's size.</summary>
    /// <returns>The encoded sample images, for <see cref="CompileHotPath"/>.</returns>
    private byte[][] WarmUp(int maxBatch)
    {
        var tensor = new float[Model.TensorLength * maxBatch];

        // Decode and resize once per common format, so the first user request does not pay for JIT compilation.
        byte[][] samples;
        using (var sample = new Image<Rgb24>(96, 48))
        {
            sample.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    var row = rows.GetRowSpan(y);
                    for (var x = 0; x < row.Length; x++)
                    {
                        row[x] = new Rgb24((byte)(x * 3), (byte)(y * 5), (byte)(x ^ y));
                    }
                }
            });
            samples = new IImageEncoder[] { new PngEncoder(), new JpegEncoder() }.Select(encoder =>
            {
                using var encoded = new MemoryStream();
                sample.Save(encoded, encoder);
                return encoded.ToArray();
            }).ToArray();
        }

        foreach (var encoded in samples)
        {
            Preprocessor.Preprocess(encoded, tensor);
        }

        var output = _backend!.Run(tensor, 1);
        if (!Model.IsEmbedding && output.Length != Model.Labels.Length)
        {
            throw new InvalidOperationException($"The model's output '{Model.OutputName}' has {output.Length} values per image, but config.json lists {Model.Labels.Length} labels.");
        }

        OutputLength = output.Length;

        if (maxBatch > 1)
        {
            _backend.Run(tensor, maxBatch);
        }

        return samples;
    }

    /// <summary>
    /// Runs the whole path again and again for up to <paramref name="budget"/> (at most 2000 times): a fresh
    /// process runs it as unoptimised tier-0 code until tiered compilation has seen it often enough, which
    /// under load took thousands of requests (a cold silo served misses at 0.4x of its later speed). Done
    /// before the silo reports ready, a silo that joins under load serves at full speed sooner. Not part of
    /// <see cref="LoadMs"/>.
    /// </summary>
    /// <param name="runSize">The batch every run has: the last shape the session sees is the one the batcher will use.</param>
    private void CompileHotPath(byte[][] samples, TimeSpan budget, int runSize)
    {
        var tensor = new float[Model.TensorLength * runSize];
        var clock = Stopwatch.StartNew();
        for (var i = 0; clock.Elapsed < budget && i < 2000; i++)
        {
            Preprocessor.Preprocess(samples[i % samples.Length], tensor.AsSpan(0, Model.TensorLength));
            _backend!.Run(tensor, runSize);
        }
    }

    /// <summary>
    /// Preprocesses one image off the caller's thread, within the silo's decode budget, then classifies it in the
    /// model's next batch. Never throws for bad input; a cancelled <paramref name="cancellationToken"/> gives up the
    /// image's place in line, its decode and its place in the batch queue.
    /// </summary>
    public async Task<InferenceOutcome> PredictAsync(byte[] image, CancellationToken cancellationToken = default)
    {
        if (State != ModelState.Ready || _scheduler is not { } scheduler)
        {
            return new(null, new(PredictionErrorKind.ModelUnavailable, $"Model {Model.Name} version {Definition.Version} is not loaded on this silo: {Error ?? (_unloaded ? "it was unloaded" : "still loading")}"), 0, 0);
        }

        // A place in the model's queue first: when the model cannot keep up, the excess is refused before it is decoded.
        if (!scheduler.TryAdmit(out var refusal))
        {
            return refusal;
        }

        var (tensor, error, preprocessingMs) = await PreprocessWithinBudgetAsync(image, cancellationToken);
        if (tensor is null)
        {
            scheduler.Withdraw();
            return new(null, error, preprocessingMs, 0);
        }

        using var span = Tracing.StartActivity("inference");
        span?.SetTag("classifier.model", Model.Name);
        span?.SetTag("classifier.model_version", Definition.Version);
        span?.SetTag("classifier.provider", Provider);
        var result = await scheduler.InferAdmittedAsync(tensor, cancellationToken);
        if (result.Output is not null)
        {
            span?.SetTag("classifier.batch_size", result.BatchSize);
            span?.SetTag("classifier.queue_ms", result.QueueMs);
            Metrics.Inference.Observe(result.InferenceMs / 1000); // inside the request's span: the exemplar points at it
        }
        else if (result.Failure is { } failure)
        {
            span?.SetStatus(ActivityStatusCode.Error, failure.Message);
            _logger.LogError(failure, "Inference failed for {Model} version {Version}", Model.Name, Definition.Version);
        }

        return result with { PreprocessingMs = preprocessingMs, Failure = null };
    }

    /// <summary>
    /// Classifies one image given as its input tensor (little-endian FP32 in <see cref="InputShape"/>): no decoding,
    /// no preprocessing, the same queue and batches as encoded images. A tensor of another size, or holding a value
    /// that is not a finite number, is refused with the reason.
    /// </summary>
    public async Task<InferenceOutcome> PredictTensorAsync(byte[] data, CancellationToken cancellationToken = default)
    {
        if (State != ModelState.Ready || _scheduler is not { } scheduler)
        {
            return new(null, new(PredictionErrorKind.ModelUnavailable, $"Model {Model.Name} version {Definition.Version} is not loaded on this silo: {Error ?? (_unloaded ? "it was unloaded" : "still loading")}"), 0, 0);
        }

        if (data.Length != Model.TensorLength * sizeof(float))
        {
            return new(null, new(PredictionErrorKind.BadParameter, $"An input tensor of model {Model.Name} holds {Model.TensorLength} FP32 values ({Model.TensorLength * sizeof(float)} bytes) per image; {data.Length} bytes came."), 0, 0);
        }

        var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(data);
        if (!AllFinite(values))
        {
            return new(null, new(PredictionErrorKind.BadParameter, $"The input tensor of model {Model.Name} holds a value that is not a finite number (NaN or infinity)."), 0, 0);
        }

        if (!scheduler.TryAdmit(out var refusal))
        {
            return refusal;
        }

        var tensor = ArrayPool<float>.Shared.Rent(Model.TensorLength);
        values.CopyTo(tensor);
        using var span = Tracing.StartActivity("inference");
        span?.SetTag("classifier.model", Model.Name);
        span?.SetTag("classifier.model_version", Definition.Version);
        span?.SetTag("classifier.provider", Provider);
        var result = await scheduler.InferAdmittedAsync(tensor, cancellationToken);
        if (result.Output is not null)
        {
            span?.SetTag("classifier.batch_size", result.BatchSize);
            Metrics.Inference.Observe(result.InferenceMs / 1000);
        }
        else if (result.Failure is { } failure)
        {
            span?.SetStatus(ActivityStatusCode.Error, failure.Message);
            _logger.LogError(failure, "Inference failed for {Model} version {Version}", Model.Name, Definition.Version);
        }

        return result with { Failure = null };
    }

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (var v in values)
        {
            if (!float.IsFinite(v))
            {
                return false;
            }
        }

        return true;
    }

    private static readonly PredictionError Cancelled = new(PredictionErrorKind.Cancelled, "The request was cancelled before its answer was ready.");

    /// <summary>Seconds a client turned away for a full decode queue is asked to wait.</summary>
    private const int BusyRetryAfterSeconds = 2;

    /// <summary>
    /// Inspects the image from its headers, waits for decode room for its estimated memory (refusing it when the
    /// wait would exceed <see cref="ImageOptions.DecodeQueueTimeout"/>), then decodes it off the caller's thread
    /// within <see cref="ImageOptions.DecodeTimeout"/>. Every refusal is counted by reason.
    /// </summary>
    private async Task<(float[]? Tensor, PredictionError? Error, double Milliseconds)> PreprocessWithinBudgetAsync(byte[] image, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var (inspected, problem) = Preprocessor.Inspect(image);
        if (inspected is null)
        {
            if (problem!.Kind == PredictionErrorKind.TooComplex)
            {
                _decodes.Refused(DecodeRefusal.TooManyScans);
            }

            return (null, problem, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        if (inspected.DecodeBytes > _decodes.CapacityBytes)
        {
            _decodes.Refused(DecodeRefusal.TooLarge);
            return (null, new(PredictionErrorKind.ImageTooLarge,
                $"The image is {inspected.Width}x{inspected.Height}; decoding it takes about {inspected.DecodeBytes >> 20} MiB, more than this cluster decodes at once ({_decodes.CapacityBytes >> 20} MiB). Downscale it before sending."),
                Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        IDisposable? lease;
        try
        {
            lease = await _decodes.EnterAsync(inspected.DecodeBytes, _imageOptions.DecodeQueueTimeout, cancellationToken, heldWhileWaiting: image.Length);
        }
        catch (OperationCanceledException)
        {
            _decodes.Refused(DecodeRefusal.Cancelled);
            return (null, Cancelled, 0);
        }

        if (lease is null)
        {
            _decodes.Refused(DecodeRefusal.Busy);
            return (null, new(PredictionErrorKind.Overloaded,
                "This silo is decoding as many images as its memory allows and cannot queue more; retry in a few seconds.",
                BusyRetryAfterSeconds), Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        using (lease)
        {
            using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            budget.CancelAfter(_imageOptions.DecodeTimeout);
            try
            {
                return await Task.Run(() => Preprocess(inspected, budget.Token), budget.Token);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                _decodes.Refused(DecodeRefusal.Cancelled);
                return (null, Cancelled, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
            catch (OperationCanceledException)
            {
                _decodes.Refused(DecodeRefusal.Timeout);
                _logger.LogInformation("A {Width}x{Height} {Format} image for {Model} was abandoned after the decode budget of {Seconds} s", inspected.Width, inspected.Height, inspected.Format.Name, Model.Name, _imageOptions.DecodeTimeout.TotalSeconds);
                return (null, new(PredictionErrorKind.TooComplex,
                    $"Decoding the image took longer than this cluster allows ({_imageOptions.DecodeTimeout.TotalSeconds:0.#} s); send it smaller or re-encoded (for example as a baseline JPEG)."),
                    Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }
    }

    /// <summary>Decodes and preprocesses into a pooled tensor, which the batcher takes over; null with the reason when the image is bad.</summary>
    private (float[]? Tensor, PredictionError? Error, double Milliseconds) Preprocess(InspectedImage image, CancellationToken cancellationToken)
    {
        using var span = Tracing.StartActivity("preprocess");
        span?.SetTag("classifier.model", Model.Name);
        span?.SetTag("classifier.model_version", Definition.Version);
        var tensor = ArrayPool<float>.Shared.Rent(Model.TensorLength);
        var start = Stopwatch.GetTimestamp();
        PredictionError? error;
        try
        {
            error = Preprocessor.Decode(image, tensor.AsSpan(0, Model.TensorLength), cancellationToken);
        }
        catch
        {
            ArrayPool<float>.Shared.Return(tensor);
            throw;
        }

        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        if (error is not null)
        {
            ArrayPool<float>.Shared.Return(tensor);
            span?.SetStatus(ActivityStatusCode.Error, error.Message);
            return (null, error, seconds * 1000);
        }

        Metrics.Preprocessing.Observe(seconds);
        return (tensor, null, seconds * 1000);
    }

    /// <summary>The <paramref name="k"/> most probable classes, most probable first, with their labels.</summary>
    public ClassScore[] TopK(float[] probabilities, int k) => ModelBackend.TopK(Model, probabilities, k);

    /// <summary>Stops the scheduler, lets every queued and running image finish, then releases the session.</summary>
    public async ValueTask DisposeAsync()
    {
        _unloaded = true;
        State = ModelState.NotReady;
        Metrics.State.Set((int)State);
        if (_scheduler is { } scheduler)
        {
            await scheduler.DisposeAsync();
        }

        _backend?.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
