using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Classifier.Gateway.Api;

/// <summary>Access to the API: off unless keys are configured.</summary>
public sealed class AuthOptions
{
    public const string SectionName = "Auth";

    /// <summary>
    /// Accepted API keys. Empty (the default, for a local cluster): no authentication. Clients send a key as
    /// <c>X-Api-Key: KEY</c> or <c>Authorization: Bearer KEY</c>. In Kubernetes, give them from a Secret
    /// as <c>Auth__ApiKeys__0</c>, <c>Auth__ApiKeys__1</c>, ...
    /// </summary>
    public string[] ApiKeys { get; set; } = [];
}

/// <summary>Puts the API-key check on an endpoint.</summary>
public static class ApiKeyEndpoints
{
    /// <summary>
    /// Adds <see cref="ApiKeyFilter"/> when keys are configured, and nothing when none are (the filter would let every
    /// request through): an endpoint filter makes every call of the handler go through a filter pipeline, an
    /// allocation per request on the cache-hit path. Keys are read once at start-up either way.
    /// </summary>
    public static RouteHandlerBuilder RequireApiKey(this RouteHandlerBuilder builder, IEndpointRouteBuilder routes) =>
        routes.ServiceProvider.GetRequiredService<IOptions<AuthOptions>>().Value.ApiKeys.Any(k => k.Length > 0)
            ? builder.AddEndpointFilter<ApiKeyFilter>()
            : builder;
}

/// <summary>Rejects requests without a configured API key (401, problem details) when keys are configured.</summary>
public sealed class ApiKeyFilter : IEndpointFilter
{
    private readonly byte[][] _keyHashes;

    public ApiKeyFilter(IOptions<AuthOptions> options)
    {
        // Compared as SHA-256 digests in constant time: neither the key length nor a prefix leaks through timing.
        _keyHashes = options.Value.ApiKeys.Where(k => k.Length > 0).Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k))).ToArray();
    }

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (Accepts(context.HttpContext.Request))
        {
            return await next(context);
        }

        context.HttpContext.Response.Headers.WWWAuthenticate = "Bearer";
        return Problems.Of(StatusCodes.Status401Unauthorized,
            "This API needs a key: send it as 'X-Api-Key: <key>' or 'Authorization: Bearer <key>'. Ask the cluster's operator for one.");
    }

    /// <summary>True when no keys are configured, or the request presents one of them.</summary>
    public bool Accepts(HttpRequest request) => _keyHashes.Length == 0 || IsAuthorized(request);

    private bool IsAuthorized(HttpRequest request)
    {
        string? presented = request.Headers["X-Api-Key"];
        var authorization = request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(presented) && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            presented = authorization["Bearer ".Length..].Trim();
        }

        if (string.IsNullOrEmpty(presented))
        {
            return false;
        }

        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        var match = false;
        foreach (var key in _keyHashes)
        {
            match |= CryptographicOperations.FixedTimeEquals(digest, key);
        }

        return match;
    }
}
