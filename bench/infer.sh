#!/usr/bin/env bash
# bench/infer.sh - dlt-infer on a 128^3 volume beside MONAI's
# sliding_window_inference (bench/peer_monai.py) and the PyTorch peer's own
# sliding window (torch_dltk_unet.py sliding), both over the DLTK U-Net,
# 1 channel, 14 classes, 64^3 windows, overlap 0.5, batch 4 = 27 windows,
# PyTorch and MONAI from the venv of bench/peer-venv.sh (PEER_PY), in one run, and
# our fastest correct setting (one window over the whole volume), each also
# with --precision bf16 (AMX convolutions). Prints one
# TSV line per measurement and the ratios. Usage: bench/infer.sh [REPS]
# (default 2; each of ours is the best of REPS runs, the peer reports its
# median). Env: DLT_SHARED (default ../shared), THREADS (default: all cores),
# PEER_BF16=0 (no MONAI autocast run).
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${DLT_SHARED:-$ROOT/../shared}
REPS=${1:-2}
THREADS=${THREADS:-$(nproc)}
PATH="$ROOT/bin:$PATH"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# An untrained default U-Net (weights do not change the cost): --steps 0 on a
# header-only stream with the peer's channels, classes and patch.
printf 'DLTPATCHES 1\nchannels 1\nclasses 14\npatch 64,64,64\nlabel yes\nend\n' \
    | dlt-train --steps 0 -q -o "$T/m.dltm"
dlt-phantom -q -n 1 --size 128,128,128 --spacing 2.5 -o "$T/ph"
dlt-normalize --ct -1000,800 "$T/ph/img0001.nii.gz" -o "$T/v.nii"

best() { # best wall time of REPS runs of the command
    local b=
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(date +%s.%N)
        "$@"
        t1=$(date +%s.%N)
        b=$(echo "$t0 $t1 ${b:-1e9}" | awk '{ d = $2 - $1; print (d < $3 ? d : $3) }')
    done
    echo "$b"
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -n) $(nproc) cores, threads $THREADS, commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); ours: $(dlt-info --backend --patch 16 --batch 1 2>/dev/null | sed -n 's/^isa\t//p'); load $(cut -d' ' -f1-3 /proc/loadavg)"
PY=${PEER_PY:-$(bench/peer-venv.sh || true)}
[ -n "$PY" ] || PY=/usr/bin/python3
peer= monai= monai16=
sval() { tr '\t' '\n' | awk -F= '$1 == "s_per_volume" { print $2 }'; }
if "$PY" -c 'import torch' 2>/dev/null && [ -f "$SHARED/peers/torch_dltk_unet.py" ]; then
    line=$("$PY" "$SHARED/peers/torch_dltk_unet.py" sliding --volume 128,128,128 --batch 4 --threads "$THREADS")
    echo "$line"
    peer=$(echo "$line" | sval)
    if "$PY" -c 'import monai' 2>/dev/null; then
        line=$("$PY" bench/peer_monai.py --peer "$SHARED/peers/torch_dltk_unet.py" --volume 128,128,128 --batch 4 \
            --reps "$REPS" --threads "$THREADS")
        echo "$line"
        monai=$(echo "$line" | sval)
        # the same under torch.autocast(bfloat16): the fair peer for --precision bf16
        # (PEER_BF16=0 skips it: without bf16 kernels, e.g. under ONEDNN_MAX_CPU_ISA=AVX2,
        # torch emulates bf16 and takes tens of minutes)
        if [ "${PEER_BF16:-1}" != 0 ]; then
            line=$("$PY" bench/peer_monai.py --peer "$SHARED/peers/torch_dltk_unet.py" --volume 128,128,128 --batch 4 \
                --reps "$REPS" --threads "$THREADS" --amp bf16)
            echo "$line"
            monai16=$(echo "$line" | sval)
        fi
    else
        echo "# MONAI skipped: $PY cannot import monai"
    fi
else
    echo "# peer skipped: $PY without torch or $SHARED/peers missing"
