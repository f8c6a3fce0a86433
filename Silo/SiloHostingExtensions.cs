using System.Net;
using Classifier.Grains;
using Classifier.Grains.Cluster;
using Classifier.Grains.Interfaces;
using Classifier.ServiceDefaults;
using Microsoft.AspNetCore.Http.HttpResults;
using Orleans.Configuration;
using Prometheus;

namespace Classifier.Silo;

/// <summary>Wires the silo host: Orleans, the classifier grains, and the silo's own HTTP endpoints.</summary>
public static class SiloHostingExtensions
{
    public static WebApplicationBuilder AddClassifierSilo(this WebApplicationBuilder builder)
    {
        builder.AddServiceDefaults("silo");

        var options = builder.Configuration.GetSection(SiloHostOptions.SectionName).Get<SiloHostOptions>() ?? new SiloHostOptions();
        builder.Services.AddOptions<SiloHostOptions>().BindConfiguration(SiloHostOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        builder.UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(
                options.SiloPort,
                options.GatewayPort,
                new IPEndPoint(IPAddress.Loopback, options.PrimarySiloPort),
                options.ServiceId,
                options.ClusterId);
            silo.Configure<SiloOptions>(o => o.SiloName = options.SiloName
                ?? Environment.GetEnvironmentVariable("POD_NAME")
                ?? $"silo-{options.SiloPort}");
            silo.AddActivityPropagation();
            silo.AddClassifierGrains();
        });

        // The silo's HTTP port serves metrics and probes only; predictions enter through the gateway.
        builder.Services.AddHealthChecks();
        return builder;
    }

    public static WebApplication MapSiloEndpoints(this WebApplication app)
    {
        app.MapMetrics();
        app.MapGet("/healthz", () => TypedResults.Ok(new { status = "live" }));
        app.MapGet("/readyz", Results<Ok<object>, ProblemHttpResult> (ClusterReporter reporter) => reporter.Latest is null
            ? TypedResults.Problem(title: "Silo not ready", detail: "The silo has not joined the cluster yet (models loading or membership pending).", statusCode: StatusCodes.Status503ServiceUnavailable)
            : TypedResults.Ok<object>(new { status = "ready" }));
        return app;
    }

    /// <summary>The first exception of type <typeparamref name="T"/> in <paramref name="e"/>'s inner chain, aggregates included.</summary>
    public static T? FindInner<T>(this Exception e)
        where T : Exception
    {
        return e switch
        {
            T match => match,
            AggregateException aggregate => aggregate.InnerExceptions.Select(i => i.FindInner<T>()).FirstOrDefault(i => i is not null),
            { InnerException: { } inner } => inner.FindInner<T>(),
            _ => null,
        };
    }
}
