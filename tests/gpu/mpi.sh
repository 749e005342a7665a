#!/usr/bin/env bash
# tests/gpu/mpi.sh WORKDIR - data-parallel dlt-train on the GPU (called by
# tests/gpu/run.sh where mpirun exists): one process with batch 4 against
# 2 ranks with batch 2 on the same records, --device cuda, batch norm
# synchronised; the models must agree to 2e-3 (GPU sums differ in order).
# With 2+ GPUs the ranks average through NCCL (one GPU each); on one GPU
# through the host (DLT_NCCL=0: NCCL refuses two ranks on one GPU).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=$1
rm -rf "$W" && mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
[ "$ngpu" -ge 2 ] || export DLT_NCCL=0
echo "GPUs: $ngpu; gradient averaging: $([ "${DLT_NCCL:-1}" = 0 ] && echo 'host (MPI)' || echo NCCL)"
bin/dlt-phantom -q -o "$W/ph" -n 2 --size 48,48,32
bin/dlt-sample -q --list "$W/ph/list.tsv" --patch 32 --sampler balanced --count 64 --seed 1 > "$W/s"
T=(--device cuda --filters 8,16,32 --strides 1,2,2 --steps 8 -q --optim sgd) # SGD: Adam's first steps amplify rounding
bin/dlt-train "${T[@]}" --batch 4 -o "$W/one.dltm" "$W/s"
mpirun --oversubscribe -np 2 bin/dlt-train "${T[@]}" --batch 2 -o "$W/two.dltm" "$W/s"
r=$(python3 tests/helpers/modeldiff.py "$W/one.dltm" "$W/two.dltm")
echo "1 x batch 4 vs 2 ranks x batch 2: $r"
awk -v v="$(echo "$r" | awk '{ print $4 }')" 'BEGIN { exit !(v < 2e-3) }'
