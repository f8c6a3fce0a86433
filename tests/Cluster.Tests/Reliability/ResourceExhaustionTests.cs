using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.Reliability;

/// <summary>
/// The cheapest requests that cost the most, against a silo and a gateway held to the manifests' memory limits:
/// each gets a fast, clear answer, leaves no work behind, and neither process goes down or over its limit.
/// </summary>
[Collection(LimitedClusterCollection.Name)]
public sealed class ResourceExhaustionTests(LimitedClusterFixture cluster, ITestOutputHelper output)
{
    private const long MiB = 1 << 20;

    /// <summary>Decodes still running after a refusal would show as a busy core; an idle silo uses a few percent of one.</summary>
    private const double IdleCores = 0.5;

    private static readonly Lazy<Task<byte[]>> ScanBomb = new(() => AttackImages.ProgressiveJpegWithScansAsync(6000, 6000, scans: 2000));

    /// <summary>The slowest JPEG the scan limit lets through: 100 scans over 36 MP, seconds of CPU for a few hundred KB.</summary>
    private static readonly Lazy<Task<byte[]>> SlowJpeg = new(() => AttackImages.ProgressiveJpegWithScansAsync(6000, 6000, scans: 100));

    private static readonly Lazy<byte[]> Jpeg40Mp = new(() => AttackImages.Jpeg(6400, 6250));

    private async Task<HttpResponseMessage> PostAsync(byte[] image, string contentType, CancellationToken cancellationToken = default) =>
        await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", Raw(image, contentType), cancellationToken);

