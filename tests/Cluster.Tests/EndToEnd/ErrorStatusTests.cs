using System.Text;
using Classifier.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.EndToEnd;

/// <summary>Every error status of the API, provoked through the real gateway, each a problem-details answer that says what to fix.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class ErrorStatusTests(ProcessClusterFixture cluster)
{
    private HttpClient Http => cluster.Http;

    private Task<HttpResponseMessage> PostAsync(string pathAndQuery, HttpContent content) => Http.PostAsync(cluster.GatewayUrl + pathAndQuery, content);

    [Fact]
    public async Task RandomBytesSentAsAnImageAnswer400()
    {
        var noise = new byte[4096];
        new Random(7).NextBytes(noise);
        using var response = await PostAsync("/predict", Raw(noise, "image/png"));
        await response.AssertProblemAsync(400, "not an image");
    }

    [Fact]
    public async Task TruncatedPngAnswers400()
    {
        var png = TextImages.Render("cut short");
        using var response = await PostAsync("/predict", Raw(png[..(png.Length / 2)], "image/png"));
        await response.AssertProblemAsync(400, "damaged or truncated");
    }

    [Fact]
    public async Task EmptyBodyAnswers400()
    {
        using var response = await PostAsync("/predict", Raw([], "image/jpeg"));
        await response.AssertProblemAsync(400, "empty");
    }

    [Theory]
    [InlineData("abc", "whole number")]
    [InlineData("0", "whole number")]
    [InlineData("3", "only 2 classes")]
    public async Task BadTopKAnswers400(string topK, string detail)
    {
        using var response = await PostAsync($"/predict?top_k={topK}", Raw(TextImages.Render("top k"), "image/png"));
        await response.AssertProblemAsync(400, detail);
    }

    [Fact]
    public async Task MultipartWithoutImageFieldAnswers400()
    {
        using var response = await PostAsync("/predict", Form(("photo", TextImages.Render("wrong field"), "a.png", "image/png")));
        await response.AssertProblemAsync(400, "'image' field");
    }

    [Fact]
    public async Task MalformedMultipartAnswers400()
    {
        var body = new StringContent("--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\nnot terminated", Encoding.ASCII);
        body.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("multipart/form-data; boundary=xyz");
        using var response = await PostAsync("/predict", body);
        await response.AssertProblemAsync(400, "malformed");
    }

    [Fact]
    public async Task RawBodyOverTheLimitAnswers413()
    {
        using var response = await PostAsync("/predict", Raw(new byte[ProcessClusterFixture.MaxImageBytes + 1], "image/jpeg"));
        await response.AssertProblemAsync(413, "at most");
    }

    [Fact]
    public async Task MultipartImageOverTheLimitAnswers413()
    {
        using var response = await PostAsync("/predict", Form(("image", new byte[ProcessClusterFixture.MaxImageBytes + 1], "big.jpg", "image/jpeg")));
        await response.AssertProblemAsync(413, "at most");
    }

    [Fact]
    public async Task NonImageContentTypeAnswers415()
    {
        using var response = await PostAsync("/predict", new StringContent("hello", Encoding.UTF8, "text/plain"));
        await response.AssertProblemAsync(415, "image/*");
    }

    [Fact]
    public async Task ImageFormatOutsideTheAllowListAnswers415()
    {
        using var image = new Image<Rgb24>(32, 32);
        using var bmp = new MemoryStream();
        image.SaveAsBmp(bmp);
        using var response = await PostAsync("/predict", Raw(bmp.ToArray(), "image/bmp"));
        await response.AssertProblemAsync(415, "not accepted");
    }

    [Fact]
    public async Task UnknownModelAnswers404()
    {
        using var response = await PostAsync("/predict?model=resnet-9000", Raw(TextImages.Render("which model"), "image/png"));
        await response.AssertProblemAsync(404, "Available models: broken, resnet18, text-orientation");
    }

    [Fact]
    public async Task UnknownVersionAnswers404()
    {
        using var response = await PostAsync("/predict?version=7", Raw(TextImages.Render("which version"), "image/png"));
        await response.AssertProblemAsync(404, "Available versions: 1");
    }

    [Fact]
    public async Task UnknownModelDetailsAnswer404()
    {
        using var response = await Http.GetAsync(cluster.GatewayUrl + "/models/resnet-9000");
        await response.AssertProblemAsync(404, "GET /models");
    }

    [Fact]
    public async Task GatewayWithoutAnyReachableSiloAnswers503()
    {
        using var predict = await Http.PostAsync(cluster.OrphanGatewayUrl + "/predict", Raw(TextImages.Render("anyone there"), "image/png"));
        using var ready = await Http.GetAsync(cluster.OrphanGatewayUrl + "/readyz");

        await predict.AssertProblemAsync(503, "silo");
        await ready.AssertProblemAsync(503, "not connected");
    }

    [Theory]
    [InlineData("/models/{0}", "GET")]
    [InlineData("/predict?model=text-orientation&version={0}", "POST")]
    [InlineData("/predict?top_k={0}", "POST")]
    public async Task ClientValuesAreNotEchoedAtLength(string template, string method)
    {
        var huge = method == "GET" ? new string('a', 7000) : new string('7', 7000);
        using var request = new HttpRequestMessage(new HttpMethod(method), cluster.GatewayUrl + string.Format(System.Globalization.CultureInfo.InvariantCulture, template, huge));
        if (method == "POST")
        {
            request.Content = Raw(TextImages.Render("echo"), "image/png");
        }

        using var response = await cluster.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        Assert.InRange((int)response.StatusCode, 400, 404);
        Assert.True(body.Length < 1000, $"a {huge.Length}-character value came back in a {body.Length}-character answer");
    }

    [Fact]
    public async Task AContentTypeIsNotEchoedAtLength()
    {
        var content = new ByteArrayContent(TextImages.Render("type"));
        content.Headers.TryAddWithoutValidation("Content-Type", "text/" + new string('x', 5000));

        using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", content);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(415, (int)response.StatusCode);
        Assert.True(body.Length < 1000, $"{body.Length} characters: {body[..200]}");
    }
}
