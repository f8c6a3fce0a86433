#!/usr/bin/env bash
# Packs the Silo and Gateway (Release, framework-dependent) together with this machine's .NET
# runtime into zstd parts of at most 60 MiB under .gpu/, for a GPU host that has no .NET SDK and
# takes files in limited chunks. scripts/gpu-check.sh unpacks them there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dotnet publish Silo -c Release -o "$work/bundle/app" --no-self-contained -nologo -v quiet
dotnet publish Gateway -c Release -o "$work/bundle/app" --no-self-contained -nologo -v quiet
dotnet publish tools/LoadGenerator -c Release -o "$work/bundle/app" --no-self-contained -nologo -v quiet
rm -f "$work"/bundle/app/runtimes/linux-x64/native/libonnxruntime_providers_tensorrt.so # TensorRT is not used
dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
mkdir -p "$work/bundle/dotnet"
cp -r "$dotnet_root/dotnet" "$dotnet_root/host" "$dotnet_root/shared" "$work/bundle/dotnet/"
mkdir -p "$work/bundle/models" && cp -r models/text-orientation "$work/bundle/models/"
if [ -f .models/resnet18/model.onnx ]; then # fetched by scripts/fetch-models.sh resnet18: benchmark it on the GPU too
  mkdir -p "$work/bundle/models/resnet18/1"
  cp samples/models/resnet18/config.json .models/resnet18/mean-image.f32 "$work/bundle/models/resnet18/"
  cp .models/resnet18/model.onnx "$work/bundle/models/resnet18/1/"
fi
rm -rf .gpu && mkdir -p .gpu
tar -C "$work/bundle" -cf - . | zstd -19 -T0 --long=27 -q | split -b 60m -d - .gpu/part-
cp "$(command -v zstd)" .gpu/zstd # some GPU images have xz but no zstd
ls -la .gpu >&2
