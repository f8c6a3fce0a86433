using SkiaSharp;

namespace Classifier.Tests.Support;

/// <summary>Renders lines of text as PNG images with a real TrueType font, upright or turned 180 degrees.</summary>
public static class TextImages
{
    private static readonly string[] FontCandidates =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ];

    private static readonly Lazy<SKTypeface> Typeface = new(() =>
    {
        var path = FontCandidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("DejaVuSans.ttf not found; install Debian's fonts-dejavu-core (the CI script does).");
        return SKTypeface.FromFile(path);
    });

    /// <summary>A dark line of <paramref name="text"/> on a light background, as PNG bytes.</summary>
    public static byte[] Render(string text, bool upsideDown = false, int height = 64, SKColor? background = null)
    {
        using var font = new SKFont(Typeface.Value, height * 0.62f);
        var width = (int)Math.Ceiling(font.MeasureText(text)) + height / 2;
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(background ?? SKColors.White);
            if (upsideDown)
            {
                canvas.RotateDegrees(180, width / 2f, height / 2f);
            }

            using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            canvas.DrawText(text, height / 4f, height * 0.72f, SKTextAlign.Left, font, paint);
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Distinct small images, for filling caches and spreading shards.</summary>
    public static byte[] Numbered(int n) => Render($"Item number {n}", height: 40);
}
