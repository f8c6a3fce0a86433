using System.Globalization;
using Classifier.Grains.Interfaces;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>
/// A program that reaches the silo's Orleans gateway port without going through the HTTP gateway (what the
/// NetworkPolicy and cluster TLS keep out in Kubernetes) still cannot poison caches or pile up grains.
/// </summary>
[Collection(LimitedClusterCollection.Name)]
public sealed class ForgedCallTests(LimitedClusterFixture cluster) : IAsyncLifetime
{
    private IHost _host = null!;

    private IClusterClient Client => _host.Services.GetRequiredService<IClusterClient>();

    public async ValueTask InitializeAsync()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleansClient(client => client.UseLocalhostClustering(cluster.SiloGatewayPort, cluster.ClusterId, cluster.ClusterId));
        _host = builder.Build();
        await _host.StartAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }

    private static string KeyFor(byte[] image) =>
        ModelGrainKey.Format("text-orientation", "1", ImageHash.Of(image).ShardOf(32));

    [Fact]
    public async Task AForgedCallCannotFileOneImagesAnswerUnderAnotherImage()
    {
        var upright = TextImages.Render("Cache poisoning attempt");
        var upsideDown = TextImages.Render("Cache poisoning attempt", upsideDown: true);

        // The attacker sends the upside-down image to the grain that owns the upright one, as often as it likes.
        for (var i = 0; i < 3; i++)
        {
            var forged = await Client.GetGrain<IModelGrain>(KeyFor(upright)).PredictAsync(new PredictionRequest(upsideDown, 0));
            Assert.Equal("180", forged.Prediction?.Scores[0].Label);
        }

        using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(upright, "image/png"));
        var answer = await response.JsonAsync();

        Assert.Equal("0", answer.GetProperty("predictions")[0].GetProperty("label").GetString());
    }

    [Theory]
    [InlineData("text-orientation/1/32")]
    [InlineData("text-orientation/1/99999")]
    [InlineData("text-orientation/1/-1")]
    [InlineData("text-orientation/1/007")]
    [InlineData("text-orientation/1")]
    [InlineData("not a key")]
    public async Task KeysOutsideTheShardCountOrMalformedAreRefused(string key)
    {
        var reply = await Client.GetGrain<IModelGrain>(key).PredictAsync(new PredictionRequest(TextImages.Render("forged key"), 0));

        Assert.Null(reply.Prediction);
        Assert.Equal(PredictionErrorKind.ModelUnavailable, reply.Error?.Kind);
    }

    [Fact]
    public async Task HundredsOfMadeUpModelKeysDoNotPileUpActivations()
    {
        var before = await ModelGrainActivationsAsync();

        var replies = await Task.WhenAll(Enumerable.Range(0, 300).Select(i =>
            Client.GetGrain<IModelGrain>(ModelGrainKey.Format($"made-up-{i}", "1", 0)).PredictAsync(new PredictionRequest([1, 2, 3], 0))));
        await Task.Delay(TimeSpan.FromSeconds(3)); // deactivation after the answer is asynchronous

        Assert.All(replies, r => Assert.Equal(PredictionErrorKind.ModelNotFound, r.Error?.Kind));
        var after = await ModelGrainActivationsAsync();
        Assert.True(after - before < 30, $"ModelGrain activations went from {before} to {after}");
    }

    private async Task<double> ModelGrainActivationsAsync()
    {
        var text = await cluster.Http.GetStringAsync(cluster.SiloUrl + "/metrics");
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith("microsoft_orleans_orleans_catalog_activations{grain_type=\"model\"}", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line.Split(' ')[^1], CultureInfo.InvariantCulture);
    }
}
