#!/usr/bin/env bats
# dlt-train: options, training from a stream (loss falls, metadata, log),
# resume bit-identity, SIGTERM, corrupted checkpoint, wrong class count,
# bad records, divergence, validation. Tiny networks on the CPU reference
# backend so every test runs in seconds.
bats_require_minimum_version 1.5.0

setup() {
    T=$(mktemp -d)
    ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    MK="python3 $ROOT/tests/helpers/mkstream.py"
    NET="--filters 4,8 --strides 1,2 --batch 2 -q"
}

teardown() {
    rm -rf "$T"
}

meta() { # meta FILE KEY: a model metadata value via dlt-info
    dlt-info "$1" | awk -v k="$2" '$1 == k { print $2 }'
}

@test "--help goes to stdout and exits 0; --version" {
    run --separate-stderr dlt-train --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"Usage: dlt-train"* ]]
    [[ "$output" == *"--checkpoint-every"* ]]
    [ -z "$stderr" ]
    run dlt-train --version
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^dlt-train\ [0-9] ]]
}

@test "bad options exit 2 with a message and nothing on stdout" {
    $MK --records 4 > "$T/s"
    for args in "--loss foo" "--optim rmsprop" "--lr -1" "--batch 0" "--steps x" "--net vnet" \
                "--filters 4,8 --strides 1,2,2" "--schedule cosine" "--schedule poly" "--val-overlap 1" "--precision fp16" \
                "--device cpu-ref --precision bf16" "--bogus"; do
        run --separate-stderr dlt-train $args -o "$T/m.dltm" "$T/s"
        [ "$status" -eq 2 ] || { echo "args: $args -> $status"; false; }
        [ -z "$output" ]
        [[ "$stderr" == *"dlt-train"* ]]
    done
    run --separate-stderr dlt-train "$T/s"
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"-o MODEL"* ]]
    [ ! -e "$T/m.dltm" ]
}

@test "trains: model with metadata, TSV log, loss falls clearly" {
    $MK --records 80 --preprocessing "dlt:ct=-1000,800" > "$T/s"
    run --separate-stderr dlt-train $NET --lr 0.01 --log "$T/log.tsv" --log-every 5 -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [ "$(meta "$T/m.dltm" step)" = 40 ]
    [ "$(meta "$T/m.dltm" records)" = 80 ]
    [ "$(meta "$T/m.dltm" patch)" = 8,8,8 ]
    [ "$(meta "$T/m.dltm" classes)" = 3 ]
    [ "$(meta "$T/m.dltm" preprocessing)" = "dlt:ct=-1000,800" ]
    [[ "$(meta "$T/m.dltm" class_names)" == background,class1* ]]
    [ -n "$(meta "$T/m.dltm" intensity)" ]
    head -1 "$T/log.tsv" | grep -qP '^step\tloss\tlr\tpatches_per_s\telapsed_s$'
    [ "$(wc -l < "$T/log.tsv")" -eq 9 ]
    first=$(awk 'NR == 2 { print $2 }' "$T/log.tsv")
    last=$(awk 'END { print $2 }' "$T/log.tsv")
    echo "loss $first -> $last"
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.85 * a) }'
}

@test "--precision bf16: trains (loss falls), recorded in the model, close to fp32" {
    $MK --records 80 > "$T/s"
    # 16 filters: thinner convolutions stay fp32 (memory-bound)
    NET="--filters 16,16 --strides 1,2 --batch 2 -q"
    run --separate-stderr dlt-train $NET --device cpu --precision bf16 --lr 0.01 --log "$T/l16.tsv" --log-every 5 -o "$T/m16.dltm" "$T/s"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"precision bf16"* ]] || [ -z "$stderr" ]
    [ "$(meta "$T/m16.dltm" precision)" = bf16 ]
    [ "$(meta "$T/m16.dltm" step)" = 40 ]
    dlt-train $NET --device cpu --lr 0.01 --log "$T/l32.tsv" --log-every 5 -o "$T/m32.dltm" "$T/s"
    [ "$(meta "$T/m32.dltm" precision)" = fp32 ]
    first=$(awk 'NR == 2 { print $2 }' "$T/l16.tsv")
    last16=$(awk 'END { print $2 }' "$T/l16.tsv")
    last32=$(awk 'END { print $2 }' "$T/l32.tsv")
    echo "bf16 loss $first -> $last16; fp32 $last32"
    awk -v a="$first" -v b="$last16" 'BEGIN { exit !(b < 0.85 * a) }'
    awk -v a="$last32" -v b="$last16" 'BEGIN { d = a - b; exit !(d < 0.25 * a && -d < 0.25 * a) }'
    grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo || skip "no bf16 instructions: both runs were fp32"
    [ "$last16" != "$last32" ]
}

