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

    /// <summary>A library's release number alone ("10.4.2"), whatever else its informational version carries.</summary>
    public static string VersionOf(Assembly assembly)
    {
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString() ?? "unknown";
        var end = informational.IndexOfAny(['+', ' ']);
        return (end < 0 ? informational : informational[..end]).TrimEnd('.');
    }
}
