using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Classifier.Grains.Interfaces;

namespace Classifier.Grains.Models;

/// <summary>A model repository on disk could not be read; the message names the file and the field.</summary>
public sealed class ModelConfigException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Reads a Triton-style model repository: one folder per model holding <c>config.json</c> and one
/// numbered folder per version holding <c>model.onnx</c>.
/// </summary>
public static partial class ModelRepository
{
    public const string ConfigFileName = "config.json";
    public const string ModelFileName = "model.onnx";

    /// <summary>Model folder names double as URL segments and grain-key parts, so they stay plain (<see cref="RequestRules"/>).</summary>
    public static Regex ModelNamePattern() => RequestRules.ModelNamePattern();

    /// <summary>Reads every model in <paramref name="root"/>; throws <see cref="ModelConfigException"/> on the first bad config.</summary>
    public static IReadOnlyList<ModelVersionDefinition> Load(string root)
    {
        var fullRoot = Path.GetFullPath(root);
        if (!Directory.Exists(fullRoot))
        {
            throw new ModelConfigException($"Model repository '{fullRoot}' does not exist. Set Models:Repository (env Models__Repository) to a folder holding one sub-folder per model.");
        }

        var versions = new List<ModelVersionDefinition>();
        foreach (var modelDir in Directory.EnumerateDirectories(fullRoot).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(modelDir);
            if (name.StartsWith('.'))
            {
                continue;
            }

            versions.AddRange(ReadModel(modelDir));
        }

        if (versions.Count == 0)
        {
            throw new ModelConfigException($"Model repository '{fullRoot}' holds no model folder.");
        }

        return versions;
    }

    /// <summary>
    /// Reads one model's folder anew: its config.json and the version folders its version policy selects. Throws
    /// <see cref="ModelConfigException"/> naming the file and field when the folder cannot be served.
    /// </summary>
    public static IReadOnlyList<ModelVersionDefinition> LoadModel(string root, string name)
    {
        var modelDir = Path.Combine(Path.GetFullPath(root), name);
        if (!ModelNamePattern().IsMatch(name) || !Directory.Exists(modelDir))
        {
            throw new ModelConfigException($"The model repository has no folder '{name}'.");
        }

        return ReadModel(modelDir);
    }

    private static IReadOnlyList<ModelVersionDefinition> ReadModel(string modelDir)
    {
        var name = Path.GetFileName(modelDir);
        if (!ModelNamePattern().IsMatch(name))
        {
            throw new ModelConfigException($"{modelDir}: model folder name '{name}' must be lower-case letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit.");
        }

        var definition = ReadConfig(Path.Combine(modelDir, ConfigFileName), name);
        var found = Directory.EnumerateDirectories(modelDir)
            .Select(Path.GetFileName)
            .Where(v => v is not null && int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Select(v => v!)
            .OrderBy(v => int.Parse(v, CultureInfo.InvariantCulture))
            .ToList();
        if (found.Count == 0)
        {
            throw new ModelConfigException($"{modelDir}: no version folder. Put the model at {Path.Combine(modelDir, "1", ModelFileName)}.");
        }

        var served = definition.VersionPolicy.Select(found);
        if (definition.VersionPolicy.Kind == VersionPolicyKind.Specific && served.Count < definition.VersionPolicy.Versions!.Length)
        {
            var missing = definition.VersionPolicy.Versions.Select(v => v.ToString(CultureInfo.InvariantCulture)).Except(found);
            throw new ModelConfigException($"{Path.Combine(modelDir, ConfigFileName)}: field 'versionPolicy.specific.versions' lists {string.Join(", ", missing)}, but {modelDir} has no such version folder.");
        }

        return [.. served.Select(v => new ModelVersionDefinition(definition, v, Path.Combine(modelDir, v, ModelFileName)))];
    }

    /// <summary>Reads and validates one config.json.</summary>
    public static ModelDefinition ReadConfig(string configPath, string modelName)
    {
        if (!File.Exists(configPath))
        {
            throw new ModelConfigException($"{configPath}: file not found. Each model folder needs a config.json (see the README's 'Adding your own model').");
        }

        ModelConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<ModelConfig>(File.ReadAllText(configPath), ModelConfig.JsonOptions);
        }
        catch (JsonException e)
        {
            var where = e.Path is null ? "" : $" at '{e.Path.TrimStart('$', '.')}'";
            throw new ModelConfigException($"{configPath}: invalid JSON{where} (line {e.LineNumber + 1}): {e.Message}", e);
        }

        if (config is null)
        {
            throw new ModelConfigException($"{configPath}: the file is empty or 'null'.");
        }

        return Validate(config, configPath, modelName);
    }

