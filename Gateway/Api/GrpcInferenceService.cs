using System.Reflection;
using Classifier.Gateway.Cluster;
using Classifier.Gateway.Grpc;
using Classifier.Grains.Interfaces;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Classifier.Gateway.Api;

/// <summary>
/// The Open Inference Protocol's gRPC service, <c>inference.GRPCInferenceService</c>, on <c>Gateway:GrpcPort</c>: the
/// same health, metadata and inference as the REST endpoints (<see cref="InferenceCore"/>), with inputs as
/// <c>raw_input_contents</c> or typed <c>contents</c> and outputs as <c>raw_output_contents</c>, and Triton's
/// repository RPCs. Errors map to gRPC codes: NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED (a silo's refusal for
/// load, or the gateway's upload memory), UNAVAILABLE.
/// </summary>
public sealed class GrpcInferenceService(ClusterView cluster, PredictionRouter router, IClusterClient client, IOptions<GatewayOptions> options)
    : GRPCInferenceService.GRPCInferenceServiceBase
{
    private static readonly string ServerVersion = BuildInfo.Of(Assembly.GetExecutingAssembly()).Version;

    /// <summary>The gRPC code for an HTTP status the REST endpoints would answer.</summary>
    public static StatusCode CodeOf(int status) => status switch
    {
        StatusCodes.Status404NotFound => StatusCode.NotFound,
        StatusCodes.Status400BadRequest or StatusCodes.Status413PayloadTooLarge or StatusCodes.Status415UnsupportedMediaType or StatusCodes.Status422UnprocessableEntity => StatusCode.InvalidArgument,
        StatusCodes.Status429TooManyRequests => StatusCode.ResourceExhausted,
        StatusCodes.Status401Unauthorized => StatusCode.Unauthenticated,
        StatusCodes.Status499ClientClosedRequest => StatusCode.Cancelled,
        _ => StatusCode.Unavailable,
    };

    private static RpcException Failure(InferenceError error) => new(new Status(CodeOf(error.Status), error.Message));

    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = true });

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerReadyResponse { Ready = cluster.IsReady(out _) });

    public override async Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context)
    {
        if (!RequestRules.IsModelName(request.Name))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"'{Echo.Of(request.Name)}' is not a model name."));
        }

        var route = await cluster.RouteAsync(request.Name, string.IsNullOrEmpty(request.Version) ? null : request.Version, context.CancellationToken);
        return route.StatusCode == StatusCodes.Status404NotFound
            ? throw new RpcException(new Status(StatusCode.NotFound, route.Problem!))
            : new ModelReadyResponse { Ready = route.StatusCode == StatusCodes.Status200OK };
    }

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerMetadataResponse { Name = "classifier", Version = ServerVersion, Extensions = { InferenceProtocolApi.Extensions } });

    public override async Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context)
    {
        try
        {
            var metadata = await InferenceProtocolApi.DescribeAsync(request.Name, string.IsNullOrEmpty(request.Version) ? null : request.Version, cluster, context.CancellationToken);
            static ModelMetadataResponse.Types.TensorMetadata Tensor(TensorMetadata t) => new() { Name = t.Name, Datatype = t.Datatype, Shape = { t.Shape } };
            return new ModelMetadataResponse
            {
                Name = metadata.Name,
                Versions = { metadata.Versions },
                Platform = metadata.Platform,
                Inputs = { metadata.Inputs.Select(Tensor) },
                Outputs = { metadata.Outputs.Select(Tensor) },
            };
        }
        catch (InferenceError error)
        {
            throw Failure(error);
        }
    }

    public override async Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        try
        {
            var (route, status) = await InferenceCore.ResolveAsync(request.ModelName, request.ModelVersion, cluster, context.CancellationToken);
            if (request.Inputs.Count != 1)
            {
                throw InferenceError.BadRequest($"The request must hold one input: '{InferenceProtocolApi.ImageInput}' (BYTES, shape [N]) or '{status.Input.Name}' (FP32, shape [N, {string.Join(", ", status.Input.Shape)}]).");
            }

            var input = request.Inputs[0];
            if (request.RawInputContents.Count > 1 || request.RawInputContents.Count == 1 && input.Contents is not null)
            {
                throw InferenceError.BadRequest("Give the input's data either in raw_input_contents (one entry) or in its contents, not both.");
            }

            var raw = request.RawInputContents.Count == 1 ? request.RawInputContents[0].ToByteArray() : null;
            var (images, tensor) = InferenceCore.Images(
                new InferInput(input.Name, input.Datatype, [.. input.Shape], raw,
                    input.Contents is { BytesContents.Count: > 0 } bytes ? [.. bytes.BytesContents.Select(b => b.ToByteArray())] : null,
                    input.Contents is { Fp32Contents.Count: > 0 } floats ? floats.Fp32Contents : null),
                status, options.Value);
            if (request.Outputs.Count > 1)
            {
                throw InferenceError.BadRequest($"Model '{status.Model}' has one output, '{status.Output}'.");
            }

            var requested = request.Outputs.Count == 1 ? request.Outputs[0] : null;
            long? classification = requested?.Parameters.TryGetValue("classification", out var k) == true
                ? k.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.Int64Param ? k.Int64Param : -1
                : null;
            var output = InferenceCore.Output(requested?.Name, classification, binary: true, status);
            var predictions = await InferenceCore.PredictAllAsync(router, request.ModelName, route, status, images, tensor, context.CancellationToken);
            var answer = InferenceCore.Tensor(status, output, predictions);
            return new ModelInferResponse
            {
                ModelName = request.ModelName,
                ModelVersion = route.Version,
                Id = request.Id,
                Outputs = { new ModelInferResponse.Types.InferOutputTensor { Name = answer.Name, Datatype = answer.Datatype, Shape = { answer.Shape } } },
                RawOutputContents = { ByteString.CopyFrom(answer.Raw()) },
            };
        }
        catch (InferenceError error)
        {
            throw Failure(error);
        }
    }

    public override async Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context)
    {
        var entries = await RepositoryApi.EntriesAsync(cluster, client, request.Ready, context.CancellationToken)
            ?? throw new RpcException(new Status(StatusCode.Unavailable, "No silo answered; the cluster is not reachable."));
        return new RepositoryIndexResponse { Models = { entries.Select(e => new RepositoryIndexResponse.Types.ModelIndex { Name = e.Name, Version = e.Version, State = e.State, Reason = e.Reason }) } };
    }

    public override async Task<RepositoryModelLoadResponse> RepositoryModelLoad(RepositoryModelLoadRequest request, ServerCallContext context)
    {
        await ChangeAsync(request.ModelName, Version(request.Parameters), load: true);
        return new RepositoryModelLoadResponse();
    }

    public override async Task<RepositoryModelUnloadResponse> RepositoryModelUnload(RepositoryModelUnloadRequest request, ServerCallContext context)
    {
        await ChangeAsync(request.ModelName, Version(request.Parameters), load: false);
        return new RepositoryModelUnloadResponse();
    }

    private static string? Version(Google.Protobuf.Collections.MapField<string, ModelRepositoryParameter> parameters) =>
        parameters.TryGetValue("version", out var v) ? v.ParameterChoiceCase switch
        {
            ModelRepositoryParameter.ParameterChoiceOneofCase.StringParam => v.StringParam,
            ModelRepositoryParameter.ParameterChoiceOneofCase.Int64Param => v.Int64Param.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => "invalid",
        } : null;

    private async Task ChangeAsync(string model, string? version, bool load)
    {
        var (status, error) = await RepositoryApi.ChangeAsync(client, model, version, load);
        if (error is not null)
        {
            throw new RpcException(new Status(status == StatusCodes.Status400BadRequest ? StatusCode.InvalidArgument : CodeOf(status), error));
        }
    }
}

