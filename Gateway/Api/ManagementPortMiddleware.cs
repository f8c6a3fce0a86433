namespace Classifier.Gateway.Api;

/// <summary>
/// Keeps metrics and probes on the management port and the API off it. Decided by the port the
/// connection arrived on, not by the Host header, which a client controls.
/// </summary>
public sealed class ManagementPortMiddleware(RequestDelegate next, int managementPort)
{
    private static readonly string[] ManagementPaths = ["/metrics", "/healthz", "/readyz"];

    public Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path;
        var isManagementPath = ManagementPaths.Any(p => path.Equals(p, StringComparison.OrdinalIgnoreCase));
        var onManagementPort = context.Connection.LocalPort == managementPort;
        if (isManagementPath != onManagementPort)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }

        return next(context);
    }
}
