using System.Net;
using Classifier.Grains;
using Classifier.Grains.Cluster;
using Classifier.Grains.Interfaces;
using Classifier.ServiceDefaults;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
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
            if (options.KubernetesHosting)
            {
                options.RequireKubernetesPod();

                // Before the cluster ids below are configured, so that Cluster:ClusterId and ServiceId win over
                // ORLEANS_CLUSTER_ID / ORLEANS_SERVICE_ID: Redis membership, the pod labels the agent watches
                // and the gateway must all use the same ids. SiloName and the advertised address agree with it
                // already (both come from POD_NAME and POD_IP).
                silo.UseKubernetesHosting();
            }

            if (options.Clustering == "redis")
            {
                var redis = options.RequireRedisConnectionString();
                var advertised = IPAddress.Parse(options.AdvertisedIP ?? Environment.GetEnvironmentVariable("POD_IP") ?? "127.0.0.1");
                silo.UseRedisClustering(redis);
                silo.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (options.ClusterId, options.ServiceId));
                silo.ConfigureEndpoints(advertised, options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: true);
            }
            else
            {
                silo.UseLocalhostClustering(
                    options.SiloPort,
                    options.GatewayPort,
                    new IPEndPoint(IPAddress.Loopback, options.PrimarySiloPort),
                    options.ServiceId,
                    options.ClusterId);
            }

            // Inference is stateless apart from caches: detect a dead silo in seconds (Orleans' defaults
            // take about 15 s) so its shards reactivate elsewhere within the gateway's retry budget.
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = options.ProbeTimeout;
                o.NumMissedProbesLimit = options.MissedProbesLimit;
            });
            silo.Configure<SiloOptions>(o => o.SiloName = options.SiloName
                ?? Environment.GetEnvironmentVariable("POD_NAME")
                ?? $"silo-{options.SiloPort}");
            if (options.Tls.Enabled)
            {
                var (certificate, authorities) = options.Tls.Load();
                silo.UseTls(certificate, tls => options.Tls.Configure(tls, authorities));
            }

            // A message is one image (Gateway:MaxImageBytes) or a migrating cache; Orleans' default of 100 MB per
            // message lets any peer make the silo allocate that much for one request.
            silo.Configure<SiloMessagingOptions>(o => o.MaxMessageBodySize = options.MaxMessageBytes);
            silo.AddActivityPropagation();
            silo.AddClassifierGrains();
            if (options.Clustering == "redis")
            {
                // After AddClassifierGrains' memory default: the cluster's declared models outlive every silo in Redis.
                silo.AddRedisGrainStorage(Classifier.Grains.Cluster.ModelRepositoryGrain.StorageName,
                    o => o.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse(options.RequireRedisConnectionString()));
            }
        });

        builder.Services.AddSingleton<DrainService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<DrainService>());
        return builder;
    }

    public static WebApplication MapSiloEndpoints(this WebApplication app)
    {
        app.MapMetrics();
        app.MapGet("/healthz", () => TypedResults.Ok(new { status = "live" }));
        app.MapGet("/readyz", Results<Ok<object>, ProblemHttpResult> (ClusterReporter reporter, DrainService drain) => (reporter.Latest, drain.Draining) switch
        {
            (_, true) => TypedResults.Problem(title: "Silo draining", detail: "The silo is shutting down and hands its grains to the other silos.", statusCode: StatusCodes.Status503ServiceUnavailable),
            (null, _) => TypedResults.Problem(title: "Silo not ready", detail: "The silo has not joined the cluster yet (models loading or membership pending).", statusCode: StatusCodes.Status503ServiceUnavailable),
            _ => TypedResults.Ok<object>(new { status = "ready" }),
        });
        return app;
    }
}
