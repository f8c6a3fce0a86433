#!/usr/bin/env bash
# Starts a local cluster: one silo and the HTTP gateway, localhost clustering, the default model.
# Ctrl+C stops both. Add silos from another terminal with scripts/add-silo.sh.
#   GATEWAY_PORT (8080)  GRPC_PORT (8081)  SILO_METRICS_PORT (9091)  MODELS (./models)  DEVICE (auto|cpu|cuda)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
gateway_port="${GATEWAY_PORT:-8080}"
grpc_port="${GRPC_PORT:-8081}"
silo_http="${SILO_METRICS_PORT:-9091}"
models="${MODELS:-$root/models}"
device="${DEVICE:-auto}"
logs="$root/.run"
mkdir -p "$logs"

scripts/fetch-models.sh
echo "Building ..." >&2
dotnet build Cluster.sln -c Release -nologo -v quiet -clp:ErrorsOnly >"$logs/build.log" 2>&1 || { cat "$logs/build.log" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

dotnet Silo/bin/Release/net10.0/Classifier.Silo.dll \
  --urls "http://127.0.0.1:$silo_http" --Models:Repository "$models" --Models:Device "$device" \
  --Cluster:SiloPort 11111 --Cluster:GatewayPort 30000 >"$logs/silo-11111.log" 2>&1 &
pids+=($!)
dotnet Gateway/bin/Release/net10.0/Classifier.Gateway.dll \
  --urls "http://127.0.0.1:$gateway_port" --Gateway:GrpcPort "$grpc_port" --Cluster:GatewayPorts:0 30000 >"$logs/gateway.log" 2>&1 &
pids+=($!)

echo "Waiting for the cluster to become ready ..." >&2
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$gateway_port/readyz" >/dev/null 2>&1; then
    cat <<MSG
Cluster ready.
  Gateway:        http://127.0.0.1:$gateway_port   (metrics at /metrics, models at /models)
  gRPC:           127.0.0.1:$grpc_port   (inference.GRPCInferenceService, h2c; Gateway/Protos/open_inference.proto)
  Silo metrics:   http://127.0.0.1:$silo_http/metrics
  Logs:           $logs/
Try:
  curl -F image=@samples/upright.png http://127.0.0.1:$gateway_port/predict
Press Ctrl+C to stop.
MSG
    wait -n "${pids[@]}" || true
    echo "A cluster process exited; see $logs/ for its log." >&2
    exit 1
  fi
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "A cluster process failed to start:" >&2; tail -n 20 "$logs"/*.log >&2; exit 1; }; done
  sleep 0.5
done
echo "The cluster did not become ready within 60 s; see $logs/." >&2
exit 1
