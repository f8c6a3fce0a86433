using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Classifier.Grains.Interfaces;

/// <summary>First 128 bits of the SHA-256 of an image's bytes: the cache key and the routing key.</summary>
/// <remarks>
/// A cryptographic hash, so nobody can craft a second image that collides with someone else's
/// and poisons the shared cache; 128 bits keep collisions out of reach while fitting two words.
/// </remarks>
[GenerateSerializer, Immutable, Alias("classifier.ImageHash")]
public readonly record struct ImageHash([property: Id(0)] ulong High, [property: Id(1)] ulong Low)
{
    /// <summary>The hash of <paramref name="image"/>: the gateway routes by it, and the grain that gets the image computes it again for its cache.</summary>
    public static ImageHash Of(ReadOnlySpan<byte> image)
    {
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(image, digest);
        return new ImageHash(BinaryPrimitives.ReadUInt64BigEndian(digest), BinaryPrimitives.ReadUInt64BigEndian(digest[8..]));
    }

    /// <summary>
    /// The key of a model input tensor given as <paramref name="shape"/> and little-endian FP32 <paramref name="data"/>:
    /// the SHA-256 covers a domain tag, the datatype and the shape before the bytes, so a tensor never shares a key with
    /// an encoded image of the same bytes, nor with a tensor of another shape (Triton's key hashes the bytes alone).
    /// </summary>
    public static ImageHash OfTensor(ReadOnlySpan<int> shape, ReadOnlySpan<byte> data)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData("classifier-tensor:FP32:"u8);
        Span<byte> dimension = stackalloc byte[4];
        foreach (var d in shape)
        {
            BinaryPrimitives.WriteInt32LittleEndian(dimension, d);
            sha.AppendData(dimension);
        }

        sha.AppendData(data);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        sha.GetHashAndReset(digest);
        return new ImageHash(BinaryPrimitives.ReadUInt64BigEndian(digest), BinaryPrimitives.ReadUInt64BigEndian(digest[8..]));
    }

    /// <summary>The shard (0 to <paramref name="shardCount"/> - 1) that owns this image.</summary>
    public int ShardOf(int shardCount) => (int)(Low % (ulong)shardCount);

    public override string ToString() => $"{High:x16}{Low:x16}";
}
