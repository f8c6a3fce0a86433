using System.Runtime.InteropServices;

namespace Classifier.Silo;

/// <summary>
/// Makes glibc give large freed blocks back to the system at once. Decoded pixels live in native memory
/// (ImageSharp's unmanaged buffers); by default glibc raises its mmap threshold after the first large free and
/// then serves such blocks from arenas it keeps, so after a burst of 40 MP decodes the silo stayed 340 MB
/// larger (measured: 508 MB resident against 187 MB with a fixed threshold, README, Security). Under a pod's
/// memory limit that retained memory is what gets the pod killed on the next burst.
/// </summary>
internal static class NativeHeap
{
    private const int MmapThreshold = -3; // M_MMAP_THRESHOLD: a fixed value also turns off glibc's dynamic raising of it
    private const int ArenaMax = -8; // M_ARENA_MAX

    /// <summary>Blocks of 128 KiB and more are mapped and unmapped one by one; at most two arenas per core hold the rest.</summary>
    public static void ReturnLargeBlocksToTheSystem()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = Mallopt(MmapThreshold, 128 * 1024);
            _ = Mallopt(ArenaMax, 2 * Environment.ProcessorCount);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc (musl has no mallopt): its allocator returns memory differently, nothing to set.
        }
    }

    // DllImport rather than LibraryImport: the source-generated stub needs unsafe code, and two ints need no marshalling.
    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int parameter, int value);
}