    private async Task AssertAnImageStillClassifiesAsync()
    {
        using var response = await PostAsync(TextImages.Numbered(Random.Shared.Next(1_000_000)), "image/png");
        Assert.True(response.IsSuccessStatusCode, $"a normal request failed afterwards: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>A refusal for load (503 from the gateway, 429 from a silo) must say when to come back.</summary>
    private static void AssertRetryable(HttpResponseMessage response)
    {
        if (response.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.TooManyRequests)
        {
            Assert.NotNull(response.Headers.RetryAfter);
        }
    }

    [Theory]
    [InlineData("zTXt", 1024, 1)]
    [InlineData("zTXt", 128, 4)]
    [InlineData("iTXt", 1024, 1)]
    [InlineData("iCCP", 1024, 1)]
    public async Task APngWhoseAncillaryChunksInflateToGigabytesIsClassifiedWithoutInflatingThem(string chunk, int inflatedMib, int chunks)
    {
        var bomb = AttackImages.PngWithCompressedChunks(chunk, inflatedMib * MiB, chunks);

        var measured = await cluster.MeasureAsync($"PNG, {chunks} {chunk} chunk(s) inflating to {inflatedMib} MiB each, {bomb.Length / 1024} KiB", async () =>
        {
            using var response = await PostAsync(bomb, "image/png");
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, body);
            Assert.Equal("0", (await response.JsonAsync()).GetProperty("predictions")[0].GetProperty("label").GetString());
            return $"{(int)response.StatusCode}, label 0";
        }, output);

        Assert.True(measured.SiloPeakBytes < 700 * MiB, $"silo peaked at {measured.SiloPeakBytes / MiB} MiB");
        Assert.True(measured.SiloCoresAfter < IdleCores, $"{measured.SiloCoresAfter:F2} cores busy after the answer");
        cluster.AssertBothAlive("a compressed-chunk bomb");
    }

    [Theory]
    [InlineData("ICCP")]
    [InlineData("EXIF")]
    public async Task ATinyWebpWhoseChunkClaimsGigabytesIsRefusedWithoutAllocatingThem(string chunk)
    {
        var bomb = AttackImages.WebpClaimingAHugeChunk(chunk);

        var measured = await cluster.MeasureAsync($"WebP of {bomb.Length} bytes whose {chunk} chunk claims 2 GiB", async () =>
        {
            using var response = await PostAsync(bomb, "image/webp");
            await response.AssertProblemAsync(400, "truncated");
            return "400 (chunk larger than the file)";
        }, output);

        Assert.True(measured.SiloPeakBytes < 700 * MiB, $"silo peaked at {measured.SiloPeakBytes / MiB} MiB");
        cluster.AssertBothAlive("a WebP chunk-size bomb");
    }

    [Fact]
    public async Task AProgressiveJpegWithThousandsOfScansIsRefusedBeforeDecoding()
    {
        var bomb = await ScanBomb.Value;

        var measured = await cluster.MeasureAsync($"progressive JPEG, 2000 scans over 36 MP, {bomb.Length / 1024} KiB", async () =>
        {
            using var response = await PostAsync(bomb, "image/jpeg");
            await response.AssertProblemAsync(422, "scans");
            return "422 (more than 100 scans)";
        }, output);

        Assert.True(measured.SiloCoresAfter < IdleCores, $"{measured.SiloCoresAfter:F2} cores busy after the refusal");
        cluster.AssertBothAlive("a scan bomb");
    }

    [Fact]
    public async Task TenAbandonedSlowJpegsStopDecodingWhenTheirClientsLeave()
    {
        var jpeg = await SlowJpeg.Value;
        var cancelledBefore = await cluster.SiloMetricAsync("image_decode_refusals_total", "reason=\"cancelled\"");

        var measured = await cluster.MeasureAsync($"10 x progressive JPEG, 100 scans over 36 MP ({jpeg.Length / 1024} KiB), abandoned after 1 s (then 1.5 s for the cancellations)", async () =>
        {
            using var leave = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            var sent = Enumerable.Range(0, 10).Select(async i =>
            {
                try
                {
                    using var response = await PostAsync(Variant(jpeg, i), "image/jpeg", leave.Token);
                    return (int)response.StatusCode;
                }
                catch (OperationCanceledException)
                {
                    return 0;
                }
            });
            var statuses = await Task.WhenAll(sent);

            // The cancellations cross to the silo, and a step that was running finishes (JPEG's final colour
            // conversion does not look at its token: a few hundred milliseconds on 36 MP).
            await Task.Delay(1500);
            return $"clients left: {statuses.Count(s => s == 0)} of 10";
        }, output);

        var cancelled = await cluster.SiloMetricAsync("image_decode_refusals_total", "reason=\"cancelled\"") - cancelledBefore;
        Assert.True(measured.SiloCoresAfter < IdleCores, $"{measured.SiloCoresAfter:F2} cores still busy after the clients left");
        Assert.True(cancelled >= 5, $"only {cancelled} of 10 abandoned decodes were stopped");
        cluster.AssertBothAlive("abandoned slow JPEGs");
        await AssertAnImageStillClassifiesAsync();
    }

    [Fact]
    public async Task ThirtyAbandoned40MegapixelUploadsAreMostlyNeverDecoded()
    {
        var jpeg = Jpeg40Mp.Value;
        var decodedBefore = await cluster.SiloMetricAsync("preprocessing_duration_seconds_count");
        var decoded = 0.0;

        var measured = await cluster.MeasureAsync($"30 x 40 MP JPEG ({jpeg.Length / 1024} KiB), abandoned after 300 ms", async () =>
        {
            using var leave = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            await Task.WhenAll(Enumerable.Range(0, 30).Select(async i =>
            {
                try
                {
                    using var response = await PostAsync(Variant(jpeg, 100 + i), "image/jpeg", leave.Token);
                }
                catch (OperationCanceledException)
                {
                    // the client left, as intended
                }
            }));
            await Task.Delay(1000);
            decoded = await cluster.SiloMetricAsync("preprocessing_duration_seconds_count") - decodedBefore;
            return $"all 30 clients left; {decoded} decoded anyway";
        }, output);

        Assert.True(decoded < 10, $"{decoded} of 30 abandoned uploads were decoded anyway");
        Assert.True(measured.SiloCoresAfter < IdleCores, $"{measured.SiloCoresAfter:F2} cores still busy after the clients left");
        cluster.AssertBothAlive("abandoned 40 MP uploads");
    }

    [Fact]
    public async Task FortyClientsPostingNineMegabyteImagesFor20SecondsGetOnlySuccessOrRetryableRefusals()
    {
        var images = Enumerable.Range(0, 4).Select(i => AttackImages.NoisePng(1730, 1730, seed: i)).ToArray(); // 9 MB each, incompressible
        var statuses = new System.Collections.Concurrent.ConcurrentBag<int>();

        var measured = await cluster.MeasureAsync($"40 clients x 9 MB PNG for 20 s", async () =>
        {
            var until = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, 40).Select(async client =>
            {
                for (var i = 0; until.Elapsed < TimeSpan.FromSeconds(20); i++)
                {
                    using var response = await PostAsync(images[(client + i) % images.Length], "image/png");
                    var status = (int)response.StatusCode;
                    statuses.Add(status);
                    Assert.True(status is 200 or 429 or 503, $"{status}: {await response.Content.ReadAsStringAsync()}");
                    AssertRetryable(response);
                }
            }));
            return LimitedClusterFixture.Describe(statuses);
        }, output);

