using System.Reflection;
using Classifier.Gateway.Api;
using Classifier.Gateway.Cluster;
using Classifier.Gateway.Telemetry;
using Microsoft.AspNetCore.Hosting;
using Classifier.Grains.Interfaces;
using Classifier.ServiceDefaults;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Options;
using OpenTelemetry.Trace;
using Prometheus;

namespace Classifier.Gateway;

/// <summary>Checks settings that depend on each other, naming the one to change.</summary>
internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options) =>
        options.MaxUploadBytesInFlight < UploadReader.HoldingCost(options.MaxImageBytes) + UploadReader.ChunkSize
            ? ValidateOptionsResult.Fail($"Gateway:MaxUploadBytesInFlight ({options.MaxUploadBytesInFlight}) must be at least {UploadReader.HoldingCost(options.MaxImageBytes) + UploadReader.ChunkSize}: an image of Gateway:MaxImageBytes ({options.MaxImageBytes}) holds that much while it is sent to a silo, so it could never be accepted.")
            : ValidateOptionsResult.Success;
}

/// <summary>Wires the gateway: the Orleans client, routing services, problem details and metrics.</summary>
public static class GatewayExtensions
{
    public static WebApplicationBuilder AddClassifierGateway(this WebApplicationBuilder builder)
    {
        builder.AddServiceDefaults("gateway", t => t.AddAspNetCoreInstrumentation());
        builder.Services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<ClusterClientOptions>().BindConfiguration(ClusterClientOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        var cluster = builder.Configuration.GetSection(ClusterClientOptions.SectionName).Get<ClusterClientOptions>() ?? new ClusterClientOptions();
        var gateway = builder.Configuration.GetSection(GatewayOptions.SectionName).Get<GatewayOptions>() ?? new GatewayOptions();

        builder.UseOrleansClient(client =>
        {
            if (cluster.Clustering == "redis")
            {
                client.UseRedisClustering(cluster.RequireRedisConnectionString());
                client.Configure<Orleans.Configuration.ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (cluster.ClusterId, cluster.ServiceId));
            }
            else
            {
                client.UseLocalhostClustering(cluster.EffectiveGatewayPorts, cluster.ServiceId, cluster.ClusterId);
            }

            if (cluster.Tls.Enabled)
            {
                var (certificate, authorities) = cluster.Tls.Load();
                client.UseTls(certificate, tls => cluster.Tls.Configure(tls, authorities));
            }

            client.AddActivityPropagation(); // the trace continues into the grain call
            client.Configure<Orleans.Configuration.ClientMessagingOptions>(o =>
            {
                o.ResponseTimeout = gateway.CallTimeout;

                // A call that times out also stops its work on the silo (its decode, its place in line).
                o.CancelRequestOnTimeout = true;
            });

            // Keep trying to reach the cluster: the gateway starts (and answers /healthz) before any silo.
            client.UseConnectionRetryFilter(async (_, cancellationToken) =>
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                return true;
            });
        });

        // Start Kestrel while the Orleans client is still connecting, so probes answer meanwhile.
        builder.Services.Configure<HostOptions>(o => o.ServicesStartConcurrently = true);
        builder.WebHost.ConfigureKestrel(k =>
        {
            // Set on purpose (README, Security: slow clients): Kestrel's defaults let a client that sends 240 bytes
            // a second keep a connection, with no bound on how many, and a body arrive over hours.
            k.Limits.MaxRequestBodySize = Math.Max(gateway.MaxBatchBytes, gateway.MaxImageBytes);
            k.Limits.MinRequestBodyDataRate = gateway.MinBodyBytesPerSecond > 0
                ? new Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate(gateway.MinBodyBytesPerSecond, TimeSpan.FromSeconds(5))
                : null;
            k.Limits.MaxConcurrentConnections = gateway.MaxConnections;
            k.Limits.MaxConcurrentUpgradedConnections = 0;
            k.Limits.RequestHeadersTimeout = gateway.HeadersTimeout;

            // What Kestrel buffers per connection ahead of the app (1 MiB by default): outside the upload budget, so
            // kept to one read chunk; times Gateway:MaxConnections it bounds what the budget does not see.
            k.Limits.MaxRequestBufferSize = UploadReader.ChunkSize;
            k.Limits.KeepAliveTimeout = gateway.KeepAliveTimeout;
        });

