namespace Classifier.ModelFetch;

/// <summary>
/// Makes an ONNX model's batch dimension symbolic by editing its protobuf wire format directly (no ONNX
/// library): the first dimension of every graph input and output becomes <c>dim_param "N"</c> instead of
/// <c>dim_value 1</c>, and so does that of the graph's value_info, the shapes it records for intermediate
/// tensors. Those matter: left at 1, ONNX Runtime's shape inference carries the 1 through to the output
/// (its metadata then says [1, 512, 1, 1]) and every batched run logs "VerifyOutputSizes: Expected shape
/// from model of {1,512,1,1} does not match actual shape of {4,512,1,1}", though the numbers come out right.
/// Only the messages on the path to those dimensions are re-encoded (their lengths change); every other
/// byte, weights and nodes included, is copied as it was.
/// </summary>
public static class SymbolicBatch
{
    // Field numbers from onnx.proto3.
    private const int ModelGraph = 7;                  // ModelProto.graph
    private const int GraphInput = 11, GraphOutput = 12, GraphValueInfo = 13; // GraphProto.input, .output, .value_info (ValueInfoProto)
    private const int ValueInfoType = 2;               // ValueInfoProto.type (TypeProto)
    private const int TypeTensor = 1;                  // TypeProto.tensor_type (TypeProto.Tensor)
    private const int TensorShape = 2;                 // TypeProto.Tensor.shape (TensorShapeProto)
    private const int ShapeDim = 1;                    // TensorShapeProto.dim (Dimension), repeated
    private const int DimValue = 1, DimParam = 2;      // Dimension.dim_value (varint) | .dim_param (string)

    public static byte[] Rewrite(byte[] model, string name = "N") =>
        Edit(model, f => f == ModelGraph, graph =>
            Edit(graph, f => f is GraphInput or GraphOutput or GraphValueInfo, valueInfo =>
                Edit(valueInfo, f => f == ValueInfoType, type =>
                    Edit(type, f => f == TypeTensor, tensor =>
                        Edit(tensor, f => f == TensorShape, shape =>
                            Edit(shape, f => f == ShapeDim, dim => Symbolic(dim, name), firstOnly: true))))));

    /// <summary>A Dimension with dim_value 1 replaced by dim_param; its other fields (denotation) kept.</summary>
    private static byte[] Symbolic(byte[] dim, string name)
    {
        using var result = new MemoryStream();
        var changed = false;
        foreach (var f in Fields(dim))
        {
            if (f.Number == DimValue && f.Varint == 1)
            {
                WriteVarint(result, (DimParam << 3) | 2); // tag: field 2, length-delimited
                var bytes = System.Text.Encoding.UTF8.GetBytes(name);
                WriteVarint(result, (ulong)bytes.Length);
                result.Write(bytes);
                changed = true;
            }
            else
            {
                result.Write(dim.AsSpan(f.Start, f.End - f.Start));
            }
        }

        return changed ? result.ToArray() : throw new InvalidDataException("the batch dimension is not dim_value 1; this is not the file this rewrite was written for.");
    }

    /// <summary>
    /// Copies <paramref name="message"/> with the length-delimited fields that <paramref name="match"/> (only the
    /// first of them if <paramref name="firstOnly"/>) replaced by <paramref name="change"/> of their payload, and
    /// their length prefix re-encoded; all other fields byte for byte.
    /// </summary>
    private static byte[] Edit(byte[] message, Func<int, bool> match, Func<byte[], byte[]> change, bool firstOnly = false)
    {
        using var result = new MemoryStream(message.Length + 64);
        var done = false;
        foreach (var f in Fields(message))
        {
            if (f.WireType == 2 && match(f.Number) && !done)
            {
                var payload = change(message[f.PayloadStart..f.End]);
                result.Write(message.AsSpan(f.Start, f.TagEnd - f.Start)); // the tag, as it was
                WriteVarint(result, (ulong)payload.Length);
                result.Write(payload);
                done = firstOnly;
            }
            else
            {
                result.Write(message.AsSpan(f.Start, f.End - f.Start));
            }
        }

        return result.ToArray();
    }

    /// <summary>One field as it lies in the buffer: tag at [Start, TagEnd), payload at [PayloadStart, End).</summary>
    private readonly record struct Field(int Number, int WireType, int Start, int TagEnd, int PayloadStart, int End, ulong Varint);

    private static IEnumerable<Field> Fields(byte[] b)
    {
        var i = 0;
        while (i < b.Length)
        {
            var start = i;
            var tag = ReadVarint(b, ref i);
            var tagEnd = i;
            var (number, wireType) = ((int)(tag >> 3), (int)(tag & 7));
            ulong value = 0;
            switch (wireType)
            {
                case 0: value = ReadVarint(b, ref i); break;
                case 1: i += 8; break;
                case 5: i += 4; break;
                case 2: value = ReadVarint(b, ref i); break; // the payload's length; the payload follows
                default: throw new InvalidDataException($"unsupported protobuf wire type {wireType} at byte {start}.");
            }

            var payloadStart = i;
            if (wireType == 2)
            {
                i += (int)value;
            }

            if (i > b.Length)
            {
                throw new InvalidDataException($"protobuf field {number} at byte {start} runs past the end of its message.");
            }

            yield return new Field(number, wireType, start, tagEnd, payloadStart, i, value);
        }
    }

    private static ulong ReadVarint(byte[] b, ref int i)
    {
        ulong result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var c = b[i++];
            result |= (ulong)(c & 0x7f) << shift;
            if (c < 0x80)
            {
                return result;
            }
        }
    }

    private static void WriteVarint(Stream s, ulong v)
    {
        for (; v >= 0x80; v >>= 7)
        {
            s.WriteByte((byte)(v | 0x80));
        }

        s.WriteByte((byte)v);
    }
}
