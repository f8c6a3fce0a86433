using System.Text.RegularExpressions;

namespace Classifier.Grains.Interfaces;

/// <summary>The rules a request's model name and <c>top_k</c> follow, in one place for the gateway (which answers first) and the silo (which owns the model).</summary>
public static partial class RequestRules
{
    /// <summary>Model names double as folder names, URL segments and grain-key parts, so they stay plain.</summary>
    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}$")]
    public static partial Regex ModelNamePattern();

    public static bool IsModelName(string name) => ModelNamePattern().IsMatch(name);

    /// <summary>
    /// What is wrong with asking model <paramref name="model"/> for <paramref name="topK"/> classes (0 means its
    /// default), or null when nothing is.
    /// </summary>
    public static string? TopKProblem(int topK, string model, bool embedding, int labelCount) => topK switch
    {
        0 => null,
        < 0 => "Query parameter 'top_k' must be a whole number of at least 1.",
        _ when embedding => $"Model '{model}' answers embeddings, not classes; leave out query parameter 'top_k'.",
        _ when topK > labelCount => $"Query parameter 'top_k' is {topK}, but model '{model}' has only {labelCount} classes; use 1 to {labelCount}.",
        _ => null,
    };
}
