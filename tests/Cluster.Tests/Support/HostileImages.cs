using System.Buffers.Binary;
using System.IO.Hashing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Classifier.Tests.Support;

/// <summary>One request body of the hostile-input corpus and the status it must get.</summary>
public sealed record CorpusEntry(string Name, byte[] Body, string ContentType, int ExpectedStatus);

/// <summary>Builds, in the test, every broken, hostile and unusual image the cluster must handle.</summary>
public static class HostileImages
{
    public static byte[] UprightPng => TextImages.Render("Hostile input corpus");

    private static Image<Rgba32> UprightImage() => Image.Load<Rgba32>(UprightPng);

    public static byte[] Encode(Image image, SixLabors.ImageSharp.Formats.IImageEncoder encoder)
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    public static byte[] Jpeg(JpegColorType color = JpegColorType.YCbCrRatio420)
    {
        using var image = UprightImage();
        return Encode(image, new JpegEncoder { ColorType = color, Quality = 90 });
    }

    /// <summary>A real PNG whose IHDR claims <paramref name="width"/> x <paramref name="height"/> (CRC fixed up), with the original tiny pixel data.</summary>
    public static byte[] PngClaiming(int width, int height)
    {
        var png = UprightPng.ToArray();
        const int ihdrData = 16; // 8-byte signature, 4-byte length, "IHDR"
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(ihdrData), width);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(ihdrData + 4), height);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(ihdrData + 13), Crc32.HashToUInt32(png.AsSpan(12, 17)));
        return png;
    }

    /// <summary>A real JPEG whose SOF0 frame header claims <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static byte[] JpegClaiming(ushort width, ushort height)
    {
        var jpeg = Jpeg();
        for (var i = 2; i < jpeg.Length - 9; i++)
        {
            if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xC0)
            {
                BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(i + 5), height);
                BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(i + 7), width);
                return jpeg;
            }
        }

        throw new InvalidOperationException("no SOF0 marker in the encoded JPEG");
    }

    /// <summary>An animated GIF of <paramref name="frames"/> frames: only the first may be decoded.</summary>
    public static byte[] GifWithFrames(int frames)
    {
        using var image = UprightImage();
        image.Mutate(x => x.Resize(64, 16));
        for (var i = 1; i < frames; i++)
        {
            image.Frames.AddFrame(image.Frames.RootFrame);
        }

        return Encode(image, new SixLabors.ImageSharp.Formats.Gif.GifEncoder());
    }

    /// <summary>A progressive JPEG, made by libjpeg's jpegtran from a baseline one.</summary>
    public static Task<byte[]> ProgressiveJpegAsync() => AttackImages.ProgressiveAsync(Jpeg());

    /// <summary>Dark text on a fully transparent background: readable only if transparency is shown as white.</summary>
    public static byte[] TransparentPng()
    {
        using var image = UprightImage();
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                foreach (ref var p in rows.GetRowSpan(y))
                {
                    // White became transparent black; the ink keeps its darkness as opacity.
                    var ink = (byte)(255 - p.R);
                    p = new Rgba32(0, 0, 0, ink);
                }
            }
        });
        return Encode(image, new PngEncoder { ColorType = PngColorType.RgbWithAlpha });
    }

    public static byte[] Png(PngColorType color, PngBitDepth depth)
    {
        using var image = UprightImage();
        return Encode(image, new PngEncoder { ColorType = color, BitDepth = depth });
    }

    public static byte[] Webp(bool lossless)
    {
        using var image = UprightImage();
        return Encode(image, new WebpEncoder { FileFormat = lossless ? WebpFileFormatType.Lossless : WebpFileFormatType.Lossy, Quality = 90 });
    }

    public static byte[] OnePixelPng()
    {
        using var image = new Image<Rgba32>(1, 1, new Rgba32(255, 255, 255, 255));
        return Encode(image, new PngEncoder());
    }

    public static byte[] Other(string format)
    {
        using var image = UprightImage();
        return format switch
        {
            "bmp" => Encode(image, new SixLabors.ImageSharp.Formats.Bmp.BmpEncoder()),
            "tga" => Encode(image, new SixLabors.ImageSharp.Formats.Tga.TgaEncoder()),
            "tiff" => Encode(image, new SixLabors.ImageSharp.Formats.Tiff.TiffEncoder()),
            _ => throw new ArgumentOutOfRangeException(nameof(format)),
        };
    }

    /// <summary>Every input that must be refused, with its status; the gateway's limit is <paramref name="maxImageBytes"/>.</summary>
    public static IReadOnlyList<CorpusEntry> Refused(long maxImageBytes)
    {
        var png = UprightPng;
        var jpeg = Jpeg();
        var noise = new byte[8192];
        new Random(42).NextBytes(noise);
        return
        [
            new("empty body", [], "image/png", 400),
            new("truncated PNG", png[..(png.Length / 2)], "image/png", 400),
            new("truncated JPEG", jpeg[..(jpeg.Length / 2)], "image/jpeg", 400),
            new("random bytes as an image", noise, "image/jpeg", 400),
            new("text sent as image/png", "just some text, not a picture"u8.ToArray(), "image/png", 400),
            new("PNG claiming 100000x100000", PngClaiming(100_000, 100_000), "image/png", 413),
            new("JPEG claiming 65000x65000", JpegClaiming(65_000, 65_000), "image/jpeg", 413),
            new("PNG claiming 20000x1", PngClaiming(20_000, 1), "image/png", 413),
            new("body over the size limit", new byte[maxImageBytes + 1], "image/png", 413),
            new("BMP (outside the allow-list)", Other("bmp"), "image/bmp", 415),
            new("TGA (outside the allow-list)", Other("tga"), "image/x-tga", 415),
            new("TIFF (outside the allow-list)", Other("tiff"), "image/tiff", 415),
            new("plain text content type", "hello"u8.ToArray(), "text/plain", 415),
        ];
    }
}