@test "--precision bf16: resume takes it from the checkpoint and is bit-identical; a change is warned about" {
    NET="--filters 16,16 --strides 1,2 --batch 2 -q"
    $MK --records 12 > "$T/all"
    $MK --records 12 --skip 6 > "$T/tail"
    dlt-train $NET --precision bf16 --steps 6 -o "$T/full.dltm" "$T/all"
    dlt-train $NET --precision bf16 --steps 3 -o "$T/part.dltm" "$T/all"
    cp "$T/part.dltm" "$T/part2.dltm"
    dlt-train $NET --steps 6 --resume "$T/part.dltm" -o "$T/part.dltm" "$T/tail"
    [ "$(meta "$T/part.dltm" precision)" = bf16 ]
    cmp "$T/full.dltm" "$T/part.dltm"
    run --separate-stderr dlt-train ${NET% -q} --precision fp32 --steps 6 --resume "$T/part2.dltm" -o "$T/part2.dltm" "$T/tail"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"trained in bf16, this run in fp32"* ]]
    [ "$(meta "$T/part2.dltm" precision)" = fp32 ]
}

@test "--steps 0 writes an untrained model from the header alone" {
    $MK --records 0 --classes 14 --patch 16 > "$T/h"
    run dlt-train --steps 0 -q -o "$T/m.dltm" "$T/h"
    [ "$status" -eq 0 ]
    [ "$(meta "$T/m.dltm" step)" = 0 ]
    dlt-info "$T/m.dltm" | grep -q "2,287,024"
}

@test "resume with the stream's tail gives a bit-identical model" {
    $MK --records 12 > "$T/all"
    $MK --records 12 --skip 6 > "$T/tail"
    dlt-train $NET --steps 6 -o "$T/full.dltm" "$T/all"
    dlt-train $NET --steps 3 -o "$T/part.dltm" "$T/all"
    [ "$(meta "$T/part.dltm" records)" = 6 ]
    ! cmp -s "$T/full.dltm" "$T/part.dltm"
    dlt-train $NET --steps 6 --resume "$T/part.dltm" -o "$T/part.dltm" "$T/tail"
    cmp "$T/full.dltm" "$T/part.dltm"
}

@test "resume with dlt-sample --skip on phantom data is bit-identical" {
    command -v dlt-sample >/dev/null || skip "dlt-sample not built yet"
    dlt-phantom -q -n 2 --size 24,24,16 --spacing 8 -o "$T/ph"
    S="--list $T/ph/list.tsv --patch 8 --sampler balanced --seed 3"
    dlt-sample $S 2>/dev/null | dlt-train $NET --steps 4 -o "$T/full.dltm"
    dlt-sample $S 2>/dev/null | dlt-train $NET --steps 2 -o "$T/part.dltm"
    skip_n=$(meta "$T/part.dltm" records)
    [ "$skip_n" = 4 ]
    dlt-sample $S --skip "$skip_n" 2>/dev/null | dlt-train $NET --steps 4 --resume "$T/part.dltm" -o "$T/part.dltm"
    cmp "$T/full.dltm" "$T/part.dltm"
}

