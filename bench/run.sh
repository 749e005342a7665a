#!/usr/bin/env bash
# bench/run.sh - `make bench`: every benchmark script in bench/ (each runs
# ours beside its peer and prints its own table), one after another.
set -eu
cd "$(dirname "$0")"
for s in *.sh; do
    [ "$s" = run.sh ] && continue
    echo "## bench/$s"
    ./"$s"
done
