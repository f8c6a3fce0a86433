using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Classifier.Gateway.Api;

/// <summary>A model version on one silo; <c>Sha256</c>: of the <c>model.onnx</c> it loaded (every silo serving a version has the same).</summary>
public sealed record SiloModelState(string Silo, string State, string Provider, double LoadMs, string? Error, string? Sha256);

/// <summary>A model version across the cluster. <c>OutputKind</c>: <c>classes</c> (answers hold top-k labels) or <c>embedding</c> (answers hold a vector of <c>OutputLength</c> floats).</summary>
public sealed record ModelVersionInfo(
    string Version, string State, InputSpec Input, string Output, string OutputKind, int OutputLength, int LabelCount, int DefaultTopK, string[] Providers, SiloModelState[] Silos);

/// <summary>A model and its versions; <see cref="LatestVersion"/> serves requests that name none.</summary>
public sealed record ModelInfo(string Name, string? LatestVersion, ModelVersionInfo[] Versions);

/// <summary>The answer to <c>GET /models</c>.</summary>
public sealed record ModelList(string DefaultModel, ModelInfo[] Models);

/// <summary><c>GET /models</c> and <c>GET /models/{name}</c>.</summary>
public static class ModelsApi
{
    public static IEndpointRouteBuilder MapModelsApi(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/models", ListAsync).WithTags("Models").RequireApiKey(routes);
        routes.MapGet("/models/{name}", GetAsync).WithTags("Models").RequireApiKey(routes);
        return routes;
    }

    public static async Task<Results<Ok<ModelList>, ProblemHttpResult>> ListAsync(ClusterView cluster, Microsoft.Extensions.Options.IOptions<GatewayOptions> options, HttpResponse response, CancellationToken cancellationToken)
    {
        await cluster.RefreshAsync(cancellationToken);
        if (cluster.Snapshot is not { } snapshot)
        {
            return Problems.NoSilo(response);
        }

        return TypedResults.Ok(new ModelList(options.Value.DefaultModel, Describe(snapshot).ToArray()));
    }

    public static async Task<Results<Ok<ModelInfo>, ProblemHttpResult>> GetAsync(string name, ClusterView cluster, HttpResponse response, CancellationToken cancellationToken)
    {
        await cluster.RefreshAsync(cancellationToken);
        if (cluster.Snapshot is not { } snapshot)
        {
            return Problems.NoSilo(response);
        }

        var model = Describe(snapshot).FirstOrDefault(m => m.Name == name);
        return model is null
            ? Problems.Of(StatusCodes.Status404NotFound, $"Unknown model '{Echo.Of(name)}'; GET /models lists the available ones.")
            : TypedResults.Ok(model);
    }

    private static IEnumerable<ModelInfo> Describe(ClusterSnapshot snapshot) =>
        snapshot.Silos
            .SelectMany(s => s.Models.Select(m => (Silo: s.Silo, Status: m)))
            .GroupBy(x => x.Status.Model)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(model =>
            {
                var versions = model.GroupBy(x => x.Status.Version)
                    .OrderBy(v => long.TryParse(v.Key, out var n) ? n : -1)
                    .Select(v =>
                    {
                        var first = v.First().Status;
                        var silos = v.Select(x => new SiloModelState(x.Silo, StateName(x.Status.State), x.Status.Provider, Math.Round(x.Status.LoadMs, 1), x.Status.Error, x.Status.Sha256)).ToArray();
                        var state = v.Any(x => x.Status.State == ModelState.Ready) ? ModelState.Ready : v.Max(x => x.Status.State);
                        var providers = v.Where(x => x.Status.State == ModelState.Ready).Select(x => x.Status.Provider).Distinct().Order().ToArray();
                        return new ModelVersionInfo(v.Key, StateName(state), first.Input, first.Output, first.OutputKind,
                            v.Select(x => x.Status.OutputLength).Max(), first.LabelCount, first.DefaultTopK, providers, silos);
                    })
                    .ToArray();
                var latest = versions.LastOrDefault(v => v.State == "ready")?.Version;
                return new ModelInfo(model.Key, latest, versions);
            });

    private static string StateName(ModelState state) => state switch
    {
        ModelState.Ready => "ready",
        ModelState.Error => "error",
        _ => "not_ready",
    };
}
