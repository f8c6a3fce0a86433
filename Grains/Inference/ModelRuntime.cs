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

/// <summary>What one image's run produced: its output values (probabilities in label order, or an embedding), or why there are none.</summary>
public readonly record struct InferenceOutcome(float[]? Output, PredictionError? Error, double PreprocessingMs, double InferenceMs);

/// <summary>
/// One model version loaded on this silo: its ONNX Runtime session, shared by every grain of the
/// version here (<c>Run</c> is thread-safe), and the preprocessing that feeds it.
/// </summary>
public sealed class ModelRuntime : IDisposable
{
    /// <summary>Spans of preprocessing and inference; the hosts subscribe to this source name when tracing is on.</summary>
    public static readonly ActivitySource Tracing = new("Classifier");

    private readonly ILogger _logger;
    private readonly RunOptions _runOptions = new();
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private InferenceSession? _session;
    private InferenceBatcher? _batcher;

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
        _inputNames = [definition.Model.InputName];
        _outputNames = [definition.Model.OutputName];
        metrics.State.Set((int)Interfaces.ModelState.NotReady);
    }

    public ModelVersionDefinition Definition { get; }

    public ModelDefinition Model => Definition.Model;

    public ImagePreprocessor Preprocessor { get; }

    public ModelMetrics Metrics { get; }

    public ModelState State { get; private set; } = ModelState.NotReady;

    /// <summary><c>CUDA</c> or <c>CPU</c> once loaded; <c>none</c> before or after a failure.</summary>
    public string Provider { get; private set; } = "none";

    /// <summary>Why the model failed to load, in words fit for anyone who asks: no path, host name or exception text (those are logged).</summary>
    public string? Error { get; private set; }

    public double LoadMs { get; private set; }

    /// <summary>Creates the session and runs one warm-up batch; on failure the model is put in the error state, never thrown.</summary>
    public void Load(ModelsOptions options)
    {
        var sw = Stopwatch.StartNew();
        try
        {
            if (!File.Exists(Definition.ModelPath))
            {
                throw new FileNotFoundException($"{Definition.ModelPath} does not exist; put the model's ONNX file there.", Definition.ModelPath);
            }

            (_session, Provider) = CreateSession(options);
            CheckSignature(_session);
            var maxBatch = Math.Min(Model.MaxBatchSize, MaxBatchSize);
            var padToMax = maxBatch > 1 && (Model.PadToMaxBatch ?? Provider == "CUDA");
            var samples = WarmUp(maxBatch);
            LoadMs = sw.Elapsed.TotalMilliseconds;
            CompileHotPath(samples, options.WarmUp, padToMax ? maxBatch : 1);
            _batcher = new InferenceBatcher(RunBatch, Model.TensorLength, maxBatch, Model.MaxQueueDelay, Model.Instances, Metrics, padToMax);
            State = ModelState.Ready;
            _logger.LogInformation("Model {Model} version {Version} ready on {Provider} in {LoadMs:F0} ms", Model.Name, Definition.Version, Provider, LoadMs);
        }
        catch (Exception e) when (e is OnnxRuntimeException or FileNotFoundException or InvalidOperationException)
        {
            _session?.Dispose();
            _session = null;
            Provider = "none";
            State = ModelState.Error;
            Error = PublicReason(e);
            _logger.LogError(e, "Model {Model} version {Version} failed to load", Model.Name, Definition.Version);
        }

        Metrics.State.Set((int)State);
    }

    private (InferenceSession, string) CreateSession(ModelsOptions options)
    {
        var device = options.Device;
        if (device is "cuda" or "auto")
        {
            try
            {
                using var gpuOptions = NewSessionOptions(options);
                // Unset, the plain device-id call: the path measured on GPUs; the options object only when asked for.
                if (options.CudnnConvAlgoSearch is { Length: > 0 } search)
                {
                    using var cuda = new OrtCUDAProviderOptions();
                    cuda.UpdateOptions(new Dictionary<string, string>
                    {
                        ["device_id"] = options.GpuDeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["cudnn_conv_algo_search"] = search,
                    });
                    gpuOptions.AppendExecutionProvider_CUDA(cuda);
                }
                else
                {
                    gpuOptions.AppendExecutionProvider_CUDA(options.GpuDeviceId);
                }

                return (new InferenceSession(Definition.ModelPath, gpuOptions), "CUDA");
            }
            catch (OnnxRuntimeException e) when (device == "auto")
            {
                _logger.LogInformation("CUDA is not usable for {Model} ({Reason}); running on CPU", Model.Name, FirstLine(e.Message));
            }
            catch (OnnxRuntimeException e)
            {
                throw new InvalidOperationException(
                    $"Models:Device is 'cuda' but CUDA could not be used ({FirstLine(e.Message)}). Install the NVIDIA driver, CUDA 13 and cuDNN 9, or set Models:Device to 'auto' or 'cpu'.", e);
            }
        }

        using var cpuOptions = NewSessionOptions(options);
        return (new InferenceSession(Definition.ModelPath, cpuOptions), "CPU");
    }

    private Microsoft.ML.OnnxRuntime.SessionOptions NewSessionOptions(ModelsOptions options) => new()
    {
        // Measured (README, Performance: session options): ENABLE_ALL (with its layout optimisations for
        // CPU convolutions) beat BASIC and EXTENDED clearly; the memory arena made no measurable difference.
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        IntraOpNumThreads = IntraOpThreads(options.IntraOpThreads, Model.Instances, Environment.ProcessorCount),
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
    };

    /// <summary>
    /// Intra-op threads per session: the configured number, else the cores this process may use (.NET's
    /// count, which honours CPU affinity and container CPU limits) shared out among the model's concurrent
    /// runs. ONNX Runtime's own default gives every run a thread per physical core of the whole machine:
    /// it oversubscribes the CPU as soon as several runs execute at once (on the 2-vCPU development
    /// machine, runs given more threads than their share measured 0.4-0.6x, README, Performance: session
    /// options), and it ignores affinity: a process pinned to 2 of 16 cores used 15 cores' worth of CPU.
    /// </summary>
    public static int IntraOpThreads(int configured, int instances, int cores) =>
        configured > 0 ? configured : Math.Max(1, cores / Math.Max(1, instances));

    private static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();

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

    private void CheckSignature(InferenceSession session)
    {
        var m = Model;
        if (!session.InputMetadata.TryGetValue(m.InputName, out var input))
        {
            throw new InvalidOperationException($"config.json field 'input.name' is '{m.InputName}', but the model's inputs are: {string.Join(", ", session.InputMetadata.Keys)}.");
        }

        if (!session.OutputMetadata.ContainsKey(m.OutputName))
        {
            throw new InvalidOperationException($"config.json field 'output.name' is '{m.OutputName}', but the model's outputs are: {string.Join(", ", session.OutputMetadata.Keys)}.");
        }

        var expected = m.TensorShape(1);
        var dims = input.Dimensions;
        var matches = dims.Length == expected.Length && dims.Skip(1).Zip(expected.Skip(1)).All(p => p.First <= 0 || p.First == p.Second);
        if (!matches)
        {
            throw new InvalidOperationException($"config.json field 'input.shape' gives {Shape(expected.Skip(1))} ({(m.Nhwc ? "NHWC" : "NCHW")}), but the model's input '{m.InputName}' is {Shape(dims.Select(d => (long)d))} (-1 = any).");
        }

        MaxBatchSize = dims[0] > 0 ? dims[0] : int.MaxValue;
    }

    private static string Shape(IEnumerable<long> dims) => $"[{string.Join(", ", dims)}]";

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

        var output = RunBatch(tensor, 1);
        if (!Model.IsEmbedding && output.Length != Model.Labels.Length)
        {
            throw new InvalidOperationException($"The model's output '{Model.OutputName}' has {output.Length} values per image, but config.json lists {Model.Labels.Length} labels.");
        }

        OutputLength = output.Length;

        if (maxBatch > 1)
        {
            RunBatch(tensor, maxBatch);
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
            RunBatch(tensor, runSize);
        }
    }

    /// <summary>
    /// Preprocesses one image off the caller's thread, within the silo's decode budget, then classifies it in the
    /// model's next batch. Never throws for bad input; a cancelled <paramref name="cancellationToken"/> gives up the
    /// image's place in line, its decode and its place in the batch queue.
    /// </summary>
    public async Task<InferenceOutcome> PredictAsync(byte[] image, CancellationToken cancellationToken = default)
    {
        if (State != ModelState.Ready || _batcher is not { } batcher)
        {
            return new(null, new(PredictionErrorKind.ModelUnavailable, $"Model {Model.Name} version {Definition.Version} is not loaded on this silo: {Error ?? "still loading"}"), 0, 0);
        }

        var (tensor, error, preprocessingMs) = await PreprocessWithinBudgetAsync(image, cancellationToken);
        if (tensor is null)
        {
            return new(null, error, preprocessingMs, 0);
        }

        using var span = Tracing.StartActivity("inference");
        span?.SetTag("classifier.model", Model.Name);
        span?.SetTag("classifier.model_version", Definition.Version);
        span?.SetTag("classifier.provider", Provider);
        try
        {
            var result = await batcher.InferAsync(tensor, cancellationToken);
            span?.SetTag("classifier.batch_size", result.BatchSize);
            span?.SetTag("classifier.queue_ms", result.QueueSeconds * 1000);
            Metrics.Inference.Observe(result.InferenceSeconds); // inside the request's span: the exemplar points at it
            return new(result.Output, null, preprocessingMs, result.InferenceSeconds * 1000);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return new(null, Cancelled, preprocessingMs, 0);
        }
        catch (Exception e) when (e is OnnxRuntimeException or ObjectDisposedException)
        {
            span?.SetStatus(ActivityStatusCode.Error, e.Message);
            _logger.LogError(e, "Inference failed for {Model} version {Version}", Model.Name, Definition.Version);
            var reason = e is ObjectDisposedException ? "the model is being unloaded on this silo" : "ONNX Runtime failed (see the silo's log)";
            return new(null, new(PredictionErrorKind.ModelUnavailable, $"Model {Model.Name} version {Definition.Version} could not run: {reason}; retry shortly."), preprocessingMs, 0);
        }
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

    /// <summary>Runs <paramref name="count"/> images laid out one after another in <paramref name="tensor"/>; answers their probabilities concatenated.</summary>
    private float[] RunBatch(float[] tensor, int count)
    {
        var session = _session ?? throw new InvalidOperationException("The session is not loaded.");
        var memory = new Memory<float>(tensor, 0, Model.TensorLength * count);
        using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory, Model.TensorShape(count));
        using var outputs = session.Run(_runOptions, _inputNames, [input], _outputNames);
        var result = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        if (Model.Output == OutputKind.Logits)
        {
            Softmax(result, result.Length / count);
        }
        else if (Model.NormalizeEmbedding)
        {
            NormalizeL2(result, result.Length / count);
        }

        return result;
    }

    /// <summary>In-place softmax over each consecutive run of <paramref name="classes"/> values.</summary>
    internal static void Softmax(Span<float> values, int classes)
    {
        for (var offset = 0; offset + classes <= values.Length; offset += classes)
        {
            var row = values.Slice(offset, classes);
            var max = float.NegativeInfinity;
            foreach (var v in row)
            {
                max = Math.Max(max, v);
            }

            var sum = 0f;
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = MathF.Exp(row[i] - max);
                sum += row[i];
            }

            for (var i = 0; i < row.Length; i++)
            {
                row[i] /= sum;
            }
        }
    }

    /// <summary>Scales each consecutive run of <paramref name="length"/> values to unit Euclidean length; an all-zero vector stays zero.</summary>
    internal static void NormalizeL2(Span<float> values, int length)
    {
        for (var offset = 0; offset + length <= values.Length; offset += length)
        {
            var row = values.Slice(offset, length);
            var sum = 0.0;
            foreach (var v in row)
            {
                sum += (double)v * v;
            }

            if (sum > 0)
            {
                var scale = (float)(1 / Math.Sqrt(sum));
                for (var i = 0; i < row.Length; i++)
                {
                    row[i] *= scale;
                }
            }
        }
    }

    /// <summary>The <paramref name="k"/> most probable classes, most probable first.</summary>
    public ClassScore[] TopK(float[] probabilities, int k)
    {
        k = Math.Clamp(k, 1, probabilities.Length);
        var best = new List<int>(k + 1);
        for (var i = 0; i < probabilities.Length; i++)
        {
            var at = best.Count;
            while (at > 0 && probabilities[best[at - 1]] < probabilities[i])
            {
                at--;
            }

            if (at < k)
            {
                best.Insert(at, i);
                if (best.Count > k)
                {
                    best.RemoveAt(k);
                }
            }
        }

        return best.Select(i => new ClassScore(Model.Labels[i], i, probabilities[i])).ToArray();
    }

    public void Dispose()
    {
        // Waiting runs finish first: the session must outlive them.
        _batcher?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
        _session?.Dispose();
        _runOptions.Dispose();
    }
}
