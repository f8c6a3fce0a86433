#!/usr/bin/env bash
# Metrics overhead: two clusters side by side, identical but for Metrics:Enabled (silo and gateway),
# driven in alternating rounds with all-hit and all-miss workloads; prints each workload's median
# throughput and the median of the per-round ratios (off / on). Writes .run/metrics-overhead/compare.md.
# ROUNDS (7), REQUESTS per round (3000), CONCURRENCY (8).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/local-cluster.sh"
mkdir -p "$root/.run/metrics-overhead"
start_local_cluster metrics-on 9591 11591 30591 8591 || exit 1
GATEWAY_ARGS=(--Metrics:Enabled false)
start_local_cluster metrics-off 9592 11592 30592 8592 --Metrics:Enabled false || exit 1
dotnet "$root/tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll" compare \
  --gateway-a http://127.0.0.1:8591 --label-a "metrics on" --gateway-b http://127.0.0.1:8592 --label-b "metrics off" \
  --rounds "${ROUNDS:-7}" --requests "${REQUESTS:-3000}" --concurrency "${CONCURRENCY:-8}" \
  --markdown "$root/.run/metrics-overhead/compare.md"
