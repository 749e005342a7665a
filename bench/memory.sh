#!/usr/bin/env bash
# bench/memory.sh - peak memory (maximum resident set size, /usr/bin/time -v)
# of one training step of the default U-Net (batch 2 of 64^3 patches, 14
# classes, Adam, CE) and of one inference forward pass of a 64^3 patch,
# ours beside the PyTorch peer, with the ratio.
#
#   bench/memory.sh [--device cpu|cpu-ref|cuda] [--patch 64] [--no-keep-all]
#
# Rows: ours (memory plans; two passes as the peer's warm-up + step, and
# for inference also a single pass, which at a new shape allocates each
# activation at its first write and frees it after its last read), ours
# with DLT_NET_KEEP_ALL=1 (a tensor for every activation and gradient: the
# executor before memory planning; skipped with --no-keep-all), the peer (`torch_dltk_unet.py train --batch 2 --steps 1
# --warmup 1`, `infer --batch 1 --steps 1 --warmup 1`; torch alone takes
# ~230 MiB of that, see the `torch import` row). plan_MiB is what the
# executor's plans hold (dlt_net_plan_bytes). On the reference backend
# (cpu-ref) a training step at 64^3 takes minutes. A GPU run measures host
# memory only.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cpu PATCH=64 KEEP=1
while [ $# -gt 0 ]; do
    case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --patch) PATCH=$2; shift 2 ;;
    --no-keep-all) KEEP=0; shift ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "memory.sh: error: unknown option $1" >&2; exit 2 ;;
    esac
done
PEER=${DLT_SHARED:-$PWD/../shared}/peers/torch_dltk_unet.py
PY=/usr/bin/python3
make -s all >/dev/null
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# against a copy of libdlt.so (which carries its own dependencies), so that a
# rebuild during the run changes nothing
cp build/libdlt.so "$W/"
cc -O2 -std=c11 -D_GNU_SOURCE -Ilib bench/memory.c -o "$W/memory" -L"$W" -l:libdlt.so -Wl,-rpath,"$W" -fopenmp -lm

# run NAME CMD...: the command's stdout in $W/NAME.out, its peak RSS (KiB) echoed
run() {
    local name=$1
    shift
    /usr/bin/time -v "$@" >"$W/$name.out" 2>"$W/$name.err" || { cat "$W/$name.err" >&2; return 1; }
    awk -F': ' '/Maximum resident set size/ {print $2}' "$W/$name.err"
}
field() { tr '\t' '\n' <"$W/$1.out" | sed -n "s/^$2=//p" | head -1; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(uname -n)," \
    "$(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)"
printf 'mode\twho\tpeak_rss_MiB\tplan_MiB\ts_per_step\n'
peer_ok=1
"$PY" -c 'import torch' 2>/dev/null || peer_ok=0
[ -f "$PEER" ] || peer_ok=0
if [ $peer_ok = 1 ]; then
    base=$(run imp "$PY" -c 'import torch, torch.nn.functional')
    printf 'any\ttorch import\t%s\t-\t-\n' "$(mib "$base")"
fi
for mode in train infer; do
    batch=$([ $mode = train ] && echo 2 || echo 1)
    # two passes, as the peer's --warmup 1 --steps 1
    ours=$(run ours "$W/memory" $mode --device "$DEVICE" --batch $batch --patch "$PATCH" --steps 2)
    dev=$(cut -f1 "$W/ours.out")
    printf '%s\tdlt %s\t%s\t%s\t%s\n' $mode "$dev" "$(mib "$ours")" "$(field ours plan_mib)" "$(field ours s)"
    if [ $mode = infer ]; then # one pass: the first at a shape runs node by node on its own tensors
        one=$(run one "$W/memory" $mode --device "$DEVICE" --batch $batch --patch "$PATCH" --steps 1)
        printf '%s\tdlt %s one pass\t%s\t%s\t%s\n' $mode "$dev" "$(mib "$one")" "$(field one plan_mib)" "$(field one s)"
    fi
    if [ $KEEP = 1 ]; then
        keep=$(DLT_NET_KEEP_ALL=1 run keep "$W/memory" $mode --device "$DEVICE" --batch $batch --patch "$PATCH" --steps 2)
        printf '%s\tdlt %s keep-all\t%s\t%s\t%s\n' $mode "$dev" "$(mib "$keep")" "$(field keep plan_mib)" "$(field keep s)"
    fi
    if [ $peer_ok = 1 ]; then
        pdev=$([ "$DEVICE" = cuda ] && echo cuda || echo cpu)
        peer=$(run peer "$PY" "$PEER" $mode --batch $batch --patch "$PATCH" --steps 1 --warmup 1 --device $pdev)
        ps=$(field peer s_per_step)
        printf '%s\ttorch %s\t%s\t-\t%s\n' $mode $pdev "$(mib "$peer")" "${ps:-$(field peer s_per_batch)}"
        awk -v a="$ours" -v b="$peer" -v m=$mode 'BEGIN {printf "%s\tratio dlt/torch\t%.2f\n", m, a / b}'
    else
        printf '%s\ttorch\tskipped (no torch or no peer script)\n' $mode
    fi
done
