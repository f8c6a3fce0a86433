using Classifier.Grains.Models;
using Classifier.ServiceDefaults;
using Classifier.Silo;

NativeHeap.ReturnLargeBlocksToTheSystem();
try
{
    // Settings files live beside the binary, wherever the process is started from.
    var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
    builder.AddClassifierSilo();

    var app = builder.Build();
    app.MapSiloEndpoints();

    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e.FindInner<ModelConfigException>() is { } config)
{
    // A bad model repository is the user's to fix: say what and where, without a stack trace.
    await Console.Error.WriteLineAsync($"error: {config.Message}");
    return 2;
}
catch (Exception e) when (e.ConfigurationError() is { } invalid)
{
    await Console.Error.WriteLineAsync($"error: invalid configuration: {invalid}");
    return 2;
}
catch (Exception e) when (e.FindInner<StackExchange.Redis.RedisConnectionException>() is { } redis)
{
    // Redis holds the membership table: without it the silo cannot join. Said plainly, with a clean exit code, so
    // an orchestrator restarts it and a person sees why (an unhandled exception here aborted the process).
    await Console.Error.WriteLineAsync($"error: cannot reach Redis for the cluster's membership table ({redis.Message.Split(". ")[0]}); start Redis or correct Cluster:RedisConnectionString. The silo exits; started again, it tries again.");
    return 4;
}
catch (Exception e) when (e.FindInner<System.Net.Sockets.SocketException>() is { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse } socket)
{
    await Console.Error.WriteLineAsync($"error: a port this silo needs is already in use ({socket.Message}); stop the other process or choose other ports (--urls, --Cluster:SiloPort, --Cluster:GatewayPort).");
    return 3;
}