        if (gateway.ManagementPort is { } managementPort)
        {
            var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey] ?? "http://0.0.0.0:8080";
            var host = new Uri(urls.Split(';')[0].Replace("*", "0.0.0.0", StringComparison.Ordinal).Replace("+", "0.0.0.0", StringComparison.Ordinal)).Host;
            builder.WebHost.UseUrls($"{urls};http://{host}:{managementPort}");
        }

        if (gateway.GrpcPort is { } grpcPort)
        {
            // gRPC needs HTTP/2 without TLS (h2c), which Kestrel offers only on an endpoint that speaks HTTP/2 alone; an
            // endpoint set in code replaces the URLs, so those are bound here too, each as it was.
            var urls = (builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey) ?? builder.Configuration[WebHostDefaults.ServerUrlsKey] ?? "http://0.0.0.0:8080")
                .Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            builder.WebHost.UseUrls(); // bound below, each as it was; left set, Kestrel would warn that it overrides them
            builder.WebHost.ConfigureKestrel(k =>
            {
                foreach (var url in urls)
                {
                    Listen(k, url, null);
                }

                Listen(k, urls[0], grpcPort);
            });
            builder.Services.AddGrpc(o =>
            {
                o.MaxReceiveMessageSize = (int)Math.Min(int.MaxValue, gateway.MaxBatchBytes + InferenceProtocolInfer.MaxHeaderBytes);
                o.Interceptors.Add<GrpcApiKeyInterceptor>();
            });
        }

        builder.Services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.SectionName);
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, GatewayJson.Default));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<ClusterView>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ClusterView>());
        builder.Services.AddSingleton<SiloWatch>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SiloWatch>());
        builder.Services.AddSingleton<NearCache>();
        builder.Services.AddHostedService<NearCacheReporter>();
        builder.Services.AddSingleton<PredictionRouter>();
        builder.Services.AddSingleton(sp => new UploadBudget(sp.GetRequiredService<IOptions<GatewayOptions>>().Value.MaxUploadBytesInFlight));
        builder.Services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        return builder;
    }

    /// <summary>Binds one listening URL (http only), or with <paramref name="grpcPort"/> its host on that port for HTTP/2 alone.</summary>
    private static void Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions kestrel, string url, int? grpcPort)
    {
        var uri = new Uri(url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal));
        if (uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new OptionsValidationException(GatewayOptions.SectionName, typeof(GatewayOptions), [$"Gateway:GrpcPort needs http:// listening URLs; '{url}' is not one."]);
        }

        var port = grpcPort ?? uri.Port;
        void Configure(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions o)
        {
            if (grpcPort is not null)
            {
                o.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2;
            }
        }

        if (uri.Host == "localhost")
        {
            kestrel.ListenLocalhost(port, Configure);
        }
        else
        {
            kestrel.Listen(System.Net.IPAddress.Parse(uri.Host.Trim('[', ']')), port, Configure);
        }
    }

    public static WebApplication UseGatewayPipeline(this WebApplication app)
    {
        GatewayMetrics.Recording.Follow(app.Configuration, app.Logger);
        app.UseMiddleware<HttpMetricsMiddleware>();

        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = e => e is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError,
        });
        app.UseStatusCodePages();

        // Budgets keep the heap below its limit; should an allocation fail anyway, the client hears "retry", not 500.
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (OutOfMemoryException) when (!context.Response.HasStarted)
            {
                context.Response.Clear();
                await Problems.Unavailable(context.Response, "The gateway is short of memory for this request; retry in a few seconds.").ExecuteAsync(context);
            }
        });

        // Routing first, so the port check below sees which endpoint a path reached, however it was spelled.
        app.UseRouting();
        if (app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.ManagementPort is { } managementPort)
        {
            app.UseMiddleware<ManagementPortMiddleware>(managementPort);
        }

        if (app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.GrpcPort is { } grpcPort)
        {
            app.UseMiddleware<GrpcBodyBudgetMiddleware>(grpcPort);
            app.MapGrpcService<GrpcInferenceService>();
        }

        return app;
    }

    public static WebApplication MapGatewayMetrics(this WebApplication app)
    {
        var (version, build) = BuildInfo.Of(Assembly.GetExecutingAssembly());
        GatewayMetrics.AppInfo.WithLabels(version, build, "gateway", BuildInfo.VersionOf(typeof(IClusterClient).Assembly), "none").Set(1);
        app.MapMetrics().WithMetadata(ManagementEndpoint.Instance);
        return app;
    }
}
