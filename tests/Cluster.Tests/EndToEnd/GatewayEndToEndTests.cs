using System.Text.RegularExpressions;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.EndToEnd;

[Collection(ProcessClusterCollection.Name)]
public sealed class GatewayEndToEndTests(ProcessClusterFixture cluster)
{
    private HttpClient Http => cluster.Http;

    [Fact]
    public async Task UprightAndUpsideDownImagesAreClassifiedThroughTheGateway()
    {
        using var upright = await Http.PostAsync(cluster.GatewayUrl + "/predict", Form(("image", TextImages.Render("End to end"), "up.png", "image/png")));
        using var rotated = await Http.PostAsync(cluster.GatewayUrl + "/predict?top_k=1", Raw(TextImages.Render("End to end", upsideDown: true), "image/png"));

        Assert.True(upright.IsSuccessStatusCode, await upright.Content.ReadAsStringAsync());
        var up = await upright.JsonAsync();
        Assert.Equal("text-orientation", up.GetProperty("model").GetString());
        Assert.Equal("1", up.GetProperty("version").GetString());
        Assert.Equal("0", up.GetProperty("predictions")[0].GetProperty("label").GetString());
        Assert.Equal(0, up.GetProperty("predictions")[0].GetProperty("index").GetInt32());
        Assert.Equal(2, up.GetProperty("predictions").GetArrayLength());
        Assert.False(up.GetProperty("cached").GetBoolean());
        Assert.StartsWith("silo-", up.GetProperty("silo").GetString(), StringComparison.Ordinal);
        Assert.Equal("CPU", up.GetProperty("provider").GetString());
        var timings = up.GetProperty("timings");
        Assert.True(timings.GetProperty("inferenceMs").GetDouble() > 0);
        Assert.True(timings.GetProperty("totalMs").GetDouble() >= timings.GetProperty("inferenceMs").GetDouble());

        var down = await rotated.JsonAsync();
        Assert.Equal(1, down.GetProperty("predictions").GetArrayLength());
        Assert.Equal("180", down.GetProperty("predictions")[0].GetProperty("label").GetString());
    }

