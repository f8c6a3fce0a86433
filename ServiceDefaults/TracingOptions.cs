using System.ComponentModel.DataAnnotations;

namespace Classifier.ServiceDefaults;

/// <summary>OpenTelemetry tracing: off unless an OTLP endpoint is configured.</summary>
public sealed class TracingOptions
{
    public const string SectionName = "Tracing";

    /// <summary>OTLP collector address, e.g. <c>http://otel-collector:4317</c> (gRPC) or <c>http://otel-collector:4318</c> (HTTP). Empty: tracing off.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>grpc</c> or <c>http/protobuf</c>.</summary>
    [RegularExpression("^(grpc|http/protobuf)$", ErrorMessage = "Tracing:Protocol must be grpc or http/protobuf.")]
    public string Protocol { get; set; } = "grpc";

    /// <summary>Share of new traces recorded, 0 to 1; a request that arrives with a sampled parent is always recorded.</summary>
    [Range(0.0, 1.0)]
    public double SampleRatio { get; set; } = 1.0;

    public bool Enabled => !string.IsNullOrWhiteSpace(OtlpEndpoint);
}
