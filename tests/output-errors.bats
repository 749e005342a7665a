#!/usr/bin/env bats
# Output errors: every tool checks every write to stdout (> /dev/full: exit 1,
# one message naming stdout), every file output on a full filesystem fails
# clearly and leaves nothing under the final name (an earlier file stays
# byte-identical, no temporary is left), a reader that stops early
# (dlt-sample | head -c) ends the writer quietly, and a dlt-train killed with
# SIGKILL at any moment leaves a checkpoint that loads and resumes.
bats_require_minimum_version 1.5.0

TOOLS="dice infer info normalize phantom plan render sample train"

setup_file() {
    D="$BATS_FILE_TMPDIR"
    ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    python3 "$ROOT/tests/helpers/mkstream.py" --records 8 --preprocessing "dlt:ct=-1000,800" > "$D/s"
    dlt-train --filters 4,8 --strides 1,2 --batch 2 -q -o "$D/m.dltm" "$D/s"
    dlt-phantom -q -n 1 --size 20,18,12 --spacing 9,8,10 -o "$D/ph"
    dlt-normalize --ct -1000,800 "$D/ph/img0001.nii.gz" -o "$D/n.nii.gz"
}

setup() {
    T=$(mktemp -d)
    D="$BATS_FILE_TMPDIR"
    ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    IMG="$D/ph/img0001.nii.gz"
    LAB="$D/ph/label0001.nii.gz"
}

teardown() {
    [ -n "${M:-}" ] && mountpoint -q "$M" && umount "$M"
    rm -rf "$T"
}

meta() { # meta FILE KEY: a model metadata value via dlt-info
    dlt-info "$1" | awk -v k="$2" '$1 == k { print $2 }'
}

# run "$@" > /dev/full; it must exit 1 with exactly one error line naming stdout
full() {
    run --separate-stderr bash -c '"$@" > /dev/full' full "$@"
    echo "$* -> $status: $stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"error: stdout: write failed: No space left on device"* ]]
    [ "$(grep -c 'error:' <<< "$stderr")" -eq 1 ]
}

@test "every tool: --help and --version into a full disk exit 1 naming stdout" {
    for t in $TOOLS; do
        full dlt-$t --help
        full dlt-$t --version
    done
}

@test "dlt-normalize, dlt-infer, dlt-dice, dlt-info, dlt-render, dlt-sample, dlt-plan: output > /dev/full exits 1 naming stdout" {
    full dlt-normalize --zero-one "$IMG"
    full dlt-infer -q -m "$D/m.dltm" "$D/n.nii.gz"
    full dlt-dice "$LAB" "$LAB"
    full dlt-info "$IMG"
    full dlt-info --json "$IMG" "$LAB"
    full dlt-info "$D/m.dltm"
    full dlt-info --backend
    full dlt-render "$IMG" -l "$LAB" -o -
    full dlt-sample -q -i "$IMG" -L "$LAB" -p 8 -c 50
    full dlt-plan -q --list "$D/ph/list.tsv"
    # and nothing of the failed runs was left behind
    [ -z "$(ls -A "$T")" ]
}

@test "the same outputs into a working pipe still exit 0 (the exit check is silent when all went well)" {
    run --separate-stderr bash -c "dlt-infer -q -m '$D/m.dltm' '$D/n.nii.gz' | dlt-info - > /dev/null"
    [ "$status" -eq 0 ]
    [ -z "$stderr" ]
    run --separate-stderr dlt-dice "$LAB" "$LAB"
    [ "$status" -eq 0 ]
    [ -z "$stderr" ]
    [[ "$output" == *"dice"* ]]
}

@test "dlt-sample | head -c 1000 ends quietly" {
    run --separate-stderr bash -c "dlt-sample -q -i '$IMG' -L '$LAB' -p 8 | head -c 1000 | wc -c"
    [ "$status" -eq 0 ]
    [ "$output" -eq 1000 ]
    [ -z "$stderr" ]
    # also when SIGPIPE is ignored (as under some job runners): EPIPE is the reader's choice, not an error
    run --separate-stderr bash -c "trap '' PIPE; dlt-sample -q -i '$IMG' -L '$LAB' -p 8 | head -c 1000 > /dev/null"
    [ "$status" -eq 0 ]
    [ -z "$stderr" ]
}

