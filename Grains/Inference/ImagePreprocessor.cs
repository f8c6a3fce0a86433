using Classifier.Grains.Interfaces;
using Classifier.Grains.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Advanced;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using IsResizeMode = SixLabors.ImageSharp.Processing.ResizeMode;
using ResizeMode = Classifier.Grains.Models.ResizeMode;

namespace Classifier.Grains.Inference;

/// <summary>An image that passed every check that needs no decoding: the bytes to decode and what decoding them will take.</summary>
/// <param name="Bytes">The file, or a copy without the chunks the decoder must not see (PNG).</param>
/// <param name="DecodeBytes">Estimated peak memory of decoding, orienting and resizing it.</param>
public sealed record InspectedImage(byte[] Bytes, IImageFormat Format, int Width, int Height, long DecodeBytes);

/// <summary>Turns encoded image bytes into one image's input tensor, as the model's config describes.</summary>
/// <remarks>
/// Two steps. <see cref="Inspect"/> checks the format against an allow-list, the container against decoder bombs
/// (<see cref="EncodedImageGuard"/>) and the dimensions against limits, from headers alone, and estimates the
/// memory a decode needs: a small file that claims a huge or costly image costs nothing. <see cref="Decode"/>
/// then decodes within a cancellation token (a caller that leaves, or a time budget).
/// </remarks>
public sealed class ImagePreprocessor
{
    private static readonly Configuration Detector = Configuration.Default;

    /// <summary>Fixed cost of any decode beyond its pixels: decoder state, row buffers, the resized copy.</summary>
    private const long DecodeOverheadBytes = 2 * 1024 * 1024;

    private readonly ModelDefinition _model;
    private readonly ImageOptions _limits;
    private readonly Configuration _decoding;
    private readonly HashSet<string> _allowed;
    private readonly ILogger _logger;

    // value = lut[channel][pixel]: the normalisation of every 0-255 value, computed once.
    private readonly float[][] _lut;

    // The configured mean image divided by each channel's std, subtracted after the LUT; null without one.
    private readonly float[]? _meanImage;

