using System.Net.Http.Headers;
using System.Text.Json;

namespace Classifier.Tests.EndToEnd;

internal static class HttpHelpers
{
    public static MultipartFormDataContent Form(params (string Field, byte[] Bytes, string FileName, string ContentType)[] parts)
    {
        var form = new MultipartFormDataContent();
        foreach (var (field, bytes, fileName, contentType) in parts)
        {
            var content = new ByteArrayContent(bytes);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
            form.Add(content, field, fileName);
        }

        return form;
    }

    public static ByteArrayContent Raw(byte[] bytes, string contentType)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        return content;
    }

    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Asserts an RFC 7807 answer with the given status and a detail that mentions <paramref name="detailContains"/>.</summary>
    public static async Task AssertProblemAsync(this HttpResponseMessage response, int status, string detailContains)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, $"expected {status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonDocument.Parse(body).RootElement;
        Assert.Equal(status, json.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("title").GetString()));
        Assert.Contains(detailContains, json.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
    }
}
