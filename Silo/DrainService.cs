using Microsoft.Extensions.Options;

namespace Classifier.Silo;

/// <summary>
/// On SIGTERM, before anything stops (Kestrel included, so probes still answer), turns readiness false
/// and keeps serving for <see cref="SiloHostOptions.DrainDelay"/>; then Orleans shuts the silo down
/// gracefully, deactivating its grains so that they move to the other silos.
/// </summary>
public sealed class DrainService(IHostApplicationLifetime lifetime, IOptions<SiloHostOptions> options, ILogger<DrainService> logger) : IHostedService
{
    private volatile bool _draining;

    public bool Draining => _draining;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // ApplicationStopping callbacks run before the host stops any service; blocking here is what
        // holds the shutdown back (the host waits for the callback), which is the point.
        lifetime.ApplicationStopping.Register(() =>
        {
            _draining = true;
            logger.LogInformation("Draining: not ready, leaving the cluster in {Delay}", options.Value.DrainDelay);
            Thread.Sleep(options.Value.DrainDelay);
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
