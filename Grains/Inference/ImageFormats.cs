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
using SixLabors.ImageSharp.Memory;

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

    /// <summary>A configuration that can detect and decode only the named formats, and allocates no buffer over <paramref name="allocationLimitBytes"/>.</summary>
    public static Configuration Restricted(IEnumerable<string> allowed, long allocationLimitBytes)
    {
        var configuration = new Configuration(allowed.Select(a => Modules[a]()).ToArray())
        {
            // Requests already run in parallel; per-image parallelism would only fight ONNX Runtime for cores.
            MaxDegreeOfParallelism = 1,

            // ImageSharp's default pool keeps freed pixel memory for reuse, up to a share of the machine's memory:
            // after one 40 MP decode the process stayed 150 MB larger (measured). Keep a small pool, so a burst
            // of large images gives its memory back, and refuse any single buffer beyond the decode budget.
            MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions
            {
                MaximumPoolSizeMegabytes = 16,
                AllocationLimitMegabytes = (int)Math.Clamp((allocationLimitBytes + (1 << 20) - 1) >> 20, 1, int.MaxValue),
            }),
        };
        return configuration;
    }
}
