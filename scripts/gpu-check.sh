#!/usr/bin/env bash
# GPU readiness check, run on a machine with an NVIDIA GPU. Starts a silo with Models:Device=cuda
# and a gateway, confirms that the CUDA execution provider is really in use (not a silent CPU
# fallback), then drives the same requests through a CPU silo and prints both side by side.
# Uses .gpu/ from scripts/gpu-bundle.sh when present (hosts without the .NET SDK), else builds.
# Results go to $OUT (or .run/gpu) as gpu-check.md, bench-<device>-<model>.md, plus the process logs.
# REQUESTS (300 sequential misses), BENCH_REQUESTS (3000), RESNET_REQUESTS (1500), BENCH_CONCURRENCY (16),
# DEVICES ("cuda cpu pinned"), CUDA_MODELS, CPU_MODELS, PINNED_MODELS (which models each benchmarks),
# CUDA_SILO_ARGS (more settings for the CUDA silo, e.g. "--Models:CudnnConvAlgoSearch HEURISTIC"),
# BENCH_TIMEOUT (120 s per benchmark).
# On a host with 8 or more cores it also runs the CPU benchmark with each process on cores of its own
# (silo and baseline on the same PINNED_CORES, 2 by default; gateway and load generator elsewhere): on a
# 2-core machine the gateway and client share the silo's cores, which the in-process baseline never does.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/.run/gpu}"
mkdir -p "$out"
requests="${REQUESTS:-300}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/gpu.txt" 2>&1 || echo "nvidia-smi failed" > "$out/gpu.txt"
cat "$out/gpu.txt"

source "$root/scripts/lib/bundle.sh"
use_bundle_or_build "$root" || exit 1
models="$models_dir"
silo_dll=$(app_dll "$root" silo); gateway_dll=$(app_dll "$root" gateway); bench_dll=$(app_dll "$root" loadgen)

