using Microsoft.Extensions.Options;

namespace Classifier.ServiceDefaults;

/// <summary>Finds the cause a person can act on inside the exceptions a failed host start wraps.</summary>
public static class ExceptionExtensions
{
    /// <summary>The first exception of type <typeparamref name="T"/> in <paramref name="e"/>'s inner chain, aggregates included.</summary>
    public static T? FindInner<T>(this Exception e)
        where T : Exception
    {
        return e switch
        {
            T match => match,
            AggregateException aggregate => aggregate.InnerExceptions.Select(i => i.FindInner<T>()).FirstOrDefault(i => i is not null),
            { InnerException: { } inner } => inner.FindInner<T>(),
            _ => null,
        };
    }

    /// <summary>
    /// What is wrong with the settings when that is why <paramref name="e"/> happened: a failed validation, or a
    /// value the configuration binder could not convert (a mistyped number, or true/false). Null otherwise.
    /// </summary>
    public static string? ConfigurationError(this Exception e) =>
        e.FindInner<OptionsValidationException>() is { } invalid ? string.Join(" ", invalid.Failures)
        : e.FindInner<InvalidOperationException>() is { Message: var message } && message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal) ? message
        : null;
}
