using Classifier.Gateway;
using Classifier.Gateway.Api;

// Settings files live beside the binary, wherever the process is started from.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddClassifierGateway();

var app = builder.Build();
app.UseGatewayPipeline();
app.MapPredictionApi();
app.MapModelsApi();
app.MapHealthApi();
app.MapGatewayMetrics();

app.Run();
