namespace Classifier.Gateway.Api;

/// <summary>Marks an endpoint as management (metrics and probes): served on the management port only, when one is set.</summary>
public sealed class ManagementEndpoint
{
    public static readonly ManagementEndpoint Instance = new();

    private ManagementEndpoint()
    {
    }
}

/// <summary>
/// Keeps metrics and probes on the management port and the API off it. Decided by the endpoint routing chose
/// (so <c>/metrics/</c>, <c>/METRICS</c> or <c>/metrics/.</c> are judged as the endpoint they reach, not as
/// strings) and by the port the connection arrived on (not the Host header, which a client controls).
/// </summary>
public sealed class ManagementPortMiddleware(RequestDelegate next, int managementPort)
{
    public Task InvokeAsync(HttpContext context)
    {
        var isManagementEndpoint = context.GetEndpoint()?.Metadata.GetMetadata<ManagementEndpoint>() is not null;
        var onManagementPort = context.Connection.LocalPort == managementPort;
        if (isManagementEndpoint != onManagementPort)
        {
            context.SetEndpoint(null);
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }

        return next(context);
    }
}
