#!/usr/bin/env bash
# tests/run.sh UNIT_BINARIES... - run every C unit test and every bats file,
# print their TAP, and end with one line "N passed, N failed, N skipped".
# TESTS=pattern limits the bats files (e.g. TESTS=dlt-info).
set -u
cd "$(dirname "$0")/.."
export DLT_TEST_BIN="${DLT_TEST_BIN:-$PWD/bin}"
export PATH="$DLT_TEST_BIN:$PATH"
# OpenMP threads that spin while waiting make tests 5-10x slower on a busy
# two-core machine; sleeping waits keep the results identical.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# unit TEST [PREFIX]: run one C test, its TAP names prefixed; a test that
# exits non-zero without a failing line of its own (a crash, a sanitizer
# report, an abort) counts as one failure.
unit() {
    local out rc
    out=$(mktemp)
    "$1" > "$out" 2>&1
    rc=$?
    if [ -n "${2:-}" ]; then sed -i "s/^\(\(not \)\{0,1\}ok [0-9]* - \)/\1[$2] /" "$out"; fi
    cat "$out" | tee -a "$log"
    [ "$rc" -ne 0 ] && ! grep -q '^not ok' "$out" && echo "not ok - ${2:+[$2] }$1 crashed (exit $rc)" | tee -a "$log"
    rm -f "$out"
}
# A test built with the sanitizers (build/san, see make check) has its TAP
# names prefixed [san].
for t in "$@"; do
    echo "# $t"
    case $t in */san/*) unit "$t" san ;; *) unit "$t" ;; esac
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
        # (the sanitizer copies that make check adds run at the native ISA only)
        case $t in */san/*) [ "${DLT_SAN_EXTRA:-0}" = 1 ] && continue ;; esac
        case $t in */test_fast_*) ;; *) continue ;; esac
        echo "# DLT_CPU_ISA=$isa $t"
        DLT_CPU_ISA=$isa unit "$t" "$isa"
    done
done
bats_files=$(ls tests/*.bats 2>/dev/null | grep -E "${TESTS:-.}" || true)
if [ -n "$bats_files" ]; then
    echo "# bats $bats_files"
    # Under SAN=1 the tools run with ASan and UBSan, but without leak
    # detection: a tool that ends on an error returns from main holding its
    # buffers, which the exit reclaims. The unit tests and fuzz replays keep
    # it on (a library leak would grow in a long-running caller).
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" bats --tap $bats_files 2>&1 | tee -a "$log"
fi
skipped=$(grep -cE '^ok .*# (SKIP|skip)' "$log")
passed=$(( $(grep -cE '^ok ' "$log") - skipped ))
failed=$(grep -cE '^not ok ' "$log")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