        Assert.Contains(200, statuses);
        cluster.AssertBothAlive("a flood of 9 MB uploads");
        Assert.True(measured.GatewayPeakBytes < LimitedClusterFixture.GatewayLimitBytes, $"gateway peaked at {measured.GatewayPeakBytes / MiB} MiB");
        Assert.Equal(0, await GatewayUploadBytesInFlightAsync());
        await AssertAnImageStillClassifiesAsync();
    }

    [Fact]
    public async Task MoreDistinctAnswersThanTheNearCacheHoldsKeepItAtItsBoundsWithinTheGatewaysLimit()
    {
        // Every answer a shard gives is copied into the gateway's near cache: a client sending nothing but new
        // images must leave it at its entry bound, inside its byte bound, with the gateway under its 512 MiB.
        var image = TextImages.Render("near cache bound", height: 40);
        var capacity = (int)await GatewayMetricAsync("gateway_near_cache_capacity");
        var evictionsBefore = await GatewayMetricAsync("gateway_near_cache_evictions_total");
        var count = capacity + 1000;
        var statuses = new int[count];
        var next = -1;

        var measured = await cluster.MeasureAsync($"{count} distinct images, 16 clients", async () =>
        {
            await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < count)
                {
                    using var response = await PostAsync(Variant(image, 50_000 + i), "image/png");
                    statuses[i] = (int)response.StatusCode;
                    AssertRetryable(response);
                }
            }));
            return LimitedClusterFixture.Describe(statuses);
        }, output);

        Assert.All(statuses, status => Assert.True(status is 200 or 429 or 503, $"an image answered {status}"));
        var answered = statuses.Count(s => s == 200);
        Assert.True(answered > capacity, $"only {answered} of {count} images were answered; the test needs more than {capacity}");
        Assert.Equal(4096, capacity); // the default, Gateway:NearCacheEntries
        Assert.Equal(capacity, await GatewayMetricAsync("gateway_near_cache_entries"));
        Assert.InRange(await GatewayMetricAsync("gateway_near_cache_bytes"), 1, 16 * MiB);
        Assert.True(await GatewayMetricAsync("gateway_near_cache_evictions_total") - evictionsBefore >= answered - capacity);
        cluster.AssertBothAlive("more distinct answers than the near cache holds");
        Assert.True(measured.GatewayPeakBytes < LimitedClusterFixture.GatewayLimitBytes, $"gateway peaked at {measured.GatewayPeakBytes / MiB} MiB");
    }

    [Fact]
    public async Task TwoHundredNineMegabyteUploadsAtOnceGetOnlySuccessOrRetryableRefusals()
    {
        var image = AttackImages.NoisePng(1730, 1730, seed: 7);
        var statuses = new int[200];

        var measured = await cluster.MeasureAsync("200 uploads of a 9 MB PNG at once", async () =>
        {
            await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
            {
                using var response = await PostAsync(Variant(image, 1000 + i), "image/png");
                statuses[i] = (int)response.StatusCode;
                AssertRetryable(response);
            }));
            return LimitedClusterFixture.Describe(statuses);
        }, output);

        Assert.All(statuses, status => Assert.True(status is 200 or 429 or 503, $"an upload answered {status}"));
        Assert.Contains(200, statuses);
        cluster.AssertBothAlive("200 concurrent 9 MB uploads");
        Assert.Equal(0, await GatewayUploadBytesInFlightAsync());
    }

    [Fact]
    public async Task ABatchOfSixteen40MegapixelJpegsGetsOnlySuccessOrRetryableRefusals()
    {
        var jpeg = Jpeg40Mp.Value;
        var parts = Enumerable.Range(0, 16).Select(i => ("image", Variant(jpeg, i), $"big-{i}.jpg", "image/jpeg")).ToArray();

        await BatchAsync($"batch of 16 x 40 MP JPEG ({16 * jpeg.Length / 1024} KiB)", parts);
    }

    [Fact]
    public async Task ABatchOfThirtyTwo40MegapixelLosslessWebpsGetsOnlySuccessOrRetryableRefusals()
    {
        var webp = AttackImages.LosslessWebp(6400, 6250);
        var parts = Enumerable.Range(0, 32).Select(i => ("image", Variant(webp, i), $"big-{i}.webp", "image/webp")).ToArray();

        await BatchAsync($"batch of 32 x 40 MP lossless WebP ({32 * webp.Length / 1024} KiB)", parts);
    }

    private async Task BatchAsync(string name, (string, byte[], string, string)[] parts)
    {
        var items = new List<int>();
        await cluster.MeasureAsync(name, async () =>
        {
            using var response = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict/batch", Form(parts));
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            foreach (var item in (await response.JsonAsync()).GetProperty("results").EnumerateArray())
            {
                var error = item.GetProperty("error");
                items.Add(error.ValueKind == System.Text.Json.JsonValueKind.Null ? 200 : error.GetProperty("status").GetInt32());
                if (error.ValueKind != System.Text.Json.JsonValueKind.Null && error.GetProperty("status").GetInt32() is not (429 or 503))
                {
                    output.WriteLine($"image {item.GetProperty("index")}: {error}");
                }
            }

            if (items.Contains(503) || items.Contains(429))
            {
                Assert.NotNull(response.Headers.RetryAfter);
            }

            return "200; images: " + LimitedClusterFixture.Describe(items);
        }, output);

        Assert.All(items, status => Assert.True(status is 200 or 413 or 422 or 429 or 503, $"an image answered {status}"));
        cluster.AssertBothAlive(name);
        await AssertAnImageStillClassifiesAsync();
    }

    [Fact]
    public async Task TwoHundredConcurrent40MegapixelJpegsGetOnlySuccessOrRetryableRefusals()
    {
        var jpeg = Jpeg40Mp.Value;
        var statuses = new int[200];

        await cluster.MeasureAsync($"200 concurrent 40 MP JPEGs ({jpeg.Length / 1024} KiB each)", async () =>
        {
            await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
            {
                using var response = await PostAsync(Variant(jpeg, i), "image/jpeg");
                statuses[i] = (int)response.StatusCode;
                if (statuses[i] is not (200 or 429 or 503))
                {
                    output.WriteLine($"request {i}: {statuses[i]} {await response.Content.ReadAsStringAsync()}");
                }

                AssertRetryable(response);
            }));
            return LimitedClusterFixture.Describe(statuses);
        }, output);

        Assert.All(statuses, status => Assert.True(status is 200 or 413 or 422 or 429 or 503, $"an image answered {status}"));
        Assert.Contains(200, statuses);
        cluster.AssertBothAlive("200 concurrent 40 MP JPEGs");
        await AssertAnImageStillClassifiesAsync();
    }

    [Fact]
    public async Task AHundredSlowConnectionsAreCutOffAndDoNotStopOtherClients()
    {
        var measured = await cluster.MeasureAsync("100 connections sending a 10 MiB body at 10 bytes/s", async () =>
        {
            var slow = Enumerable.Range(0, 100).Select(_ => TrickleAsync(bytesPerSecond: 10, TimeSpan.FromSeconds(30))).ToList();
            await Task.Delay(TimeSpan.FromSeconds(1));
            await AssertAnImageStillClassifiesAsync(); // others are served meanwhile
            var cutOff = await Task.WhenAll(slow);
            Assert.All(cutOff, c => Assert.True(c.Elapsed < TimeSpan.FromSeconds(20), $"a slow connection stayed open {c.Elapsed.TotalSeconds:F0} s"));
            return $"all cut off after {cutOff.Max(c => c.Elapsed).TotalSeconds:F1} s at most ({string.Join(", ", cutOff.GroupBy(c => c.Answer).Select(g => $"{g.Key} x{g.Count()}"))})";
        }, output);

        Assert.Equal(0, await GatewayUploadBytesInFlightAsync());
        cluster.AssertBothAlive("slow connections");
    }

    [Fact]
    public async Task ABodyThatKeepsAboveTheMinimumRateButTakesTooLongIsCutOffWith408()
    {
        var measured = await cluster.MeasureAsync($"a 10 MiB body at 16 KB/s (over Gateway:BodyTimeout = {LimitedClusterFixture.BodyTimeout.TotalSeconds:0} s)", async () =>
        {
            var result = await TrickleAsync(bytesPerSecond: 16 * 1024, TimeSpan.FromSeconds(40));
            Assert.StartsWith("408", result.Answer, StringComparison.Ordinal);
            return $"{result.Answer} after {result.Elapsed.TotalSeconds:F1} s";
        }, output);

        Assert.True(measured.Elapsed < LimitedClusterFixture.BodyTimeout + TimeSpan.FromSeconds(8), $"took {measured.Elapsed.TotalSeconds:F0} s");
        cluster.AssertBothAlive("a long body");
    }

    /// <summary>
    /// Sends a request claiming a 10 MiB body and then trickles it at <paramref name="bytesPerSecond"/> until the server
    /// answers or closes; answers the status line (or "closed") and when that happened.
    /// </summary>
    private async Task<(string Answer, TimeSpan Elapsed)> TrickleAsync(int bytesPerSecond, TimeSpan giveUp)
    {
        var clock = Stopwatch.StartNew();
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, new Uri(cluster.GatewayUrl).Port);
        var stream = client.GetStream();
        var header = $"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nContent-Length: {10 * MiB}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(header));
        var reading = ReadStatusAsync(stream);
        var tick = TimeSpan.FromMilliseconds(100);
        var perTick = new byte[Math.Max(1, bytesPerSecond / 10)];
        while (!reading.IsCompleted && clock.Elapsed < giveUp)
        {
            try
            {
                await stream.WriteAsync(perTick);
            }
            catch (IOException)
            {
                break; // the server closed the connection
            }

            await Task.WhenAny(reading, Task.Delay(tick));
        }

        var answer = await reading.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : "no answer");
        return (answer, clock.Elapsed);
    }

    private static async Task<string> ReadStatusAsync(NetworkStream stream)
    {
        var buffer = new byte[256];
        try
        {
            var read = await stream.ReadAsync(buffer);
            return read == 0 ? "closed" : Encoding.ASCII.GetString(buffer, 0, read).Split("\r\n")[0].Replace("HTTP/1.1 ", "", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return "reset";
        }
    }

    private Task<double> GatewayUploadBytesInFlightAsync() => GatewayMetricAsync("gateway_upload_bytes_in_flight");

    /// <summary>A gateway series without labels, from its /metrics.</summary>
    private async Task<double> GatewayMetricAsync(string name)
    {
        var text = await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/metrics");
        var line = text.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal));
        return double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The image with four bytes after its end (which decoders ignore): a distinct hash, so a cache miss, at the same decoding cost.</summary>
    private static byte[] Variant(byte[] image, int i) => [.. image, .. BitConverter.GetBytes(i)];
}
