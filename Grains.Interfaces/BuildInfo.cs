using System.Reflection;

namespace Classifier.Grains.Interfaces;

/// <summary>The version and commit a component was built from, for the <c>app_info</c> metric.</summary>
public static class BuildInfo
{
    /// <summary>Splits the informational version ("1.2.3+commit") that the SDK stamps from git.</summary>
    public static (string Version, string Build) Of(Assembly assembly)
    {
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        var parts = informational.Split('+', 2);
        return (parts[0], parts.Length > 1 ? parts[1][..Math.Min(12, parts[1].Length)] : "dev");
    }
}
