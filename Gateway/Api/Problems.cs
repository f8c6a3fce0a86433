using Classifier.Grains.Interfaces;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Classifier.Gateway.Api;

/// <summary>RFC 7807 answers whose detail says what to change.</summary>
public static class Problems
{
    public static ProblemHttpResult Of(int status, string detail) => TypedResults.Problem(
        detail: detail,
        statusCode: status,
        title: status switch
        {
            400 => "Bad request",
            401 => "Unauthorized",
            404 => "Not found",
            408 => "Request timeout",
            413 => "Image too large",
            415 => "Unsupported media type",
            422 => "Image too costly to decode",
            429 => "Too many requests",
            503 => "Service unavailable",
            _ => null,
        });

    public static int StatusOf(PredictionErrorKind kind) => kind switch
    {
        PredictionErrorKind.InvalidImage => StatusCodes.Status400BadRequest,
        PredictionErrorKind.BadParameter => StatusCodes.Status400BadRequest,
        PredictionErrorKind.UnsupportedFormat => StatusCodes.Status415UnsupportedMediaType,
        PredictionErrorKind.ImageTooLarge => StatusCodes.Status413PayloadTooLarge,
        PredictionErrorKind.ModelNotFound => StatusCodes.Status404NotFound,
        PredictionErrorKind.TooComplex => StatusCodes.Status422UnprocessableEntity,
        PredictionErrorKind.Throttled or PredictionErrorKind.Overloaded => StatusCodes.Status429TooManyRequests,
        PredictionErrorKind.Cancelled => StatusCodes.Status499ClientClosedRequest,
        _ => StatusCodes.Status503ServiceUnavailable,
    };

    /// <summary>Seconds a client is asked to wait after a 503 that says nothing more specific.</summary>
    public const int DefaultRetryAfterSeconds = 2;

    /// <summary>The problem for a silo's error; a 503 also sets <c>Retry-After</c> on <paramref name="response"/>.</summary>
    public static ProblemHttpResult Of(PredictionError error, HttpResponse response)
    {
        var status = StatusOf(error.Kind);
        if (status is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status429TooManyRequests)
        {
            RetryAfter(response, error.RetryAfterSeconds);
        }

        return Of(status, error.Message);
    }

    /// <summary>A 503 with <c>Retry-After</c>: every refusal for load or availability says when to come back.</summary>
    public static ProblemHttpResult Unavailable(HttpResponse response, string detail, int retryAfterSeconds = DefaultRetryAfterSeconds)
    {
        RetryAfter(response, retryAfterSeconds);
        return Of(StatusCodes.Status503ServiceUnavailable, detail);
    }

    public static void RetryAfter(HttpResponse response, int seconds) =>
        response.Headers.RetryAfter = Math.Max(1, seconds > 0 ? seconds : DefaultRetryAfterSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static ProblemHttpResult NoSilo(HttpResponse response) => Unavailable(response,
        "No silo could serve the prediction (the cluster is unreachable or restarting); retry shortly.");
}
