#!/usr/bin/env bash
# tests/run.sh UNIT_BINARIES... - run every C unit test and every bats file,
# print their TAP, and end with one line "N passed, N failed, N skipped".
# TESTS=pattern limits the bats files (e.g. TESTS=dlt-info).
set -u
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
# OpenMP threads that spin while waiting make tests 5-10x slower on a busy
# two-core machine; sleeping waits keep the results identical.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for t in "$@"; do
    echo "# $t"
    "$t" 2>&1 | tee -a "$log" || { [ "${PIPESTATUS[0]}" -ne 0 ] && ! grep -q '^not ok' "$log" && echo "not ok - $t crashed (exit ${PIPESTATUS[0]})" | tee -a "$log"; }
done
# The fast path again at each ISA below this CPU's (DLT_CPU_ISA caps our
# loops and oneDNN's kernels), so an AVX-512 machine tests the AVX2 and SSE2
# code too, and an AVX2 machine the SSE2 code.
native=sse2
grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && native=avx2
grep -qw avx512f /proc/cpuinfo 2>/dev/null && native=avx512
case $native in avx512) lesser="avx2 sse2" ;; avx2) lesser="sse2" ;; *) lesser="" ;; esac
for isa in $lesser; do
    for t in "$@"; do
        case $t in */test_fast_*) ;; *) continue ;; esac
        echo "# DLT_CPU_ISA=$isa $t"
        DLT_CPU_ISA=$isa "$t" 2>&1 | sed "s/^\(\(not \)\{0,1\}ok [0-9]* - \)/\1[$isa] /" | tee -a "$log"
        rc=${PIPESTATUS[0]}
        [ "$rc" -ne 0 ] && ! grep -q '^not ok' "$log" && echo "not ok - DLT_CPU_ISA=$isa $t crashed (exit $rc)" | tee -a "$log"
    done
done
bats_files=$(ls tests/*.bats 2>/dev/null | grep -E "${TESTS:-.}" || true)
if [ -n "$bats_files" ]; then
    echo "# bats $bats_files"
    bats --tap $bats_files 2>&1 | tee -a "$log"
fi
skipped=$(grep -cE '^ok .*# (SKIP|skip)' "$log")
passed=$(( $(grep -cE '^ok ' "$log") - skipped ))
failed=$(grep -cE '^not ok ' "$log")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
