#!/usr/bin/env bash
# Overload, measured: a silo and a gateway serving resnet18 (a compute-heavy model; its config.json's default
# batching: a queue of 256 and a 2 s queue timeout; QUEUE_SIZE sets another) to CLIENTS (256) closed-loop clients for SECONDS (20), every
# image a cache miss. Two runs: clients that wait Retry-After after a 429, as well-behaved clients do, and clients
# that send again at once. Prints served and refused latency, any other status, and both processes' memory.
# Extra arguments go to the silo (e.g. --Models:IntraOpThreads 1 to leave a core to request handling).
# Output also in .run/overload/overload.txt.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/lib/local-cluster.sh
scripts/fetch-models.sh --no-install resnet18 >/dev/null || exit 1
repo=.run/overload/models
mkdir -p "$repo/resnet18/1"
cp samples/models/resnet18/config.json .models/resnet18/mean-image.f32 "$repo/resnet18/"
if [ -n "${QUEUE_SIZE:-}" ]; then
  # A smaller queue than the model's default: refusals without a saturated machine (e.g. QUEUE_SIZE=1 CLIENTS=4).
  sed -i "0,/{/s//{ \"batching\": { \"maxQueueSize\": $QUEUE_SIZE },/" "$repo/resnet18/config.json"
fi
ln -sf "$root/.models/resnet18/model.onnx" "$repo/resnet18/1/model.onnx"
GATEWAY_ARGS=(--Gateway:DefaultModel resnet18)
start_local_cluster overload 9293 11293 30293 8283 --Models:Repository "$root/$repo" "$@" || exit 1
out=.run/overload/overload.txt
: >"$out"
for honour in true false; do
  dotnet tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll overload --gateway http://127.0.0.1:8283 \
    --model resnet18 --clients "${CLIENTS:-256}" --seconds "${SECONDS_PER_RUN:-20}" --honour-retry-after "$honour" \
    --metrics http://127.0.0.1:9293/metrics,http://127.0.0.1:8283/metrics | tee -a "$out"
done
