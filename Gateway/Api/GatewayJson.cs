using System.Text.Json;
using System.Text.Json.Serialization;

namespace Classifier.Gateway.Api;

/// <summary>
/// Compile-time JSON for the answers every prediction writes: the serializer's generated fast path instead of its
/// reflection-built one, with the web defaults (camelCase) minimal APIs use, so the bytes are the same.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(PredictionResponse))]
[JsonSerializable(typeof(BatchResponse))]
internal sealed partial class GatewayJson : JsonSerializerContext;
