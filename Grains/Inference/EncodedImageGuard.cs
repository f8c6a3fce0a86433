using System.Buffers.Binary;
using Classifier.Grains.Interfaces;

namespace Classifier.Grains.Inference;

/// <summary>
/// Walks an encoded image's container before any decoder sees it, so that the decoder's cost follows from
/// the pixel count alone: PNG loses the ancillary chunks a decoder would inflate for metadata (a 1 MB
/// <c>zTXt</c> chunk can inflate to 1 GiB before a header check), JPEG has its scans counted (each
/// progressive scan walks the whole frame again, so 2000 tiny scans cost 2000 decodes) and must end,
/// and WebP may declare no chunk larger than the file.
/// </summary>
/// <remarks>Purely structural and linear in the file's length; no allocation unless a PNG needs rewriting.</remarks>
public static class EncodedImageGuard
{
    /// <summary>libjpeg-turbo's default scan limit; real progressive encoders write about 10.</summary>
    public const int DefaultMaxJpegScans = 100;

    /// <summary>
    /// The PNG chunks passed on: those that define the pixels, and <c>eXIf</c> (uncompressed, and it carries
    /// the orientation that is applied). Text (<c>tEXt</c>, <c>zTXt</c>, <c>iTXt</c>), ICC profiles
    /// (<c>iCCP</c>, compressed) and everything else describes the image without changing what the model sees.
    /// </summary>
    private static readonly uint[] PngKeptChunks =
    [
        ChunkType("IHDR"), ChunkType("PLTE"), ChunkType("tRNS"), ChunkType("IDAT"), ChunkType("IEND"), ChunkType("eXIf"),
    ];

    private static readonly uint Idat = ChunkType("IDAT");
    private static readonly uint Iend = ChunkType("IEND");
    private static readonly uint Exif = ChunkType("eXIf");

    /// <summary>An <c>eXIf</c> chunk larger than a JPEG's Exif segment can be (64 KiB) is not passed on.</summary>
    private const int MaxExifBytes = 64 * 1024;

    private static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static uint ChunkType(string name) => BinaryPrimitives.ReadUInt32BigEndian(System.Text.Encoding.ASCII.GetBytes(name));

    /// <summary>
    /// Copies the PNG without chunks that do not define pixels. Answers <paramref name="png"/> itself when it
    /// has none to drop, a shorter copy when it has.
    /// </summary>
    /// <returns>null on success, else what is wrong with the file.</returns>
    public static PredictionError? CleanPng(byte[] png, out byte[] cleaned)
    {
        cleaned = png;
        if (png.Length < PngSignature.Length || !png.AsSpan(0, PngSignature.Length).SequenceEqual(PngSignature))
        {
            return Invalid("The PNG signature is damaged; send the original file.");
        }

        // First pass: validate the structure and measure what is kept, so the copy (if any) is one exact allocation.
        var kept = PngSignature.Length;
        var dropped = false;
        var sawIdat = false;
        var sawEnd = false;
        for (var at = PngSignature.Length; at < png.Length && !sawEnd;)
        {
            if (!TryReadChunk(png, at, out var type, out var total))
            {
                return Invalid("The PNG is damaged or truncated (a chunk runs past the end of the file); send the complete file.");
            }

            if (Keep(type, total))
            {
                kept += total;
            }
            else
            {
                dropped = true;
            }

            sawIdat |= type == Idat;
            sawEnd = type == Iend;
            at += total;
        }

        if (!sawIdat)
        {
            return Invalid("The PNG has no image data (no IDAT chunk); send the complete file.");
        }

        if (!dropped)
        {
            return null;
        }

        cleaned = GC.AllocateUninitializedArray<byte>(kept);
        PngSignature.CopyTo(cleaned);
        var written = PngSignature.Length;
        for (var at = PngSignature.Length; written < kept;)
        {
            TryReadChunk(png, at, out var type, out var total);
            if (Keep(type, total))
            {
                png.AsSpan(at, total).CopyTo(cleaned.AsSpan(written));
                written += total;
            }

            at += total;
        }

        return null;
    }

    private static bool Keep(uint type, int total) =>
        Array.IndexOf(PngKeptChunks, type) >= 0 && (type != Exif || total - 12 <= MaxExifBytes);

