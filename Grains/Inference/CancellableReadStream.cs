namespace Classifier.Grains.Inference;

/// <summary>A read-only stream over a byte array that throws <see cref="OperationCanceledException"/> from every read once its token fires.</summary>
/// <remarks>Decoders read as they decode, so this stops those that never look at a token themselves.</remarks>
internal sealed class CancellableReadStream(byte[] buffer, CancellationToken cancellationToken) : MemoryStream(buffer, writable: false)
{
    public override int Read(byte[] buffer, int offset, int count)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return base.Read(buffer, offset, count);
    }

    public override int Read(Span<byte> buffer)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return base.Read(buffer);
    }

    public override int ReadByte()
    {
        cancellationToken.ThrowIfCancellationRequested();
        return base.ReadByte();
    }
}
