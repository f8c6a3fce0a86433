# Sourced by the scripts that run on a borrowed host (gpu-check.sh, scale-check.sh): uses .gpu/ from
# scripts/gpu-bundle.sh when present (hosts without the .NET SDK: the runtime, the published apps and the
# models; .gpu/cuda adds ONNX Runtime's CUDA provider and resnet18), else builds here. Sets app_dir (the
# folder of the silo, gateway and load generator DLLs) and models_dir, and puts the bundle's dotnet first on PATH.
# Where a .NET SDK is installed it builds instead, so that a bundle left from an earlier session is never run in
# place of the code checked out (USE_BUNDLE=1 runs the bundle anyway).
use_bundle_or_build() {
  local root=$1
  if [ -f "$root/.gpu/cpu/SHA256SUMS" ] && { [ "${USE_BUNDLE:-}" = 1 ] || ! dotnet --list-sdks 2>/dev/null | grep -q .; }; then
    local bundle=${BUNDLE_DIR:-/tmp/classifier-bundle} set
    local zstd_bin
    zstd_bin=$(command -v zstd || echo "$root/.gpu/zstd") # gpu-bundle.sh ships one: some GPU images lack it
    for set in cpu cuda; do
      [ -f "$root/.gpu/$set/SHA256SUMS" ] || continue
      # Both scripts may run on one host: unpack each set once (the same parts, by their checksums).
      cmp -s "$root/.gpu/$set/SHA256SUMS" "$bundle/.unpacked-$set" && continue
      # Parts come one device call at a time: say which are missing rather than fail inside zstd.
      (cd "$root/.gpu/$set" && sha256sum -c --quiet SHA256SUMS) || { echo "bundle: .gpu/$set is incomplete or damaged (see above): carry every part" >&2; return 1; }
      [ "$set" = cpu ] && rm -rf "$bundle" # a different bundle: start clean
      mkdir -p "$bundle"
      cat "$root"/.gpu/"$set"/part-* | "$zstd_bin" -d --long=27 -q | tar -C "$bundle" -xf - || { echo "bundle: extracting .gpu/$set failed" >&2; return 1; }
      cp "$root/.gpu/$set/SHA256SUMS" "$bundle/.unpacked-$set"
    done
    export DOTNET_ROOT="$bundle/dotnet" PATH="$bundle/dotnet:$PATH"
    app_dir="$bundle/app"; models_dir="$bundle/models"
    # resnet18-batched's model: resnet18's with a symbolic batch dimension, made here rather than carried.
    if [ -f "$models_dir/resnet18-batched/config.json" ] && [ ! -f "$models_dir/resnet18-batched/1/model.onnx" ]; then
      mkdir -p "$models_dir/resnet18-batched/1"
      dotnet "$app_dir/ModelFetch.dll" symbolic-batch "$models_dir/resnet18/1/model.onnx" "$models_dir/resnet18-batched/1/model.onnx" || return 1
    fi
  else
    dotnet build "$root/Cluster.sln" -c Release -nologo -v quiet -clp:ErrorsOnly || return 1
    "$root/scripts/fetch-models.sh" || return 1
    app_dir=""; models_dir="$root/models"
  fi
}

# The DLL of one of the apps: silo, gateway or loadgen, from the bundle or this checkout's build.
app_dll() {
  local root=$1 name=$2
  case "$name" in
    silo) echo "${app_dir:-$root/Silo/bin/Release/net10.0}/Classifier.Silo.dll" ;;
    gateway) echo "${app_dir:-$root/Gateway/bin/Release/net10.0}/Classifier.Gateway.dll" ;;
    loadgen) echo "${app_dir:-$root/tools/LoadGenerator/bin/Release/net10.0}/Classifier.LoadGenerator.dll" ;;
  esac
}
