using System.Diagnostics;
using System.Globalization;
using System.Text;
using Classifier.Grains;
using Classifier.Grains.Inference;
using Classifier.Grains.Models;
using Microsoft.ML.OnnxRuntime;

namespace Classifier.LoadGenerator;

/// <summary>One ONNX Runtime configuration and what it achieved on preprocessed images.</summary>
public sealed record TuneResult(string Name, int Callers, int IntraOpThreads, string Optimization, bool Arena, int Batch, double Throughput, double MeanMs)
{
    public double Ratio { get; init; }
}

/// <summary>
/// Measures session options on one model in this process: concurrent callers x intra-op threads, graph
/// optimisation level, the CPU memory arena, and batch size where the model allows it. Inference only
/// (tensors are preprocessed beforehand), so the figures isolate what the options change. Configurations
/// are measured in turn over several rounds; each figure is the median, and its ratio the median of its
/// ratios to the first configuration (ONNX Runtime's defaults, one caller) in the same round.
/// </summary>
public static class Tune
{
    public static List<TuneResult> Run(string modelRepository, string model, int images, string device, int rounds = 5)
    {
        var version = ModelRepository.Load(modelRepository).Where(v => v.Model.Name == model).MaxBy(v => int.Parse(v.Version, CultureInfo.InvariantCulture))
            ?? throw new InvalidOperationException($"model {model} not in {modelRepository}");
        var definition = version.Model;
        var preprocessor = new ImagePreprocessor(definition, new ImageOptions());
        var tensors = Enumerable.Range(0, Math.Min(images, 64)).Select(i =>
        {
            var tensor = new float[definition.TensorLength];
            preprocessor.Preprocess(Soak.Image(2_000_000 + i), tensor);
            return tensor;
        }).ToArray();

        var cores = Environment.ProcessorCount;
        var candidates = new List<(int Callers, int Intra, GraphOptimizationLevel Level, bool Arena, int Batch)>
        {
            (1, 0, GraphOptimizationLevel.ORT_ENABLE_ALL, true, 1), // ONNX Runtime's defaults, one caller: the reference
            (cores, 0, GraphOptimizationLevel.ORT_ENABLE_ALL, true, 1), // the defaults with one caller per core (oversubscribed)
            (cores, 1, GraphOptimizationLevel.ORT_ENABLE_ALL, true, 1),
            (1, cores, GraphOptimizationLevel.ORT_ENABLE_ALL, true, 1),
            (Math.Max(1, cores / 2), 2, GraphOptimizationLevel.ORT_ENABLE_ALL, true, 1),
            (cores, 1, GraphOptimizationLevel.ORT_ENABLE_EXTENDED, true, 1),
            (cores, 1, GraphOptimizationLevel.ORT_ENABLE_BASIC, true, 1),
            (cores, 1, GraphOptimizationLevel.ORT_DISABLE_ALL, true, 1),
            (cores, 1, GraphOptimizationLevel.ORT_ENABLE_ALL, false, 1),
        };

        var maxBatch = MaxBatch(version.ModelPath);
        foreach (var batch in new[] { 4, 16 }.Where(b => b <= maxBatch))
        {
            candidates.Add((1, cores, GraphOptimizationLevel.ORT_ENABLE_ALL, true, batch));
            candidates.Add((cores, 1, GraphOptimizationLevel.ORT_ENABLE_ALL, true, batch));
        }

        // Every configuration gets its own session up front; then rounds measure each in turn, so a noisy
        // neighbour slows all of them alike, and the ratio to the reference is taken within each round.
        var configurations = candidates.Distinct().Select(c => new Configuration(c.Callers, c.Intra, c.Level, c.Arena, c.Batch, version.ModelPath, definition, device)).ToList();
        try
        {
            var throughputs = configurations.Select(_ => new List<double>()).ToArray();
            var ratios = configurations.Select(_ => new List<double>()).ToArray();
            for (var round = 0; round < rounds; round++)
            {
                var reference = 0.0;
                for (var c = 0; c < configurations.Count; c++)
                {
                    var throughput = configurations[c].Measure(tensors, images);
                    reference = c == 0 ? throughput : reference;
                    throughputs[c].Add(throughput);
                    ratios[c].Add(throughput / reference);
                }
            }

            return configurations.Select((c, i) => new TuneResult(c.Name, c.Callers, c.Intra, Level(c.Level), c.Arena, c.Batch, Steady.Median(throughputs[i]), 1000.0 * c.Callers / Steady.Median(throughputs[i]) * c.Batch)
            {
                Ratio = Steady.Median(ratios[i]),
            }).ToList();
        }
        finally
        {
            configurations.ForEach(c => c.Dispose());
        }
    }


