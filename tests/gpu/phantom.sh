#!/usr/bin/env bash
# tests/gpu/phantom.sh WORKDIR - a short phantom training and inference with
# --device cuda through the tools (called by tests/gpu/run.sh). The tool
# options follow DESIGN.md's pipeline; adjust here if a tool differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
W=$1
rm -rf "$W" && mkdir -p "$W"
bin/dlt-phantom -q -o "$W/ph" -n 3 --size 64,64,48
bin/dlt-sample --list "$W/ph/list.tsv" --patch 32 --sampler balanced --count 400 --seed 1 |
    bin/dlt-train --device cuda --net unet --loss ce --steps 60 --batch 4 -o "$W/model.dltm"
bin/dlt-infer --device cuda -m "$W/model.dltm" "$W/ph/img0001.nii.gz" >"$W/pred.nii.gz"
if [ -x bin/dlt-dice ]; then bin/dlt-dice "$W/pred.nii.gz" "$W/ph/label0001.nii.gz"; fi
echo "phantom: trained and inferred on the GPU"
