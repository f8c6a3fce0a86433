#!/usr/bin/env bash
# Scale-out, measured on one multi-core host: for each silo count in COUNTS ("1 2 4 6"), starts that many
# silos, each pinned (taskset) to SILO_CORES (1) cores of its own, and ceil(N x GATEWAYS_PER_SILO) gateways
# (0.5 per silo), each on GATEWAY_CORES (1) cores of its own; the load generator gets every core left (at
# least 2). It waits until every gateway sees the model ready on all N silos, warms the cluster to steady
# state, then drives all-miss and Zipf(1.1) workloads, REQUESTS (6000) each from CONCURRENCY (32 per
# gateway) callers, spread over the gateways in turn. Prints per silo count: throughput, efficiency against
# linear (throughput(N) / (N x throughput(1))), p50 and p99, each role's CPU ms per image, and the busiest
# silo's CPU over the mean (how evenly the shards spread). Goal: all-miss efficiency >= 0.9 at every N.
#
# MODEL (text-orientation), SHARDS (60: divides evenly over 1, 2, 3, 4, 5 and 6 silos, so no silo holds more
# shards than another; the default 32 over 6 silos caps efficiency at 5.33/6 = 0.89), SILO_ARGS (more silo
# settings). Uses .gpu/part-* from scripts/gpu-bundle.sh when present (hosts without the .NET SDK).
# Results: $OUT (or .run/scale) as scale.md, scale-N.json and the process logs.
# On fewer than 8 cores it refuses: silos sharing cores measure the machine, not the cluster.
# SCALE_SMALL=1 runs it anyway, unpinned, with COUNTS "1 2" and small requests: to test the script, not to measure.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/bundle.sh"
out="${OUT:-$root/.run/scale}"
mkdir -p "$out"
cores=$(nproc)
small=${SCALE_SMALL:-0}
if [ "$small" = 1 ]; then
  counts=${COUNTS:-1 2}; requests=${REQUESTS:-600}
else
  counts=${COUNTS:-1 2 4 6}; requests=${REQUESTS:-6000}
fi
silo_cores=${SILO_CORES:-1}; gateway_cores=${GATEWAY_CORES:-1}; per_silo=${GATEWAYS_PER_SILO:-0.5}
model=${MODEL:-text-orientation}; shards=${SHARDS:-60}
gateways_for() { awk -v n="$1" -v r="$per_silo" 'BEGIN { g = n * r; c = int(g); if (c < g) c++; if (c < 1) c = 1; print c }'; }
max_n=$(printf '%s\n' $counts | sort -n | tail -1)
need=$((max_n * silo_cores + $(gateways_for "$max_n") * gateway_cores + 2))
if [ "$small" != 1 ]; then
  if [ "$cores" -lt 8 ]; then
    echo "scale-check: this host has $cores cores; it needs at least 8 (here: $need for up to $max_n silos of $silo_cores core(s), their gateways and a load generator of 2)." >&2
    echo "Silos that share cores measure the machine, not the cluster. Run it on a multi-core host (scripts/gpu-bundle.sh packs it for one without the .NET SDK);" >&2
    echo "SCALE_SMALL=1 runs the script's logic here with 1 and 2 unpinned silos, to test it (its figures mean nothing)." >&2
    exit 2
  fi
  if [ "$need" -gt "$cores" ]; then
    echo "scale-check: $max_n silos x $silo_cores core(s) + $(gateways_for "$max_n") gateway(s) x $gateway_cores + 2 for the load generator = $need cores; this host has $cores. Lower COUNTS, SILO_CORES or GATEWAYS_PER_SILO." >&2
    exit 2
  fi
  command -v taskset >/dev/null || { echo "scale-check: taskset (util-linux) is needed to pin processes to cores" >&2; exit 2; }
fi

use_bundle_or_build "$root" || exit 1
silo_dll=$(app_dll "$root" silo); gateway_dll=$(app_dll "$root" gateway); loadgen_dll=$(app_dll "$root" loadgen)
[ -d "$models_dir/$model" ] || { echo "scale-check: model $model is not in $models_dir" >&2; exit 1; }
lscpu -e=CPU,CORE,SOCKET > "$out/cpu-topology.txt" 2>&1 || true

pids=()
stop_all() { for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; pids=(); }
trap stop_all EXIT
# Cores first..first+count-1 as a taskset prefix; nothing when unpinned.
pin() { [ "$small" = 1 ] && return; echo "taskset -c $1-$(($1 + $2 - 1))"; }
# HTTP through python3's standard library: borrowed hosts do not always have curl.
ready_silos() { python3 - "$1" "$model" <<'PY'
import json, sys, urllib.request
try:
    body = json.load(urllib.request.urlopen(f"{sys.argv[1]}/models/{sys.argv[2]}", timeout=2))
    print(sum(1 for v in body["versions"] for s in v["silos"] if s["state"] == "ready"))
except Exception:
    print(0)
PY
}

