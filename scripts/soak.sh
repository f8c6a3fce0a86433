#!/usr/bin/env bash
# Soak run: starts a silo and a gateway on spare ports, sends REQUESTS (default 30000) mixed requests
# (cache hits, misses, 5% undecodable) from CONCURRENCY clients, and fails if any request got an
# unexpected status or the silo's RSS grew more than MAX_GROWTH_MIB (default 100) after warm-up.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/local-cluster.sh"
start_local_cluster soak 9291 11291 30291 8281 || exit 1
dotnet "$root/tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll" soak \
  --gateway http://127.0.0.1:8281 --silo-metrics http://127.0.0.1:9291/metrics \
  --requests "${REQUESTS:-30000}" --concurrency "${CONCURRENCY:-8}" --unique "${UNIQUE:-3000}" --max-growth-mib "${MAX_GROWTH_MIB:-100}"
