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
            413 => "Image too large",
            415 => "Unsupported media type",
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
        _ => StatusCodes.Status503ServiceUnavailable,
    };

    public static ProblemHttpResult Of(PredictionError error) => Of(StatusOf(error.Kind), error.Message);

    public static ProblemHttpResult NoSilo() => Of(StatusCodes.Status503ServiceUnavailable,
        "No silo could serve the prediction (the cluster is unreachable or restarting); retry shortly.");
}
