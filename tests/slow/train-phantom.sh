#!/usr/bin/env bash
# tests/slow/train-phantom.sh - the end-to-end accuracy check, too long for
# `make check` on two cores: train a U-Net on phantom CT (dlt-phantom ->
# dlt-normalize -> dlt-sample -> dlt-train on the CPU), segment held-out
# phantoms with dlt-infer, score with dlt-dice and require a mean foreground
# Dice above MIN (default 0.8). Prints the per-class summary.
# Env: STEPS (default 600), TRAIN (subjects, 8), TEST (held out, 2),
# PATCH (32), BATCH (4), FILTERS (16,32,64), STRIDES (1,2,2), MIN (0.8),
# KEEP=DIR keeps the work directory.
set -eu
cd "$(dirname "$0")/../.."
PATH="$PWD/bin:$PATH"
STEPS=${STEPS:-600} TRAIN=${TRAIN:-8} TEST=${TEST:-2} PATCH=${PATCH:-32} BATCH=${BATCH:-4}
FILTERS=${FILTERS:-16,32,64} STRIDES=${STRIDES:-1,2,2} MIN=${MIN:-0.8}
W=${KEEP:-$(mktemp -d)}
mkdir -p "$W"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
SZ="--size 64,64,48 --spacing 4.5,4.5,4"
dlt-phantom -q -n "$TRAIN" $SZ -o "$W/train"
dlt-phantom -q -n "$TEST" --first 101 $SZ -o "$W/test"
for set in train test; do
    printf 'id\timage\tlabel\n' > "$W/$set.tsv"
    tail -n +2 "$W/$set/list.tsv" | while IFS=$'\t' read -r id img lab; do
        dlt-normalize -q --ct -1000,800 "$W/$set/$img" -o "$W/$set/n$id.nii.gz"
        printf '%s\t%s\t%s\n' "$id" "$set/n$id.nii.gz" "$set/$lab" >> "$W/$set.tsv"
    done
done
t0=$(date +%s)
dlt-sample -q --list "$W/train.tsv" --patch "$PATCH" --sampler balanced --shuffle --flip x --seed 1 \
    | dlt-train -q --filters "$FILTERS" --strides "$STRIDES" --batch "$BATCH" --steps "$STEPS" --lr 0.003 \
        --log "$W/log.tsv" --log-every 25 -o "$W/m.dltm"
t1=$(date +%s)
dlt-infer -q -m "$W/m.dltm" --list "$W/test.tsv" -o "$W/pred"
printf 'case\tpred\tref\n' > "$W/pairs.tsv"
tail -n +2 "$W/test.tsv" | while IFS=$'\t' read -r id img lab; do
    printf '%s\tpred/%s.nii.gz\t%s\n' "$id" "$id" "$lab" >> "$W/pairs.tsv"
done
dlt-dice --no-distances --summary --list "$W/pairs.tsv" > "$W/dice.tsv"
t2=$(date +%s)
awk -F'\t' 'NR == 1 || $1 == "mean"' "$W/dice.tsv" | cut -f1-6
mean=$(awk -F'\t' '$1 == "mean" && $2 == "fg" { print $4 }' "$W/dice.tsv")
echo "train-phantom: mean foreground Dice $mean (minimum $MIN); training $((t1 - t0)) s, inference+scoring $((t2 - t1)) s, $STEPS steps"
awk -v m="$mean" -v min="$MIN" 'BEGIN { exit !(m > min) }'
