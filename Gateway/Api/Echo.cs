using System.Text;

namespace Classifier.Gateway.Api;

/// <summary>
/// Client-sent text quoted back in an answer: cut short and stripped of control characters, so an error can
/// say what it refused without reflecting kilobytes (or terminal escapes) of whatever was sent.
/// </summary>
public static class Echo
{
    public const int DefaultLength = 64;

    public static string Of(string? value, int maxLength = DefaultLength)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "";
        }

        var text = value.Length <= maxLength ? value : value[..maxLength];
        var clean = new StringBuilder(text.Length + 3);
        foreach (var c in text)
        {
            clean.Append(char.IsControl(c) ? '?' : c);
        }

        return value.Length <= maxLength ? clean.ToString() : clean.Append("...").ToString();
    }

    /// <summary>A multipart file name as the batch answer repeats it: at most 255 characters, no control characters.</summary>
    public static string? FileName(string? value) => value is null ? null : Of(value, 255);
}
