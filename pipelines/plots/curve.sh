#!/usr/bin/env bash
# curve.sh - the training curve from dlt-train's --log TSV (columns step,
# loss, lr, patches_per_s, elapsed_s, then val_dice_mean and one column per
# class when --val was given; 'nan' where no validation ran).
#   curve.sh LOG.tsv OUT.png [TITLE]
# Rows repeated by a resumed run (steps logged after the last checkpoint
# before an interruption) are counted once: the last row of a step wins.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: curve.sh LOG.tsv OUT.png [TITLE]" >&2; exit 2; }
log=$1 out=$2 title=${3:-training curve}
[ -r "$log" ] || { echo "curve.sh: error: $log: cannot read" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
awk -F'\t' -v OFS='\t' -v L="$tmp/loss" -v V="$tmp/val" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "val_dice_mean") vc = i; next }
    $1 ~ /^[0-9]+$/ { loss[$1] = $2; if (vc && $vc != "nan" && $vc != "") val[$1] = $vc; s[$1] = 1 }
    END { for (k in s) { print k, loss[k] > L; if (k in val) print k, val[k] > V } }' "$log"
[ -s "$tmp/loss" ] || { echo "curve.sh: error: $log: no rows" >&2; exit 1; }
sort -n -o "$tmp/loss" "$tmp/loss"; touch "$tmp/val"; sort -n -o "$tmp/val" "$tmp/val"
gnuplot -e "out='$out'; loss='$tmp/loss'; val='$tmp/val'; head='$title'" "$here/curve.gp"
