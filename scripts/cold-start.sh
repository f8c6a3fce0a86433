#!/usr/bin/env bash
# Cold start, measured from fresh processes each time: RUNS (3) times, starts a silo and a gateway,
# times them from launch to the gateway's /readyz, then (load generator) measures the in-process
# batch-1 baseline and at once the cluster's first all-miss run of REQUESTS (3000) images. Prints
# one line per run and the medians; writes .run/cold/cold.md. Extra arguments go to the silo; GATEWAY_EXTRA
# (a string) to the gateway; ENV_EXTRA (e.g. "DOTNET_TieredPGO=0") to both processes.
# COLD=gateway: the silo is warmed first (one untimed all-miss run through a first gateway), then only
# the gateway is restarted and measured cold, to split the cold cost between the two processes.
# Each run also measures a second, warm all-miss run through the same cluster (a new load generator,
# as the first): "warm" in the output, the reference the first run is compared with when the in-process
# baseline is too noisy. CLUSTER_SILO_DLL / CLUSTER_GATEWAY_DLL run other builds (e.g. ReadyToRun).
# WARM_UP=N IDLE=T: N misses through the cluster and T seconds idle before the measured run, to show what a
# warm-up of that size before ready would buy (its own time is not added to "ready in").
# PIN=N (hosts of at least 3N cores): the silo, the gateway and the load generator each on N cores of their own
# (taskset), to tell what on two shared cores is the cores' doing.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/local-cluster.sh"
source "$root/scripts/lib/bundle.sh"
runs=${RUNS:-3}
out="$root/.run/cold"
mkdir -p "$out"
# Before anything is built: a host too small to pin is told so.
client_pin=()
if [ -n "${PIN:-}" ]; then
  [ "$(nproc)" -ge $((3 * PIN)) ] && command -v taskset >/dev/null || { echo "cold-start: PIN=$PIN needs $((3 * PIN)) cores and taskset; this host has $(nproc)" >&2; exit 2; }
  export SILO_PIN="taskset -c 0-$((PIN - 1))" GATEWAY_PIN="taskset -c $PIN-$((2 * PIN - 1))"
  client_pin=(taskset -c "$((2 * PIN))-$((3 * PIN - 1))")
fi
# Built here, or on a borrowed host without the SDK the bundle of scripts/gpu-bundle.sh (scripts/device-run.sh cold).
use_bundle_or_build "$root" >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
export LOCAL_CLUSTER_BUILT=1 CLUSTER_MODELS="$models_dir"
export CLUSTER_SILO_DLL="${CLUSTER_SILO_DLL:-$(app_dll "$root" silo)}" CLUSTER_GATEWAY_DLL="${CLUSTER_GATEWAY_DLL:-$(app_dll "$root" gateway)}"
loadgen_dll=$(app_dll "$root" loadgen)
for e in ${ENV_EXTRA:-}; do export "${e?}"; done
read -r -a GATEWAY_ARGS <<<"${GATEWAY_EXTRA:-}"
lines=()
# One all-miss run of fresh images through the gateway, after the in-process baseline: a JSON line.
# The load generator (which also runs the baseline) with the runtime's defaults, whatever ENV_EXTRA sets.
cold_run() {
  local unset_extra=()
  for e in ${ENV_EXTRA:-}; do unset_extra+=(-u "${e%%=*}"); done
  ${client_pin[@]+"${client_pin[@]}"} env ${unset_extra[@]+"${unset_extra[@]}"} dotnet "$loadgen_dll" cold --gateway http://127.0.0.1:8891 \
    --cpu-from http://127.0.0.1:8891/metrics,http://127.0.0.1:9891/metrics \
    --models "$models_dir" --requests "${REQUESTS:-3000}" --concurrency "${CONCURRENCY:-8}" 2>>"$out/load.log"
}
for r in $(seq "$runs"); do
  start_local_cluster cold 9891 11891 30891 8891 "$@" || exit 1
  ready=$cluster_ready_seconds
  if [ "${COLD:-both}" = gateway ]; then
    cold_run >/dev/null
    kill "${cluster_pids[1]}" && wait "${cluster_pids[1]}" 2>/dev/null
    launched=$(date +%s.%N)
    ${GATEWAY_PIN:-} dotnet "$CLUSTER_GATEWAY_DLL" --urls http://127.0.0.1:8891 \
      --Cluster:GatewayPorts:0 30891 --Cluster:ClusterId cold --Cluster:ServiceId cold ${GATEWAY_ARGS[@]+"${GATEWAY_ARGS[@]}"} >"$root/.run/cold/gateway-2.log" 2>&1 &
    cluster_pids[1]=$!
    for _ in $(seq 1 600); do curl -fs http://127.0.0.1:8891/readyz >/dev/null 2>&1 && break; sleep 0.1; done
    ready=$(awk -v a="$launched" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  fi
  if [ "${WARM_UP:-0}" -gt 0 ]; then # what a warm-up before ready would buy: WARM_UP misses, then IDLE s for the compiler
    REQUESTS=$WARM_UP cold_run >/dev/null
    sleep "${IDLE:-0}"
  fi
  line=$(cold_run)
  warm=$(cold_run | python3 -c 'import json, sys; print(json.load(sys.stdin)["first"])')
  stop_local_clusters
  line=$(python3 -c 'import json, sys; j = json.loads(sys.argv[1]); j["warm"] = float(sys.argv[2]); j["cold_to_warm"] = j["first"] / j["warm"]; print(json.dumps(j))' "$line" "$warm")
  echo "run $r: ready in $ready s; $line"
  lines+=("$ready $line")
done
printf '%s\n' "${lines[@]}" | python3 -c '
import json, statistics, sys
rows = [(float(l.split(" ", 1)[0]), json.loads(l.split(" ", 1)[1])) for l in sys.stdin if l.strip()]
ready = statistics.median(r for r, _ in rows)
ratio = statistics.median(j["ratio"] for _, j in rows)
runs = ", ".join("%.2f" % j["ratio"] for _, j in rows)
warm = statistics.median(j["cold_to_warm"] for _, j in rows)
warms = ", ".join("%.2f" % j["cold_to_warm"] for _, j in rows)
readies = ", ".join("%.1f" % r for r, _ in rows)
print("median: ready in %.1f s; first all-miss %.2fx of the batch-1 baseline (runs: %s; ready: %s s); %.2fx of the warm run after it (runs: %s)" % (ready, ratio, runs, readies, warm, warms))
' | tee "$out/cold.md"
