#!/usr/bin/env bash
# bench/sample.sh - dlt-sample throughput: 64^3 patches per second from
# phantom data on one core (DLT_THREADS=1, taskset -c 0), with flips, and
# with flips + elastic deformation; beside it a numpy peer doing the same
# crop + flips (DLTK's extract_random_example_array + flip, as numpy does it).
#
#   bench/sample.sh [N_PATCHES] [RUNS]      (default 400 patches, 5 runs)
#
# Prints one line per case: median patches/s over RUNS runs, with the load
# time (a --count 0 run) subtracted, so the figure is the steady rate that a
# trainer sees. Output goes to /dev/null through a pipe (cat), as to a
# consumer. Other work on the machine lowers the figures: see the load line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
N=${1:-400}
RUNS=${2:-5}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
PIN="taskset -c 0"
command -v taskset >/dev/null || PIN=""

# phantom data: dlt-phantom when built, else a stand-in written by the test helper
if command -v dlt-phantom >/dev/null; then
    dlt-phantom -n 4 --seed 1 -o "$W/ph" >/dev/null 2>&1
    LIST="$W/ph/list.tsv"
    DATA="dlt-phantom -n 4"
else
    mkdir -p "$W/ph"
    printf 'id\timage\tlabel\n' >"$W/ph/list.tsv"
    for i in 1 2 3 4; do
        python3 tests/helpers/sample_check.py nifti "$W/ph/img$i.nii" 128,128,96
        python3 tests/helpers/sample_check.py nifti "$W/ph/lab$i.nii" 128,128,96 --label
        printf 's%d\timg%d.nii\tlab%d.nii\n' $i $i $i >>"$W/ph/list.tsv"
    done
    LIST="$W/ph/list.tsv"
    DATA="4 x 128x128x96 boxes (dlt-phantom not built)"
fi

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
secs() { # command... -> wall seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$@" | cat >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

rate() { # label, dlt-sample options...
    local label=$1
    shift
    local rs=() r t0 tn
    for _ in $(seq "$RUNS"); do
        t0=$(secs env DLT_THREADS=1 $PIN dlt-sample --list "$LIST" --patch 64 "$@" --count 0 -q)
        tn=$(secs env DLT_THREADS=1 $PIN dlt-sample --list "$LIST" --patch 64 "$@" --count "$N" -q)
        rs+=("$(echo "$N / ($tn - $t0)" | bc -l)")
    done
    r=$(printf '%s\n' "${rs[@]}" | median)
    printf '%-44s %8.1f patches/s  (runs: %s)\n' "$label" "$r" "$(printf '%.0f ' "${rs[@]}")"
}

echo "# dlt-sample benchmark $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# data: $DATA; $N patches of 64^3 per run, median of $RUNS, one core"
rate "random, no augmentation" --sampler random
rate "random, --flip x,y,z" --sampler random --flip x,y,z
rate "balanced, --flip x,y,z" --sampler balanced --flip x,y,z
rate "balanced, --flip x,y,z --rot90" --sampler balanced --flip x,y,z --rot90
rate "balanced, --flip x,y,z --elastic 3,10" --sampler balanced --flip x,y,z --elastic 3,10
rate "balanced, flips + noise + gamma + scale" --sampler balanced --flip x,y,z --noise 0.1 --gamma 0.7,1.5 --scale 0.9,1.1
rate "balanced, nnU-Net augmentation (flips, rotate, scale, blur, contrast, low-res, gamma, brightness)" --sampler balanced --flip x,y,z --rotate 30,0.2 --spatial-scale 0.7,1.4,0.2 --blur 0.5,1,0.2 --contrast 0.75,1.25,0.15 --low-res 0.5,1,0.25 --gamma 0.7,1.5 --scale 0.75,1.25
rate "balanced, rotation and scaling on every patch" --sampler balanced --rotate 30,1 --spatial-scale 0.7,1.4,1

# the peer: numpy random crop + random flips, serialised to a pipe
if /usr/bin/python3 -c 'import numpy, nibabel' 2>/dev/null; then
    cat >"$W/peer.py" <<'EOF'
import sys, time, numpy as np, nibabel as nib, os
lst, n = sys.argv[1], int(sys.argv[2])
d = os.path.dirname(lst)
rows = [l.rstrip('\n').split('\t') for l in open(lst)][1:]
vols = [(np.asarray(nib.load(os.path.join(d, r[1])).dataobj, np.float32),
         np.asarray(nib.load(os.path.join(d, r[-1])).dataobj, np.uint16)) for r in rows]
rng = np.random.default_rng(1)
out = sys.stdout.buffer
t = time.time()
for k in range(n):
    img, lab = vols[k % len(vols)]
    c = [rng.integers(0, s - 64 + 1) for s in img.shape]
    sl = tuple(slice(a, a + 64) for a in c)
    i, l = img[sl], lab[sl]
    for ax in range(3):
        if rng.random() < 0.5:
            i, l = np.flip(i, ax), np.flip(l, ax)
    out.write(np.ascontiguousarray(i).tobytes())
    out.write(np.ascontiguousarray(l).tobytes())
print('%.1f' % (n / (time.time() - t)), file=sys.stderr)
EOF
    rs=()
    for _ in $(seq "$RUNS"); do
        rs+=("$(OMP_NUM_THREADS=1 $PIN /usr/bin/python3 "$W/peer.py" "$LIST" "$N" 2>&1 >/dev/null | tail -n 1)")
    done
    r=$(printf '%s\n' "${rs[@]}" | median)
    printf '%-44s %8.1f patches/s  (runs: %s)\n' "peer: numpy crop + flips (no CRC, no header)" "$r" "$(printf '%.0f ' "${rs[@]}")"
fi
