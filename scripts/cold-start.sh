#!/usr/bin/env bash
# Cold start, measured from fresh processes each time: RUNS (3) times, starts a silo and a gateway,
# times them from launch to the gateway's /readyz, then (load generator) measures the in-process
# batch-1 baseline and at once the cluster's first all-miss run of REQUESTS (3000) images. Prints
# one line per run and the medians; writes .run/cold/cold.md. Extra arguments go to the silo; GATEWAY_EXTRA
# (a string) to the gateway; ENV_EXTRA (e.g. "DOTNET_TieredPGO=0") to both processes.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/local-cluster.sh"
runs=${RUNS:-3}
out="$root/.run/cold"
mkdir -p "$out"
"$root/scripts/fetch-models.sh" >/dev/null || exit 1
dotnet build "$root/Cluster.sln" -c Release -nologo -v quiet -clp:ErrorsOnly >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
export LOCAL_CLUSTER_BUILT=1
for e in ${ENV_EXTRA:-}; do export "${e?}"; done
read -r -a GATEWAY_ARGS <<<"${GATEWAY_EXTRA:-}"
lines=()
for r in $(seq "$runs"); do
  start_local_cluster cold 9891 11891 30891 8891 "$@" || exit 1
  ready=$cluster_ready_seconds
  # The load generator (which also runs the baseline) with the runtime's defaults, whatever ENV_EXTRA sets.
  unset_extra=()
  for e in ${ENV_EXTRA:-}; do unset_extra+=(-u "${e%%=*}"); done
  line=$(env ${unset_extra[@]+"${unset_extra[@]}"} dotnet "$root/tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll" cold --gateway http://127.0.0.1:8891 \
    --cpu-from http://127.0.0.1:8891/metrics,http://127.0.0.1:9891/metrics \
    --models "$root/models" --requests "${REQUESTS:-3000}" --concurrency "${CONCURRENCY:-8}" 2>>"$out/load.log")
  stop_local_clusters
  echo "run $r: ready in $ready s; $line"
  lines+=("$ready $line")
done
printf '%s\n' "${lines[@]}" | python3 -c '
import json, statistics, sys
rows = [(float(l.split(" ", 1)[0]), json.loads(l.split(" ", 1)[1])) for l in sys.stdin if l.strip()]
ready = statistics.median(r for r, _ in rows)
ratio = statistics.median(j["ratio"] for _, j in rows)
runs = ", ".join("%.2f" % j["ratio"] for _, j in rows)
readies = ", ".join("%.1f" % r for r, _ in rows)
print("median: ready in %.1f s; first all-miss %.2fx of the batch-1 baseline (runs: %s; ready: %s s)" % (ready, ratio, runs, readies))
' | tee "$out/cold.md"
