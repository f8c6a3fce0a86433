# Sourced by scripts that need a throw-away cluster: start_local_cluster NAME SILO_HTTP SILO_PORT SILO_GATEWAY GATEWAY_HTTP [silo args...]
# Builds (Release), fetches the default model, starts one silo and the gateway in the background,
# waits for readiness, and stops both when the calling script exits. Logs go to .run/NAME/.
# May be called more than once (several clusters side by side); GATEWAY_ARGS (an array) goes to the gateway;
# CLUSTER_SILO_DLL / CLUSTER_GATEWAY_DLL start other builds than bin/Release (e.g. a ReadyToRun publish);
# SILO_PIN / GATEWAY_PIN (e.g. "taskset -c 0-1") prefix the two processes' commands; CLUSTER_MODELS is the
# silo's model repository (models/ by default).
start_local_cluster() {
  local name=$1 silo_http=$2 silo_port=$3 silo_gateway=$4 gateway_http=$5
  shift 5
  local root logs
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  logs="$root/.run/$name"
  mkdir -p "$logs"
  if [ "${LOCAL_CLUSTER_BUILT:-}" != 1 ]; then # set by scripts that built once and start clusters again and again
    "$root/scripts/fetch-models.sh" || return 1
    dotnet build "$root/Cluster.sln" -c Release -nologo -v quiet -clp:ErrorsOnly >"$logs/build.log" 2>&1 || { cat "$logs/build.log" >&2; return 1; }
  fi
  cluster_pids=(${cluster_pids[@]+"${cluster_pids[@]}"})
  local launched
  launched=$(date +%s.%N)
  trap 'for p in "${cluster_pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
  ${SILO_PIN:-} dotnet "${CLUSTER_SILO_DLL:-$root/Silo/bin/Release/net10.0/Classifier.Silo.dll}" --urls "http://127.0.0.1:$silo_http" --Models:Repository "${CLUSTER_MODELS:-$root/models}" \
    --Cluster:SiloPort "$silo_port" --Cluster:GatewayPort "$silo_gateway" --Cluster:PrimarySiloPort "$silo_port" \
    --Cluster:ClusterId "$name" --Cluster:ServiceId "$name" "$@" >"$logs/silo.log" 2>&1 &
  cluster_pids+=($!)
  ${GATEWAY_PIN:-} dotnet "${CLUSTER_GATEWAY_DLL:-$root/Gateway/bin/Release/net10.0/Classifier.Gateway.dll}" --urls "http://127.0.0.1:$gateway_http" \
    --Cluster:GatewayPorts:0 "$silo_gateway" --Cluster:ClusterId "$name" --Cluster:ServiceId "$name" ${GATEWAY_ARGS[@]+"${GATEWAY_ARGS[@]}"} >"$logs/gateway.log" 2>&1 &
  cluster_pids+=($!)
  for _ in $(seq 1 600); do
    if curl -fs "http://127.0.0.1:$gateway_http/readyz" >/dev/null 2>&1; then
      # Launch to ready, for the scripts that print it (cluster_ready_seconds).
      cluster_ready_seconds=$(awk -v a="$launched" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      return 0
    fi
    sleep 0.1
  done
  echo "error: the $name cluster did not become ready; see $logs/" >&2
  return 1
}

# Stops every cluster this script started (for scripts that start clusters one after another).
stop_local_clusters() {
  for p in ${cluster_pids[@]+"${cluster_pids[@]}"}; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  cluster_pids=()
}