# A repository of the same models plus text-orientation-batched: the same file with dynamic batching
# on (16 images, 1 ms), which a GPU is where it pays, and text-orientation-batched-unpadded, the same
# without padding runs to 16 (to compare with CUDA_SILO_ARGS="--Models:CudnnConvAlgoSearch HEURISTIC").
# Links, so nothing is copied.
repo=/tmp/gpu-check-models
rm -rf "$repo" && mkdir -p "$repo"
for m in "$models"/*/; do ln -s "$(readlink -f "$m")" "$repo/$(basename "$m")"; done
for variant in "text-orientation-batched true" "text-orientation-batched-unpadded false"; do
  set -- $variant
  mkdir -p "$repo/$1" && ln -s "$(readlink -f "$models/text-orientation/1")" "$repo/$1/1"
  python3 - "$models/text-orientation/config.json" "$2" > "$repo/$1/config.json" <<'PY'
import sys
text = open(sys.argv[1]).read().rstrip()
print(text[:-1].rstrip() + ',\n  "batching": { "maxBatchSize": 16, "maxQueueDelayMicroseconds": 1000, "padToMaxBatch": ' + sys.argv[2] + ' }\n}')
PY
done
models="$repo"

# ONNX Runtime 1.31's CUDA provider needs the CUDA 13 runtime, cuBLAS and cuDNN 9. Use the system's,
# else those that Python wheels (nvidia-*-cu13, nvidia-cudnn-cu13) installed.
extra=$(find / -xdev \( -name 'libcudart.so.13*' -o -name 'libcublasLt.so.13*' -o -name 'libcudnn.so.9*' -o -name 'libcufft.so.12*' -o -name 'libcurand.so.10*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
export LD_LIBRARY_PATH="${extra}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "CUDA library folders: ${extra:-none found}" | tee "$out/libs.txt"

pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; pids=(); }
trap stop_all EXIT

# HTTP through python3's standard library: GPU images do not always have curl.
py() { python3 - "$@"; }
wait_ok() { py "$1" <<'PY'
import sys, time, urllib.request
for _ in range(240):
    try:
        if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200: sys.exit(0)
    except Exception: pass
    time.sleep(0.5)
sys.exit(1)
PY
}

run_device() { # $1 = cuda|cpu, $2 = models to benchmark, $3 = optional label; SILO_PIN, GATEWAY_PIN, CLIENT_PIN: taskset prefixes
  local device=$1 bench_models=$2 label=${3:-$1} silo_args=""
  [ "$device" = cuda ] && silo_args="${CUDA_SILO_ARGS:-}"
  # shellcheck disable=SC2086 # silo_args is a list of words
  $SILO_PIN dotnet "$silo_dll" $silo_args --urls http://127.0.0.1:9191 --Models:Repository "$models" --Models:Device "$device" \
    --Cluster:SiloPort 11191 --Cluster:GatewayPort 30091 --Cluster:PrimarySiloPort 11191 --Cluster:ClusterId "gpu-$device" \
    --Cluster:ServiceId "gpu-$device" > "$out/silo-$device.log" 2>&1 &
  pids+=($!)
  $GATEWAY_PIN dotnet "$gateway_dll" --urls http://127.0.0.1:8181 --Cluster:GatewayPorts:0 30091 --Cluster:ClusterId "gpu-$device" \
    --Cluster:ServiceId "gpu-$device" > "$out/gateway-$device.log" 2>&1 &
  pids+=($!)
  if ! wait_ok http://127.0.0.1:8181/readyz; then
    echo "| $label | not ready (see silo-$device.log) | | | | |" >> "$out/gpu-check.md"
    tail -n 30 "$out/silo-$device.log"; stop_all; return 1
  fi
  py "$label" "$requests" "$root/samples/upright.png" >> "$out/gpu-check.md" <<'PY'
import json, sys, time, urllib.request
device, n, sample = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
def call(url, data=None, ctype=None):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype} if ctype else {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read().decode()
providers = json.loads(call("http://127.0.0.1:8181/models/text-orientation"))["versions"][0]["providers"]
start, answers = time.perf_counter(), []
for i in range(n):
    # Trailing bytes after PNG's IEND: a new hash (a cache miss), the same pixels.
    answers.append(json.loads(call("http://127.0.0.1:8181/predict", sample + f"miss-{device}-{i}".encode(), "image/png")))
wall = time.perf_counter() - start
served = sorted({a["provider"] for a in answers})
metrics = call("http://127.0.0.1:9191/metrics").splitlines()
# This model's series only: the repository holds others, idle here.
value = lambda name: sum(float(l.split()[-1]) for l in metrics if l.startswith(name) and 'model="text-orientation"' in l)
mean_ms = 1000 * value("inference_duration_seconds_sum") / value("inference_duration_seconds_count")
labels = sorted({a["predictions"][0]["label"] for a in answers})
print(f"| {device} | {','.join(providers)} | {','.join(served)} | {n} | {wall:.2f} ({n / wall:.0f}/s) | {mean_ms:.3f} | {','.join(labels)} |")
PY
  # The benchmark of scripts/bench.sh against the same running cluster, baseline on the same device,
  # for the default model and, when the bundle or repository has it, the compute-heavy resnet18.
  # The silo's batching and queue, every 2 s, for the benchmarks' logs to be read against.
  ( while sleep 2; do echo "# $(date -u +%T)"; py http://127.0.0.1:9191/metrics <<'PY' || true
import sys, urllib.request
for l in urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().splitlines():
    if l.startswith(("inference_batch_size_count", "inference_batch_size_sum", "inference_queue_depth", "predictions_total")): print(l)
PY
  done ) > "$out/silo-$label-metrics.txt" 2>&1 &
  pids+=($!)
  for model in $bench_models; do
    [ -d "$models/$model" ] || continue
    local n="${BENCH_REQUESTS:-3000}"; [[ $model == resnet18 || $model == resnet18-batched ]] && n="${RESNET_REQUESTS:-1500}"
    $CLIENT_PIN timeout "${BENCH_TIMEOUT:-120}" dotnet "$bench_dll" bench --gateway http://127.0.0.1:8181 --models "$models" --model "$model" --requests "$n" \
      --concurrency "${BENCH_CONCURRENCY:-16}" --device "$device" --cpu-from http://127.0.0.1:8181/metrics,http://127.0.0.1:9191/metrics \
      --markdown "$out/bench-$label-$model.md" --json "$out/bench-$label-$model.json" \
      > "$out/bench-$label-$model.log" 2>&1 || echo "benchmark of $model on $label failed: see bench-$label-$model.log"
  done
  stop_all
}

{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ), $(cat "$out/gpu.txt")"
  echo
  echo "| device setting | /models providers | answers' provider | sequential misses | wall s | mean inference ms | top labels |"
  echo "|---|---|---|---|---|---|---|"
} > "$out/gpu-check.md"
SILO_PIN="" GATEWAY_PIN="" CLIENT_PIN=""
devices=" ${DEVICES:-cuda cpu pinned} "
cuda_rc=0
[[ $devices == *" cuda "* ]] && { run_device cuda "${CUDA_MODELS:-text-orientation text-orientation-batched resnet18 resnet18-batched}"; cuda_rc=$?; }
[[ $devices == *" cpu "* ]] && run_device cpu "${CPU_MODELS:-text-orientation resnet18}"
cores=$(nproc)
if [[ $devices == *" pinned "* ]] && [ "$cores" -ge 8 ] && command -v taskset >/dev/null; then
  pinned=${PINNED_CORES:-2}
  lscpu -e=CPU,CORE,SOCKET > "$out/cpu-topology.txt" 2>&1 || true
  # Silo and (inside the load generator) the baseline get the same number of cores.
  SILO_PIN="taskset -c 0-$((pinned - 1))" GATEWAY_PIN="taskset -c $pinned-$((2 * pinned - 1))"
  CLIENT_PIN="taskset -c $((2 * pinned))-$((3 * pinned - 1))"
  run_device cpu "${PINNED_MODELS:-text-orientation}" "cpu-pinned$pinned"
fi
cat "$out/gpu-check.md" "$out"/bench-*.md 2>/dev/null
[[ $devices == *" cuda "* ]] || exit 0
grep -q '^| cuda | CUDA | CUDA |' "$out/gpu-check.md" && [ $cuda_rc -eq 0 ] && echo "CUDA provider in use: yes" || { echo "CUDA provider in use: NO"; exit 1; }
