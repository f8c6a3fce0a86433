using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Serialization;
using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Classifier.Gateway.Api;

/// <summary>One class of an answer.</summary>
public sealed record PredictionItem(string Label, int Index, float Probability);

/// <summary>Where the time went, in milliseconds.</summary>
public sealed record PredictionTimings(double PreprocessingMs, double InferenceMs, double TotalMs);

/// <summary>The answer to one image: the top classes, or for an embedding model the image's feature vector.</summary>
public sealed record PredictionResponse(
    string Model, string Version, PredictionItem[] Predictions, bool Cached, PredictionTimings Timings, string Silo, string Provider,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] float[]? Embedding = null);

/// <summary>One image's place in a batch answer: a result or a problem.</summary>
public sealed record BatchItem(int Index, string? FileName, PredictionResponse? Result, ProblemBody? Error);

/// <summary>The RFC 7807 fields of a per-image error inside a batch answer.</summary>
public sealed record ProblemBody(int Status, string Title, string Detail);

/// <summary>The answer to <c>POST /predict/batch</c>, in upload order.</summary>
public sealed record BatchResponse(BatchItem[] Results);

/// <summary><c>POST /predict</c> and <c>POST /predict/batch</c>.</summary>
public static class PredictionApi
{
    public static IEndpointRouteBuilder MapPredictionApi(this IEndpointRouteBuilder routes)
    {
        // Mapped without a group: a group's "" route renders its template as "/predict/", which would be the metric label.
        routes.MapPost("/predict", PredictAsync).WithTags("Predictions").RequireApiKey(routes);
        routes.MapPost("/predict/batch", PredictBatchAsync).WithTags("Predictions").RequireApiKey(routes);
        return routes;
    }

    /// <summary>Parsed query parameters shared by both endpoints.</summary>
    private readonly record struct Query(string Model, string? Version, int TopK, ProblemHttpResult? Problem);

