using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace Classifier.Grains.Inference;

/// <summary>
/// One model version's ONNX Runtime session and everything that turns its raw output into an answer: softmax or L2
/// normalisation per image, top-k with labels. Like a Triton backend it owns <c>Run</c> (thread-safe: the
/// scheduler's threads call it at once) and knows nothing of queues or grains.
/// </summary>
public sealed class ModelBackend : IDisposable
{
    private readonly ModelDefinition _model;
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;

    private ModelBackend(ModelDefinition model, InferenceSession session, string provider, int maxBatchSize)
    {
        _model = model;
        _session = session;
        Provider = provider;
        MaxBatchSize = maxBatchSize;
        _inputNames = [model.InputName];
        _outputNames = [model.OutputName];
    }

    /// <summary><c>CUDA</c> or <c>CPU</c>.</summary>
    public string Provider { get; }

    /// <summary>The largest batch the model file accepts: 1 where it fixes the batch dimension.</summary>
    public int MaxBatchSize { get; }

    /// <summary>
    /// Creates the session on the configured device and checks the model's inputs and outputs against its config.
    /// Throws <see cref="FileNotFoundException"/>, <see cref="OnnxRuntimeException"/> or <see cref="InvalidOperationException"/>
    /// (with a message naming the config field) when the model cannot serve.
    /// </summary>
    public static ModelBackend Create(ModelVersionDefinition definition, ModelsOptions options, ILogger logger)
    {
        if (!File.Exists(definition.ModelPath))
        {
            throw new FileNotFoundException($"{definition.ModelPath} does not exist; put the model's ONNX file there.", definition.ModelPath);
        }

        var (session, provider) = CreateSession(definition, options, logger);
        try
        {
            return new ModelBackend(definition.Model, session, provider, CheckSignature(definition.Model, session));
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static (InferenceSession, string) CreateSession(ModelVersionDefinition definition, ModelsOptions options, ILogger logger)
    {
        var device = options.Device;
        if (device is "cuda" or "auto")
        {
            try
            {
                using var gpuOptions = NewSessionOptions(definition.Model, options);
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

                return (new InferenceSession(definition.ModelPath, gpuOptions), "CUDA");
            }
            catch (OnnxRuntimeException e) when (device == "auto")
            {
                logger.LogInformation("CUDA is not usable for {Model} ({Reason}); running on CPU", definition.Model.Name, FirstLine(e.Message));
            }
            catch (OnnxRuntimeException e)
            {
                throw new InvalidOperationException(
                    $"Models:Device is 'cuda' but CUDA could not be used ({FirstLine(e.Message)}). Install the NVIDIA driver, CUDA 13 and cuDNN 9, or set Models:Device to 'auto' or 'cpu'.", e);
            }
        }

        using var cpuOptions = NewSessionOptions(definition.Model, options);
        return (new InferenceSession(definition.ModelPath, cpuOptions), "CPU");
    }

    private static Microsoft.ML.OnnxRuntime.SessionOptions NewSessionOptions(ModelDefinition model, ModelsOptions options) => new()
    {
        // Measured (README, Performance: session options): ENABLE_ALL (with its layout optimisations for
        // CPU convolutions) beat BASIC and EXTENDED clearly; the memory arena made no measurable difference.
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        IntraOpNumThreads = IntraOpThreads(options.IntraOpThreads, model.Instances, Environment.ProcessorCount),
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

    private static int CheckSignature(ModelDefinition m, InferenceSession session)
    {
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

        return dims[0] > 0 ? dims[0] : int.MaxValue;
    }

    private static string Shape(IEnumerable<long> dims) => $"[{string.Join(", ", dims)}]";

    /// <summary>Runs <paramref name="count"/> images laid out one after another in <paramref name="tensor"/>; answers their probabilities concatenated.</summary>
    public float[] Run(float[] tensor, int count)
    {
        var memory = new Memory<float>(tensor, 0, _model.TensorLength * count);
        using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory, _model.TensorShape(count));
        using var outputs = _session.Run(_runOptions, _inputNames, [input], _outputNames);
        var result = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        if (_model.Output == OutputKind.Logits)
        {
            Softmax(result, result.Length / count);
        }
        else if (_model.NormalizeEmbedding)
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

    /// <summary>The <paramref name="k"/> most probable classes of <paramref name="model"/>, most probable first, with their labels.</summary>
    public static ClassScore[] TopK(ModelDefinition model, float[] probabilities, int k)
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

        return best.Select(i => new ClassScore(model.Labels[i], i, probabilities[i])).ToArray();
    }

    public void Dispose()
    {
        _session.Dispose();
        _runOptions.Dispose();
    }
}