    private static ModelDefinition Validate(ModelConfig c, string file, string name)
    {
        ModelConfigException Bad(string field, string problem) => new($"{file}: field '{field}' {problem}");

        var input = c.Input ?? throw Bad("input", "is missing: give the input tensor's name, shape and preprocessing.");
        if (string.IsNullOrWhiteSpace(input.Name))
        {
            throw Bad("input.name", "is missing: give the ONNX input name (for example \"input\" or \"x\").");
        }

        var nhwc = input.Layout.ToUpperInvariant() switch
        {
            "NCHW" => false,
            "NHWC" => true,
            _ => throw Bad("input.layout", $"is '{input.Layout}': use \"NCHW\" or \"NHWC\"."),
        };

        if (input.Shape is not { Length: 3 } shape || shape.Any(d => d <= 0))
        {
            throw Bad("input.shape", "must be three positive numbers without the batch dimension: [channels, height, width] for NCHW, [height, width, channels] for NHWC.");
        }

        var (channels, height, width) = nhwc ? (shape[2], shape[0], shape[1]) : (shape[0], shape[1], shape[2]);
        if (height > 4096 || width > 4096)
        {
            throw Bad("input.shape", $"asks for {height}x{width}; at most 4096x4096 is supported.");
        }

        var color = input.ColorOrder.ToUpperInvariant() switch
        {
            "RGB" => ColorOrder.Rgb,
            "BGR" => ColorOrder.Bgr,
            "GRAY" or "GREY" => ColorOrder.Gray,
            _ => throw Bad("input.colorOrder", $"is '{input.ColorOrder}': use \"RGB\", \"BGR\" or \"GRAY\"."),
        };
        var expectedChannels = color == ColorOrder.Gray ? 1 : 3;
        if (channels != expectedChannels)
        {
            throw Bad("input.shape", $"has {channels} channels, but colorOrder {input.ColorOrder} needs {expectedChannels}.");
        }

        var resize = input.Resize.ToLowerInvariant() switch
        {
            "center-crop" => ResizeMode.CenterCrop,
            "keep-aspect-pad" => ResizeMode.KeepAspectPad,
            "stretch" => ResizeMode.Stretch,
            _ => throw Bad("input.resize", $"is '{input.Resize}': use \"center-crop\", \"keep-aspect-pad\" or \"stretch\"."),
        };

        var shorter = input.ResizeShorterSide ?? Math.Min(height, width);
        if (shorter < Math.Min(height, width) || shorter > 8192)
        {
            throw Bad("input.resizeShorterSide", $"is {shorter}: it must be at least the crop size ({Math.Min(height, width)}) and at most 8192.");
        }

        if (!float.IsFinite(input.Scale) || input.Scale == 0)
        {
            throw Bad("input.scale", "must be a non-zero number (1/255 = 0.00392156862745098 maps pixels to 0..1).");
        }

        var mean = PerChannel(input.Mean, channels, "input.mean", Bad);
        var std = PerChannel(input.Std, channels, "input.std", Bad);
        if (std.Any(s => s == 0 || !float.IsFinite(s)))
        {
            throw Bad("input.std", "must not contain 0.");
        }

        var output = c.Output ?? throw Bad("output", "is missing: give the output tensor's name and type.");
        if (string.IsNullOrWhiteSpace(output.Name))
        {
            throw Bad("output.name", "is missing: give the ONNX output name.");
        }

        var kind = output.Type.ToLowerInvariant() switch
        {
            "logits" => OutputKind.Logits,
            "probabilities" => OutputKind.Probabilities,
            "embedding" => OutputKind.Embedding,
            _ => throw Bad("output.type", $"is '{output.Type}': use \"logits\" (softmax is applied), \"probabilities\" or \"embedding\" (a feature vector)."),
        };

        string[] labels;
        int topK;
        if (kind == OutputKind.Embedding)
        {
            if (c.Labels is not null || c.LabelsFile is not null || c.TopK is not null)
            {
                throw Bad(c.TopK is not null ? "topK" : c.Labels is not null ? "labels" : "labelsFile",
                    "does not apply to an embedding model, whose answer is the whole vector: remove it, or set output.type to \"logits\" or \"probabilities\".");
            }

            (labels, topK) = ([], 0);
        }
        else
        {
            if (output.Normalize)
            {
                throw Bad("output.normalize", "applies only to output.type \"embedding\"; class probabilities are already normalised.");
            }

            labels = ReadLabels(c, file, Bad);
            topK = c.TopK ?? Math.Min(5, labels.Length);
            if (topK < 1 || topK > labels.Length)
            {
                throw Bad("topK", $"is {topK}: it must be between 1 and the number of labels ({labels.Length}).");
            }
        }

        var meanImage = input.MeanImageFile is null ? null : ReadMeanImage(input.MeanImageFile, file, channels * height * width, resize, Bad);

        var batching = c.Batching ?? new BatchingConfig();
        if (batching.MaxBatchSize is < 1 or > 1024)
        {
            throw Bad("batching.maxBatchSize", $"is {batching.MaxBatchSize}: use 1 (no batching) to 1024.");
        }

        if (batching.MaxQueueDelayMicroseconds is < 0 or > 1_000_000)
        {
            throw Bad("batching.maxQueueDelayMicroseconds", $"is {batching.MaxQueueDelayMicroseconds}: use 0 to 1000000 (one second).");
        }

        var maxQueueSize = batching.MaxQueueSize ?? ModelDefinition.DefaultMaxQueueSize;
        if (maxQueueSize is < 1 or > 1_000_000)
        {
            throw Bad("batching.maxQueueSize", $"is {maxQueueSize}: use 1 to 1000000 images.");
        }

        var queueTimeout = batching.QueueTimeoutMicroseconds ?? (int)ModelDefinition.DefaultQueueTimeout.TotalMicroseconds;
        if (queueTimeout is < 1_000 or > 60_000_000)
        {
            throw Bad("batching.queueTimeoutMicroseconds", $"is {queueTimeout}: use 1000 (1 ms) to 60000000 (one minute).");
        }

        var instances = batching.Instances ?? (batching.MaxBatchSize == 1 ? Environment.ProcessorCount : 1);
        if (instances is < 1 or > 256)
        {
            throw Bad("batching.instances", $"is {instances}: use 1 to 256.");
        }

        return new ModelDefinition(
            name, c.Description, input.Name, nhwc, channels, height, width, color, resize, shorter,
            input.Scale, mean, std, input.PadValue, output.Name, kind, labels, topK,
            batching.MaxBatchSize, TimeSpan.FromMicroseconds(batching.MaxQueueDelayMicroseconds), instances,
            output.Normalize, meanImage, batching.PadToMaxBatch, maxQueueSize, TimeSpan.FromMicroseconds(queueTimeout))
        {
            VersionPolicy = ReadVersionPolicy(c.VersionPolicy, Bad),
        };
    }

