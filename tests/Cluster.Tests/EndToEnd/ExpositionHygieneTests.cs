using System.Text.RegularExpressions;
using Classifier.Tests.Support;
using static Classifier.Tests.EndToEnd.HttpHelpers;

namespace Classifier.Tests.EndToEnd;

/// <summary>What Prometheus' own tools say about the exposition, and what its labels may carry.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed partial class ExpositionHygieneTests(ProcessClusterFixture cluster)
{
    private async Task<(string Gateway, string Silo)> ScrapeAfterTrafficAsync()
    {
        // Traffic of every kind first, so every labelled series exists: success, cache hit, errors, 404s.
        var image = TextImages.Render("hygiene");
        foreach (var content in new HttpContent[] { Raw(image, "image/png"), Raw(image, "image/png"), Raw("junk"u8.ToArray(), "image/png") })
        {
            using var _ = await cluster.Http.PostAsync(cluster.GatewayUrl + "/predict", content);
        }

        using var __ = await cluster.Http.GetAsync(cluster.GatewayUrl + "/no/such/path/12345");
        return (await cluster.Http.GetStringAsync(cluster.GatewayUrl + "/metrics"), await cluster.Http.GetStringAsync(cluster.SiloUrl + "/metrics"));
    }

    [Fact]
    public async Task PromtoolCheckMetricsReportsNothingForTheGatewayAndTheSilo()
    {
        var promtool = Tool.Find("promtool", "prometheus");
        var (gateway, silo) = await ScrapeAfterTrafficAsync();

        foreach (var (role, text) in new[] { ("gateway", gateway), ("silo", silo) })
        {
            var (code, output) = await Tool.RunAsync(promtool, ["check", "metrics"], stdin: text);
            Assert.True(code == 0 && output.Trim().Length == 0, $"promtool check metrics on the {role}: exit {code}\n{output}");
        }
    }

    [Fact]
    public async Task NoLabelCarriesAHashAKeyARequestIdOrARawPath()
    {
        var (gateway, silo) = await ScrapeAfterTrafficAsync();

        foreach (var text in new[] { gateway, silo })
        {
            foreach (Match label in LabelPair().Matches(text))
            {
                var (name, value) = (label.Groups[1].Value, label.Groups[2].Value);
                Assert.False(HexRun().IsMatch(value), $"{name}=\"{value}\" looks like a hash or id");
                Assert.DoesNotContain("/no/such/path", value, StringComparison.Ordinal);
                Assert.DoesNotContain("text-orientation/1/", value, StringComparison.Ordinal); // grain keys
            }
        }

        Assert.Contains("endpoint=\"unmatched\"", gateway, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithTracingOffNoExemplarNamesATraceThatWasNeverExported()
    {
        // A caller's trace context makes ASP.NET Core start an Activity with that trace id, traced or not.
        var traceId = System.Diagnostics.ActivityTraceId.CreateRandom().ToHexString();
        using (var request = new HttpRequestMessage(HttpMethod.Post, cluster.GatewayUrl + "/predict") { Content = Raw(TextImages.Render("exemplar-free"), "image/png") })
        {
            request.Headers.Add("traceparent", $"00-{traceId}-{System.Diagnostics.ActivitySpanId.CreateRandom().ToHexString()}-01");
            using var response = await cluster.Http.SendAsync(request);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }

        foreach (var url in new[] { cluster.GatewayUrl + "/metrics", cluster.SiloUrl + "/metrics" })
        {
            using var scrape = new HttpRequestMessage(HttpMethod.Get, url);
            scrape.Headers.Accept.Add(new System.Net.Http.Headers.MediaTypeWithQualityHeaderValue("application/openmetrics-text"));
            using var response = await cluster.Http.SendAsync(scrape);
            var text = await response.Content.ReadAsStringAsync();

            Assert.Contains("# EOF", text, StringComparison.Ordinal); // OpenMetrics, where exemplars would appear
            Assert.DoesNotContain("trace_id=", text, StringComparison.Ordinal);
        }
    }

    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)=""([^""]*)""")]
    private static partial Regex LabelPair();

    [GeneratedRegex("[0-9a-fA-F]{16,}|[0-9a-f]{8}-[0-9a-f]{4}-")]
    private static partial Regex HexRun();
}
