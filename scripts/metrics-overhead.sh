#!/usr/bin/env bash
# Metrics overhead: two clusters side by side, identical but for Metrics:Enabled (silo and gateway),
# driven in alternating rounds with all-hit and all-miss workloads; prints each workload's median
# throughput and the median of the per-round ratios (off / on). Writes .run/metrics-overhead/compare.md.
# ROUNDS (7), REQUESTS per round (3000), CONCURRENCY (8).
#
# SEQUENTIAL=1: one cluster at a time instead, started afresh for each measurement, in the order
# on, off, off, on, ... (ROUNDS pairs): side by side, the cluster started second ran about 6 % faster
# in an A/A run, a bias as large as the effect sought. AA=1 makes both configurations "on", to
# measure the method's own scatter. Writes .run/metrics-overhead/sequential.md.
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
start_local_cluster metrics-on 9591 11591 30591 8591 || exit 1
GATEWAY_ARGS=(--Metrics:Enabled false)
start_local_cluster metrics-off 9592 11592 30592 8592 --Metrics:Enabled false || exit 1
dotnet "$root/tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll" compare \
  --gateway-a http://127.0.0.1:8591 --label-a "metrics on" --gateway-b http://127.0.0.1:8592 --label-b "metrics off" \
  --rounds "${ROUNDS:-7}" --requests "${REQUESTS:-3000}" --concurrency "${CONCURRENCY:-8}" \
  --markdown "$root/.run/metrics-overhead/compare.md"
