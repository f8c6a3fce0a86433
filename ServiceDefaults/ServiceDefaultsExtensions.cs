using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Prometheus;

namespace Classifier.ServiceDefaults;

/// <summary>Sets up what the silo and the gateway share: metric exposition defaults, tracing and log correlation.</summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>The activity source of the classifier's own spans (preprocessing, inference).</summary>
    public const string ActivitySourceName = "Classifier";

    /// <summary>Orleans' spans of application grain calls.</summary>
    public const string OrleansActivitySourceName = "Microsoft.Orleans.Application";

    /// <param name="role"><c>silo</c> or <c>gateway</c>: the OpenTelemetry service name is <c>classifier-{role}</c>.</param>
    /// <param name="configureTracing">Role-specific instrumentation, e.g. ASP.NET Core's on the gateway.</param>
    public static WebApplicationBuilder AddServiceDefaults(this WebApplicationBuilder builder, string role, Action<TracerProviderBuilder>? configureTracing = null)
    {
        // Before anything touches the default registry: only Orleans' own meters are bridged, and no
        // EventCounter bridge or prometheus-net self-metrics (one of them fails `promtool check metrics`).
        Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressEventCounters = true, SuppressDebugMetrics = true });
        Metrics.ConfigureMeterAdapter(o => o.InstrumentFilterPredicate = MeterFilter.Keep);

        // Every log line written inside a request carries its trace and span ids (as scopes: the JSON
        // console formatter in appsettings.json writes them out).
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);

        builder.Services.AddOptions<TracingOptions>().BindConfiguration(TracingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        var tracing = builder.Configuration.GetSection(TracingOptions.SectionName).Get<TracingOptions>() ?? new TracingOptions();
        if (!tracing.Enabled)
        {
            // ASP.NET Core starts an Activity for every request whether or not anything traces (for log
            // correlation), and prometheus-net then records its ids as an exemplar on every observation: ids
            // of traces never exported, at about a microsecond each (1.2 % of the cache-hit path's
            // throughput, measured with scripts/metrics-overhead.sh). Before any metric is created, as they
            // take the factory's behaviour when made.
            Metrics.DefaultFactory.ExemplarBehavior = ExemplarBehavior.NoExemplars();
        }
        else
        {
            builder.Services.AddOpenTelemetry()
                .ConfigureResource(r => r.AddService($"classifier-{role}", serviceInstanceId: Environment.GetEnvironmentVariable("POD_NAME") ?? Environment.MachineName))
                .WithTracing(t =>
                {
                    t.SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(tracing.SampleRatio)))
                        .AddSource(ActivitySourceName, OrleansActivitySourceName)
                        .AddOtlpExporter(o =>
                        {
                            o.Protocol = tracing.Protocol == "grpc" ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf;
                            o.Endpoint = Endpoint(tracing);
                        });
                    configureTracing?.Invoke(t);
                });
        }

        return builder;
    }

    /// <summary>For HTTP the exporter posts to the URL as given, so a bare collector address gets the standard path.</summary>
    private static Uri Endpoint(TracingOptions tracing)
    {
        var uri = new Uri(tracing.OtlpEndpoint!);
        return tracing.Protocol == "http/protobuf" && uri.AbsolutePath is "/" or ""
            ? new Uri(uri, "/v1/traces")
            : uri;
    }
}