    [Fact]
    public async Task PredictionAnswersCarryTheirLengthAndAreNotChunked()
    {
        var image = TextImages.Render("answered with a length");

        using var miss = await Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(image, "image/png"));
        using var hit = await Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(image, "image/png"));
        using var batch = await Http.PostAsync(cluster.GatewayUrl + "/predict/batch", Form(("images", image, "a.png", "image/png"), ("images", image, "b.png", "image/png")));

        foreach (var response in new[] { miss, hit, batch })
        {
            var body = await response.Content.ReadAsByteArrayAsync();
            Assert.True(response.IsSuccessStatusCode, System.Text.Encoding.UTF8.GetString(body));
            Assert.Equal(body.Length, response.Content.Headers.ContentLength);
            Assert.NotEqual(true, response.Headers.TransferEncodingChunked);
            Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        }

        Assert.True((await hit.JsonAsync()).GetProperty("cached").GetBoolean());
    }

    [Theory]
    [InlineData("upright.png", "0")]
    [InlineData("upside-down.png", "180")]
    public async Task TheReadmeSamplesAreClassifiedAsTheReadmeSays(string sample, string label)
    {
        var image = await File.ReadAllBytesAsync(Path.Combine(Repo.Root, "samples", sample));

        using var response = await Http.PostAsync(cluster.GatewayUrl + "/predict?top_k=1", Form(("image", image, sample, "image/png")));

        var top = (await response.JsonAsync()).GetProperty("predictions")[0];
        Assert.Equal(label, top.GetProperty("label").GetString());
        Assert.True(top.GetProperty("probability").GetDouble() > 0.99);
    }

    [Fact]
    public async Task RepeatedImageIsAnsweredFromTheCache()
    {
        var image = TextImages.Render("twice through the gateway");

        using var first = await Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(image, "image/png"));
        using var second = await Http.PostAsync(cluster.GatewayUrl + "/predict", Form(("image", image, "again.png", "image/png")));

        Assert.False((await first.JsonAsync()).GetProperty("cached").GetBoolean());
        var cached = await second.JsonAsync();
        Assert.True(cached.GetProperty("cached").GetBoolean());
        Assert.Equal(0, cached.GetProperty("timings").GetProperty("inferenceMs").GetDouble());
    }

    [Fact]
    public async Task EmbeddingModelAnswersAUnitVectorAndTheSameVectorFromCache()
    {
        var image = TextImages.Render("an embedding, please");

        using var first = await Http.PostAsync(cluster.GatewayUrl + "/predict?model=resnet18", Raw(image, "image/png"));
        using var second = await Http.PostAsync(cluster.GatewayUrl + "/predict?model=resnet18", Raw(image, "image/png"));
        using var withTopK = await Http.PostAsync(cluster.GatewayUrl + "/predict?model=resnet18&top_k=1", Raw(image, "image/png"));
        using var description = await Http.GetAsync(cluster.GatewayUrl + "/models/resnet18");

        Assert.True(first.IsSuccessStatusCode, await first.Content.ReadAsStringAsync());
        var (a, b) = (await first.JsonAsync(), await second.JsonAsync());
        Assert.Equal(0, a.GetProperty("predictions").GetArrayLength());
        var vector = a.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(512, vector.Length);
        Assert.Equal(1.0, Math.Sqrt(vector.Sum(v => (double)v * v)), 3);
        Assert.False(a.GetProperty("cached").GetBoolean());
        Assert.True(b.GetProperty("cached").GetBoolean());
        Assert.Equal(vector, b.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()));
        await withTopK.AssertProblemAsync(400, "answers embeddings");
        var version = (await description.JsonAsync()).GetProperty("versions")[0];
        Assert.Equal("embedding", version.GetProperty("outputKind").GetString());
        Assert.Equal(512, version.GetProperty("outputLength").GetInt32());
        Assert.Equal(0, version.GetProperty("labelCount").GetInt32());
    }

    [Fact]
    public async Task ClassifierAnswersCarryNoEmbeddingField()
    {
        using var response = await Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(TextImages.Render("labels only"), "image/png"));

        var answer = await response.JsonAsync();
        Assert.False(answer.TryGetProperty("embedding", out _));
        Assert.Equal("classes", (await (await Http.GetAsync(cluster.GatewayUrl + "/models/text-orientation")).JsonAsync()).GetProperty("versions")[0].GetProperty("outputKind").GetString());
    }

    [Fact]
    public async Task BatchAnswersEachImageInOrderWithItsOwnResultOrError()
    {
        using var response = await Http.PostAsync(cluster.GatewayUrl + "/predict/batch", Form(
            ("image", TextImages.Render("first line"), "a.png", "image/png"),
            ("image", "not an image"u8.ToArray(), "b.png", "image/png"),
            ("image", TextImages.Render("third line", upsideDown: true), "c.png", "image/png")));

        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var results = (await response.JsonAsync()).GetProperty("results");
        Assert.Equal(3, results.GetArrayLength());
        Assert.Equal([0, 1, 2], results.EnumerateArray().Select(r => r.GetProperty("index").GetInt32()));
        Assert.Equal("0", results[0].GetProperty("result").GetProperty("predictions")[0].GetProperty("label").GetString());
        Assert.Equal(400, results[1].GetProperty("error").GetProperty("status").GetInt32());
        Assert.Equal("b.png", results[1].GetProperty("fileName").GetString());
        Assert.Equal("180", results[2].GetProperty("result").GetProperty("predictions")[0].GetProperty("label").GetString());
    }

    [Fact]
    public async Task ModelsEndpointsDescribeTheDefaultModel()
    {
        using var list = await Http.GetAsync(cluster.GatewayUrl + "/models");
        using var one = await Http.GetAsync(cluster.GatewayUrl + "/models/text-orientation");

        var models = await list.JsonAsync();
        Assert.Equal("text-orientation", models.GetProperty("defaultModel").GetString());
        var model = await one.JsonAsync();
        Assert.Equal("1", model.GetProperty("latestVersion").GetString());
        var version = model.GetProperty("versions")[0];
        Assert.Equal("ready", version.GetProperty("state").GetString());
        Assert.Equal(2, version.GetProperty("labelCount").GetInt32());
        Assert.Equal("x", version.GetProperty("input").GetProperty("name").GetString());
        Assert.Equal([3, 48, 192], version.GetProperty("input").GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        Assert.Equal("CPU", version.GetProperty("providers")[0].GetString());
        Assert.Contains(version.GetProperty("silos").EnumerateArray(), s => s.GetProperty("silo").GetString() == "silo-a" && s.GetProperty("state").GetString() == "ready");
    }

    [Fact]
    public async Task HealthAndReadinessAnswerOkWhenTheClusterServes()
    {
        using var live = await Http.GetAsync(cluster.GatewayUrl + "/healthz");
        using var ready = await Http.GetAsync(cluster.GatewayUrl + "/readyz");
        using var siloReady = await Http.GetAsync(cluster.SiloUrl + "/readyz");

        Assert.Equal(200, (int)live.StatusCode);
        Assert.Equal(200, (int)ready.StatusCode);
        Assert.Equal(200, (int)siloReady.StatusCode);
    }

    [Fact]
    public async Task GatewayMetricsRecordRequestsByRouteTemplateWithTheOriginalBuckets()
    {
        using var _ = await Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(TextImages.Render("metrics"), "image/png"));
        using var __ = await Http.GetAsync(cluster.GatewayUrl + "/models/no-such-model");

        var text = await Http.GetStringAsync(cluster.GatewayUrl + "/metrics");

        Assert.Matches(@"http_requests_total\{endpoint=""/predict"",method=""POST"",status=""200""\} [1-9]", text);
        Assert.Contains("http_requests_total{endpoint=\"/models/{name}\",method=\"GET\",status=\"404\"}", text, StringComparison.Ordinal);
        Assert.DoesNotContain("no-such-model", text, StringComparison.Ordinal);
        foreach (var le in new[] { "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "30", "+Inf" })
        {
            Assert.Contains($"http_request_duration_seconds_bucket{{endpoint=\"/predict\",method=\"POST\",le=\"{le}\"}}", text, StringComparison.Ordinal);
        }

        Assert.Matches(@"app_info\{version=""[^""]+"",build=""[^""]+"",role=""gateway"",orleans_version=""10\.[^""]+"",onnxruntime_version=""none""\} 1", text);
        Assert.Contains("gateway_requests_in_flight ", text, StringComparison.Ordinal);
        Assert.Matches(@"gateway_upstream_duration_seconds_count\{model=""text-orientation""\} [1-9]", text);
        Assert.DoesNotContain("system_runtime_", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SiloMetricsExposeEveryMetricOfTheContract()
    {
        using var _ = await Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(TextImages.Render("silo metrics"), "image/png"));
        await Task.Delay(TimeSpan.FromSeconds(1.2)); // two cluster-report intervals

        var text = await Http.GetStringAsync(cluster.SiloUrl + "/metrics");

        string[] series =
        [
            "predictions_total{status=\"success\"}", "predictions_total{status=\"cache_hit\"}", "predictions_total{status=\"error\"}",
            "inference_duration_seconds_count{model=\"text-orientation\",version=\"1\"}",
            "preprocessing_duration_seconds_count{model=\"text-orientation\",version=\"1\"}",
            "cache_hits_total{model=\"text-orientation\",version=\"1\"}", "cache_misses_total{model=\"text-orientation\",version=\"1\"}",
            "cache_evictions_total{model=\"text-orientation\",version=\"1\"}",
            "cache_hit_rate ", "cache_size_current ", "cache_capacity ", "cache_memory_bytes ", "cluster_cache_hit_rate ",
            "model_state{model=\"text-orientation\",version=\"1\"} 1",
            "model_execution_provider{model=\"text-orientation\",version=\"1\",provider=\"CPU\",requested=\"cpu\"} 1",
            "inference_queue_depth{model=\"text-orientation\",version=\"1\"}",
            "inference_queue_wait_seconds_count{model=\"text-orientation\",version=\"1\"}",
            "inference_batch_size_bucket{model=\"text-orientation\",version=\"1\",le=\"1\"}",
            "silo_gpu_devices ",
            "microsoft_orleans_orleans_catalog_activations",
            "system_memory_percent ", "system_cpu_percent ",
            "process_memory_bytes{type=\"rss\"}", "process_memory_bytes{type=\"vms\"}",
        ];
        foreach (var s in series)
        {
            Assert.Contains(s, text, StringComparison.Ordinal);
        }

        foreach (var le in new[] { "0.05", "0.1", "0.2", "0.5", "1", "2", "5", "+Inf" })
        {
            Assert.Contains($"inference_duration_seconds_bucket{{model=\"text-orientation\",version=\"1\",le=\"{le}\"}}", text, StringComparison.Ordinal);
        }

        Assert.Matches(@"predictions_total\{status=""success""\} [1-9]", text);
        Assert.Matches(@"app_info\{version=""[^""]+"",build=""[^""]+"",role=""silo"",orleans_version=""10\.[^""]+"",onnxruntime_version=""1\.31[^""]*""\} 1", text);
        Assert.DoesNotContain("system_runtime_", text, StringComparison.Ordinal);
        Assert.DoesNotContain("private_internaldiagnostics", text, StringComparison.Ordinal);
        var memory = double.Parse(Regex.Match(text, @"^system_memory_percent (\S+)$", RegexOptions.Multiline).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(memory, 0.001, 100);
        await AssertClusterHitRateEqualsTheSilosOwnAsync();
    }

    /// <summary>
    /// The cluster-wide rate (summed from every grain's statistics through the cluster grain) must equal hits / (hits +
    /// misses) of the silos' own counters summed, once their next reports have gone out. Another test in this
    /// collection may have added a second silo, so every silo counts.
    /// </summary>
    private async Task AssertClusterHitRateEqualsTheSilosOwnAsync()
    {
        using var hit = await Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(TextImages.Render("rate check"), "image/png"));
        using var again = await Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(TextImages.Render("rate check"), "image/png"));
        double expected = -1, reported = -2;
        for (var attempt = 0; attempt < 40 && Math.Abs(expected - reported) > 1e-9; attempt++)
        {
            await Task.Delay(250);
            var texts = await Task.WhenAll(cluster.SiloUrls.Select(url => cluster.Http.GetStringAsync(url + "/metrics")));
            var text = texts[0];
            double Sum(string name) => texts.Sum(t => Regex.Matches(t, $@"^{name}\{{[^}}]*\}} (\S+)$", RegexOptions.Multiline)
                .Sum(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)));
            var (hits, misses) = (Sum("cache_hits_total"), Sum("cache_misses_total"));
            expected = hits / (hits + misses);
            reported = double.Parse(Regex.Match(text, @"^cluster_cache_hit_rate (\S+)$", RegexOptions.Multiline).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        Assert.True(expected > 0, "the repeated image was no cache hit");
        Assert.Equal(expected, reported, 9);
    }
}
