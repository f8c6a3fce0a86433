using System.Text.Json;
using Classifier.Gateway.Api;
using Microsoft.AspNetCore.Http;

namespace Classifier.Tests.Unit;

/// <summary>The answers /predict and /predict/batch write: the bytes ASP.NET Core's JSON result wrote, now with their length.</summary>
public sealed class JsonAnswerTests
{
    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    private static PredictionResponse Answer(int labels, float[]? embedding = null) => new(
        "text-orientation", "1", [.. Enumerable.Range(0, labels).Select(i => new PredictionItem($"label \"{i}\" é", i, 1f / (i + 3)))],
        Cached: true, new PredictionTimings(0.125, 2.5, 3.001), "silo-1", "CPU", embedding);

    private static async Task<(byte[] Body, HttpResponse Response)> ExecuteAsync(IResult result)
    {
        var context = new DefaultHttpContext();
        using var body = new MemoryStream();
        context.Response.Body = body;
        await result.ExecuteAsync(context);
        return (body.ToArray(), context.Response);
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(5, true)]
    public async Task APredictionIsWrittenAsTheWebDefaultSerializerWritesItWithItsLength(int labels, bool embedding)
    {
        var answer = Answer(labels, embedding ? [0.5f, -0.25f, 1e-7f] : null);

        var (body, response) = await ExecuteAsync(new JsonAnswer<PredictionResponse>(answer, GatewayJson.Default.PredictionResponse));

        Assert.Equal(JsonSerializer.Serialize(answer, Web), System.Text.Encoding.UTF8.GetString(body));
        Assert.Equal(body.Length, response.ContentLength);
        Assert.Equal(200, response.StatusCode);
        Assert.Equal("application/json; charset=utf-8", response.ContentType);
    }

    [Fact]
    public async Task ALargeBatchAnswerThenASmallOneOnTheSameThreadAreEachWrittenWhole()
    {
        // Past the 64 KiB the per-thread buffer keeps: it is let go, and the next answer must not carry any of it.
        var large = new BatchResponse([.. Enumerable.Range(0, 32).Select(i => new BatchItem(i, $"{i}.png", Answer(1, [.. Enumerable.Range(0, 512).Select(v => v / 7f)]), null))]);
        var small = new BatchResponse([new BatchItem(0, null, null, new ProblemBody(400, "Bad request", "not an image"))]);

        var (first, firstResponse) = await ExecuteAsync(new JsonAnswer<BatchResponse>(large, GatewayJson.Default.BatchResponse));
        var (second, secondResponse) = await ExecuteAsync(new JsonAnswer<BatchResponse>(small, GatewayJson.Default.BatchResponse));
        var (third, _) = await ExecuteAsync(new JsonAnswer<BatchResponse>(small, GatewayJson.Default.BatchResponse));

        Assert.True(first.Length > 64 * 1024, $"the large answer is {first.Length} bytes");
        Assert.Equal(JsonSerializer.Serialize(large, Web), System.Text.Encoding.UTF8.GetString(first));
        Assert.Equal(first.Length, firstResponse.ContentLength);
        Assert.Equal(JsonSerializer.Serialize(small, Web), System.Text.Encoding.UTF8.GetString(second));
        Assert.Equal(second.Length, secondResponse.ContentLength);
        Assert.Equal(second, third);
    }
}
