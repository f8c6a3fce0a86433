using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Classifier.LoadGenerator;

/// <summary>
/// Runs this process's own request path (<see cref="Bench.DriveAsync"/>: HttpClient, request content, JSON parsing of
/// the answer) against a canned endpoint on loopback, in this process, before a cold measurement. The load generator
/// is a fresh process too, on the same cores: without this, the cluster's first run was also charged for compiling
/// the client, and so was the "warm" run that a second, fresh load generator measures after it.
/// </summary>
internal static class ClientWarmUp
{
    // An answer of the gateway's shape, so parsing it compiles what parsing the gateway's does.
    private static readonly byte[] Answer = Encoding.UTF8.GetBytes(
        """{"model":"text-orientation","version":"1","predictions":[{"label":"0","index":0,"probability":0.9999989},{"label":"180","index":1,"probability":1.1247695E-06}],"cached":false,"timings":{"preprocessingMs":0.5,"inferenceMs":0.3,"totalMs":1.2},"silo":"silo-1","provider":"CPU"}""");

    public static async Task RunAsync(HttpClient http, int requests, int concurrency, Func<int, byte[]> image)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.MapPost("/predict", async (HttpRequest request) =>
        {
            await request.Body.CopyToAsync(Stream.Null);
            return Results.Bytes(Answer, "application/json; charset=utf-8");
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        await Bench.DriveAsync(http, $"{address}/predict?model=text-orientation", "client warm-up (loopback in this process, not the cluster)", requests, concurrency, image);
        await app.StopAsync();

        // The tiered compiler finishes the client's hot methods in the background: give it the moment it needs here,
        // rather than on the cores the cluster is measured on.
        await Task.Delay(TimeSpan.FromSeconds(1));
    }
}
