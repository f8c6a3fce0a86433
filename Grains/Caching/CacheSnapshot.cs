using Classifier.Grains.Interfaces;

namespace Classifier.Grains.Caching;

/// <summary>A grain cache's entries, least recently used first, as they travel when the grain migrates.</summary>
[GenerateSerializer, Immutable, Alias("classifier.CacheSnapshot")]
public sealed record CacheSnapshot(
    [property: Id(0)] ImageHash[] Keys,
    [property: Id(1)] float[][] Values);
