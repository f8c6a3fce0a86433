using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Pbm;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;

namespace Classifier.Grains;

/// <summary>Maps format names in configuration to ImageSharp modules, so only allowed decoders exist.</summary>
internal static class ImageFormats
{
    private static readonly Dictionary<string, Func<IConfigurationModule>> Modules = new(StringComparer.OrdinalIgnoreCase)
    {
        ["jpeg"] = () => new JpegConfigurationModule(),
        ["png"] = () => new PngConfigurationModule(),
        ["gif"] = () => new GifConfigurationModule(),
        ["webp"] = () => new WebpConfigurationModule(),
        ["bmp"] = () => new BmpConfigurationModule(),
        ["tga"] = () => new TgaConfigurationModule(),
        ["tiff"] = () => new TiffConfigurationModule(),
        ["pbm"] = () => new PbmConfigurationModule(),
    };

    public static IEnumerable<string> Known => Modules.Keys;

    public static bool IsKnown(string name) => Modules.ContainsKey(name);

    /// <summary>A configuration that can detect and decode only the named formats.</summary>
    public static Configuration Restricted(IEnumerable<string> allowed)
    {
        var configuration = new Configuration(allowed.Select(a => Modules[a]()).ToArray())
        {
            // Requests already run in parallel; per-image parallelism would only fight ONNX Runtime for cores.
            MaxDegreeOfParallelism = 1,
        };
        return configuration;
    }
}
