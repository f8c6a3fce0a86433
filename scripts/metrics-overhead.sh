#!/usr/bin/env bash
# Metrics overhead: the same workloads (all-hit, all-miss) with per-request metrics recording on and off,
# in alternating rounds (A B B A ...), reporting the median of the per-round ratios (off / on) of throughput
# and of the gateway's plus the silo's CPU per request. ROUNDS, REQUESTS per round (3000; hits 5x),
# CONCURRENCY (8). Three methods:
#
# (default) One cluster, switched live: Metrics:Enabled is rewritten between rounds in the settings files
#   the silo and gateway watch (appsettings.metrics-overhead.json beside each binary; they run with
#   --environment metrics-overhead), and each round starts once both processes follow. The same processes
#   serve both arms, so differences between processes cannot pose as the effect. ROUNDS 40.
#   AA=1 leaves recording on in both arms, to measure the method's own scatter; WORKLOADS=all-hit runs one
#   workload only. Writes .run/metrics-overhead/switch.md and switch.json.
# SIDE_BY_SIDE=1: two clusters side by side, identical but for Metrics:Enabled. ROUNDS 7. In an A/A run the
#   cluster started second ran about 6 % faster, a bias as large as the effect sought. Writes compare.md.
# SEQUENTIAL=1: one cluster at a time, started afresh for each measurement, in the order on, off, off, on, ...
#   (ROUNDS pairs, 5). Fresh processes landed anywhere within about 25 % here. Writes sequential.md.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/local-cluster.sh"
mkdir -p "$root/.run/metrics-overhead"
if [ "${SEQUENTIAL:-0}" = 1 ]; then
  loadgen="$root/tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll"
  off_value=false; [ "${AA:-0}" = 1 ] && off_value=true
  results="$root/.run/metrics-overhead/sequential.jsonl"
  : > "$results"
  for round in $(seq 1 "${ROUNDS:-5}"); do
    order="on off"; [ $((round % 2)) = 0 ] && order="off on"
    for config in $order; do
      value=true; [ "$config" = off ] && value=$off_value
      GATEWAY_ARGS=(--Metrics:Enabled "$value")
      start_local_cluster "metrics-$config" 9591 11591 30591 8591 --Metrics:Enabled "$value" || exit 1
      line=$(dotnet "$loadgen" measure --gateway http://127.0.0.1:8591 --requests "${REQUESTS:-3000}" --concurrency "${CONCURRENCY:-8}" 2>/dev/null) || exit 1
      echo "{\"round\": $round, \"config\": \"$config\", \"measured\": $line}" | tee -a "$results"
      stop_local_clusters
    done
  done
  python3 - "$results" "${AA:-0}" <<'PY' | tee "$root/.run/metrics-overhead/sequential.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
label = "second 'on' / first 'on' (A/A)" if sys.argv[2] == "1" else "off / on"
print(f"| workload | on img/s (median) | off img/s (median) | {label}, median of rounds | range of round ratios |")
print("|---|---|---|---|---|")
for workload in ("all-hit", "all-miss"):
    on = {r["round"]: r["measured"][workload] for r in rows if r["config"] == "on"}
    off = {r["round"]: r["measured"][workload] for r in rows if r["config"] == "off"}
    ratios = [off[k] / on[k] for k in on if k in off]
    print(f"| {workload} | {statistics.median(on.values()):.0f} | {statistics.median(off.values()):.0f} | {statistics.median(ratios):.3f} | {min(ratios):.3f} to {max(ratios):.3f} |")
PY
  exit 0
fi
loadgen="$root/tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll"
if [ "${SIDE_BY_SIDE:-0}" = 1 ]; then
  start_local_cluster metrics-on 9591 11591 30591 8591 || exit 1
  GATEWAY_ARGS=(--Metrics:Enabled false)
  start_local_cluster metrics-off 9592 11592 30592 8592 --Metrics:Enabled false || exit 1
  dotnet "$loadgen" compare \
    --gateway-a http://127.0.0.1:8591 --label-a "metrics on" --gateway-b http://127.0.0.1:8592 --label-b "metrics off" \
    --rounds "${ROUNDS:-7}" --requests "${REQUESTS:-3000}" --concurrency "${CONCURRENCY:-8}" \
    --markdown "$root/.run/metrics-overhead/compare.md"
  exit
fi
environment=metrics-overhead
settings=("$root/Silo/bin/Release/net10.0/appsettings.$environment.json" "$root/Gateway/bin/Release/net10.0/appsettings.$environment.json")
for file in "${settings[@]}"; do
  mkdir -p "$(dirname "$file")" && echo '{"Metrics": {"Enabled": true}}' > "$file"
done
GATEWAY_ARGS=(--environment "$environment")
start_local_cluster metrics-switch 9591 11591 30591 8591 --environment "$environment" || exit 1
aa=false; [ "${AA:-0}" = 1 ] && aa=true
dotnet "$loadgen" switch --gateway http://127.0.0.1:8591 \
  --metrics http://127.0.0.1:8591/metrics,http://127.0.0.1:9591/metrics --settings "${settings[0]},${settings[1]}" \
  --rounds "${ROUNDS:-40}" --requests "${REQUESTS:-3000}" --concurrency "${CONCURRENCY:-8}" --aa "$aa" --workloads "${WORKLOADS:-all-hit,all-miss}" \
  --markdown "$root/.run/metrics-overhead/switch.md" --json "$root/.run/metrics-overhead/switch.json"
status=$?
stop_local_clusters
rm -f "${settings[@]}"
exit $status