/// <summary>The API keys for gRPC: <c>x-api-key</c> or <c>authorization: Bearer</c> metadata, as for REST; health calls need none.</summary>
public sealed class GrpcApiKeyInterceptor(IOptions<AuthOptions> options) : Interceptor
{
    private readonly ApiKeyFilter _keys = new(options);

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var open = context.Method.EndsWith("/ServerLive", StringComparison.Ordinal) || context.Method.EndsWith("/ServerReady", StringComparison.Ordinal);
        if (!open && !_keys.Accepts(context.GetHttpContext().Request))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated,
                "This API needs a key: send it as metadata 'x-api-key: <key>' or 'authorization: Bearer <key>'. Ask the cluster's operator for one."));
        }

        return continuation(request, context);
    }
}

/// <summary>
/// Charges gRPC request bodies to the gateway's upload budget as their bytes arrive (a gRPC message is read whole
/// before its handler runs, and carries no Content-Length to prepay from), refusing with RESOURCE_EXHAUSTED when the
/// budget is spent. Everything is given back when the call ends.
/// </summary>
public sealed class GrpcBodyBudgetMiddleware(RequestDelegate next, int grpcPort, UploadBudget budget)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (context.Connection.LocalPort == grpcPort)
        {
            context.Request.Body = new BudgetedStream(context.Request.Body, budget.Open(context));
        }

        return next(context);
    }

    private sealed class BudgetedStream(Stream inner, UploadBudget.Reservation reservation) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            Charge(read);
            return read;
        }

        public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            await ReadAsync(buffer.AsMemory(offset, count), cancellationToken);

        public override int Read(byte[] buffer, int offset, int count)
        {
            var read = inner.Read(buffer, offset, count);
            Charge(read);
            return read;
        }

        private void Charge(int read)
        {
            // Three times what arrives: the message as received, its bytes as parsed, and the copy sent on to a silo.
            if (read > 0 && !reservation.TryAdd(3L * read))
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted, "The gateway's upload memory is full; retry in a second (or at another gateway)."));
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
