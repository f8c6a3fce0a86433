using Classifier.Gateway.Cluster;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Classifier.Gateway.Api;

/// <summary>A probe's answer.</summary>
public sealed record HealthStatus(string Status);

/// <summary>Kubernetes probes: <c>/healthz</c> (the process lives) and <c>/readyz</c> (it can serve).</summary>
public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/healthz", () => TypedResults.Ok(new HealthStatus("live"))).WithTags("Health");
        routes.MapGet("/readyz", Ready).WithTags("Health");
        return routes;
    }

    public static Results<Ok<HealthStatus>, ProblemHttpResult> Ready(ClusterView cluster) => cluster.IsReady(out var reason)
        ? TypedResults.Ok(new HealthStatus("ready"))
        : Problems.Of(StatusCodes.Status503ServiceUnavailable, reason);
}
