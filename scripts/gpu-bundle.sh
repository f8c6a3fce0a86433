#!/usr/bin/env bash
# Packs what a borrowed host without the .NET SDK needs to run scripts/scale-check.sh and scripts/gpu-check.sh
# (via scripts/device-run.sh) into zstd parts under .gpu/, in two sets, because the device tool carries at most
# 64 MiB (working tree included) per call:
#   .gpu/cpu/part-*    this machine's .NET runtime, the Silo, Gateway, LoadGenerator and ModelFetch (Release,
#                      framework-dependent), ONNX Runtime's CPU library, and the default model: enough for
#                      scale-check, in one call;
#   .gpu/cuda/part-*   ONNX Runtime's CUDA provider (284 MB, about 186 MB packed) and resnet18 (model.onnx; the
#                      batched variant's model is made there by ModelFetch symbolic-batch): one call per part.
# Parts are PART_MIB (56) MiB at most; .gpu/*/SHA256SUMS lets the host check it has them all.
# resnet18 is packed when scripts/fetch-models.sh --no-install resnet18-batched has fetched it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for project in Silo Gateway tools/LoadGenerator tools/ModelFetch; do
  dotnet publish "$project" -c Release -o "$work/cpu/app" --no-self-contained -nologo -v quiet
done
native="app/runtimes/linux-x64/native"
rm -f "$work/cpu/$native/libonnxruntime_providers_tensorrt.so" # TensorRT is not used
mkdir -p "$work/cuda/$native"
mv "$work/cpu/$native/libonnxruntime_providers_cuda.so" "$work/cuda/$native/"
dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
mkdir -p "$work/cpu/dotnet"
cp -r "$dotnet_root/dotnet" "$dotnet_root/host" "$dotnet_root/shared" "$work/cpu/dotnet/"
rm -rf "$work/cpu/dotnet/shared/Microsoft.WindowsDesktop.App" # not on Linux, but never carry it
mkdir -p "$work/cpu/models" && cp -r models/text-orientation "$work/cpu/models/"
if [ -f .models/resnet18/model.onnx ]; then # fetched by scripts/fetch-models.sh: benchmark it on the GPU too
  mkdir -p "$work/cuda/models/resnet18/1"
  cp samples/models/resnet18/config.json .models/resnet18/mean-image.f32 "$work/cuda/models/resnet18/"
  cp .models/resnet18/model.onnx "$work/cuda/models/resnet18/1/"
  if [ -f .models/resnet18/config-batched.json ]; then # fetch-models.sh resnet18-batched: batching on
    mkdir -p "$work/cuda/models/resnet18-batched"
    cp .models/resnet18/config-batched.json "$work/cuda/models/resnet18-batched/config.json"
    cp .models/resnet18/mean-image.f32 "$work/cuda/models/resnet18-batched/"
  fi
fi
rm -rf .gpu && mkdir -p .gpu/cpu .gpu/cuda
for set in cpu cuda; do
  tar -C "$work/$set" -cf - . | zstd -19 -T0 --long=27 -q | split -b "${PART_MIB:-56}m" -d - ".gpu/$set/part-"
  (cd ".gpu/$set" && sha256sum part-* > SHA256SUMS)
done
cp "$(command -v zstd)" .gpu/zstd # some GPU images have xz but no zstd
du -sh .gpu/cpu .gpu/cuda >&2
ls .gpu/cpu/part-* .gpu/cuda/part-* | sed 's/^/carry: /' >&2