    private static VersionPolicy ReadVersionPolicy(VersionPolicyConfig? policy, Func<string, string, ModelConfigException> bad)
    {
        if (policy is null)
        {
            return VersionPolicy.All;
        }

        var given = (policy.All is null ? 0 : 1) + (policy.Latest is null ? 0 : 1) + (policy.Specific is null ? 0 : 1);
        if (given != 1)
        {
            throw bad("versionPolicy", "must hold exactly one of {\"all\": {}}, {\"latest\": {\"numVersions\": N}} or {\"specific\": {\"versions\": [1, 2]}}.");
        }

        if (policy.Latest is { } latest)
        {
            return latest.NumVersions is >= 1 and <= 1000
                ? new VersionPolicy(VersionPolicyKind.Latest, latest.NumVersions)
                : throw bad("versionPolicy.latest.numVersions", $"is {latest.NumVersions}: use 1 or more.");
        }

        if (policy.Specific is { } specific)
        {
            return specific.Versions is { Length: > 0 } versions && versions.All(v => v >= 0)
                ? new VersionPolicy(VersionPolicyKind.Specific, Versions: [.. versions.Distinct().Order()])
                : throw bad("versionPolicy.specific.versions", "must list one or more version folder numbers, for example [1, 3].");
        }

        return VersionPolicy.All;
    }

