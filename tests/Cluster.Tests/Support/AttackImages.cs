using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace Classifier.Tests.Support;

/// <summary>
/// The cheapest requests that cost a server the most, built in the test: decompression bombs in ancillary
/// chunks, JPEGs whose scans each walk a huge frame again, and images that are small on the wire but large
/// in memory. Each is a valid file a decoder accepts.
/// </summary>
public static class AttackImages
{
    /// <summary>A readable line of text, so a cleaned bomb still gets its real answer (upright).</summary>
    public static byte[] BasePng => TextImages.Render("Decompression bomb");

    /// <summary>
    /// A PNG with <paramref name="count"/> compressed ancillary chunks of <paramref name="type"/> (<c>zTXt</c>,
    /// <c>iTXt</c> or <c>iCCP</c>), each inflating to <paramref name="inflatedBytes"/> of zeros: about a
    /// thousandth of that on the wire.
    /// </summary>
    public static byte[] PngWithCompressedChunks(string type, long inflatedBytes, int count = 1)
    {
        var png = BasePng;
        const int afterIhdr = 8 + 25; // signature, then IHDR (4 length + 4 type + 13 data + 4 CRC)
        var payload = Deflated(inflatedBytes);
        var header = type switch
        {
            "zTXt" => [.. "Comment"u8, 0, 0], // keyword, separator, compression method
            "iTXt" => [.. "XML:com.adobe.xmp"u8, 0, 1, 0, 0, 0], // keyword, separator, compressed, method, empty language and translation
            "iCCP" => (byte[])[.. "ICC profile"u8, 0, 0], // profile name, separator, compression method
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
        using var output = new MemoryStream();
        output.Write(png, 0, afterIhdr);
        for (var i = 0; i < count; i++)
        {
            WriteChunk(output, type, [.. header, .. payload]);
        }

        output.Write(png, afterIhdr, png.Length - afterIhdr);
        return output.ToArray();
    }

    private static readonly Dictionary<long, byte[]> DeflatedZeros = [];

    /// <summary>zlib data inflating to <paramref name="bytes"/> zeros (deflate reaches about 1000:1 on them).</summary>
    private static byte[] Deflated(long bytes)
    {
        lock (DeflatedZeros)
        {
            if (DeflatedZeros.TryGetValue(bytes, out var cached))
            {
                return cached;
            }

            var zeros = new byte[1 << 20];
            using var output = new MemoryStream();
            using (var zlib = new ZLibStream(output, CompressionLevel.SmallestSize, leaveOpen: true))
            {
                for (var left = bytes; left > 0; left -= zeros.Length)
                {
                    zlib.Write(zeros, 0, (int)Math.Min(zeros.Length, left));
                }
            }

            return DeflatedZeros[bytes] = output.ToArray();
        }
    }

    private static void WriteChunk(Stream output, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        output.Write(word);
        var typeAndData = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        output.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.HashToUInt32(typeAndData));
        output.Write(word);
    }

    /// <summary>
    /// A progressive JPEG of <paramref name="width"/> x <paramref name="height"/> whose last scan (a tiny refinement
    /// scan) is repeated until it has <paramref name="scans"/>: every repetition costs a decoder a walk over the
    /// whole frame, while the file grows by a few dozen bytes.
    /// </summary>
    public static async Task<byte[]> ProgressiveJpegWithScansAsync(int width, int height, int scans)
    {
        var progressive = await ProgressiveAsync(Jpeg(width, height));
        var (lastScanStart, lastScanEnd, existing, endOfImage) = LastScan(progressive);
        using var output = new MemoryStream();
        output.Write(progressive, 0, endOfImage);
        for (var i = existing; i < scans; i++)
        {
            output.Write(progressive, lastScanStart, lastScanEnd - lastScanStart);
        }

        output.Write(progressive, endOfImage, progressive.Length - endOfImage);
        return output.ToArray();
    }

