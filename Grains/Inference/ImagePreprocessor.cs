using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Advanced;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using IsResizeMode = SixLabors.ImageSharp.Processing.ResizeMode;
using ResizeMode = Classifier.Grains.Models.ResizeMode;

namespace Classifier.Grains.Inference;

/// <summary>Turns encoded image bytes into one image's input tensor, as the model's config describes.</summary>
/// <remarks>
/// Formats are checked against an allow-list and dimensions against limits from the header alone,
/// before any pixel is decoded, so a small file that claims a huge image costs nothing.
/// </remarks>
public sealed class ImagePreprocessor
{
    private static readonly Configuration Detector = Configuration.Default;

    private readonly ModelDefinition _model;
    private readonly ImageOptions _limits;
    private readonly Configuration _decoding;
    private readonly HashSet<string> _allowed;

    // value = lut[channel][pixel]: the normalisation of every 0-255 value, computed once.
    private readonly float[][] _lut;

    // The configured mean image divided by each channel's std, subtracted after the LUT; null without one.
    private readonly float[]? _meanImage;

    public ImagePreprocessor(ModelDefinition model, ImageOptions limits)
    {
        _model = model;
        _limits = limits;
        _decoding = ImageFormats.Restricted(limits.EffectiveFormats.Distinct(StringComparer.OrdinalIgnoreCase));
        _allowed = new HashSet<string>(limits.EffectiveFormats, StringComparer.OrdinalIgnoreCase);
        _lut = new float[model.Channels][];
        for (var c = 0; c < model.Channels; c++)
        {
            _lut[c] = new float[256];
            for (var v = 0; v < 256; v++)
            {
                _lut[c][v] = (float)(((double)v * model.Scale - model.Mean[c]) / model.Std[c]);
            }
        }

        if (model.MeanImage is { } meanImage)
        {
            _meanImage = new float[meanImage.Length];
            for (var i = 0; i < meanImage.Length; i++)
            {
                _meanImage[i] = meanImage[i] / model.Std[ChannelOf(i)];
            }
        }
    }

    /// <summary>The channel of tensor element <paramref name="index"/>, in the model's layout.</summary>
    private int ChannelOf(int index) => _model.Nhwc ? index % _model.Channels : index / (_model.Height * _model.Width);

    /// <summary>Decodes <paramref name="encoded"/> and writes its tensor into <paramref name="tensor"/> (length <see cref="ModelDefinition.TensorLength"/>).</summary>
    /// <returns>null on success, else what is wrong with the image.</returns>
    public PredictionError? Preprocess(byte[] encoded, Span<float> tensor)
    {
        if (encoded.Length == 0)
        {
            return new(PredictionErrorKind.InvalidImage, "The image is empty (0 bytes).");
        }

        var format = Image.DetectFormat(Detector, encoded);
        if (format is null)
        {
            return new(PredictionErrorKind.InvalidImage, "The bytes are not an image in any known format; send a JPEG, PNG, GIF or WebP file.");
        }

        var formatName = FormatName(format);
        if (!_allowed.Contains(formatName))
        {
            return new(PredictionErrorKind.UnsupportedFormat, $"{format.Name} images are not accepted here; send one of: {string.Join(", ", _allowed)}.");
        }

        try
        {
            var info = Image.Identify(_decoding, encoded, out _);
            if (info is null)
            {
                return new(PredictionErrorKind.InvalidImage, $"The {format.Name} header could not be read; the file is damaged or truncated.");
            }

            if (info.Width > _limits.MaxWidth || info.Height > _limits.MaxHeight || (long)info.Width * info.Height > _limits.MaxPixels)
            {
                return new(PredictionErrorKind.ImageTooLarge,
                    $"The image is {info.Width}x{info.Height}; the limit is {_limits.MaxWidth}x{_limits.MaxHeight} and {_limits.MaxPixels:N0} pixels. Downscale it before sending.");
            }

            if (format is JpegFormat && !EndsAfterLastScan(encoded))
            {
                // ImageSharp fills a truncated scan with grey and carries on; a half image must not be classified.
                return new(PredictionErrorKind.InvalidImage, "The JPEG image is truncated (no end-of-image marker after its last scan); send the complete file.");
            }

            using var image = Decode(encoded, format);
            Transform(image);
            WriteTensor(image, tensor);
            return null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Decoders meeting hostile bytes throw all kinds of exceptions (format, argument, overflow,
            // index, null reference); whichever it is, the image is what is wrong, never the silo.
            return new(PredictionErrorKind.InvalidImage, $"The {format.Name} image could not be decoded ({e.Message.TrimEnd('.')}); the file is damaged or truncated.");
        }
    }

    /// <summary>True when an end-of-image marker (FF D9) follows the last start-of-scan (FF DA).</summary>
    /// <remarks>Entropy-coded data escapes FF as FF 00, so neither marker occurs inside a scan.</remarks>
    internal static bool EndsAfterLastScan(ReadOnlySpan<byte> jpeg)
    {
        var lastScan = -1;
        for (var i = jpeg.Length - 2; i >= 0 && lastScan < 0; i--)
        {
            if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xDA)
            {
                lastScan = i;
            }
        }

        if (lastScan < 0)
        {
            return false;
        }

        for (var i = jpeg.Length - 2; i > lastScan; i--)
        {
            if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xD9)
            {
                return true;
            }
        }