# mount a small tmpfs at $M, put the earlier outputs there, then fill it up
# to all but $1 KiB
small_fs() {
    [ "$(id -u)" -eq 0 ] || skip "mounting a tmpfs needs root"
    M="$T/fs"
    mkdir -p "$M"
    mount -t tmpfs -o size=4m tmpfs "$M" 2>/dev/null || { M=; skip "cannot mount a tmpfs here"; }
    echo old > "$M/old.nii.gz"
    echo old > "$M/old.dltm"
    echo old > "$M/old.png"
    dd if=/dev/zero of="$M/fill" bs=64k 2>/dev/null || true
    truncate -s "-${1}K" "$M/fill"
}

# the output $2 of a run that just failed: no file under that name (or the
# old content), no temporary beside it, and a message naming it
failed_cleanly() {
    echo "$1 -> $status: $stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"$2"* ]]
    [[ "$stderr" == *"No space left on device"* ]]
    [ "$(grep -c 'error:' <<< "$stderr")" -eq 1 ]
    if [ -n "${3:-}" ]; then [ "$(cat "$2")" = old ]; else [ ! -e "$2" ]; fi
    [ -z "$(ls -A "$M" | grep -E 'tmp|~' || true)" ]
}

@test "a full filesystem under each tool's output file: clear error, nothing under the final name, the old file intact" {
    for free in 0 4; do
        small_fs "$free"
        run --separate-stderr dlt-normalize -q --zero-one "$IMG" -o "$M/n.nii"
        failed_cleanly "normalize free=$free" "$M/n.nii"
        run --separate-stderr dlt-normalize -q --zero-one "$IMG" -o "$M/old.nii.gz"
        failed_cleanly "normalize over old, free=$free" "$M/old.nii.gz" old
        run --separate-stderr dlt-infer -q -m "$D/m.dltm" "$D/n.nii.gz" -o "$M/p.nii"
        failed_cleanly "infer free=$free" "$M/p.nii"
        run --separate-stderr dlt-infer -q -m "$D/m.dltm" "$D/n.nii.gz" --probs "$M/prob.nii" -o "$T/p.nii.gz"
        failed_cleanly "infer --probs free=$free" "$M/prob.nii"
        [ ! -e "$T/p.nii.gz" ]
        run --separate-stderr dlt-train -q --filters 4,8 --strides 1,2 --batch 2 -o "$M/old.dltm" "$D/s"
        failed_cleanly "train over old, free=$free" "$M/old.dltm" old
        run --separate-stderr dlt-render "$IMG" -l "$LAB" -o "$M/old.png"
        failed_cleanly "render over old, free=$free" "$M/old.png" old
        run --separate-stderr dlt-phantom -q -n 2 --size 40 -o "$M/ph"
        failed_cleanly "phantom free=$free" "$M/ph/img0001.nii.gz"
        [ ! -e "$M/ph/list.tsv" ]
        run --separate-stderr bash -c 'dlt-sample -q -i "$1" -L "$2" -p 8 -c 2000 > "$3"' sample "$IMG" "$LAB" "$M/stream"
        echo "sample -> $status: $stderr"
        [ "$status" -eq 1 ]
        [[ "$stderr" == *"stdout: "*"write failed: No space left on device"* ]]
        umount "$M"
    done
    M=
}

@test "SIGKILL at random moments while dlt-train checkpoints: the last checkpoint always loads and resumes" {
    python3 "$ROOT/tests/helpers/mkstream.py" --records 4000 > "$T/s"
    NET="--filters 4,8 --strides 1,2 --batch 2 -q"
    dlt-train $NET --steps 1 -o "$T/m.dltm" "$T/s"
    RANDOM=7
    for i in $(seq 25); do
        dlt-train $NET --steps 1000000 --checkpoint-every 1 --resume "$T/m.dltm" -o "$T/m.dltm" "$T/s" &
        pid=$!
        sleep "0.$(printf '%03d' $((RANDOM % 400 + 50)))"
        kill -KILL $pid 2>/dev/null || { echo "dlt-train ended before the kill"; false; }
        wait $pid || true
        step=$(meta "$T/m.dltm" step)
        echo "kill $i: step $step"
        [ "$step" -ge 1 ]
    done
    # the surviving checkpoint resumes and trains on
    run --separate-stderr dlt-train $NET --steps $((step + 2)) --resume "$T/m.dltm" -o "$T/m2.dltm" "$T/s"
    [ "$status" -eq 0 ]
    [ "$(meta "$T/m2.dltm" step)" -eq $((step + 2)) ]
    # temporaries of killed writers are the only leftovers, never a half file under the name
    ls "$T"
}
