#!/usr/bin/env bash
# The prepared commands for a borrowed GPU host (issue 18), one per device call, each well inside a call's
# 10-minute limit so that a failed one can run again within the 15 device minutes a task is lent:
#   scripts/device-run.sh scale   scale-check.sh: 1, 2, 4 and 6 silos pinned to cores of their own (about 3 min)
#   scripts/device-run.sh cold    cold-start.sh three ways: on 2 shared cores, each process on 2 of its own, unpinned
#                                 (issue 17; RUNS=3 each, about 5 min; needs only .gpu/cpu, as scale does)
#   scripts/device-run.sh gpu     gpu-check.sh: CUDA then CPU; text-orientation (batching off, padded, unpadded),
#                                 resnet18 (batch 1) and resnet18-batched (6 benchmarks of at most 60 s: about 6 min)
# Before: scripts/fetch-models.sh --no-install resnet18-batched && scripts/gpu-bundle.sh (here, with the SDK:
# about 5 minutes). The device tool carries 64 MiB a call and keeps what earlier calls left while the machine
# stays warm (it is given back 30 s after a call: send the next at once), so, in one session:
#   1. carry [".gpu/cpu", ".gpu/zstd"], command "bash scripts/device-run.sh scale", timeout_s 300;
#   2. carry [".gpu/cuda/part-00"], command "ls -la .gpu/cuda", and the same for part-01 .. part-04 (one call each);
#   3. carry [".gpu/cuda/SHA256SUMS"], command "bash scripts/device-run.sh gpu", timeout_s 560.
# The host checks every part against SHA256SUMS before unpacking and says which is missing.
# Device time: the start (1-2 min), scale (about 3 min), five carry calls (under a minute each) and gpu (about
# 6 min) come to about 13 of the 15 minutes lent; with less left, run only one of the two checks.
# cold needs only step 1's carry: start, scale and cold (timeout_s 480) come to about 10 minutes, with no room
# for gpu after them. Which pair to run is the session's choice by which open issue waits on the host.
# Each check runs under `timeout LIMIT`, so that what it measured is packed even when it runs long:
# $OUT/<what>.md (the tables) and $OUT/<what>-results.tar.gz (every table, JSON and log), since the device
# tool brings back at most 8 files.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
what=${1:-}
dest=${OUT:-$root/.run/device}
mkdir -p "$dest"
work=/tmp/device-run-$what
rm -rf "$work" && mkdir -p "$work"
{ nproc; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1; uname -r; } > "$work/host.txt"
case "$what" in
  scale)
    limit=${LIMIT:-240}
    OUT="$work" timeout "$limit" "$root/scripts/scale-check.sh" > "$work/$what.out" 2>&1
    rc=$?
    cp "$work/scale.md" "$dest/scale.md" 2>/dev/null ;;
  gpu)
    limit=${LIMIT:-480}
    OUT="$work" DEVICES="${DEVICES:-cuda cpu}" BENCH_REQUESTS="${BENCH_REQUESTS:-1500}" RESNET_REQUESTS="${RESNET_REQUESTS:-800}" \
      BENCH_TIMEOUT="${BENCH_TIMEOUT:-60}" timeout "$limit" "$root/scripts/gpu-check.sh" > "$work/$what.out" 2>&1
    rc=$?
    cat "$work/gpu-check.md" "$work"/bench-*.md > "$dest/gpu.md" 2>/dev/null ;;
  cold)
    # Cold start (issue 17): is the first all-miss run's shortfall on two shared cores the cores' doing? The same
    # RUNS=3 of cold-start.sh three ways, each under a third of the limit: everything on 2 shared cores (this
    # project's CI machine), each process on 2 cores of its own, and unpinned on every core.
    limit=${LIMIT:-420}
    rc=0
    for how in shared pinned unpinned; do
      case $how in
        shared) title="shared: silo, gateway and load generator on cores 0-1"; prefix=(taskset -c 0-1) ;;
        pinned) title="pinned: each on 2 cores of its own"; prefix=(env PIN=2) ;;
        unpinned) title="unpinned: all $(nproc) cores"; prefix=(env) ;;
      esac
      echo "## $title" >> "$work/cold.md"
      RUNS=${RUNS:-3} timeout "$((limit / 3))" "${prefix[@]}" "$root/scripts/cold-start.sh" > "$work/cold-$how.out" 2>&1 || rc=$?
      tail -n 4 "$work/cold-$how.out" >> "$work/cold.md"
      cp "$root/.run/cold/load.log" "$work/load-$how.log" 2>/dev/null
    done
    cp "$work/cold.md" "$dest/cold.md"
    cp "$work/cold.md" "$work/$what.out" ;;
  *)
    echo "usage: $0 scale|gpu|cold" >&2
    exit 2 ;;
esac
tar -C "$work" -czf "$dest/$what-results.tar.gz" .
tail -n 40 "$work/$what.out"
echo "device-run $what: rc $rc (124: stopped at its limit, $limit s); results in $dest/$what-results.tar.gz"
exit $rc