        return false;
    }

    private Image<Rgba32> Decode(byte[] encoded, IImageFormat format) => format is GifFormat
        // Only the first frame is classified: never decode an animation's other frames.
        ? Image.Load<Rgba32>(_decoding, encoded, new GifDecoder { DecodingMode = FrameDecodingMode.First })
        : Image.Load<Rgba32>(_decoding, encoded);

    private static string FormatName(IImageFormat format) => format.Name.ToLowerInvariant() switch
    {
        "jpg" => "jpeg",
        var n => n,
    };

    /// <summary>Brings the decoded image to the size whose pixels go into the tensor (which may be narrower than the input, for padding).</summary>
    internal void Transform(Image<Rgba32> image)
    {
        var (h, w) = (_model.Height, _model.Width);
        image.Mutate(ctx =>
        {
            ctx.AutoOrient();

            // Transparent pixels become white, as a viewer shows them: dropping alpha would expose whatever
            // colour the encoder left under them (often black, which hides dark text).
            ctx.BackgroundColor(Color.White);
            var size = ctx.GetCurrentSize();
            switch (_model.Resize)
            {
                case ResizeMode.Stretch:
                    ResizeTo(ctx, size, w, h);
                    break;
                case ResizeMode.KeepAspectPad:
                    var width = (int)Math.Min(w, Math.Ceiling(h * (double)size.Width / size.Height));
                    ResizeTo(ctx, size, Math.Max(1, width), h);
                    break;
                case ResizeMode.CenterCrop:
                    var s = _model.ResizeShorterSide;
                    var scale = (double)s / Math.Min(size.Width, size.Height);
                    var rw = Math.Max(w, (int)Math.Round(size.Width * scale));
                    var rh = Math.Max(h, (int)Math.Round(size.Height * scale));
                    ResizeTo(ctx, size, rw, rh);
                    ctx.Crop(new Rectangle((rw - w) / 2, (rh - h) / 2, w, h));
                    break;
            }
        });
    }

    private static void ResizeTo(IImageProcessingContext ctx, Size current, int width, int height)
    {
        if (current.Width == width && current.Height == height)
        {
            return;
        }

        ctx.Resize(new ResizeOptions
        {
            Size = new Size(width, height),
            Mode = IsResizeMode.Stretch,
            Sampler = KnownResamplers.Triangle, // bilinear, as cv2.resize and torchvision use
        });
    }

    /// <summary>Writes the (already sized) image into the tensor, normalised, padded with the configured value.</summary>
    internal void WriteTensor(Image<Rgba32> image, Span<float> tensor)
    {
        var m = _model;
        tensor[..m.TensorLength].Fill(m.PadValue);
        var plane = m.Height * m.Width;
        var rows = Math.Min(image.Height, m.Height);
        var cols = Math.Min(image.Width, m.Width);
        var lut = _lut;
        for (var y = 0; y < rows; y++)
        {
            var row = image.DangerousGetPixelRowMemory(y).Span;
            for (var x = 0; x < cols; x++)
            {
                var p = row[x];
                var offset = y * m.Width + x;
                switch (m.ColorOrder)
                {
                    case ColorOrder.Gray:
                        // ITU-R BT.601 luma, as PIL's convert("L") computes it.
                        var luma = (byte)((p.R * 299 + p.G * 587 + p.B * 114 + 500) / 1000);
                        tensor[offset] = lut[0][luma];
                        break;
                    case ColorOrder.Rgb when m.Nhwc:
                        tensor[offset * 3] = lut[0][p.R];
                        tensor[offset * 3 + 1] = lut[1][p.G];
                        tensor[offset * 3 + 2] = lut[2][p.B];
                        break;
                    case ColorOrder.Bgr when m.Nhwc:
                        tensor[offset * 3] = lut[0][p.B];
                        tensor[offset * 3 + 1] = lut[1][p.G];
                        tensor[offset * 3 + 2] = lut[2][p.R];
                        break;
                    case ColorOrder.Rgb:
                        tensor[offset] = lut[0][p.R];
                        tensor[plane + offset] = lut[1][p.G];
                        tensor[2 * plane + offset] = lut[2][p.B];
                        break;
                    case ColorOrder.Bgr:
                        tensor[offset] = lut[0][p.B];
                        tensor[plane + offset] = lut[1][p.G];
                        tensor[2 * plane + offset] = lut[2][p.R];
                        break;
                }
            }
        }

        if (_meanImage is { } meanImage)
        {
            // Only with center-crop and stretch, which fill every element: no padding is shifted.
            var values = tensor[..m.TensorLength];
            var vectors = System.Numerics.Vector<float>.Count;
            var i = 0;
            for (; i <= values.Length - vectors; i += vectors)
            {
                (new System.Numerics.Vector<float>(values[i..]) - new System.Numerics.Vector<float>(meanImage, i)).CopyTo(values[i..]);
            }

            for (; i < values.Length; i++)
            {
                values[i] -= meanImage[i];
            }
        }
    }
}
