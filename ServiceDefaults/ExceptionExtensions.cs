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
}