    public static async Task<Results<JsonAnswer<PredictionResponse>, ProblemHttpResult>> PredictAsync(
        HttpRequest request, ClusterView cluster, PredictionRouter router, UploadBudget budget, IOptions<GatewayOptions> options, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var settings = options.Value;
        var (query, route, problem) = await ResolveAsync(request, cluster, settings, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var upload = await ImageUploads.ReadSingleAsync(request, settings.MaxImageBytes, new UploadReader(request.HttpContext, budget, settings));
        if (upload.Bytes is null)
        {
            return UploadProblem(request.HttpContext.Response, upload);
        }

        var reply = await router.PredictAsync(query.Model, route.Version!, upload.Bytes, query.TopK, route.ShardCount, cancellationToken, serving: route.Serving);
        return reply switch
        {
            { Prediction: { } p } => new JsonAnswer<PredictionResponse>(ToResponse(p, started), GatewayJson.Default.PredictionResponse),
            { Error: { } e } => Problems.Of(e, request.HttpContext.Response),
            _ => Problems.NoSilo(request.HttpContext.Response),
        };
    }

    public static async Task<Results<JsonAnswer<BatchResponse>, ProblemHttpResult>> PredictBatchAsync(
        HttpRequest request, ClusterView cluster, PredictionRouter router, UploadBudget budget, IOptions<GatewayOptions> options, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var (query, route, problem) = await ResolveAsync(request, cluster, settings, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var reader = new UploadReader(request.HttpContext, budget, settings);
        var (parts, uploadProblem) = await ImageUploads.ReadBatchAsync(request, settings.MaxImageBytes, settings.MaxBatchBytes, settings.MaxBatchImages, reader);
        if (uploadProblem is not null)
        {
            return UploadProblem(request.HttpContext.Response, uploadProblem);
        }

        var retryAfter = 0;
        var items = await Task.WhenAll(parts.Select(async (part, index) =>
        {
            var started = Stopwatch.GetTimestamp();
            if (part.Bytes is null)
            {
                return Item(index, part.FileName, part.Status, part.Problem!);
            }

            if (!reader.ReserveSend(part.Bytes.Length))
            {
                InterlockedMax(ref retryAfter, UploadReader.BusyRetryAfterSeconds);
                return Item(index, part.FileName, StatusCodes.Status503ServiceUnavailable, reader.BusyProblem(null).Problem!);
            }

            var reply = await router.PredictAsync(query.Model, route.Version!, part.Bytes, query.TopK, route.ShardCount, cancellationToken, serving: route.Serving);
            switch (reply)
            {
                case { Prediction: { } p }:
                    return new BatchItem(index, part.FileName, ToResponse(p, started), null);
                case { Error: { } e }:
                    var status = Problems.StatusOf(e.Kind);
                    if (status is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status429TooManyRequests)
                    {
                        InterlockedMax(ref retryAfter, e.RetryAfterSeconds > 0 ? e.RetryAfterSeconds : Problems.DefaultRetryAfterSeconds);
                    }

                    return Item(index, part.FileName, status, e.Message);
                default:
                    InterlockedMax(ref retryAfter, Problems.DefaultRetryAfterSeconds);
                    return Item(index, part.FileName, StatusCodes.Status503ServiceUnavailable, "No silo could serve this image; retry shortly.");
            }
        }));

        // Some images refused for load: the answer as a whole says when to retry them.
        if (retryAfter > 0)
        {
            Problems.RetryAfter(request.HttpContext.Response, retryAfter);
        }

        return new JsonAnswer<BatchResponse>(new BatchResponse(items), GatewayJson.Default.BatchResponse);
    }

    private static ProblemHttpResult UploadProblem(HttpResponse response, Upload upload) => upload.Status == StatusCodes.Status503ServiceUnavailable
        ? Problems.Unavailable(response, upload.Problem!, UploadReader.BusyRetryAfterSeconds)
        : Problems.Of(upload.Status, upload.Problem!);

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    /// <summary>
    /// Checks the query against the cluster's models before the body is read: an unknown model or a
    /// bad parameter costs no upload.
    /// </summary>
    private static async Task<(Query Query, ModelRoute Route, ProblemHttpResult? Problem)> ResolveAsync(
        HttpRequest request, ClusterView cluster, GatewayOptions options, CancellationToken cancellationToken)
    {
        var query = ParseQuery(request, options);
        if (query.Problem is not null)
        {
            return (query, default, query.Problem);
        }

        var route = await cluster.RouteAsync(query.Model, query.Version, cancellationToken);
        if (route.Problem is not null)
        {
            return (query, route, route.StatusCode == StatusCodes.Status503ServiceUnavailable
                ? Problems.Unavailable(request.HttpContext.Response, route.Problem)
                : Problems.Of(route.StatusCode, route.Problem));
        }

        return (query, route, TopKProblem(query.TopK, route, query.Model));
    }

    private static BatchItem Item(int index, string? fileName, int status, string detail) =>
        new(index, fileName, null, new ProblemBody(status, Problems.Of(status, detail).ProblemDetails.Title ?? "Error", detail));

    private static Query ParseQuery(HttpRequest request, GatewayOptions options)
    {
        var model = request.Query["model"].ToString();
        if (model.Length == 0)
        {
            model = options.DefaultModel;
        }

        if (!RequestRules.IsModelName(model))
        {
            return new(model, null, 0, Problems.Of(StatusCodes.Status400BadRequest, "Query parameter 'model' must be a model name: lower-case letters, digits, '.', '_' or '-' (GET /models lists them)."));
        }

        var version = request.Query["version"].ToString();
        if (version.Length > 0 && (version.Length > 18 || !version.All(char.IsAsciiDigit)))
        {
            return new(model, null, 0, Problems.Of(StatusCodes.Status400BadRequest, "Query parameter 'version' must be a version number such as 1; leave it out for the newest."));
        }

        var topK = 0;
        var topKText = request.Query["top_k"].ToString();
        if (topKText.Length > 0 && (!int.TryParse(topKText, NumberStyles.None, CultureInfo.InvariantCulture, out topK) || topK < 1))
        {
            return new(model, null, 0, Problems.Of(StatusCodes.Status400BadRequest, $"Query parameter 'top_k' is '{Echo.Of(topKText, 32)}'; it must be a whole number of at least 1."));
        }

        return new(model, version.Length > 0 ? version : null, topK, null);
    }

    private static ProblemHttpResult? TopKProblem(int topK, ModelRoute route, string model) =>
        RequestRules.TopKProblem(topK, model, route.Embedding, route.LabelCount) is { } problem ? Problems.Of(StatusCodes.Status400BadRequest, problem) : null;

    private static PredictionResponse ToResponse(Prediction p, long started) => new(
        p.Model,
        p.Version,
        p.Scores.Select(s => new PredictionItem(s.Label, s.Index, s.Probability)).ToArray(),
        p.FromCache,
        new PredictionTimings(Math.Round(p.PreprocessingMs, 3), Math.Round(p.InferenceMs, 3), Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 3)),
        p.Silo,
        p.Provider,
        p.Embedding);
}
