#!/bin/bash
# submit.sh - the BTCV experiment on a Slurm cluster: preprocessing here
# (make prep, on the login node or wherever this runs), then the chain
#   train (array, one task per configuration)
#     -> infer (array; afterok: starts when every training task succeeded)
#       -> eval (afterok: table and figures)
# Usage: pipelines/slurm/submit.sh [MAKE VARIABLES...] [-- SBATCH OPTIONS...]
#   pipelines/slurm/submit.sh BTCV_DIR=/data/RawData/Training STEPS=20000 DEVICE=cuda \
#       -- --partition=gpu --gres=gpu:1
# The make variables go to every job (MAKEVARS); the sbatch options to
# every sbatch call. DRY_RUN=1 prints the commands instead of running them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
vars=() opts=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
[ $# -gt 0 ] && { shift; opts=("$@"); }
run() { if [ "${DRY_RUN:-0}" = 1 ]; then echo "$*" >&2; echo 1; else "$@"; fi; }

make -s -C "$root/pipelines/btcv" "${vars[@]}" prep
n=$(make -s -C "$root/pipelines/btcv" "${vars[@]}" configs | wc -l)
export DLT_ROOT=$root MAKEVARS="${vars[*]}"
train=$(run sbatch --parsable --array=0-$((n - 1)) "${opts[@]}" "$here/train.sbatch")
infer=$(run sbatch --parsable --array=0-$((n - 1)) --dependency=afterok:${train%%;*} "${opts[@]}" "$here/infer.sbatch")
eval=$(run sbatch --parsable --dependency=afterok:${infer%%;*} "${opts[@]}" "$here/eval.sbatch")
echo "submitted: train $train, infer $infer, eval $eval (squeue --me)"
