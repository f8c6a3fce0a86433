#!/usr/bin/env bash
# Soak run: starts a silo and a gateway on spare ports, sends REQUESTS (default 30000) mixed requests
# (cache hits, misses, 5% undecodable) from CONCURRENCY clients, and fails if any request got an
# unexpected status or the silo's RSS grew more than MAX_GROWTH_MIB (default 100) after warm-up.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
logs="$root/.run/soak"
mkdir -p "$logs"
scripts/fetch-models.sh || exit 1
dotnet build Cluster.sln -c Release -nologo -v quiet -clp:ErrorsOnly || exit 1

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
dotnet Silo/bin/Release/net10.0/Classifier.Silo.dll --urls http://127.0.0.1:9291 --Models:Repository "$root/models" \
  --Cluster:SiloPort 11291 --Cluster:GatewayPort 30291 --Cluster:PrimarySiloPort 11291 --Cluster:ClusterId soak --Cluster:ServiceId soak > "$logs/silo.log" 2>&1 &
pids+=($!)
dotnet Gateway/bin/Release/net10.0/Classifier.Gateway.dll --urls http://127.0.0.1:8281 --Cluster:GatewayPorts:0 30291 \
  --Cluster:ClusterId soak --Cluster:ServiceId soak > "$logs/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do curl -fs http://127.0.0.1:8281/readyz >/dev/null 2>&1 && break; sleep 0.5; done

dotnet tools/LoadGenerator/bin/Release/net10.0/Classifier.LoadGenerator.dll soak \
  --gateway http://127.0.0.1:8281 --silo-metrics http://127.0.0.1:9291/metrics \
  --requests "${REQUESTS:-30000}" --concurrency "${CONCURRENCY:-8}" --unique "${UNIQUE:-3000}" --max-growth-mib "${MAX_GROWTH_MIB:-100}"
