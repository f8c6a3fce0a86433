using System.Globalization;

namespace Classifier.Grains.Models;

/// <summary>Which kind of <see cref="VersionPolicy"/>.</summary>
public enum VersionPolicyKind
{
    All,
    Latest,
    Specific,
}

/// <summary>
/// Which of a model's version folders are served, as Triton's <c>version_policy</c>: all of them, the latest N
/// (highest numbers), or a given list. The default is all: a request that names a version keeps being answered
/// while its folder exists, where Triton's default (the latest one) would turn it into a 404 as soon as a newer
/// folder appeared.
/// </summary>
public sealed record VersionPolicy(VersionPolicyKind Kind, int NumVersions = 0, int[]? Versions = null)
{
    public static readonly VersionPolicy All = new(VersionPolicyKind.All);

    /// <summary>The served versions among <paramref name="available"/> (version folder names), in ascending order.</summary>
    public IReadOnlyList<string> Select(IEnumerable<string> available)
    {
        var ordered = available.OrderBy(v => long.Parse(v, CultureInfo.InvariantCulture)).ToList();
        return Kind switch
        {
            VersionPolicyKind.Latest => ordered.Skip(Math.Max(0, ordered.Count - NumVersions)).ToList(),
            VersionPolicyKind.Specific => ordered.Where(v => Versions!.Contains(int.Parse(v, CultureInfo.InvariantCulture))).ToList(),
            _ => ordered,
        };
    }

    /// <summary>As config.json writes it, for <c>/models</c> and logs.</summary>
    public override string ToString() => Kind switch
    {
        VersionPolicyKind.Latest => $"latest {NumVersions}",
        VersionPolicyKind.Specific => $"specific [{string.Join(", ", Versions!)}]",
        _ => "all",
    };
}
