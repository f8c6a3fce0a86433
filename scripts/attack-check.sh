#!/usr/bin/env bash
# Runs the attacks of the security issue against a real silo and gateway held to the manifests' memory limits
# (cgroup limits of 1 GiB and 512 MiB when run as root; DOTNET_GCHeapHardLimit otherwise), and prints what each
# cost: its answer, time, both processes' peak memory and how busy the silo stays afterwards.
#   BUSY=1   keep one core busy with another process meanwhile, as on a loaded machine
# The table is also written to .run/security/attacks.md.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh --no-install resnet18 >/dev/null || exit 1
dotnet build Cluster.sln -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null || { echo "build failed" >&2; exit 1; }
busy=""
if [ "${BUSY:-0}" = 1 ]; then
  timeout 900 sh -c 'while :; do :; done' &
  busy=$!
fi
timeout 1200 dotnet test --project tests/Cluster.Tests -c Release --no-build -- \
  --filter-class Classifier.Tests.Reliability.ResourceExhaustionTests \
  --filter-class Classifier.Tests.Reliability.ForgedCallTests | grep -E "^(failed|passed)|total:|succeeded:|failed:"
rc=${PIPESTATUS[0]}
[ -n "$busy" ] && kill "$busy" 2>/dev/null
echo
cat .run/security/attacks.md
exit "$rc"
