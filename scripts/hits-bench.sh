#!/usr/bin/env bash
# Cache hits: the cluster (one silo, one gateway) against the original's one-process server
# (tools/OneProcessServer: Kestrel, an LRU of 128, ONNX Runtime, prometheus-net) on the same cores, with
# wrk posting one image again and again. Rounds alternate the two servers; prints each round's
# throughput (wrk -t2 -c16) and the median ratio, then p50/p99 at one connection. Installs wrk (Debian)
# when missing. ROUNDS (5), SECONDS_PER_ROUND (5), IMAGE (samples/upright.png). Writes .run/hits/hits.md.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/local-cluster.sh"
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; } || { echo "error: wrk is needed (apt-get install wrk)" >&2; exit 1; }
rounds=${ROUNDS:-5}
seconds=${SECONDS_PER_ROUND:-5}
image=${IMAGE:-$root/samples/upright.png}
out="$root/.run/hits"
mkdir -p "$out"
GATEWAY_ARGS=(--Gateway:GrpcPort 8692)
start_local_cluster hits 9691 11691 30691 8691 || exit 1
dotnet "$root/tools/OneProcessServer/bin/Release/net10.0/Classifier.OneProcessServer.dll" --urls http://127.0.0.1:8690 --models "$root/models" >"$out/one-process.log" 2>&1 &
cluster_pids+=($!)
for _ in $(seq 60); do curl -fs http://127.0.0.1:8690/healthz >/dev/null 2>&1 && break; sleep 0.5; done

cat >"$out/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local f = io.open("$image", "rb")
wrk.body = f:read("*all")
f:close()
LUA
one=http://127.0.0.1:8690/predict
cluster=http://127.0.0.1:8691/predict
rps() { wrk -t2 -c16 -d"${seconds}s" -s "$out/post.lua" "$1" | awk '/^Requests\/sec/ { printf "%.0f\n", $2 }'; }
# p50 and p99 at one connection, in microseconds.
latency() {
  wrk -t1 -c1 -d"${seconds}s" --latency -s "$out/post.lua" "$1" | awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; return v * 1000000 }
    $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) } END { printf "%.0f %.0f\n", p50, p99 }'
}
# Warm-up: both servers until their code is optimised (tiered compilation), the image in both caches.
for url in $one $cluster; do rps "$url" >/dev/null; rps "$url" >/dev/null; done

{
  echo "# Cache hits: cluster against the one-process server, $(date -u +%F), $(nproc) cores"
  echo
  echo "wrk -t2 -c16, ${seconds} s per round, $(stat -c %s "$image") B image ($(basename "$image")); rounds alternate."
  echo
  echo "| round | one-process hits/s | cluster hits/s | ratio |"
  echo "|---|---|---|---|"
} >"$out/hits.md"
ratios=()
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then a=$(rps "$one"); b=$(rps "$cluster"); else b=$(rps "$cluster"); a=$(rps "$one"); fi
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')
  ratios+=("$ratio")
  echo "| $r | $a | $b | $ratio |" >>"$out/hits.md"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
read -r one50 one99 < <(latency "$one")
read -r cl50 cl99 < <(latency "$cluster")
{
  echo
  echo "Median ratio (cluster / one-process): **$median**"
  echo
  echo "| one connection | p50 µs | p99 µs |"
  echo "|---|---|---|"
  echo "| one-process | $one50 | $one99 |"
  echo "| cluster | $cl50 | $cl99 |"
} >>"$out/hits.md"
cat "$out/hits.md"
