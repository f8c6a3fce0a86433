# Sourced by the scripts that run on a borrowed host (gpu-check.sh, scale-check.sh): uses .gpu/part-* from
# scripts/gpu-bundle.sh when present (hosts without the .NET SDK: the runtime, the published apps and the
# models), else builds here. Sets app_dir (folder of the silo, gateway and load generator DLLs) and
# models_dir, and puts the bundle's dotnet first on PATH.
use_bundle_or_build() {
  local root=$1
  if ls "$root"/.gpu/part-* >/dev/null 2>&1; then
    local bundle=/tmp/classifier-bundle zstd_bin
    if [ ! -f "$bundle/.unpacked" ]; then # both scripts may run on one host: unpack once
      rm -rf "$bundle" && mkdir -p "$bundle"
      zstd_bin=$(command -v zstd || echo "$root/.gpu/zstd") # gpu-bundle.sh ships one: some GPU images lack it
      cat "$root"/.gpu/part-* | "$zstd_bin" -d --long=27 -q | tar -C "$bundle" -xf - || { echo "bundle extraction failed" >&2; return 1; }
      touch "$bundle/.unpacked"
    fi
    export DOTNET_ROOT="$bundle/dotnet" PATH="$bundle/dotnet:$PATH"
    app_dir="$bundle/app"; models_dir="$bundle/models"
  else
    dotnet build "$root/Cluster.sln" -c Release -nologo -v quiet -clp:ErrorsOnly || return 1
    "$root/scripts/fetch-models.sh" || return 1
    app_dir=""; models_dir="$root/models"
  fi
}

# The DLL of one of the apps: silo, gateway or load generator, from the bundle or this checkout's build.
app_dll() {
  local root=$1 name=$2
  case "$name" in
    silo) echo "${app_dir:-$root/Silo/bin/Release/net10.0}/Classifier.Silo.dll" ;;
    gateway) echo "${app_dir:-$root/Gateway/bin/Release/net10.0}/Classifier.Gateway.dll" ;;
    loadgen) echo "${app_dir:-$root/tools/LoadGenerator/bin/Release/net10.0}/Classifier.LoadGenerator.dll" ;;
  esac
}
