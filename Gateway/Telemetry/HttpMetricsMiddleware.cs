using System.Diagnostics;

namespace Classifier.Gateway.Telemetry;

/// <summary>Records <c>http_requests_total</c> and <c>http_request_duration_seconds</c> for every request.</summary>
/// <remarks>The endpoint label is the route template, never the raw path, so label values stay bounded.</remarks>
public sealed class HttpMetricsMiddleware(RequestDelegate next, ILoggerFactory loggers)
{
    /// <summary>One line per request at Debug level (category <c>Classifier.Gateway.AccessLog</c>), carrying the trace id.</summary>
    private readonly ILogger _accessLog = loggers.CreateLogger("Classifier.Gateway.AccessLog");

    public async Task InvokeAsync(HttpContext context)
    {
        if (!GatewayMetrics.Recording.On)
        {
            // Read once per request, so a switch in mid-request cannot leave the in-flight gauge unbalanced.
            await next(context);
            return;
        }

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
            var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            GatewayMetrics.Record(endpoint, Method(context.Request.Method), status, seconds);
            if (_accessLog.IsEnabled(LogLevel.Debug))
            {
                _accessLog.LogDebug("{Method} {Endpoint} answered {Status} in {DurationMs:F2} ms", context.Request.Method, endpoint, status, seconds * 1000);
            }
        }
    }

    private static string Method(string method) => method switch
    {
        "GET" or "POST" or "PUT" or "DELETE" or "HEAD" or "OPTIONS" or "PATCH" => method,
        _ => "OTHER",
    };
}
