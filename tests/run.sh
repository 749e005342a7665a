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
