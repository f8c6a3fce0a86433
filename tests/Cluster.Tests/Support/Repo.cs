namespace Classifier.Tests.Support;

/// <summary>Paths inside the repository the tests run from.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Models => Path.Combine(Root, "models");

    public static string DefaultModelFile => Path.Combine(Models, "text-orientation", "1", "model.onnx");

    /// <summary>Fails with the command to run when the default model has not been fetched.</summary>
    public static void RequireDefaultModel()
    {
        if (!File.Exists(DefaultModelFile))
        {
            throw new InvalidOperationException($"{DefaultModelFile} is missing; run scripts/fetch-models.sh (test.sh does) before the tests.");
        }
    }

    /// <summary>Where <c>scripts/fetch-models.sh --no-install resnet18</c> leaves the optional ResNet-18 files.</summary>
    public static string Resnet18Cache => Path.Combine(Root, ".models", "resnet18");

    /// <summary>
    /// resnet18 with a symbolic batch dimension, which tools/ModelFetch writes beside model.onnx; fails with the
    /// command to run when it has not been fetched.
    /// </summary>
    public static string RequireResnet18Dynamic()
    {
        var file = Path.Combine(Resnet18Cache, "model-dynamic.onnx");
        if (!File.Exists(file))
        {
            throw new InvalidOperationException($"{Resnet18Cache} lacks model-dynamic.onnx; run scripts/fetch-models.sh --no-install resnet18 (test.sh does) before the tests.");
        }

        return file;
    }

    /// <summary>
    /// A fresh model repository holding resnet18 as <c>samples/models/resnet18</c> configures it (files linked, not
    /// copied); fails with the command to run when the model has not been fetched.
    /// </summary>
    /// <param name="modelFile">The fetched file to serve as version 1: <c>model-dynamic.onnx</c> for the batchable one.</param>
    public static string CreateResnet18Repository(string? into = null, string modelFile = "model.onnx")
    {
        var files = new[] { modelFile, "mean-image.f32" }.Select(f => Path.Combine(Resnet18Cache, f)).ToArray();
        if (files.Any(f => !File.Exists(f)))
        {
            throw new InvalidOperationException($"{Resnet18Cache} lacks {modelFile} or mean-image.f32; run scripts/fetch-models.sh --no-install resnet18 (test.sh does) before the tests.");
        }

        var repository = into ?? Directory.CreateTempSubdirectory("resnet18-repo-").FullName;
        var model = Path.Combine(repository, "resnet18");
        Directory.CreateDirectory(Path.Combine(model, "1"));
        File.Copy(Path.Combine(Root, "samples", "models", "resnet18", "config.json"), Path.Combine(model, "config.json"));
        File.CreateSymbolicLink(Path.Combine(model, "mean-image.f32"), files[1]);
        File.CreateSymbolicLink(Path.Combine(model, "1", "model.onnx"), files[0]);
        return repository;
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Cluster.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Cluster.sln not found above " + AppContext.BaseDirectory);
    }
}
