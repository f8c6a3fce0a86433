#!/usr/bin/env bash
# Benchmark: starts a silo, a gateway and the one-process server (the second baseline) on spare ports, runs all-miss, all-hit and Zipf workloads
# through the gateway and, in the same run, the same model and preprocessing directly through ONNX
# Runtime, and prints every cluster figure as a ratio to that baseline. All-miss also runs through the Open Inference
# Protocol's REST infer and its gRPC ModelInfer, to compare with /predict's. Writes .run/bench/bench.md
# and .run/bench/bench.json. REQUESTS (3000), CONCURRENCY (8), MODEL (text-orientation; resnet18 after
# scripts/fetch-models.sh resnet18), MODELS (the model repository, default models/); extra arguments go
# to the silo (e.g. --Models:Device cuda).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/local-cluster.sh"
models="${MODELS:-$root/models}"
GATEWAY_ARGS=(--Gateway:GrpcPort 8482)
start_local_cluster bench 9491 11491 30491 8481 --Models:Repository "$models" "$@" || exit 1
echo "cluster ready ${cluster_ready_seconds} s after launch (silo and gateway started together)" | tee "$root/.run/bench/ready.txt"
# The second baseline: the original's one-process design (Kestrel, LRU of 128, ONNX Runtime), on CPU.
dotnet "$root/tools/OneProcessServer/bin/Release/net10.0/Classifier.OneProcessServer.dll" --urls http://127.0.0.1:8490 \
  --models "$models" --model "${MODEL:-text-orientation}" >"$root/.run/bench/one-process.log" 2>&1 &
cluster_pids+=($!)
for _ in $(seq 60); do curl -fs http://127.0.0.1:8490/healthz >/dev/null 2>&1 && break; sleep 0.5; done
dotnet "$root/tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll" bench \
  --gateway http://127.0.0.1:8481 --grpc 127.0.0.1:8482 --one-process http://127.0.0.1:8490 --models "$models" --model "${MODEL:-text-orientation}" \
  --cpu-from http://127.0.0.1:8481/metrics,http://127.0.0.1:9491/metrics \
  --requests "${REQUESTS:-3000}" --concurrency "${CONCURRENCY:-8}" \
  --markdown "$root/.run/bench/bench.md" --json "$root/.run/bench/bench.json"
