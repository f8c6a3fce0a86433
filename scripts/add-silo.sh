#!/usr/bin/env bash
# Starts one more silo that joins the local cluster started by ./run.sh (run it in another terminal).
# Usage: scripts/add-silo.sh [N]   N = 2, 3, ... picks the ports: silo 11110+N, gateway 29999+N, metrics 9090+N.
# New shards (images whose grains are not active yet) are placed on it too; Ctrl+C stops it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-2}"
if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 2 ] || [ "$n" -gt 50 ]; then
  echo "usage: $0 [N]  (N between 2 and 50; silo 1 is the one ./run.sh starts)" >&2
  exit 2
fi
dll="$root/Silo/bin/Release/net10.0/Classifier.Silo.dll"
if [ ! -f "$dll" ]; then
  echo "error: $dll is missing; start the cluster with ./run.sh first (it builds the silo)." >&2
  exit 1
fi
silo_port=$((11110 + n)); gateway_port=$((29999 + n)); http_port=$((9090 + n))
echo "Silo $n: metrics http://127.0.0.1:$http_port/metrics, silo port $silo_port, gateway port $gateway_port" >&2
exec dotnet "$dll" --urls "http://127.0.0.1:$http_port" \
  --Models:Repository "${MODELS:-$root/models}" --Models:Device "${DEVICE:-auto}" \
  --Cluster:SiloPort "$silo_port" --Cluster:GatewayPort "$gateway_port" --Cluster:PrimarySiloPort 11111