    private sealed class Configuration : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly RunOptions _runOptions = new();
        private readonly ModelDefinition _model;

        public Configuration(int callers, int intra, GraphOptimizationLevel level, bool arena, int batch, string modelPath, ModelDefinition model, string device)
        {
            (Callers, Intra, Level, Arena, Batch, _model) = (callers, intra, level, arena, batch, model);
            using var options = new Microsoft.ML.OnnxRuntime.SessionOptions
            {
                GraphOptimizationLevel = level,
                IntraOpNumThreads = intra,
                EnableCpuMemArena = arena,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            };
            if (device == "cuda")
            {
                options.AppendExecutionProvider_CUDA(0);
            }

            _session = new InferenceSession(modelPath, options);
            Name = string.Create(CultureInfo.InvariantCulture,
                $"{callers} caller(s) x {(intra == 0 ? "default" : intra.ToString(CultureInfo.InvariantCulture))} intra-op threads, {Tune.Level(level)}, arena {(arena ? "on" : "off")}, batch {batch}");
        }

        public int Callers { get; }

        public int Intra { get; }

        public GraphOptimizationLevel Level { get; }

        public bool Arena { get; }

        public int Batch { get; }

        public string Name { get; }

        /// <summary>Images per second over about <paramref name="images"/> images, after one warm-up run.</summary>
        public double Measure(float[][] tensors, int images)
        {
            RunOnce(new float[_model.TensorLength * Batch], 0);
            var runs = Math.Max(Callers, images / Batch);
            var next = -1;
            var clock = Stopwatch.StartNew();
            Parallel.For(0, Callers, new ParallelOptions { MaxDegreeOfParallelism = Callers }, _ =>
            {
                var buffer = new float[_model.TensorLength * Batch];
                int i;
                while ((i = Interlocked.Increment(ref next)) < runs)
                {
                    RunOnce(buffer, i * Batch);
                }
            });
            return runs * Batch / clock.Elapsed.TotalSeconds;

            void RunOnce(float[] buffer, int at)
            {
                for (var j = 0; j < Batch; j++)
                {
                    tensors[(at + j) % tensors.Length].CopyTo(buffer, j * _model.TensorLength);
                }

                using var value = OrtValue.CreateTensorValueFromMemory(buffer, _model.TensorShape(Batch));
                using var output = _session.Run(_runOptions, [_model.InputName], [value], [_model.OutputName]);
            }
        }

        public void Dispose()
        {
            _session.Dispose();
            _runOptions.Dispose();
        }
    }

    private static int MaxBatch(string modelPath)
    {
        using var session = new InferenceSession(modelPath);
        var first = session.InputMetadata.Values.First().Dimensions[0];
        return first > 0 ? first : int.MaxValue;
    }

    internal static string Level(GraphOptimizationLevel level) => level switch
    {
        GraphOptimizationLevel.ORT_ENABLE_ALL => "optimisation all",
        GraphOptimizationLevel.ORT_ENABLE_EXTENDED => "optimisation extended",
        GraphOptimizationLevel.ORT_ENABLE_BASIC => "optimisation basic",
        _ => "optimisation off",
    };

    public static string Markdown(IEnumerable<TuneResult> results, string title)
    {
        var text = new StringBuilder()
            .AppendLine($"### {title}")
            .AppendLine()
            .AppendLine("| configuration | img/s (median) | ms per run | x ONNX Runtime defaults, 1 caller (median of rounds) |")
            .AppendLine("|---|---|---|---|");
        foreach (var r in results)
        {
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {r.Name} | {r.Throughput:F1} | {r.MeanMs:F2} | {r.Ratio:F2} |"));
        }

        return text.ToString();
    }
}
