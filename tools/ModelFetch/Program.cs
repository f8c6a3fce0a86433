using System.Reflection;
using System.Security.Cryptography;
using Classifier.ModelFetch;
using Microsoft.ML.OnnxRuntime;

// Usage: ModelFetch resnet18 OUT_DIR
//        ModelFetch symbolic-batch MODEL.onnx OUT.onnx   (the same rewrite, of a file already here)
// Writes OUT_DIR/model.onnx (ML.NET's ResNet-18 featurizer, checksum-verified) and OUT_DIR/mean-image.f32,
// the mean image its preprocessing subtracts, read out of the package's ResNetPreprocess.onnx by running
// it on a black image (its output is then minus the mean image, in BGR planes), and OUT_DIR/model-dynamic.onnx,
// the same model with a symbolic batch dimension (the file fixes it at 1), for dynamic batching.
if (args is ["symbolic-batch", var source, var target])
{
    // On a borrowed GPU host (scripts/lib/bundle.sh): model-dynamic.onnx is made there from model.onnx rather than
    // carried, since the device tool carries 64 MiB a call and each file is 64 MB.
    try
    {
        File.WriteAllBytes(target + ".tmp", SymbolicBatch.Rewrite(File.ReadAllBytes(source)));
    }
    catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"error: {source} could not be given a symbolic batch dimension: {e.Message}");
        return 1;
    }

    File.Move(target + ".tmp", target, overwrite: true);
    return 0;
}

if (args is not ["resnet18", var outDir])
{
    Console.Error.WriteLine("usage: ModelFetch resnet18 OUT_DIR");
    return 2;
}

const string Package = "microsoft.ml.dnnimagefeaturizer.resnet18/0.23.1/";
const string ModelSha256 = "e2552f19db2dfdb01b3669537b6a0f1b44da38d18279535492ed5dfc2ef1ff8f";
const string PreprocessSha256 = "84bf8def78d0befaa3f6e73745d57d7016c6a192ead76f79686bd438c1047004";

var packageRoot = Assembly.GetEntryAssembly()!.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "NuGetPackageRoot").Value!;
var models = Path.Combine(packageRoot, Package, "tools", "DnnImageModels");
var model = Verified(Path.Combine(models, "ResNet18Onnx", "ResNet18.onnx"), ModelSha256);
var preprocess = Verified(Path.Combine(models, "ResNetPrepOnnx", "ResNetPreprocess.onnx"), PreprocessSha256);
if (model is null || preprocess is null)
{
    return 1;
}

Directory.CreateDirectory(outDir);
using (var session = new InferenceSession(preprocess))
{
    var input = session.InputMetadata.Single();
    var shape = input.Value.Dimensions.Select(d => (long)d).ToArray();
    var length = (int)shape.Aggregate(1L, (a, b) => a * b);
    using var black = OrtValue.CreateTensorValueFromMemory(new float[length], shape);
    using var runOptions = new RunOptions();
    using var outputs = session.Run(runOptions, [input.Key], [black], [session.OutputMetadata.Keys.Single()]);
    var meanImage = outputs[0].GetTensorDataAsSpan<float>();
    var bytes = new byte[meanImage.Length * sizeof(float)];
    for (var i = 0; i < meanImage.Length; i++)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), -meanImage[i]);
    }

    File.WriteAllBytes(Path.Combine(outDir, "mean-image.f32"), bytes);
}

File.Copy(model, Path.Combine(outDir, "model.onnx"), overwrite: true);

// No node of its graph bakes in batch 1 (convolutions, batch norms, pools, adds only: no Reshape), so making the
// first dimension of its input, output and recorded intermediate shapes symbolic is enough; a test checks a batch
// of 4 against 4 single runs of model.onnx (Resnet18DynamicBatchTests).
var dynamicPath = Path.Combine(outDir, "model-dynamic.onnx");
File.WriteAllBytes(dynamicPath + ".tmp", SymbolicBatch.Rewrite(File.ReadAllBytes(model)));
File.Move(dynamicPath + ".tmp", dynamicPath, overwrite: true);

// The package's own preprocessing, kept so that tests can check ours against it.
File.Copy(preprocess, Path.Combine(outDir, "ResNetPreprocess.onnx"), overwrite: true);
Console.Error.WriteLine($"resnet18: model.onnx, model-dynamic.onnx, mean-image.f32 and ResNetPreprocess.onnx written to {outDir}");
return 0;

static string? Verified(string path, string sha256)
{
    if (!File.Exists(path))
    {
        Console.Error.WriteLine($"error: {path} is missing; the NuGet restore of {Package.TrimEnd('/')} did not deliver it.");
        return null;
    }

    using var stream = File.OpenRead(path);
    var actual = Convert.ToHexStringLower(SHA256.HashData(stream));
    if (actual != sha256)
    {
        Console.Error.WriteLine($"error: {path} has sha256 {actual}, expected {sha256}; refusing to use it.");
        return null;
    }

    return path;
}