    /// <summary>The same image as a progressive JPEG, made by libjpeg's jpegtran.</summary>
    public static async Task<byte[]> ProgressiveAsync(byte[] jpeg)
    {
        var jpegtran = Tool.Find("jpegtran", "libjpeg-turbo-progs");
        var input = Path.GetTempFileName();
        var output = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(input, jpeg);
            var (code, text) = await Tool.RunAsync(jpegtran, ["-progressive", "-outfile", output, input]);
            Assert.True(code == 0, text);
            return await File.ReadAllBytesAsync(output);
        }
        finally
        {
            File.Delete(input);
            File.Delete(output);
        }
    }

    /// <summary>Where the last scan (its header and entropy-coded data) starts and ends, how many scans there are, and where EOI is.</summary>
    private static (int Start, int End, int Scans, int EndOfImage) LastScan(byte[] jpeg)
    {
        var (at, start, end, scans) = (2, 0, 0, 0);
        while (true)
        {
            while (jpeg[at] == 0xFF)
            {
                at++;
            }

            var marker = jpeg[at++];
            if (marker == 0xD9)
            {
                return (start, end, scans, at - 2);
            }

            var segmentStart = at - 2;
            at += BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(at));
            if (marker != 0xDA)
            {
                continue;
            }

            while (!(jpeg[at] == 0xFF && jpeg[at + 1] is not 0x00 and not (>= 0xD0 and <= 0xD7)))
            {
                at++;
            }

            (start, end) = (segmentStart, at);
            scans++;
        }
    }

    /// <summary>A photo-sized image of one flat colour per 64-pixel tile: large in memory, small on the wire.</summary>
    public static byte[] Flat(int width, int height, Action<(Image<Rgb24> Image, Stream Stream)> save)
    {
        using var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    row[x] = new Rgb24((byte)(x / 64 * 9), (byte)(y / 64 * 5), 200);
                }
            }
        });
        using var stream = new MemoryStream();
        save((image, stream));
        return stream.ToArray();
    }

    public static byte[] Jpeg(int width, int height) => Flat(width, height, t => t.Image.Save(t.Stream, new JpegEncoder { Quality = 80 }));

    public static byte[] LosslessWebp(int width, int height) => Flat(width, height, t => t.Image.Save(t.Stream, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }));

    /// <summary>A PNG of random pixels: incompressible, so <paramref name="width"/> x <paramref name="height"/> x 3 bytes on the wire.</summary>
    public static byte[] NoisePng(int width, int height, int seed)
    {
        using var image = new Image<Rgb24>(width, height);
        var random = new Random(seed);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                random.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.GetRowSpan(y)));
            }
        });
        using var stream = new MemoryStream();
        image.Save(stream, new PngEncoder { CompressionLevel = PngCompressionLevel.NoCompression });
        return stream.ToArray();
    }

    /// <summary>
    /// A 64x64 WebP of a few dozen bytes with a metadata chunk (<c>ICCP</c> or <c>EXIF</c>) that claims to be
    /// 2 GiB long: a decoder that allocates a chunk's declared size before reading it tries to take 2 GiB.
    /// </summary>
    public static byte[] WebpClaimingAHugeChunk(string chunk)
    {
        using var output = new MemoryStream();
        void Write(ReadOnlySpan<byte> bytes) => output.Write(bytes);
        Span<byte> word = stackalloc byte[4];
        Write("RIFF"u8);
        Write([0, 0, 0, 0]); // size, patched below
        Write("WEBP"u8);
        Write("VP8X"u8);
        BinaryPrimitives.WriteUInt32LittleEndian(word, 10);
        Write(word);
        Write([(byte)(chunk == "ICCP" ? 0x20 : 0x08), 0, 0, 0, 63, 0, 0, 63, 0, 0]); // flags; width - 1 and height - 1 (24 bits each)
        Write(Encoding.ASCII.GetBytes(chunk));
        BinaryPrimitives.WriteUInt32LittleEndian(word, 0x7FFF_FFF0);
        Write(word);
        Write(new byte[16]);
        var bytes = output.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), (uint)(bytes.Length - 8));
        return bytes;
    }
}
