using Classifier.Gateway;
using Classifier.Gateway.Api;
using Classifier.ServiceDefaults;

try
{
    // Settings files live beside the binary, wherever the process is started from.
    var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
    builder.AddClassifierGateway();

    var app = builder.Build();
    app.UseGatewayPipeline();
    app.MapPredictionApi();
    app.MapModelsApi();
    app.MapRepositoryApi();
    app.MapInferenceProtocolApi();
    app.MapInferenceProtocolInfer();
    app.MapHealthApi();
    app.MapGatewayMetrics();

    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e.ConfigurationError() is { } invalid)
{
    await Console.Error.WriteLineAsync($"error: invalid configuration: {invalid}");
    return 2;
}