    private static float[] PerChannel(float[]? values, int channels, string field, Func<string, string, ModelConfigException> bad)
    {
        if (values is null || (values.Length != 1 && values.Length != channels))
        {
            throw bad(field, $"must hold 1 or {channels} numbers (one per channel, in the model's channel order).");
        }

        return values.Length == channels ? values : Enumerable.Repeat(values[0], channels).ToArray();
    }

    /// <summary>A file named by config.json, which must lie inside the model folder.</summary>
    private static string FileBeside(string name, string configFile, string field, Func<string, string, ModelConfigException> bad)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(configFile))!;
        var path = Path.GetFullPath(Path.Combine(dir, name));
        if (!path.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw bad(field, $"'{name}' points outside the model folder.");
        }

        if (!File.Exists(path))
        {
            throw bad(field, $"names '{path}', which does not exist.");
        }

        return path;
    }

    private static float[] ReadMeanImage(string name, string configFile, int length, ResizeMode resize, Func<string, string, ModelConfigException> bad)
    {
        if (resize == ResizeMode.KeepAspectPad)
        {
            throw bad("input.meanImageFile", "cannot be used with resize \"keep-aspect-pad\": padding has no pixels to subtract a mean from; use \"center-crop\" or \"stretch\".");
        }

        var path = FileBeside(name, configFile, "input.meanImageFile", bad);
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length != length * sizeof(float))
        {
            throw bad("input.meanImageFile", $"'{name}' holds {bytes.Length} bytes, but the input shape needs {length} float32 values ({length * sizeof(float)} bytes, little-endian, in the tensor's layout).");
        }

        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * sizeof(float)));
        }

        if (values.Any(v => !float.IsFinite(v)))
        {
            throw bad("input.meanImageFile", $"'{name}' contains a value that is not a finite number.");
        }

        return values;
    }

    private static string[] ReadLabels(ModelConfig c, string file, Func<string, string, ModelConfigException> bad)
    {
        if (c.Labels is not null && c.LabelsFile is not null)
        {
            throw bad("labels", "and 'labelsFile' are both given: keep one.");
        }

        string[] labels;
        if (c.LabelsFile is not null)
        {
            var path = FileBeside(c.LabelsFile, file, "labelsFile", bad);
            labels = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        }
        else
        {
            labels = c.Labels ?? throw bad("labels", "is missing: give the class labels inline (\"labels\": [...]) or in a file (\"labelsFile\": \"labels.txt\").");
        }

        if (labels.Length == 0)
        {
            throw bad(c.LabelsFile is null ? "labels" : "labelsFile", "holds no label.");
        }

        return labels;
    }
}
