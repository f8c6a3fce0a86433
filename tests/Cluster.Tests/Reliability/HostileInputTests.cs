using System.Globalization;
using System.Text.RegularExpressions;
using Classifier.Tests.EndToEnd;
using Classifier.Tests.Support;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;

namespace Classifier.Tests.Reliability;

/// <summary>One silo and a gateway of their own, so the silo's memory reflects only this corpus.</summary>
public sealed class HostileInputFixture : IAsyncLifetime
{
    public const long MaxImageBytes = 2 * 1024 * 1024;

    private readonly List<ClusterProcess> _processes = [];

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    public string GatewayUrl { get; private set; } = "";

    public string SiloUrl { get; private set; } = "";

    public ClusterProcess Silo { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Repo.RequireDefaultModel();
        var clusterId = "hostile-" + Guid.NewGuid().ToString("N")[..8];
        var (siloHttp, siloPort, siloGateway, gatewayHttp) = (ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort(), ClusterProcess.FreePort());
        Silo = Track(ClusterProcess.StartSilo("hostile-silo", siloHttp, siloPort, siloGateway, siloPort, clusterId, Repo.Models));
        var gateway = Track(ClusterProcess.StartGateway("hostile-gateway", gatewayHttp, [siloGateway], clusterId, "--Gateway:MaxImageBytes", $"{MaxImageBytes}"));
        (SiloUrl, GatewayUrl) = ($"http://127.0.0.1:{siloHttp}", $"http://127.0.0.1:{gatewayHttp}");
        await Silo.WaitUntilOkAsync(Http, SiloUrl + "/readyz", TimeSpan.FromSeconds(60));
        await gateway.WaitUntilOkAsync(Http, GatewayUrl + "/readyz", TimeSpan.FromSeconds(60));
    }

    private ClusterProcess Track(ClusterProcess process)
    {
        _processes.Add(process);
        return process;
    }

    /// <summary>The silo's resident memory, as its own metrics report it.</summary>
    public async Task<double> SiloRssBytesAsync()
    {
        var text = await Http.GetStringAsync(SiloUrl + "/metrics");
        return double.Parse(Regex.Match(text, @"^process_memory_bytes\{type=""rss""\} (\S+)$", RegexOptions.Multiline).Groups[1].Value, CultureInfo.InvariantCulture);
    }

    public async Task<HttpResponseMessage> PostAsync(byte[] body, string contentType, string query = "") =>
        await Http.PostAsync(GatewayUrl + "/predict" + query, HttpHelpers.Raw(body, contentType));

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        Http.Dispose();
    }
}

/// <summary>Broken, hostile and unusual images: refused with the right 4xx or classified correctly, never a 5xx or a dead silo.</summary>
public sealed class HostileInputTests(HostileInputFixture cluster, ITestOutputHelper output) : IClassFixture<HostileInputFixture>
{
    public static TheoryData<string> RefusedNames() => new(HostileImages.Refused(HostileInputFixture.MaxImageBytes).Select(e => e.Name));

    [Theory]
    [MemberData(nameof(RefusedNames))]
    public async Task HostileOrBrokenInputIsRefusedWithTheRightStatus(string name)
    {
        var entry = HostileImages.Refused(HostileInputFixture.MaxImageBytes).Single(e => e.Name == name);

        using var response = await cluster.PostAsync(entry.Body, entry.ContentType);

        await response.AssertProblemAsync(entry.ExpectedStatus, "");
    }

    public static TheoryData<string> UnusualNames() =>
        new("16-bit PNG", "grayscale PNG", "palette PNG", "CMYK JPEG", "grayscale JPEG", "progressive JPEG", "transparent PNG", "lossy WebP", "lossless WebP", "animated GIF with 300 frames");