@test "SIGTERM: finishes the step, checkpoints, exits 0 and says how to resume" {
    $MK --records 600 > "$T/s"
    dlt-train --filters 4,8 --strides 1,2 --batch 2 --log "$T/log" --log-every 1 -o "$T/m.dltm" "$T/s" 2> "$T/err" &
    pid=$!
    for i in $(seq 300); do
        [ "$(wc -l < "$T/log" 2>/dev/null || echo 0)" -ge 3 ] && break
        sleep 0.1
    done
    kill -TERM $pid
    st=0
    wait $pid || st=$?
    cat "$T/err"
    [ "$st" -eq 0 ]
    step=$(meta "$T/m.dltm" step)
    rec=$(meta "$T/m.dltm" records)
    [ "$step" -ge 2 ] && [ "$step" -lt 300 ]
    [ "$rec" -eq $((2 * step)) ]
    grep -q "stopped at step $step after $rec records" "$T/err"
    grep -q -- "--skip $rec | dlt-train .*--resume $T/m.dltm" "$T/err"
}

@test "a corrupted checkpoint given to --resume: clear error, nothing overwritten" {
    $MK --records 8 > "$T/s"
    dlt-train $NET -o "$T/m.dltm" "$T/s"
    head -c 2000 "$T/m.dltm" > "$T/bad.dltm"
    cp "$T/m.dltm" "$T/keep"
    run --separate-stderr dlt-train $NET --resume "$T/bad.dltm" -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"cannot resume"*"bad.dltm"* ]]
    cmp "$T/keep" "$T/m.dltm"
    cmp <(head -c 2000 "$T/keep") "$T/bad.dltm"
    [ "$(ls "$T" | wc -l)" -eq 4 ]
}

@test "a stream with another class count than the --resume checkpoint is refused" {
    $MK --records 4 > "$T/s3"
    $MK --records 4 --classes 4 > "$T/s4"
    dlt-train $NET -o "$T/m.dltm" "$T/s3"
    cp "$T/m.dltm" "$T/keep"
    run --separate-stderr dlt-train $NET --resume "$T/m.dltm" -o "$T/m.dltm" "$T/s4"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"4 classes"*"has 1 and 3"* ]]
    cmp "$T/keep" "$T/m.dltm"
}

@test "a NaN in a record stops training at that record; the last checkpoint stays" {
    $MK --records 12 --nan-at 5 > "$T/s"
    run --separate-stderr dlt-train $NET --checkpoint-every 1 -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"record 5 (subject 'subject-2'"*"image value nan"* ]]
    [ "$(meta "$T/m.dltm" step)" = 2 ]
    [ "$(meta "$T/m.dltm" records)" = 4 ]
}

@test "divergence (huge --lr): error naming the step, last good checkpoint intact" {
    $MK --records 40 > "$T/s"
    run --separate-stderr dlt-train $NET --lr 1e30 --checkpoint-every 1 -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 1 ]
    [[ "$stderr" =~ step\ ([0-9]+):\ the\ loss\ is\ (nan|infinite) ]]
    bad=${BASH_REMATCH[1]}
    [ "$(meta "$T/m.dltm" step)" -eq $((bad - 1)) ]
    dlt-info "$T/m.dltm" > /dev/null
}

@test "a patch that is not a multiple of the network's strides is refused" {
    $MK --records 4 --patch 7 > "$T/s"
    run --separate-stderr dlt-train $NET -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"multiple"* ]]
    [ ! -e "$T/m.dltm" ]
}

@test "a stream that is not a stream, or truncated, is named" {
    echo hello > "$T/s"
    run --separate-stderr dlt-train $NET -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"not a dlt patch stream"* ]]
    $MK --records 6 > "$T/full"
    head -c -100 "$T/full" > "$T/trunc"
    run --separate-stderr dlt-train $NET -o "$T/m.dltm" "$T/trunc"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"record 5"*"truncated"* ]]
}

@test "--val: Dice columns in the log and the best model kept separately" {
    dlt-phantom -q -n 1 --size 16,16,8 --spacing 12 -o "$T/ph"
    dlt-normalize --ct -1000,800 "$T/ph/img0001.nii.gz" -o "$T/n1.nii.gz"
    printf 'id\timage\tlabel\nv1\t%s\t%s\n' "$T/n1.nii.gz" "$T/ph/label0001.nii.gz" > "$T/val.tsv"
    $MK --records 12 --classes 14 > "$T/s"
    run --separate-stderr dlt-train $NET --val "$T/val.tsv" --val-every 3 --log "$T/log" --log-every 100 -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 0 ]
    head -1 "$T/log" | grep -qP '\tval_dice_mean\tval_dice_class1\t.*\tval_dice_class13$'
    [ "$(wc -l < "$T/log")" -eq 3 ]
    [ -s "$T/m.best.dltm" ]
    [ -n "$(meta "$T/m.best.dltm" val_dice)" ]
    [ -n "$(meta "$T/m.dltm" best_val_dice)" ]
}

