#!/usr/bin/env bash
# bench/mpi.sh - data-parallel training on this machine, ours beside the
# PyTorch peer, in one run: DLTK's default U-Net (2.3 M parameters), a
# global batch of 2 patches of 64^3, on all cores as
#   1 process x NPROC threads   and   NPROC ranks x 1 thread
# ours: build/bench/bench_dist (alone, and under mpirun; batch norm
# synchronised, and --no-sync-bn), the peer: bench/peer_ddp.py
# (DistributedDataParallel over gloo; PyTorch has no CPU SyncBatchNorm).
# RUNS alternating rounds (default 3); prints the median step time of each
# configuration, its scaling (1 process / N ranks), the ratio to the peer's
# same configuration, and the allreduce of all gradients (ms, bus GB/s).
#   bench/mpi.sh            RUNS=3 STEPS=3 WARMUP=1 NPROC=$(nproc)
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3} STEPS=${STEPS:-3} WARMUP=${WARMUP:-1} N=${NPROC:-$(nproc)}
PEER=${DLT_SHARED:-$PWD/../shared}/peers/torch_dltk_unet.py
make -s build/bench/bench_dist >&2
command -v mpirun >/dev/null || { echo "bench/mpi.sh: no mpirun (make MPI=1)" >&2; exit 1; }
PY=${PEER_PY:-$(bench/peer-venv.sh || true)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
A="--batch 2 --steps $STEPS --warmup $WARMUP"
field() { tr '\t' '\n' | sed -n "s/^$1=//p"; }
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $N cores; $(date -u '+%F %H:%M') UTC; commit $(git rev-parse --short HEAD 2>/dev/null)"
for r in $(seq "$RUNS"); do
    DLT_THREADS=$N build/bench/bench_dist $A >> "$tmp/ours1"
    DLT_THREADS=1 mpirun --oversubscribe --bind-to core -np "$N" build/bench/bench_dist $A >> "$tmp/oursN"
    DLT_THREADS=1 mpirun --oversubscribe --bind-to core -np "$N" build/bench/bench_dist $A --no-sync-bn >> "$tmp/oursNn"
    if [ -n "$PY" ] && [ -f "$PEER" ]; then
        "$PY" bench/peer_ddp.py "$PEER" --ranks 1 --threads "$N" $A >> "$tmp/peer1"
        "$PY" bench/peer_ddp.py "$PEER" --ranks "$N" --threads 1 $A >> "$tmp/peerN"
    fi
done
med() { [ -s "$1" ] && field "$2" < "$1" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-40s %10s %10s %12s %14s\n' configuration s/step scaling vs_peer allreduce_ms
row() { # name file peerfile base
    local s p b ar
    s=$(med "$2" s_per_step); [ -n "$s" ] || return 0
    b=$(med "$4" s_per_step); p=$(med "$3" s_per_step || true); ar=$(med "$2" allreduce_ms)
    printf '%-40s %10.3f %10s %12s %14s\n' "$1" "$s" \
        "$(awk -v a="$b" -v b="$s" 'BEGIN { printf "%.2fx", a / b }')" \
        "$( [ -n "$p" ] && awk -v a="$p" -v b="$s" 'BEGIN { printf "%.2fx", a / b }' || echo -)" \
        "$ar ($(med "$2" busbw_gb_per_s) GB/s)"
}
row "ours: 1 process x $N threads" "$tmp/ours1" "$tmp/peer1" "$tmp/ours1"
row "ours: $N ranks x 1 thread, sync BN" "$tmp/oursN" "$tmp/peerN" "$tmp/ours1"
row "ours: $N ranks x 1 thread, BN per rank" "$tmp/oursNn" "$tmp/peerN" "$tmp/ours1"
row "peer: 1 process x $N threads" "$tmp/peer1" "" "$tmp/peer1"
row "peer: DDP gloo $N ranks x 1 thread" "$tmp/peerN" "" "$tmp/peer1"