for n in $counts; do
  g=$(gateways_for "$n")
  cluster="scale-$n-$$"
  gateway_ports=()
  for i in $(seq 1 "$n"); do gateway_ports+=("--Cluster:GatewayPorts:$((i - 1))" "$((30400 + i))"); done
  for i in $(seq 1 "$n"); do
    # shellcheck disable=SC2046,SC2086 # pin's words and SILO_ARGS are lists of words
    $(pin $(((i - 1) * silo_cores)) "$silo_cores") dotnet "$silo_dll" --urls "http://127.0.0.1:$((9400 + i))" \
      --Models:Repository "$models_dir" --Cluster:SiloPort "$((11400 + i))" --Cluster:GatewayPort "$((30400 + i))" \
      --Cluster:PrimarySiloPort 11401 --Cluster:ClusterId "$cluster" --Cluster:ServiceId "$cluster" --Cluster:ShardCount "$shards" \
      ${SILO_ARGS:-} > "$out/silo-$n-$i.log" 2>&1 &
    pids+=($!)
    [ "$i" = 1 ] && sleep 2 # the primary first, so the others find it
  done
  first_gateway_core=$((n * silo_cores))
  urls=(); gmetrics=(); smetrics=()
  for j in $(seq 1 "$g"); do
    # shellcheck disable=SC2046
    $(pin $((first_gateway_core + (j - 1) * gateway_cores)) "$gateway_cores") dotnet "$gateway_dll" --urls "http://127.0.0.1:$((8400 + j))" \
      "${gateway_ports[@]}" --Cluster:ClusterId "$cluster" --Cluster:ServiceId "$cluster" > "$out/gateway-$n-$j.log" 2>&1 &
    pids+=($!)
    urls+=("http://127.0.0.1:$((8400 + j))"); gmetrics+=("http://127.0.0.1:$((8400 + j))/metrics")
  done
  for i in $(seq 1 "$n"); do smetrics+=("http://127.0.0.1:$((9400 + i))/metrics"); done
  # Every gateway must see the model ready on every silo, or the first shards crowd onto the silos that were.
  ok=0
  for _ in $(seq 1 240); do
    ok=1
    for u in "${urls[@]}"; do [ "$(ready_silos "$u")" -ge "$n" ] || { ok=0; break; }; done
    [ $ok = 1 ] && break
    sleep 0.5
  done
  if [ $ok != 1 ]; then
    echo "scale-check: $n silos: the gateways did not see $model ready on all of them in 2 minutes; see $out/silo-$n-*.log" >&2
    stop_all; exit 1
  fi
  client_first=$((first_gateway_core + g * gateway_cores))
  # shellcheck disable=SC2046
  $( [ "$small" = 1 ] || echo "taskset -c $client_first-$((cores - 1))") dotnet "$loadgen_dll" scale \
    --gateways "$(IFS=,; echo "${urls[*]}")" --gateway-metrics "$(IFS=,; echo "${gmetrics[*]}")" --silo-metrics "$(IFS=,; echo "${smetrics[*]}")" \
    --model "$model" --requests "$requests" --concurrency "${CONCURRENCY:-$((32 * g))}" > "$out/scale-$n.json" 2> "$out/loadgen-$n.log"
  rc=$?
  stop_all
  if [ $rc -ne 0 ] || ! [ -s "$out/scale-$n.json" ]; then
    echo "scale-check: the run with $n silos failed (rc $rc); see $out/loadgen-$n.log" >&2
    tail -n 5 "$out/loadgen-$n.log" >&2
    exit 1
  fi
  echo "$n silos, $g gateway(s): $(cat "$out/scale-$n.json")" >&2
done

python3 - "$out" "$cores" "$silo_cores" "$per_silo" "$model" "$shards" "$small" $(for n in $counts; do echo "$n:$(gateways_for "$n")"; done) <<'PY' | tee "$out/scale.md"
import json, statistics, sys
out, cores, silo_cores, per_silo, model, shards, small = sys.argv[1:8]
gateways = {int(n): int(g) for n, g in (a.split(":") for a in sys.argv[8:])}  # silo count: gateways it ran with
counts = list(gateways)
runs = {n: json.load(open(f"{out}/scale-{n}.json")) for n in counts}
print(f"# Scale-out, {cores} cores, {silo_cores} core(s) per silo, {per_silo} gateways per silo, model {model}, {shards} shards")
if small == "1":
    print("\nSCALE_SMALL=1: unpinned on a small host, to test the script. These figures measure nothing.")
for workload in range(len(runs[counts[0]])):
    name = runs[counts[0]][workload]["Workload"]
    one = runs[counts[0]][workload]["Throughput"] / counts[0]
    print(f"\n## {name}\n")
    print("| silos | gateways | img/s | efficiency | p50 ms | p99 ms | errors | hit rate | CPU ms/img gateway / silo / client | busiest silo's CPU / mean |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in counts:
        r = runs[n][workload]
        each = r["SiloCpuMsEach"]
        spread = max(each) / statistics.mean(each) if statistics.mean(each) > 0 else 0
        print(f"| {n} | {gateways[n]} | {r['Throughput']:.0f} | {r['Throughput'] / (n * one):.2f} | {r['P50Ms']:.2f} | {r['P99Ms']:.2f} | {r['Errors']} | {r['HitRate']:.2f} "
              f"| {r['GatewayCpuMs']:.2f} / {r['SiloCpuMs']:.2f} / {r['ClientCpuMs']:.2f} | {spread:.2f} |")
miss = [(n, runs[n][0]["Throughput"] / (n * runs[counts[0]][0]["Throughput"] / counts[0])) for n in counts]
worst = min(e for _, e in miss)
print(f"\nall-miss efficiency against linear: worst {worst:.2f} ({', '.join(f'{n}: {e:.2f}' for n, e in miss)}); goal >= 0.9: {'met' if worst >= 0.9 else 'NOT met'}")
PY
