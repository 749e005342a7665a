#!/usr/bin/env bash
# tests/gpu/run.sh - the GPU check of dlt in ONE device call (~6 minutes):
#   1. environment: GPU, nvcc, cuDNN (system or PyTorch's wheel), nifti/oneDNN
#   2. build with what exists (make CUDA=1; without libnifti a minimal
#      libdlt of the sources that do not need it)
#   3. host unit test of the CUDA backend (now with a GPU present)
#   4. every operation GPU vs the CPU reference (tests/gpu/ops_vs_ref.c):
#      fp32 (1e-4) with a whole U-Net training step, tf32 and bf16 convs
#   5. phantom training + inference with --device cuda (skipped, saying so,
#      while dlt-train/dlt-infer/dlt-phantom/dlt-sample are missing), and
#      data-parallel dlt-train (2 ranks = 1 process; tests/gpu/mpi.sh)
#      where mpirun exists
#   6. benchmark beside the PyTorch peer on the same card
# and a short table last. Logs go to $OUT (the device tool's folder; else
# build/gpu-out): summary.txt, run.log and logs.tar.gz with every step's
# log. Every step is time-boxed. Run from anywhere:
#   tests/gpu/run.sh            (device tool: command "tests/gpu/run.sh")
# The peer script is looked up in $DLT_SHARED/peers, ../shared/peers,
# shared/peers and tests/gpu/peers. ../shared does not travel to the device
# machine: before the call, `mkdir -p tests/gpu/peers && cp
# ../shared/peers/torch_dltk_unet.py tests/gpu/peers/ && echo
# /tests/gpu/peers/ >> .git/info/exclude`, and name tests/gpu/peers in the
# call's carry. Exit status 1 if a check failed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
# per-step logs in build/gpu-logs; $OUT gets summary.txt, run.log and
# logs.tar.gz (the device tool brings back at most 8 files)
FINAL=${OUT:-$ROOT/build/gpu-out}
OUT=$ROOT/build/gpu-logs
rm -rf "$OUT"
mkdir -p "$OUT" "$FINAL"
finish() { cp "$OUT/summary.txt" "$OUT/run.log" "$FINAL/" 2>/dev/null; tar -czf "$FINAL/logs.tar.gz" -C "$OUT" . 2>/dev/null; }
trap finish EXIT
T0=$(date +%s)
JOBS=$(nproc 2>/dev/null || echo 4)
SUMMARY=()
FAILED=0
say() { echo "== $*" | tee -a "$OUT/run.log"; }
row() { SUMMARY+=("$(printf '%-34s %-6s %s' "$1" "$2" "$3")"); [ "$2" = FAIL ] && FAILED=1; return 0; }
# run NAME SECONDS CMD...: output to $OUT/NAME.log (tail shown), status kept in $RC
run() {
    local name=$1 limit=$2
    shift 2
    local t=$(date +%s)
    timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    RC=$?
    echo "-- $name: exit $RC after $(($(date +%s) - t)) s (limit $limit s)" | tee -a "$OUT/run.log"
    tail -n 25 "$OUT/$name.log"
    [ $RC -eq 124 ] && echo "-- $name: TIMED OUT" | tee -a "$OUT/run.log"
    return 0
}
elapsed() { echo $(($(date +%s) - T0)); }

# ---- 1. environment ----
say "environment"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
    NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
    echo "nvcc: ${NVCC:-MISSING}"; [ -n "$NVCC" ] && "$NVCC" --version | tail -1
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(git status --porcelain 2>/dev/null | wc -l) changed files"
} 2>&1 | tee "$OUT/env.log"
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
CUDA_HOME=${CUDA_HOME:-$([ -n "$NVCC" ] && dirname "$(dirname "$NVCC")")}
# cuDNN: the toolkit's, the system's, or PyTorch's wheel (nvidia-cudnn-cu*)
CUDNN_HOME=${CUDNN_HOME:-}
if [ -z "$CUDNN_HOME" ]; then
    for d in "$CUDA_HOME" /usr /usr/local; do
        [ -f "$d/include/cudnn.h" ] && compgen -G "$d/lib*/libcudnn.so" >/dev/null && CUDNN_HOME=$d && break
    done