    public ImagePreprocessor(ModelDefinition model, ImageOptions limits, ILogger? logger = null)
    {
        _model = model;
        _limits = limits;
        _logger = logger ?? NullLogger.Instance;
        _decoding = ImageFormats.Restricted(limits.EffectiveFormats.Distinct(StringComparer.OrdinalIgnoreCase), limits.DecodeMemoryBytes);
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

    /// <summary>Inspects and decodes <paramref name="encoded"/> into <paramref name="tensor"/> (length <see cref="ModelDefinition.TensorLength"/>), with no budget.</summary>
    /// <returns>null on success, else what is wrong with the image.</returns>
    public PredictionError? Preprocess(byte[] encoded, Span<float> tensor)
    {
        var (image, error) = Inspect(encoded);
        return image is null ? error : Decode(image, tensor, CancellationToken.None);
    }

    /// <summary>Checks an encoded image from its headers alone and estimates what decoding it will take.</summary>
    public (InspectedImage? Image, PredictionError? Error) Inspect(byte[] encoded)
    {
        if (encoded.Length == 0)
        {
            return (null, new(PredictionErrorKind.InvalidImage, "The image is empty (0 bytes)."));
        }

        var format = Image.DetectFormat(Detector, encoded);
        if (format is null)
        {
            return (null, new(PredictionErrorKind.InvalidImage, "The bytes are not an image in any known format; send a JPEG, PNG, GIF or WebP file."));
        }

        var formatName = FormatName(format);
        if (!_allowed.Contains(formatName))
        {
            return (null, new(PredictionErrorKind.UnsupportedFormat, $"{format.Name} images are not accepted here; send one of: {string.Join(", ", _allowed)}."));
        }

        var bytes = encoded;
        var progressive = false;
        var problem = format switch
        {
            PngFormat => EncodedImageGuard.CleanPng(encoded, out bytes),
            JpegFormat => EncodedImageGuard.CheckJpeg(encoded, _limits.MaxJpegScans, out progressive),
            WebpFormat => EncodedImageGuard.CheckWebp(encoded),
            _ => null,
        };
        if (problem is not null)
        {
            return (null, problem);
        }

        try
        {
            var info = Image.Identify(_decoding, bytes, out _);
            if (info is null)
            {
                return (null, new(PredictionErrorKind.InvalidImage, $"The {format.Name} header could not be read; the file is damaged or truncated."));
            }

            if (info.Width > _limits.MaxWidth || info.Height > _limits.MaxHeight || (long)info.Width * info.Height > _limits.MaxPixels)
            {
                return (null, new(PredictionErrorKind.ImageTooLarge,
                    $"The image is {info.Width}x{info.Height}; the limit is {_limits.MaxWidth}x{_limits.MaxHeight} and {_limits.MaxPixels:N0} pixels. Downscale it before sending."));
            }

            return (new InspectedImage(bytes, format, info.Width, info.Height, EstimateDecodeBytes(format, info, progressive)), null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return (null, Undecodable(format, e));
        }
    }

    /// <summary>
    /// Peak memory of decoding, orienting and resizing, in bytes, measured per format at 40 MP (README, Security):
    /// baseline JPEG, PNG and GIF 4.2 bytes a pixel, WebP 7.8, progressive JPEG 7 (4:2:0) to 10 (4:4:4), since its
    /// coefficients are kept for the whole frame until the last scan. An orientation that turns the image adds a copy.
    /// </summary>
    internal static long EstimateDecodeBytes(IImageFormat format, IImageInfo info, bool progressive)
    {
        var perPixel = format switch
        {
            JpegFormat when progressive => 10.0,
            WebpFormat => 8.0,
            _ => 5.0,
        };
        var orientation = info.Metadata.ExifProfile?.GetValue(ExifTag.Orientation)?.Value ?? ExifOrientationMode.TopLeft;
        if (orientation > ExifOrientationMode.TopLeft)
        {
            perPixel += 4;
        }

        return (long)(perPixel * info.Width * info.Height) + DecodeOverheadBytes;
    }

    /// <summary>Decodes an inspected image and writes its tensor; <paramref name="cancellationToken"/> stops the decode between steps and, for JPEG, within it.</summary>
    /// <returns>null on success, else what is wrong with the image.</returns>
    /// <exception cref="OperationCanceledException">The token fired; the caller knows whether it was a timeout or a departure.</exception>
    public PredictionError? Decode(InspectedImage inspected, Span<float> tensor, CancellationToken cancellationToken)
    {
        try
        {
            using var image = DecodePixels(inspected, cancellationToken);
            Transform(image, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            WriteTensor(image, tensor);
            return null;
        }
        catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
        {
            return Undecodable(inspected.Format, e);
        }
    }

    /// <summary>
    /// Decoders meeting hostile bytes throw all kinds of exceptions (format, argument, overflow, index, null
    /// reference); whichever it is, the image is what is wrong, never the silo. The exception's text stays in
    /// the log: it names decoder internals, not what the sender can change.
    /// </summary>
    private PredictionError Undecodable(IImageFormat format, Exception e)
    {
        _logger.LogDebug(e, "A {Format} image could not be decoded", format.Name);
        return new(PredictionErrorKind.InvalidImage, $"The {format.Name} image could not be decoded; the file is damaged, truncated or uses a feature this decoder does not support. Re-encode it (for example as PNG or baseline JPEG).");
    }

    private Image<Rgba32> DecodePixels(InspectedImage inspected, CancellationToken cancellationToken)
    {
        // A stream that checks the token at every read stops decoders that do not check it themselves (PNG reads
        // its compressed rows as it goes); the JPEG decoder also checks it between scans.
        using var stream = new CancellableReadStream(inspected.Bytes, cancellationToken);
        IImageDecoder decoder = inspected.Format switch
        {
            // Only the first frame is classified: never decode an animation's other frames.
            GifFormat => new GifDecoder { DecodingMode = FrameDecodingMode.First },
            _ => _decoding.ImageFormatsManager.FindDecoder(inspected.Format),
        };
        return decoder.Decode<Rgba32>(_decoding, stream, cancellationToken);
    }

    private static string FormatName(IImageFormat format) => format.Name.ToLowerInvariant() switch
    {
        "jpg" => "jpeg",
        var n => n,
    };

    /// <summary>
    /// Brings the decoded image to the size whose pixels go into the tensor (which may be narrower than the input, for
    /// padding). Each step over the full-size image is its own pass, with <paramref name="cancellationToken"/> checked
    /// before it: on a 40 MP image a step takes a few hundred milliseconds.
    /// </summary>
    internal void Transform(Image<Rgba32> image, CancellationToken cancellationToken = default)
    {
        var (h, w) = (_model.Height, _model.Width);
        cancellationToken.ThrowIfCancellationRequested();
        image.Mutate(ctx => ctx.AutoOrient());

        // Transparent pixels become white, as a viewer shows them: dropping alpha would expose whatever
        // colour the encoder left under them (often black, which hides dark text).
        cancellationToken.ThrowIfCancellationRequested();
        image.Mutate(ctx => ctx.BackgroundColor(Color.White));
        cancellationToken.ThrowIfCancellationRequested();
        image.Mutate(ctx =>
        {
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