    private static async Task<byte[]> UnusualAsync(string name) => name switch
    {
        "16-bit PNG" => HostileImages.Png(PngColorType.Rgb, PngBitDepth.Bit16),
        "grayscale PNG" => HostileImages.Png(PngColorType.Grayscale, PngBitDepth.Bit8),
        "palette PNG" => HostileImages.Png(PngColorType.Palette, PngBitDepth.Bit8),
        "CMYK JPEG" => HostileImages.Jpeg(JpegColorType.Cmyk),
        "grayscale JPEG" => HostileImages.Jpeg(JpegColorType.Luminance),
        "progressive JPEG" => await HostileImages.ProgressiveJpegAsync(),
        "transparent PNG" => HostileImages.TransparentPng(),
        "lossy WebP" => HostileImages.Webp(lossless: false),
        "lossless WebP" => HostileImages.Webp(lossless: true),
        "animated GIF with 300 frames" => HostileImages.GifWithFrames(300),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(UnusualNames))]
    public async Task UnusualButValidImagesAreClassifiedCorrectly(string name)
    {
        var image = await UnusualAsync(name);

        using var response = await cluster.PostAsync(image, "application/octet-stream");

        Assert.True(response.IsSuccessStatusCode, $"{name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var top = (await response.JsonAsync()).GetProperty("predictions")[0];
        Assert.Equal("0", top.GetProperty("label").GetString());
        Assert.True(top.GetProperty("probability").GetDouble() > 0.9, $"{name}: P(upright) = {top.GetProperty("probability").GetDouble()}");
    }

    [Fact]
    public async Task OnePixelImageIsClassifiedWithoutError()
    {
        using var response = await cluster.PostAsync(HostileImages.OnePixelPng(), "image/png");

        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ReplayingTheCorpusManyTimesKeepsSiloMemoryBoundedWhileValidRequestsSucceed()
    {
        const int rounds = 12;
        const double allowedGrowthBytes = 150 * 1024 * 1024;
        var corpus = HostileImages.Refused(HostileInputFixture.MaxImageBytes);
        var valid = Enumerable.Range(0, 8).Select(i => TextImages.Numbered(12000 + i)).ToArray();

        async Task<double> ReplayAsync(int round)
        {
            var hostile = corpus.Select(async e =>
            {
                using var r = await cluster.PostAsync(e.Body, e.ContentType);
                Assert.Equal(e.ExpectedStatus, (int)r.StatusCode);
            });
            var good = valid.Select(async (image, i) =>
            {
                using var r = await cluster.PostAsync(image, "image/png", $"?round={round}&i={i}");
                Assert.True(r.IsSuccessStatusCode, $"a valid request failed during the replay: {(int)r.StatusCode}");
            });
            await Task.WhenAll(hostile.Concat(good));
            return await cluster.SiloRssBytesAsync();
        }

        var warm = await ReplayAsync(0);
        var samples = new List<double> { warm };
        for (var round = 1; round < rounds; round++)
        {
            samples.Add(await ReplayAsync(round));
        }

        output.WriteLine($"silo RSS over {rounds} replays of {corpus.Count} hostile + {valid.Length} valid requests: " +
            string.Join(", ", samples.Select(s => $"{s / 1048576:F0}")) + " MiB");
        Assert.False(cluster.Silo.HasExited);
        Assert.True(samples.Max() - warm < allowedGrowthBytes, $"silo RSS grew by {(samples.Max() - warm) / 1048576:F0} MiB after warm-up");
    }

    [Fact]
    public async Task RandomlyMutatedImagesNeverCauseAServerErrorOrTakeTheSiloDown()
    {
        const int rounds = 300;
        var seeds = new[] { HostileImages.UprightPng, HostileImages.Jpeg(), HostileImages.Webp(lossless: false), HostileImages.GifWithFrames(3) };
        var random = new Random(20261126);
        var statuses = new Dictionary<int, int>();
        for (var round = 0; round < rounds; round++)
        {
            var image = Mutate(seeds[round % seeds.Length], random);
            using var response = await cluster.PostAsync(image, "application/octet-stream");
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            Assert.True(status is 200 or 400 or 413 or 415, $"round {round}: {status} {await response.Content.ReadAsStringAsync()}");
        }

        output.WriteLine("fuzz statuses: " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}")));
        using var health = await cluster.Http.GetAsync(cluster.SiloUrl + "/healthz");
        Assert.Equal(200, (int)health.StatusCode);
        Assert.False(cluster.Silo.HasExited);
    }

    /// <summary>Flips bits, overwrites, inserts or cuts bytes, a few times; headers are hit as often as bodies.</summary>
    private static byte[] Mutate(byte[] seed, Random random)
    {
        var bytes = seed.ToList();
        var edits = random.Next(1, 6);
        for (var e = 0; e < edits && bytes.Count > 1; e++)
        {
            var at = random.Next(2) == 0 ? random.Next(Math.Min(64, bytes.Count)) : random.Next(bytes.Count);
            switch (random.Next(4))
            {
                case 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 2:
                    bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 16)).Select(_ => (byte)random.Next(256)));
                    break;
                default:
                    bytes.RemoveRange(at, Math.Min(bytes.Count - at, random.Next(1, 64)));
                    break;
            }
        }

        return [.. bytes];
    }
}
