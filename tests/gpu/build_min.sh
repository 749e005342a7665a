#!/usr/bin/env bash
# tests/gpu/build_min.sh NVCC CUDNN_INCLUDE CFLAGS... - fallback for
# tests/gpu/run.sh when `make` cannot build (e.g. libnifti headers missing on
# the device machine): compiles every library source that needs neither
# nifti nor oneDNN, plus lib/cuda/*.cu, into build/gpu-min/libdlt.a.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=$1 CUDNN_INC=$2
shift 2
mkdir -p build/gpu-min
rm -f build/gpu-min/*.o build/gpu-min/libdlt.a
SRCS=$(grep -L 'nifti\|dnnl.h' lib/*.c lib/cpu/*.c lib/cuda/*.c)
echo "left out (need nifti or oneDNN): $(grep -l 'nifti\|dnnl.h' lib/*.c lib/cpu/*.c lib/cuda/*.c | tr '\n' ' ')"
printf '%s\n' $SRCS | xargs -P "$(nproc)" -I{} sh -c 'o=build/gpu-min/$(echo {} | tr / _).o; cc "$@" -c {} -o $o' _ "$@"
ls lib/cuda/*.cu | xargs -P "$(nproc)" -I{} sh -c 'o=build/gpu-min/$(echo {} | tr / _).o; "$0" -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 -Xcompiler -fPIC -Ilib -I"$1" -DDLT_HAVE_CUDA -c {} -o $o' "$NVCC" "$CUDNN_INC"
ar rcs build/gpu-min/libdlt.a build/gpu-min/*.o
echo "built build/gpu-min/libdlt.a"
