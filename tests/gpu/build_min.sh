#!/usr/bin/env bash
# tests/gpu/build_min.sh NVCC CUDNN_INCLUDE CFLAGS... - fallback for
# tests/gpu/run.sh when `make` cannot build (e.g. libnifti headers missing on
# the device machine): compiles every library source that needs neither
# nifti nor oneDNN (so not the cpu fast path), plus lib/backend/cuda/*.cu,
# into build/gpu-min/libdlt.a.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=$1 CUDNN_INC=$2
shift 2
mkdir -p build/gpu-min
rm -f build/gpu-min/*.o build/gpu-min/libdlt.a
ALL=$(ls lib/{core,image,data,nn,eval}/*.c lib/backend/*.c lib/backend/ref/*.c lib/backend/cuda/*.c)
SRCS=$(grep -L 'nifti' $ALL)
echo "left out (need nifti): $(grep -l 'nifti' $ALL | tr '\n' ' '); and lib/backend/cpu (oneDNN)"
printf '%s\n' $SRCS | xargs -P "$(nproc)" -I{} sh -c 'o=build/gpu-min/$(echo {} | tr / _).o; cc "$@" -c {} -o $o' _ "$@"
ls lib/backend/cuda/*.cu | xargs -P "$(nproc)" -I{} sh -c 'o=build/gpu-min/$(echo {} | tr / _).o; "$0" -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 -Xcompiler -fPIC -Ilib -I"$1" -DDLT_HAVE_CUDA -c {} -o $o' "$NVCC" "$CUDNN_INC"
ar rcs build/gpu-min/libdlt.a build/gpu-min/*.o
echo "built build/gpu-min/libdlt.a"