fi
if [ -z "$CUDNN_HOME" ]; then
    W=$(python3 -c 'import nvidia.cudnn as m, os; print(os.path.dirname(m.__file__) if m.__file__ else list(m.__path__)[0])' 2>/dev/null)
    if [ -n "$W" ] && [ -f "$W/include/cudnn.h" ]; then
        # the wheel ships libcudnn.so.9 without the unversioned link -lcudnn needs
        CUDNN_HOME=$ROOT/build/gpu-cudnn
        mkdir -p "$CUDNN_HOME/lib"
        ln -sfn "$W/include" "$CUDNN_HOME/include"
        for f in "$W"/lib/libcudnn*.so.*; do ln -sf "$f" "$CUDNN_HOME/lib/"; done
        ln -sf "$(ls "$W"/lib/libcudnn.so.* | head -1)" "$CUDNN_HOME/lib/libcudnn.so"
        export LD_LIBRARY_PATH="$W/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "cuDNN: from the Python wheel in $W" | tee -a "$OUT/env.log"
    fi
fi
echo "CUDA_HOME=$CUDA_HOME CUDNN_HOME=${CUDNN_HOME:-MISSING}" | tee -a "$OUT/env.log"
[ -n "$CUDNN_HOME" ] && grep -h "define CUDNN_MAJOR\|define CUDNN_MINOR" "$CUDNN_HOME"/include/cudnn_version*.h 2>/dev/null | head -2 | tee -a "$OUT/env.log"
HAVE_NIFTI=0; [ -f /usr/include/nifti/nifti2_io.h ] && HAVE_NIFTI=1
HAVE_DNNL=0; [ -f /usr/include/dnnl.h ] && HAVE_DNNL=1
# MPI (data-parallel dlt-train) and NCCL (its gradient averaging on GPUs): only where present
HAVE_MPI=0; command -v mpicc >/dev/null && command -v mpirun >/dev/null && HAVE_MPI=1
HAVE_NCCL=0; [ $HAVE_MPI = 1 ] && [ -f "$CUDA_HOME/include/nccl.h" ] && compgen -G "$CUDA_HOME/lib*/libnccl.so*" >/dev/null && HAVE_NCCL=1
echo "MPI: $([ $HAVE_MPI = 1 ] && echo yes || echo 'no (built with MPI=0)'); NCCL: $([ $HAVE_NCCL = 1 ] && echo yes || echo no)" | tee -a "$OUT/env.log"
echo "libnifti headers: $([ $HAVE_NIFTI = 1 ] && echo yes || echo 'MISSING (volume code and tools are not built)')" | tee -a "$OUT/env.log"
echo "oneDNN headers: $([ $HAVE_DNNL = 1 ] && echo yes || echo 'MISSING (cpu fast path off; the reference is the oracle anyway)')" | tee -a "$OUT/env.log"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tee -a "$OUT/env.log"

if [ -z "$NVCC" ] || [ -z "$CUDNN_HOME" ]; then
    row "build" FAIL "no nvcc or no cuDNN found (see env.log)"
    printf '%s\n' "${SUMMARY[@]}" | tee "$OUT/summary.txt"
    exit 1
fi

