using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Classifier.Gateway.Api;

/// <summary>A probe's answer.</summary>
public sealed record HealthStatus(string Status);

/// <summary>A model version that no silo can serve, and why.</summary>
public sealed record UnavailableModel(string Model, string Version, string State, string? Error);

/// <summary>Readiness: serving the default model, and which other models cannot be served.</summary>
public sealed record ReadinessStatus(string Status, UnavailableModel[] UnavailableModels);

/// <summary>Kubernetes probes: <c>/healthz</c> (the process lives) and <c>/readyz</c> (it can serve).</summary>
public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/healthz", () => TypedResults.Ok(new HealthStatus("live"))).WithTags("Health").WithMetadata(ManagementEndpoint.Instance);
        routes.MapGet("/readyz", Ready).WithTags("Health").WithMetadata(ManagementEndpoint.Instance);
        return routes;
    }

    /// <summary>
    /// Ready when the default model is served by some silo. A model that failed everywhere does not
    /// make the gateway unready (the others still serve) but is listed, with the reason.
    /// </summary>
    public static Results<Ok<ReadinessStatus>, ProblemHttpResult> Ready(ClusterView cluster, HttpResponse response)
    {
        if (!cluster.IsReady(out var reason))
        {
            return Problems.Unavailable(response, reason);
        }

        var unavailable = (cluster.Snapshot?.Silos ?? [])
            .SelectMany(s => s.Models)
            .GroupBy(m => (m.Model, m.Version))
            .Where(g => g.All(m => m.State != ModelState.Ready))
            .Select(g => new UnavailableModel(g.Key.Model, g.Key.Version, g.Max(m => m.State) == ModelState.Error ? "error" : "not_ready", g.Select(m => m.Error).FirstOrDefault(e => e is not null)))
            .OrderBy(m => m.Model, StringComparer.Ordinal)
            .ToArray();
        return TypedResults.Ok(new ReadinessStatus("ready", unavailable));
    }
}
