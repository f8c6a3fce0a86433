using System.Diagnostics;

namespace Classifier.Gateway.Telemetry;

/// <summary>Records <c>http_requests_total</c> and <c>http_request_duration_seconds</c> for every request.</summary>
/// <remarks>The endpoint label is the route template, never the raw path, so label values stay bounded.</remarks>
public sealed class HttpMetricsMiddleware(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var start = Stopwatch.GetTimestamp();
        var status = StatusCodes.Status500InternalServerError;
        GatewayMetrics.InFlight.Inc();
        try
        {
            await next(context);
            status = context.Response.StatusCode;
        }
        finally
        {
            GatewayMetrics.InFlight.Dec();
            var endpoint = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            GatewayMetrics.Record(endpoint, Method(context.Request.Method), status, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
    }

    private static string Method(string method) => method switch
    {
        "GET" or "POST" or "PUT" or "DELETE" or "HEAD" or "OPTIONS" or "PATCH" => method,
        _ => "OTHER",
    };
}