# ---- 2. build ----
say "build ($(elapsed) s)"
MK=(make -j"$JOBS" MISSING= CUDA=1 CUDA_HOME="$CUDA_HOME" CUDNN_HOME="$CUDNN_HOME" DNNL=$HAVE_DNNL MPI=$HAVE_MPI NCCL=$HAVE_NCCL)
LIBS="-lm -lpthread -fopenmp -L$CUDA_HOME/lib64 -L$CUDNN_HOME/lib64 -L$CUDNN_HOME/lib -Wl,-rpath,$CUDA_HOME/lib64 -Wl,-rpath,$CUDNN_HOME/lib64 -Wl,-rpath,$CUDNN_HOME/lib -lcudnn -lcudart -lstdc++ -lz"
CF="-O2 -g -std=c11 -D_GNU_SOURCE -fopenmp -Ilib -DDLT_HAVE_CUDA -I$CUDA_HOME/include -I$CUDNN_HOME/include"
LIBA=build/libdlt.a
if [ $HAVE_NIFTI = 1 ]; then
    run build 240 "${MK[@]}"
    BUILD_RC=$RC
    LIBS="$LIBS -lnifti2 -lznz"
    [ $HAVE_DNNL = 1 ] && LIBS="$LIBS -ldnnl"
    [ $HAVE_MPI = 1 ] && LIBS="$LIBS $(mpicc --showme:link)"
    [ $HAVE_NCCL = 1 ] && LIBS="$LIBS -lnccl"
else
    BUILD_RC=1
fi
if [ $BUILD_RC -ne 0 ]; then
    # fallback: every library source that needs neither nifti nor oneDNN
    say "fallback build: libdlt without the nifti/oneDNN sources"
    run build-fallback 240 tests/gpu/build_min.sh "$NVCC" "$CUDNN_HOME/include" $CF
    [ $RC -eq 0 ] && LIBA=build/gpu-min/libdlt.a && row "build" ok "fallback (no nifti/oneDNN): $LIBA" || row "build" FAIL "fallback failed (build-fallback.log)"
else
    row "build" ok "make CUDA=1 ($(grep -o 'CUDA: [a-z]*' "$OUT/build.log" | tail -1))"
fi
for p in ops_vs_ref bench_cuda; do
    cc $CF tests/gpu/$p.c -o build/$p $LIBA $LIBS >"$OUT/cc-$p.log" 2>&1 || { row "compile $p" FAIL "see cc-$p.log"; cat "$OUT/cc-$p.log" | head -20; }
done

# ---- 3. host unit test, now with a GPU ----
say "unit test test_cuda_host ($(elapsed) s)"
if cc $CF -Itests/unit tests/unit/test_cuda_host.c -o build/test_cuda_host_gpu $LIBA $LIBS >"$OUT/cc-unit.log" 2>&1; then
    run unit 30 build/test_cuda_host_gpu
    row "test_cuda_host" "$([ $RC -eq 0 ] && echo ok || echo FAIL)" "$(grep -c '^ok' "$OUT/unit.log") ok, $(grep -c '^not ok' "$OUT/unit.log") not ok"
else
    row "test_cuda_host" FAIL "does not compile (cc-unit.log)"
fi

# ---- 4. ops against the reference ----
if [ -x build/ops_vs_ref ]; then
    say "ops vs reference ($(elapsed) s)"
    export OMP_NUM_THREADS=$JOBS
    run ops-fp32 150 build/ops_vs_ref --precision fp32 --net
    row "ops vs ref fp32 (+unet step)" "$([ $RC -eq 0 ] && echo ok || echo FAIL)" "$(tail -1 "$OUT/ops-fp32.log" | sed 's/^# //')"
    for p in tf32 bf16; do
        run ops-$p 60 build/ops_vs_ref --precision $p --quick
        row "ops vs ref $p (convs)" "$([ $RC -eq 0 ] && echo ok || echo FAIL)" "$(tail -1 "$OUT/ops-$p.log" | sed 's/^# //')"
    done
fi

# ---- 5. phantom training and inference with the tools ----
say "phantom training + inference ($(elapsed) s)"
TOOLS_OK=1
for t in dlt-phantom dlt-sample dlt-train dlt-infer; do
    [ -x bin/$t ] || { echo "skip: bin/$t does not exist yet" | tee -a "$OUT/run.log"; TOOLS_OK=0; }
done
if [ $TOOLS_OK = 1 ] && ! bin/dlt-train --help 2>&1 | grep -q -- '--device'; then
    echo "skip: dlt-train has no --device option yet" | tee -a "$OUT/run.log"
    TOOLS_OK=0
