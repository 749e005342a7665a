#!/usr/bin/env bash
# bench/engine.sh - the engine beside the PyTorch peer, in one run on this
# machine: (a) a training step of DLTK's default U-Net (filters 16,32,64,128,
# strides 1,2,2,2, 1 channel, 14 classes, CE, Adam) on a batch of two 64^3
# patches, (b) a forward pass of one 64^3 patch. Ours (build/bench/bench_engine
# on the "cpu" backend) and the peer (../shared/peers/torch_dltk_unet.py)
# alternate, RUNS times each, so that both see the same load; each run
# prints its median over STEPS timed steps after WARMUP. Prints seconds,
# patches/s, GFLOP/s (the peer's nominal conv count: `flops` mode), fraction
# of this machine's fp32 peak (PEAK GFLOP/s; default: measured by
# build/bench/peak, FMA chains in the vectors our loops use: the CPU's
# widest, or those DLT_CPU_ISA or ONEDNN_MAX_CPU_ISA cap them to), the
# ratio to the peer, and the peak memory of each process (max RSS,
# /usr/bin/time -v). The peer is PyTorch from PyPI in the venv of
# bench/peer-venv.sh (PEER_PY overrides); Debian's python3-torch, where
# /usr/bin/python3 has it, is timed as a second column ("deb").
#   bench/engine.sh            RUNS=3 STEPS=3 WARMUP=1 PEAK=... DLT_THREADS=...
# LOSS=dice+ce (or balanced-ce, dice) trains ours with that loss; the peer
# always uses cross-entropy, so the ratio then includes the loss's cost.
# PRECISION=bf16 runs ours with bf16 convolutions (AMX) and the peer under
# torch.autocast(bfloat16) (bench/peer_amp.py), the mixed precision a
# PyTorch user would turn on; %peak is then against the fp32 peak.
# Without any torch only ours is timed.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3} STEPS=${STEPS:-3} WARMUP=${WARMUP:-1} LOSS=${LOSS:-ce} PRECISION=${PRECISION:-fp32}
PEER=${DLT_SHARED:-$PWD/../shared}/peers/torch_dltk_unet.py
PEER_RUN=$PEER
[ "$PRECISION" = bf16 ] && PEER_RUN="bench/peer_amp.py $PEER"
make -s build/bench/bench_engine build/bench/peak >&2
PY=${PEER_PY:-$(bench/peer-venv.sh || true)}
[ -n "$PY" ] || PY=/usr/bin/python3
DEB_PY=
if [ "$PY" != /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then DEB_PY=/usr/bin/python3; fi
PEAK=${PEAK:-$(build/bench/peak | tr '\t' '\n' | sed -n 's/^gflop_per_s=//p')}
BIN=build/bench/bench_engine
THREADS=${DLT_THREADS:-$(nproc)}
export DLT_THREADS=$THREADS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_peer=1
if ! $PY -c 'import torch' 2>/dev/null || [ ! -f "$PEER" ]; then
    have_peer=0
    echo "# peer not available (no torch in $PY or no $PEER): timing ours only" >&2
fi
gflop=0
if [ $have_peer = 1 ]; then
    gflop=$($PY "$PEER" flops | sed -n 's/.*fwd_gflop_per_patch=\([0-9.]*\).*/\1/p')
fi

# field NAME from a tab-separated key=value line
field() { tr '\t' '\n' | sed -n "s/^$1=//p" | head -1; }
maxrss() { sed -n 's/.*Maximum resident set size (kbytes): *//p' "$1"; }
median() { sort -g | awk '{v[NR]=$1} END{if(NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ)  commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')  threads=$THREADS  load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# cpu flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_bf16|amx_bf16)$' | tr '\n' ' ')  fp32 peak $PEAK GFLOP/s (build/bench/peak)  ours: $(bin/dlt-info --backend --patch 16 --batch 1 2>/dev/null | sed -n 's/^isa\t//p')"
echo "# peer: $("$PY" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo none) ($PY)${DEB_PY:+; second column deb: $("$DEB_PY" -c 'import torch; print("torch", torch.__version__)')}"
echo "# nominal forward GFLOP per 64^3 patch (peer's count): $gflop; runs=$RUNS steps=$STEPS warmup=$WARMUP; our loss $LOSS (peer: ce); our precision $PRECISION (peer: $([ "$PRECISION" = bf16 ] && echo 'autocast bf16' || echo fp32))"
for mode in train infer; do
    batch=$([ $mode = train ] && echo 2 || echo 1)
    key=$([ $mode = train ] && echo s_per_step || echo s_per_batch)
    for r in $(seq "$RUNS"); do
        /usr/bin/time -v $BIN $mode --batch $batch --steps "$STEPS" --warmup "$WARMUP" --gflop "$gflop" --loss "$LOSS" --precision "$PRECISION" \
            >"$tmp/ours.out" 2>"$tmp/ours.err" || { cat "$tmp/ours.err" >&2; exit 1; }
        field $key <"$tmp/ours.out" >>"$tmp/$mode.ours.s"
        maxrss "$tmp/ours.err" >>"$tmp/$mode.ours.rss"
        if [ $have_peer = 1 ]; then
            /usr/bin/time -v $PY $PEER_RUN $mode --batch $batch --steps "$STEPS" --warmup "$WARMUP" \
                --threads "$THREADS" >"$tmp/peer.out" 2>"$tmp/peer.err" || { cat "$tmp/peer.err" >&2; exit 1; }
            field $key <"$tmp/peer.out" >>"$tmp/$mode.peer.s"
            maxrss "$tmp/peer.err" >>"$tmp/$mode.peer.rss"
        fi
        if [ -n "$DEB_PY" ]; then
            /usr/bin/time -v $DEB_PY $PEER_RUN $mode --batch $batch --steps "$STEPS" --warmup "$WARMUP" \
                --threads "$THREADS" >"$tmp/deb.out" 2>"$tmp/deb.err" || { cat "$tmp/deb.err" >&2; exit 1; }
            field $key <"$tmp/deb.out" >>"$tmp/$mode.deb.s"
            maxrss "$tmp/deb.err" >>"$tmp/$mode.deb.rss"
        fi
        echo "# $mode run $r: ours $(tail -1 "$tmp/$mode.ours.s") s$([ $have_peer = 1 ] && echo ", peer $(tail -1 "$tmp/$mode.peer.s") s")" >&2
    done
done

printf '%-6s %-5s %10s %10s %9s %7s %10s %8s\n' mode who seconds patches/s GFLOP/s %peak maxRSS_MB speedup
for mode in train infer; do
    batch=$([ $mode = train ] && echo 2 || echo 1)
    mult=$([ $mode = train ] && echo 3 || echo 1)
    for who in ours peer deb; do
        [ -f "$tmp/$mode.$who.s" ] || continue
        s=$(median <"$tmp/$mode.$who.s")
        rss=$(sort -g "$tmp/$mode.$who.rss" | tail -1)
        echo "$mode $who $s $rss" >>"$tmp/summary"
    done
    o=$(awk -v m=$mode '$1==m && $2=="ours"{print $3}' "$tmp/summary")
    p=$(awk -v m=$mode '$1==m && $2=="peer"{print $3}' "$tmp/summary")
    d=$(awk -v m=$mode '$1==m && $2=="deb"{print $3}' "$tmp/summary")
    for who in ours peer deb; do
        line=$(awk -v m=$mode -v w=$who '$1==m && $2==w' "$tmp/summary")
        [ -n "$line" ] || continue
        set -- $line
        awk -v mode=$mode -v who=$who -v s=$3 -v rss=$4 -v b=$batch -v mult=$mult -v gf="$gflop" -v peak=$PEAK \
            -v o="$o" -v p="${p:-0}" -v d="${d:-0}" 'BEGIN{
                g = gf > 0 ? mult * gf * b / s : 0;
                sp = (who == "ours" && p > 0) ? sprintf("%.2fx", p / o) : "";
                if (who == "ours" && d > 0) sp = sp sprintf(" (deb %.2fx)", d / o);
                printf "%-6s %-5s %10.3f %10.3f %9.1f %6.1f%% %10.0f %8s\n", mode, who, s, b / s, g, 100 * g / peak, rss / 1024, sp }'
    done
done
echo "# speedup = peer seconds / ours (median of the runs); the machine is shared, so compare within one run"
