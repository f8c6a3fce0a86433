#!/usr/bin/env bash
# Runs every test: fetches the default model and resnet18 if needed, builds the solution, runs the xunit suite
# (unit, in-process Orleans cluster, and real Silo/Gateway processes on loopback).
# Ends with one line: "tests: N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
mkdir -p .run

# The default model, and the optional resnet18 embedding model into .models/ only (tests build their own repositories).
scripts/fetch-models.sh --no-install resnet18 || { echo "tests: 0 passed, 1 failed"; exit 1; }

echo "Building ..." >&2
if ! dotnet build Cluster.sln -c Release -nologo -v quiet -clp:ErrorsOnly >.run/test-build.log 2>&1; then
  cat .run/test-build.log >&2
  echo "tests: 0 passed, 1 failed"
  exit 1
fi

# A hung test must not hang CI: the whole run is bounded.
timeout 1500 dotnet test --solution Cluster.sln -c Release --no-build "$@" 2>&1 | tee .run/test.log
rc=${PIPESTATUS[0]}

count() { grep -E "^\s*$1:\s*[0-9]+" .run/test.log | awk -F: '{s += $2} END {print s + 0}'; }
passed=$(count succeeded)
failed=$(count failed)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # the runner failed without reporting a failed test (crash, timeout, build problem)
fi
echo "tests: $passed passed, $failed failed"
exit "$rc"
