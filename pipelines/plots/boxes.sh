#!/usr/bin/env bash
# boxes.sh - Figure 2 of the DLTK paper from dlt-dice tables: box plots of
# Dice, precision and recall per organ over the cases, one box per
# configuration.
#   boxes.sh OUT.png NAME=DICE.tsv [NAME=DICE.tsv ...]
# DICE.tsv is dlt-dice output (with or without --summary: the summary rows
# are left out). Classes absent from both volumes of a case ('-') are not
# drawn. TITLE in the environment sets the figure's title.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: boxes.sh OUT.png NAME=DICE.tsv..." >&2; exit 2; }
out=$1; shift
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
files= points= titles= i=0
for a in "$@"; do
    name=${a%%=*} f=${a#*=}
    [ "$name" != "$a" ] || { echo "boxes.sh: error: $a: expected NAME=FILE" >&2; exit 2; }
    [ -r "$f" ] || { echo "boxes.sh: error: $f: cannot read" >&2; exit 1; }
    i=$((i + 1))
    # per-case rows of foreground classes: class dice precision recall
    awk -F'\t' -v OFS='\t' 'NR > 1 && $1 !~ /^(mean|std|median|min|max)$/ && $2 ~ /^[0-9]+$/ && $2 > 0 \
        { print $2, $4, $5, $6 }' "$f" > "$tmp/p$i"
    # per class and metric: min, quartiles, max (linear interpolation)
    for m in 2 3 4; do
        awk -F'\t' -v m=$m '$m != "-" && $m != "" { print $1 "\t" $m }' "$tmp/p$i" | sort -k1,1n -k2,2g |
        awk -F'\t' -v OFS='\t' '
            function q(p,   h, lo) { h = (n - 1) * p + 1; lo = int(h); return lo >= n ? v[n] : v[lo] + (h - lo) * (v[lo + 1] - v[lo]) }
            function flush() { if (n) print k, v[1], q(0.25), q(0.5), q(0.75), v[n] }
            $1 != k { flush(); k = $1; n = 0 }
            { v[++n] = $2 }
            END { flush() }' > "$tmp/s$i.$m"
    done
    awk -F'\t' -v OFS='\t' '
        FNR == 1 { f++ }
        { k = $1; $1 = ""; s[k, f] = substr($0, 2); ks[k] = 1 }
        END { for (k in ks) { line = k
                  for (i = 1; i <= 3; i++) line = line OFS ((k, i) in s ? s[k, i] : "-\t-\t-\t-\t-")
                  print line } }' "$tmp/s$i.2" "$tmp/s$i.3" "$tmp/s$i.4" | sort -n -k1,1 > "$tmp/c$i"
    points="$points $tmp/p$i"
    # class names (id name), for the axis
    awk -F'\t' -v OFS='\t' 'NR > 1 && $2 ~ /^[0-9]+$/ && $2 > 0 { print $2, $3 }' "$f" >> "$tmp/names"
    files="$files $tmp/c$i" titles="$titles ${name// /_}"
done
[ -s "$tmp/names" ] || { echo "boxes.sh: error: no per-case rows in the tables" >&2; exit 1; }
sort -n -u -k1,1 "$tmp/names" > "$tmp/organs"
nk=$(tail -n 1 "$tmp/organs" | cut -f1)
xb=$(awk -F'\t' '{ printf "%s\"\" %d", (NR > 1 ? ", " : "("), $1 } END { print ")" }' "$tmp/organs")
xt=$(awk -F'\t' '{ gsub(/"/, "", $2); printf "%s\"%s\" %d", (NR > 1 ? ", " : "("), $2, $1 } END { print ")" }' "$tmp/organs")
gnuplot -e "out='$out'; files='${files# }'; points='${points# }'; titles='${titles# }'; xt='$xt'; xb='$xb'; nk=$nk; head='${TITLE:-Dice, precision and recall per organ}'" "$here/boxes.gp"
