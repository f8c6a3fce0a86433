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
