using System.Text.Json;
using Classifier.Gateway.Cluster;
using Classifier.Grains.Interfaces;

namespace Classifier.Gateway.Api;

/// <summary>One entry of <c>POST /v2/repository/index</c>, as Triton writes it.</summary>
public sealed record RepositoryEntry(string Name, string Version, string State, string Reason);

/// <summary>
/// Triton's model repository extension over the whole cluster: <c>POST /v2/repository/index</c>,
/// <c>POST /v2/repository/models/{name}/load</c> and <c>.../unload</c>, with the protocol's <c>{"error": "..."}</c>
/// bodies. Beyond Triton: a load or unload may name one version with <c>{"parameters": {"version": "2"}}</c>.
/// Guarded by the API keys when they are configured.
/// </summary>
public static class RepositoryApi
{
    public static IEndpointRouteBuilder MapRepositoryApi(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v2/repository/index", IndexAsync).WithTags("Repository").RequireApiKey(routes);
        routes.MapPost("/v2/repository/models/{name}/load", LoadAsync).WithTags("Repository").RequireApiKey(routes);
        routes.MapPost("/v2/repository/models/{name}/unload", UnloadAsync).WithTags("Repository").RequireApiKey(routes);
        return routes;
    }

    private static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);

    /// <summary>Every model version the cluster knows, with Triton's states: READY on every silo that reports it, else UNAVAILABLE or LOADING with why.</summary>
    public static async Task<IResult> IndexAsync(HttpRequest request, ClusterView cluster, IClusterClient client, CancellationToken cancellationToken)
    {
        var (body, problem) = await ReadBodyAsync(request, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var readyOnly = body is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("ready", out var r) && r.ValueKind == JsonValueKind.True;
        var entries = await EntriesAsync(cluster, client, readyOnly, cancellationToken);
        return entries is null ? Error(StatusCodes.Status503ServiceUnavailable, "No silo answered; the cluster is not reachable.") : Results.Json(entries);
    }

    /// <summary>The index's entries in name and version order (only READY ones with <paramref name="readyOnly"/>); null when no silo answered.</summary>
    public static async Task<List<RepositoryEntry>?> EntriesAsync(ClusterView cluster, IClusterClient client, bool readyOnly, CancellationToken cancellationToken)
    {
        await cluster.RefreshAsync(cancellationToken);
        if (cluster.Snapshot is not { } snapshot)
        {
            return null;
        }

        var entries = snapshot.Silos.SelectMany(s => s.Models).GroupBy(m => (m.Model, m.Version)).Select(g =>
        {
            var (state, reason) = g.All(m => m.State == ModelState.Ready) ? ("READY", "")
                : g.FirstOrDefault(m => m.State == ModelState.Error) is { } failed ? ("UNAVAILABLE", failed.Error ?? "failed")
                : ("LOADING", "");
            return new RepositoryEntry(g.Key.Model, g.Key.Version, state, reason);
        }).ToList();
        var unloaded = await client.GetGrain<IModelRepositoryGrain>(IModelRepositoryGrain.Key).UnloadedAsync();
        foreach (var (model, versions) in unloaded)
        {
            foreach (var version in versions ?? [""])
            {
                if (!entries.Any(e => e.Name == model && (version == "" || e.Version == version)))
                {
                    entries.Add(new RepositoryEntry(model, version, "UNAVAILABLE", "unloaded"));
                }
            }
        }

        return [.. entries
            .Where(e => !readyOnly || e.State == "READY")
            .OrderBy(e => e.Name, StringComparer.Ordinal).ThenBy(e => long.TryParse(e.Version, out var v) ? v : -1)];
    }


    public static Task<IResult> LoadAsync(string name, HttpRequest request, IClusterClient client, ClusterView cluster, CancellationToken cancellationToken) =>
        ChangeAsync(name, request, cluster, cancellationToken, load: true, (model, version) => client.GetGrain<IModelRepositoryGrain>(IModelRepositoryGrain.Key).LoadAsync(model, version));

    public static Task<IResult> UnloadAsync(string name, HttpRequest request, IClusterClient client, ClusterView cluster, CancellationToken cancellationToken) =>
        ChangeAsync(name, request, cluster, cancellationToken, load: false, (model, version) => client.GetGrain<IModelRepositoryGrain>(IModelRepositoryGrain.Key).UnloadAsync(model, version));

    private static async Task<IResult> ChangeAsync(string name, HttpRequest request, ClusterView cluster, CancellationToken cancellationToken, bool load,
        Func<string, string?, Task<SiloModelChange[]>> change)
    {
        if (!RequestRules.IsModelName(name))
        {
            return Error(StatusCodes.Status400BadRequest, $"'{Echo.Of(name)}' is not a model name: lower-case letters, digits, '.', '_' or '-', at most 64.");
        }

        var (body, problem) = await ReadBodyAsync(request, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        string? version = null;
        if (body is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object
            && parameters.TryGetProperty("version", out var v))
        {
            version = v.ValueKind switch
            {
                JsonValueKind.String when long.TryParse(v.GetString(), out var n) && n >= 0 => v.GetString(),
                JsonValueKind.Number when v.TryGetInt64(out var n) && n >= 0 => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
                _ => "",
            };
            if (version == "")
            {
                return Error(StatusCodes.Status400BadRequest, "parameters.version must be a version folder number, such as \"2\".");
            }
        }

        var (status, error) = await ApplyAsync(change, name, version, load);
        await cluster.RefreshAsync(cancellationToken);
        return error is null ? Results.Json(new { }) : Error(status, error);
    }

    /// <summary>Loads or unloads the model (or one version) on every silo: answers 200 and null, or the status and why, naming each silo that failed.</summary>
    public static Task<(int Status, string? Error)> ChangeAsync(IClusterClient client, string model, string? version, bool load)
    {
        if (!RequestRules.IsModelName(model))
        {
            return Task.FromResult<(int, string?)>((StatusCodes.Status400BadRequest, $"'{Echo.Of(model)}' is not a model name: lower-case letters, digits, '.', '_' or '-', at most 64."));
        }

        if (version is not null && (!long.TryParse(version, out var n) || n < 0))
        {
            return Task.FromResult<(int, string?)>((StatusCodes.Status400BadRequest, "parameters.version must be a version folder number, such as \"2\"."));
        }

        var grain = client.GetGrain<IModelRepositoryGrain>(IModelRepositoryGrain.Key);
        return ApplyAsync(load ? grain.LoadAsync : grain.UnloadAsync, model, version, load);
    }

    private static async Task<(int Status, string? Error)> ApplyAsync(Func<string, string?, Task<SiloModelChange[]>> change, string name, string? version, bool load)
    {
        var changes = await change(name, version);
        var failures = changes.SelectMany(c => c.Error is not null ? [$"{c.Silo}: {c.Error}"]
            : load ? c.Versions.Where(s => (version is null || s.Version == version) && s.State != ModelState.Ready).Select(s => $"{c.Silo}: version {s.Version}: {s.Error ?? "not ready"}")
            : c.Versions.Where(s => version is null || s.Version == version).Select(s => $"{c.Silo}: version {s.Version} is still loaded")).ToList();
        if (load && failures.Count == 0 && changes.All(c => c.Versions.Length == 0))
        {
            failures.Add("no silo serves it after the load");
        }

        return failures.Count == 0
            ? (StatusCodes.Status200OK, null)
            : (StatusCodes.Status400BadRequest, $"{(load ? "Load" : "Unload")} of model '{name}'{(version is null ? "" : $" version {version}")} failed on {string.Join("; ", failures)}");
    }

    /// <summary>Largest repository request body read.</summary>
    private const int MaxBodyBytes = 64 * 1024;

    /// <summary>The optional JSON body, read up to <see cref="MaxBodyBytes"/>; a body that is not JSON is a 400.</summary>
    private static async Task<(JsonElement? Body, IResult? Problem)> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxBodyBytes)
        {
            return (null, Error(StatusCodes.Status413PayloadTooLarge, $"A repository request body is at most {MaxBodyBytes / 1024} KiB."));
        }

        var buffer = new byte[MaxBodyBytes + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken)) > 0)
        {
            length += read;
        }

        if (length > MaxBodyBytes)
        {
            return (null, Error(StatusCodes.Status413PayloadTooLarge, $"A repository request body is at most {MaxBodyBytes / 1024} KiB."));
        }

        if (buffer.AsSpan(0, length).Trim(" \t\r\n"u8).IsEmpty)
        {
            return (null, null);
        }

        try
        {
            using var document = JsonDocument.Parse(buffer.AsMemory(0, length));
            return (document.RootElement.Clone(), null);
        }
        catch (JsonException e)
        {
            return (null, Error(StatusCodes.Status400BadRequest, $"The body is not JSON: {e.Message}"));
        }
    }
}