@test "--val with a missing file names the list line" {
    printf 'id\timage\tlabel\nv1\tnope.nii.gz\tnope.nii.gz\n' > "$T/val.tsv"
    $MK --records 4 > "$T/s"
    run --separate-stderr dlt-train $NET --val "$T/val.tsv" -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"val.tsv:2:"*"nope.nii.gz"* ]]
    [ ! -e "$T/m.dltm" ]
}

@test "--device cuda in a build or machine without it fails clearly" {
    $MK --records 4 > "$T/s"
    if dlt-train --device cuda --steps 0 -q -o "$T/m.dltm" "$T/s" 2>/dev/null; then skip "a GPU is present"; fi
    run --separate-stderr dlt-train --device cuda --steps 1 -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"--device cuda"* ]]
}

@test "--threads N sets the CPU threads (over DLT_THREADS)" {
    $MK --records 4 > "$T/s"
    run --separate-stderr env DLT_THREADS=2 dlt-train --filters 4,8 --strides 1,2 --batch 2 -v --threads 1 -o "$T/m.dltm" "$T/s"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"1 CPU threads"* ]]
    run --separate-stderr env DLT_THREADS=3 dlt-train --filters 4,8 --strides 1,2 --batch 2 -v -o "$T/m.dltm" "$T/s"
    [[ "$stderr" == *"3 CPU threads"* ]]
}

@test "--deep-supervision: trains with heads at the decoder scales, recorded; resume is bit-identical and keeps it" {
    $MK --records 12 > "$T/all"
    $MK --records 12 --skip 6 > "$T/tail"
    NET3="--filters 4,8,8 --strides 1,2,2 --batch 2 -q"
    run --separate-stderr dlt-train $NET3 --deep-supervision 1 --lr 0.01 -n 6 -o "$T/full.dltm" "$T/all"
    [ "$status" -eq 0 ] || { echo "$stderr"; false; }
    [ "$(meta "$T/full.dltm" deep_supervision)" = 1 ]
    python3 -c 'import json, struct, sys
f = open(sys.argv[1], "rb"); h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
sys.exit(0 if h["ds.0.weight"]["shape"] == [3, 8, 1, 1, 1] else 1)' "$T/full.dltm"
    # the heads change training: not the model of a run without them
    dlt-train $NET3 --lr 0.01 -n 6 -o "$T/plain.dltm" "$T/all"
    ! cmp -s "$T/full.dltm" "$T/plain.dltm"
    # resume (the option comes from the checkpoint) gives the uninterrupted run's model
    dlt-train $NET3 --deep-supervision 1 --lr 0.01 -n 3 -o "$T/part.dltm" "$T/all"
    dlt-train $NET3 -n 6 --resume "$T/part.dltm" -o "$T/part.dltm" "$T/tail"
    cmp "$T/full.dltm" "$T/part.dltm"
    # a different --deep-supervision on resume is refused, nothing written
    run --separate-stderr dlt-train $NET3 --deep-supervision 0 -n 9 -r "$T/full.dltm" -o "$T/x.dltm" "$T/tail"
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"deep supervision 1"* ]]
    [ ! -e "$T/x.dltm" ]
    # the FCN and too many heads are usage errors
    run --separate-stderr dlt-train --net fcn $NET3 --deep-supervision 1 -o "$T/x.dltm" "$T/all"
    [ "$status" -eq 2 ] && [[ "$stderr" == *"needs a U-Net"* ]]
    run --separate-stderr dlt-train $NET3 --deep-supervision 2 -o "$T/x.dltm" "$T/all"
    [ "$status" -eq 2 ] && [[ "$stderr" == *"out of range 0..1"* ]]
    [ ! -e "$T/x.dltm" ]
}