    /// <summary>Reads the chunk at <paramref name="at"/>: its type and its whole length (length, type, data and CRC fields).</summary>
    private static bool TryReadChunk(byte[] png, int at, out uint type, out int total)
    {
        type = 0;
        total = 0;
        if (png.Length - at < 12)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at));
        if (length > (uint)(png.Length - at - 12))
        {
            return false;
        }

        type = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at + 4));
        total = (int)length + 12;
        return true;
    }

    /// <summary>
    /// Walks a JPEG's markers: counts its scans against <paramref name="maxScans"/> and requires an end-of-image
    /// marker after the last one (a decoder fills a missing scan tail with grey and carries on, and a half
    /// image must not be classified).
    /// </summary>
    /// <param name="progressive">Whether the frame is progressive, whose decoder keeps every coefficient until the last scan.</param>
    /// <returns>null when the structure is sound, else what is wrong with the file.</returns>
    public static PredictionError? CheckJpeg(ReadOnlySpan<byte> jpeg, int maxScans, out bool progressive)
    {
        progressive = false;
        var scans = 0;
        if (jpeg.Length < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8)
        {
            return Invalid("The JPEG start-of-image marker is missing; send the original file.");
        }

        var at = 2;
        while (true)
        {
            // Markers may be preceded by any number of 0xFF fill bytes.
            if (at >= jpeg.Length || jpeg[at] != 0xFF)
            {
                return Truncated(scans);
            }

            while (at < jpeg.Length && jpeg[at] == 0xFF)
            {
                at++;
            }

            if (at >= jpeg.Length)
            {
                return Truncated(scans);
            }

            var marker = jpeg[at++];
            if (marker == 0xD9)
            {
                return scans > 0 ? null : Invalid("The JPEG ends before any image data (no scan); send the complete file.");
            }

            if (marker is 0x01 or (>= 0xD0 and <= 0xD7))
            {
                continue; // standalone markers carry no length
            }

            if (jpeg.Length - at < 2)
            {
                return Truncated(scans);
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(jpeg[at..]);
            if (length < 2 || length > jpeg.Length - at)
            {
                return Truncated(scans);
            }

            at += length;
            progressive |= marker is 0xC2 or 0xC6 or 0xCA or 0xCE; // SOF2, 6, 10, 14: progressive frames
            if (marker != 0xDA)
            {
                continue;
            }

            if (++scans > maxScans)
            {
                return new(PredictionErrorKind.TooComplex,
                    $"The JPEG has more than {maxScans} scans; real encoders write about 10. Re-encode it (for example as a baseline JPEG).");
            }

            // Entropy-coded data follows the scan header; in it, 0xFF is escaped as FF 00 and restart markers
            // (FF D0-D7) may appear, so the next real marker is the first FF followed by anything else.
            while (true)
            {
                var next = jpeg[at..].IndexOf((byte)0xFF);
                if (next < 0 || at + next + 1 >= jpeg.Length)
                {
                    return Truncated(scans);
                }

                at += next;
                var after = jpeg[at + 1];
                if (after == 0x00 || after is >= 0xD0 and <= 0xD7)
                {
                    at += 2;
                    continue;
                }

                if (after == 0xFF)
                {
                    at++; // fill byte before a marker
                    continue;
                }

                break;
            }
        }
    }

    /// <summary>
    /// Walks a WebP's RIFF chunks and requires every declared size to lie within the file: ImageSharp allocates a
    /// chunk's declared size before reading it, so a 60-byte file whose <c>ICCP</c> or <c>EXIF</c> chunk claims 2 GiB
    /// made it allocate 2 GiB (measured: out of memory). Animations are refused: only a still image is classified.
    /// </summary>
    /// <returns>null when the structure is sound, else what is wrong with the file.</returns>
    public static PredictionError? CheckWebp(ReadOnlySpan<byte> webp)
    {
        if (webp.Length < 20 || !webp[..4].SequenceEqual("RIFF"u8) || !webp[8..12].SequenceEqual("WEBP"u8))
        {
            return Invalid("The WebP header is damaged; send the original file.");
        }

        var riffEnd = 8L + BinaryPrimitives.ReadUInt32LittleEndian(webp[4..]);
        if (riffEnd > webp.Length)
        {
            return Invalid("The WebP file is damaged or truncated (shorter than its RIFF header says); send the complete file.");
        }

        for (var at = 12L; at < riffEnd;)
        {
            if (riffEnd - at < 8)
            {
                return Invalid("The WebP file is damaged or truncated (a chunk header is cut off); send the complete file.");
            }

            var chunk = webp.Slice((int)at, 4);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(webp[((int)at + 4)..]);
            if (size > riffEnd - at - 8)
            {
                return Invalid("The WebP file is damaged or truncated (a chunk runs past the end of the file); send the complete file.");
            }

            if (chunk.SequenceEqual("ANIM"u8) || chunk.SequenceEqual("ANMF"u8))
            {
                return Invalid("Animated WebP images are not accepted; send one frame as a still image (PNG, JPEG or WebP).");
            }

            at += 8 + size + (size & 1); // chunks are padded to an even length
        }

        return null;
    }

    private static PredictionError Truncated(int scans) => Invalid(scans > 0
        ? "The JPEG image is truncated (no end-of-image marker after its last scan); send the complete file."
        : "The JPEG is truncated before its image data; send the complete file.");

    private static PredictionError Invalid(string message) => new(PredictionErrorKind.InvalidImage, message);
}
