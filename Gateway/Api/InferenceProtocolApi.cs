using System.Reflection;
using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;

namespace Classifier.Gateway.Api;

/// <summary>A tensor as the Open Inference Protocol's metadata describes it; -1 is a dimension of any size.</summary>
public sealed record TensorMetadata(string Name, string Datatype, long[] Shape);

/// <summary>The protocol's <c>$metadata_model_response</c>.</summary>
public sealed record ModelMetadata(string Name, string[] Versions, string Platform, TensorMetadata[] Inputs, TensorMetadata[] Outputs);

/// <summary>The protocol's <c>$metadata_server_response</c>.</summary>
public sealed record ServerMetadata(string Name, string Version, string[] Extensions);

/// <summary>
/// The Open Inference Protocol's (KServe v2) health and metadata endpoints over REST: <c>GET /v2/health/live</c>,
/// <c>GET /v2/health/ready</c>, <c>GET /v2</c>, <c>GET /v2/models/{m}[/versions/{v}]</c> and its <c>/ready</c>, with
/// the protocol's <c>{"error": "..."}</c> bodies. Health needs no API key (probes call it); metadata does when keys
/// are configured.
/// </summary>
public static class InferenceProtocolApi
{
    /// <summary>The input that takes encoded images (JPEG, PNG, ...): a BYTES tensor of one element per image.</summary>
    public const string ImageInput = "image";

    /// <summary>The extensions this server implements, as <c>GET /v2</c> lists them.</summary>
    public static readonly string[] Extensions = ["model_repository", "binary_tensor_data", "classification"];

    private static readonly string ServerVersion = BuildInfo.Of(Assembly.GetExecutingAssembly()).Version;

    public static IEndpointRouteBuilder MapInferenceProtocolApi(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/v2/health/live", () => Results.Json(new { live = true })).WithTags("Open Inference Protocol");
        routes.MapGet("/v2/health/ready", Ready).WithTags("Open Inference Protocol");
        routes.MapGet("/v2", () => Results.Json(new ServerMetadata("classifier", ServerVersion, Extensions))).WithTags("Open Inference Protocol").RequireApiKey(routes);
        routes.MapGet("/v2/models/{name}", (string name, ClusterView cluster, CancellationToken ct) => MetadataAsync(name, null, cluster, ct))
            .WithTags("Open Inference Protocol").RequireApiKey(routes);
        routes.MapGet("/v2/models/{name}/versions/{version}", MetadataAsync).WithTags("Open Inference Protocol").RequireApiKey(routes);
        routes.MapGet("/v2/models/{name}/ready", (string name, ClusterView cluster, CancellationToken ct) => ModelReadyAsync(name, null, cluster, ct))
            .WithTags("Open Inference Protocol").RequireApiKey(routes);
        routes.MapGet("/v2/models/{name}/versions/{version}/ready", ModelReadyAsync).WithTags("Open Inference Protocol").RequireApiKey(routes);
        return routes;
    }

    private static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);

    /// <summary>Ready when the gateway can serve its default model, as <c>/readyz</c>; otherwise 503 with why.</summary>
    public static IResult Ready(ClusterView cluster) =>
        cluster.IsReady(out var reason) ? Results.Json(new { ready = true }) : Error(StatusCodes.Status503ServiceUnavailable, reason);

    /// <summary>
    /// The model's metadata: the versions that may be asked for, two inputs of which a request uses one (encoded images:
    /// BYTES, one element per image; or the model's own input tensor: FP32, a batch of preprocessed images, which skips
    /// decoding and preprocessing) and the output (FP32, a row per image). Without a version: the version unversioned
    /// requests are routed to.
    /// </summary>
    public static async Task<IResult> MetadataAsync(string name, string? version, ClusterView cluster, CancellationToken cancellationToken)
    {
        try
        {
            return Results.Json(await DescribeAsync(name, version, cluster, cancellationToken));
        }
        catch (InferenceError error)
        {
            return Error(error.Status, error.Message);
        }
    }

    /// <summary>The model's metadata (REST and gRPC); throws <see cref="InferenceError"/> for a bad name or an unknown model or version.</summary>
    public static async Task<ModelMetadata> DescribeAsync(string name, string? version, ClusterView cluster, CancellationToken cancellationToken)
    {
        var (status, problem) = await ResolveAsync(name, version, cluster, cancellationToken);
        if (problem is not null)
        {
            throw problem;
        }

        var versions = ReadyVersions(cluster, name);
        var outputLength = status!.OutputKind == "embedding" ? status.OutputLength : status.LabelCount;
        return new ModelMetadata(
            name,
            versions,
            "onnxruntime_onnx",
            [
                new TensorMetadata(ImageInput, "BYTES", [-1]),
                new TensorMetadata(status.Input.Name, "FP32", [-1, .. status.Input.Shape.Select(d => (long)d)]),
            ],
            [new TensorMetadata(status.Output, "FP32", [-1, outputLength > 0 ? outputLength : -1])]);
    }

    /// <summary>Whether the model (version) can be served now: 200 when it can, 503 when it is known but not ready, 404 when unknown.</summary>
    public static async Task<IResult> ModelReadyAsync(string name, string? version, ClusterView cluster, CancellationToken cancellationToken)
    {
        if (!RequestRules.IsModelName(name))
        {
            return Error(StatusCodes.Status400BadRequest, $"'{Echo.Of(name)}' is not a model name: lower-case letters, digits, '.', '_' or '-', at most 64.");
        }

        var route = await cluster.RouteAsync(name, version, cancellationToken);
        return route.StatusCode switch
        {
            StatusCodes.Status200OK => Results.Json(new { name, ready = true }),
            StatusCodes.Status404NotFound => Error(StatusCodes.Status404NotFound, route.Problem!),
            _ => Results.Json(new { name, ready = false }, statusCode: StatusCodes.Status503ServiceUnavailable),
        };
    }

    /// <summary>The status of the version a request names (or would be routed to), or the error to answer.</summary>
    private static async Task<(ModelVersionStatus? Status, InferenceError? Problem)> ResolveAsync(string name, string? version, ClusterView cluster, CancellationToken cancellationToken)
    {
        if (!RequestRules.IsModelName(name))
        {
            return (null, InferenceError.BadRequest($"'{Echo.Of(name)}' is not a model name: lower-case letters, digits, '.', '_' or '-', at most 64."));
        }

        var route = await cluster.RouteAsync(name, version, cancellationToken);
        var chosen = route.Version ?? version;
        var status = cluster.Snapshot?.Silos.SelectMany(s => s.Models)
            .Where(m => m.Model == name && (chosen is null || m.Version == chosen))
            .OrderByDescending(m => m.State == ModelState.Ready).ThenByDescending(m => long.TryParse(m.Version, out var v) ? v : -1)
            .FirstOrDefault();
        return status is null
            ? (null, new InferenceError(route.StatusCode == StatusCodes.Status503ServiceUnavailable ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status404NotFound,
                route.Problem ?? $"Unknown model '{Echo.Of(name)}'."))
            : (status, null);
    }

    private static string[] ReadyVersions(ClusterView cluster, string name) =>
        [.. (cluster.Snapshot?.Silos ?? []).SelectMany(s => s.Models)
            .Where(m => m.Model == name && m.State == ModelState.Ready)
            .Select(m => m.Version).Distinct().OrderBy(v => long.TryParse(v, out var n) ? n : -1)];
}