fi
ours=$(best dlt-infer -q -t "$THREADS" -m "$T/m.dltm" --window 64 --overlap 0.5 --batch 4 "$T/v.nii" -o "$T/p.nii")
printf 'dlt\tsliding\tvolume=128,128,128\tpatch=64\toverlap=0.5\tbatch=4\ts_per_volume=%.3f\n' "$ours"
ours1=$(best dlt-infer -q -t "$THREADS" -m "$T/m.dltm" --window 64 --overlap 0.5 --batch 1 "$T/v.nii" -o "$T/p1.nii")
printf 'dlt\tsliding\tvolume=128,128,128\tpatch=64\toverlap=0.5\tbatch=1\ts_per_volume=%.3f\n' "$ours1"
whole=$(best dlt-infer -q -t "$THREADS" -m "$T/m.dltm" --window whole "$T/v.nii" -o "$T/w.nii")
printf 'dlt\twhole\tvolume=128,128,128\twindow=128\ts_per_volume=%.3f\n' "$whole"
# bf16 convolutions (AMX where the CPU has it; fp32 elsewhere, said once)
ours16=$(best dlt-infer -q -t "$THREADS" -m "$T/m.dltm" --precision bf16 --window 64 --overlap 0.5 --batch 4 "$T/v.nii" -o "$T/p16.nii")
printf 'dlt\tsliding\tvolume=128,128,128\tpatch=64\toverlap=0.5\tbatch=4\tprecision=bf16\ts_per_volume=%.3f\n' "$ours16"
ours16b1=$(best dlt-infer -q -t "$THREADS" -m "$T/m.dltm" --precision bf16 --window 64 --overlap 0.5 --batch 1 "$T/v.nii" -o "$T/p16b1.nii")
printf 'dlt\tsliding\tvolume=128,128,128\tpatch=64\toverlap=0.5\tbatch=1\tprecision=bf16\ts_per_volume=%.3f\n' "$ours16b1"
whole16=$(best dlt-infer -q -t "$THREADS" -m "$T/m.dltm" --precision bf16 --window whole "$T/v.nii" -o "$T/w16.nii")
printf 'dlt\twhole\tvolume=128,128,128\twindow=128\tprecision=bf16\ts_per_volume=%.3f\n' "$whole16"
# how many voxels bf16 labels differently from fp32 (same windows)
# (both are uncompressed NIfTI-1 written by dlt-infer: numpy alone reads them)
cmp16=$("$PY" -c 'import sys, numpy as np
def vox(p):
    h = open(p, "rb").read()
    dt = {2: np.uint8, 4: np.int16, 512: np.uint16}[int(np.frombuffer(h[70:72], np.int16)[0])]
    return np.frombuffer(h[int(np.frombuffer(h[108:112], np.float32)[0]):], dt)
a, b = vox(sys.argv[1]), vox(sys.argv[2])
print("%.5f (%d of %d)" % ((a != b).mean(), (a != b).sum(), a.size))' "$T/p.nii" "$T/p16.nii" 2>/dev/null || echo "?")
printf 'bf16\tvoxels labelled differently from fp32 (same windows): fraction %s\n' "$cmp16"
if [ -n "$monai" ]; then
    awk -v p="$monai" -v o="$ours" -v o1="$ours1" -v w="$whole" -v o16="$ours16" -v o16b1="$ours16b1" \
        'BEGIN { printf "ratio\tmonai/dlt same windows batch 4 %.2fx, batch 1 %.2fx\tmonai/dlt whole volume %.2fx\tbf16 same windows batch 4 %.2fx, batch 1 %.2fx\n", p / o, p / o1, p / w, p / o16, p / o16b1 }'
fi
if [ -n "$monai16" ]; then
    awk -v p="$monai16" -v o16="$ours16" -v o16b1="$ours16b1" -v w16="$whole16" \
        'BEGIN { printf "ratio\tmonai autocast bf16 / dlt bf16: same windows batch 4 %.2fx, batch 1 %.2fx\twhole volume %.2fx\n", p / o16, p / o16b1, p / w16 }'
fi
if [ -n "$peer" ]; then
    awk -v p="$peer" -v o="$ours" -v w="$whole" -v o16="$ours16" -v b1="$ours16b1" -v w16="$whole16" \
        'BEGIN { printf "ratio\tpeer/dlt same windows %.2fx\tpeer/dlt whole volume %.2fx\t", p / o, p / w
                 printf "bf16: same windows %.2fx (batch 1: %.2fx)\twhole volume %.2fx\n", p / o16, p / b1, p / w16 }'
fi
