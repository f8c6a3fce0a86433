#!/usr/bin/env bash
# All-miss through /predict, the Open Inference Protocol's REST infer and its gRPC ModelInfer, in
# interleaved rounds on one warm cluster (one silo, one gateway), with each path's median throughput
# ratio to /predict in the same round and CPU per image of gateway, silo and client. Writes
# .run/protocols/protocols.md. ROUNDS (7), REQUESTS (2000), CONCURRENCY (8), MODEL (text-orientation);
# extra arguments go to the silo.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/local-cluster.sh"
GATEWAY_ARGS=(--Gateway:GrpcPort 8582)
start_local_cluster protocols 9591 11591 30591 8581 "$@" || exit 1
dotnet "$root/tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll" protocols \
  --gateway http://127.0.0.1:8581 --grpc 127.0.0.1:8582 --model "${MODEL:-text-orientation}" \
  --cpu-from http://127.0.0.1:8581/metrics,http://127.0.0.1:9591/metrics \
  --rounds "${ROUNDS:-7}" --requests "${REQUESTS:-2000}" --concurrency "${CONCURRENCY:-8}" \
  --markdown "$root/.run/protocols/protocols.md"