fi
if [ $TOOLS_OK = 1 ]; then
    run phantom 90 tests/gpu/phantom.sh build/gpu-phantom
    row "phantom train+infer --device cuda" "$([ $RC -eq 0 ] && echo ok || echo FAIL)" "see phantom.log"
else
    row "phantom train+infer --device cuda" skip "tools missing (see run.log)"
fi

if [ $TOOLS_OK = 1 ] && [ $HAVE_MPI = 1 ]; then
    run mpi 90 tests/gpu/mpi.sh build/gpu-mpi
    row "dlt-train 2 ranks = 1 process (cuda)" "$([ $RC -eq 0 ] && echo ok || echo FAIL)" "$(grep -h 'vs 2 ranks' "$OUT/mpi.log" | tail -1)"
else
    row "dlt-train 2 ranks = 1 process (cuda)" skip "no mpirun or tools missing"
fi

# ---- 6. benchmark beside the peer ----
say "benchmark ($(elapsed) s)"
PEER=""
for d in "${DLT_SHARED:-}/peers" ../shared/peers shared/peers tests/gpu/peers; do
    [ -f "$d/torch_dltk_unet.py" ] && PEER=$d/torch_dltk_unet.py && break
done
if [ -n "$PEER" ]; then
    # the peer's default: PyTorch lets cuDNN use TF32 for convolutions
    run peer-train 90 python3 "$PEER" train --device cuda --batch 8
    run peer-infer 60 python3 "$PEER" infer --device cuda
    run peer-sliding 90 python3 "$PEER" sliding --device cuda
else
    echo "skip: torch_dltk_unet.py not found (looked in \$DLT_SHARED/peers, ../shared/peers, shared/peers, tests/gpu/peers: copy it to tests/gpu/peers and carry that folder)" | tee -a "$OUT/run.log"
    row "peer benchmark" FAIL "peer script not found (see run.log)"
fi
if [ -x bench/bench_engine ] && bench/bench_engine --help 2>&1 | grep -q -- '--device'; then
    run ours-bench-engine 120 bench/bench_engine --device cuda
fi
if [ -x build/bench_cuda ]; then
    for p in tf32 fp32 bf16; do
        run ours-train-$p 60 build/bench_cuda train --batch 8 --precision $p
    done
    run ours-infer-tf32 40 build/bench_cuda infer --batch 1 --precision tf32
    run ours-windows-tf32 40 build/bench_cuda windows --batch 4 --precision tf32
fi
val() { grep -ho "$2=[0-9.]*" "$OUT/$1.log" 2>/dev/null | tail -1 | cut -d= -f2; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && python3 -c "print(f'{$1/$2:.2f}x')" 2>/dev/null || echo "-"; }
PT=$(val peer-train patches_per_s); OT=$(val ours-train-tf32 patches_per_s)
row "train b8 64^3 patches/s (tf32)" info "peer ${PT:--} ours ${OT:--} ratio $(ratio "${OT:-}" "${PT:-}") (target 1.5x); fp32 ours $(val ours-train-fp32 patches_per_s), bf16 ours $(val ours-train-bf16 patches_per_s)"
PI=$(val peer-infer s_per_batch); OI=$(val ours-infer-tf32 s_per_batch)
row "infer b1 64^3 s/batch (tf32)" info "peer ${PI:--} ours ${OI:--} speedup $(ratio "${PI:-}" "${OI:-}")"
PS=$(val peer-sliding mvox_per_s); OS=$(val ours-windows-tf32 mvox_per_s)
row "sliding 128^3 Mvox/s" info "peer ${PS:--}; ours windows-only ${OS:--} (no accumulation: not yet comparable; target 2x via dlt-infer)"

# ---- summary ----
echo
echo "== summary ($(elapsed) s; card: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1); commit $(git rev-parse --short HEAD 2>/dev/null))"
printf '%s\n' "${SUMMARY[@]}" | tee "$OUT/summary.txt"
exit $FAILED
