#!/usr/bin/env bats
# dlt-sample: options, header, determinism and --skip, sampler proportions,
# augmentation alignment, bad input, SIGPIPE, terminal refusal.
# Fixtures come from tests/helpers/sample_check.py (standard library only),
# which also reads the streams independently of dlt's reader.

bats_require_minimum_version 1.5.0

setup_file() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    export ROOT
    export PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    export H="$ROOT/tests/helpers/sample_check.py"
    export D="$BATS_FILE_TMPDIR/data"
    mkdir -p "$D/sub"
    # three subjects whose image equals their label (classes 0, 1, 2)
    for i in 1 2 3; do
        python3 "$H" nifti "$D/sub/img$i.nii.gz" 40,36,30 --spacing 1.5,1.5,2 --descrip "dlt:whiten;clip:-3,3"
        python3 "$H" nifti "$D/sub/lab$i.nii.gz" 40,36,30 --label --spacing 1.5,1.5,2
    done
    printf 'id\timage\tlabel\n' >"$D/list.tsv"
    for i in 1 2 3; do printf 's%d\tsub/img%d.nii.gz\tsub/lab%d.nii.gz\n' $i $i $i >>"$D/list.tsv"; done
    printf '0\tbackground\n1\tbox\n2\tsmallbox\n' >"$D/classes.tsv"
    python3 "$H" nifti "$D/ramp.nii.gz" 40,36,30 --pattern ramp --spacing 1.5,1.5,2
    python3 "$H" nifti "$D/small.nii.gz" 10,10,10
    python3 "$H" nifti "$D/smalllab.nii.gz" 10,10,10 --label
    python3 "$H" nifti "$D/otherlab.nii.gz" 40,36,31 --label --spacing 1.5,1.5,2
}

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    export PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    T="$BATS_TEST_TMPDIR"
}

nrec() { python3 "$H" records <"$1" | wc -l; }

@test "--help goes to stdout and exits 0; --version" {
    run dlt-sample --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--sampler KIND"* ]]
    [[ "$output" == *"--elastic"* ]]
    run dlt-sample --version
    [ "$status" -eq 0 ]
    [[ "$output" == "dlt-sample "* ]]
}

@test "no input, or both inputs, is a usage error with nothing on stdout" {
    run --separate-stderr dlt-sample --count 1
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    [[ "$stderr" == *"give either --list"* ]]
    run --separate-stderr dlt-sample --list "$D/list.tsv" --image "$D/ramp.nii.gz" --count 1
    [ "$status" -eq 2 ]
    [ -z "$output" ]
}

@test "bad option values are usage errors (exit 2, nothing on stdout)" {
    for args in "--sampler nope" "--patch 0" "--pad wrap" "--flip w" "--gamma 2,1" "--elastic 1" \
        "--fg-fraction 1.5" "--per-volume 0" "--patch 16,8,8 --rot90" "--class-weights 1,2"; do
        run --separate-stderr dlt-sample --list "$D/list.tsv" --count 1 $args
        echo "$args -> $status: $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        [[ "$stderr" == "dlt-sample: error: "* ]]
    done
}

@test "header records channels, classes, patch, label, names, preprocessing, sampler, seed" {
    dlt-sample --list "$D/list.tsv" --class-names "$D/classes.tsv" --patch 16,12,8 --sampler balanced \
        --seed 9 --count 2 --flip x,z >"$T/s" 2>"$T/err"
    head -n 30 "$T/s" | sed '/^end$/q' >"$T/h"
    cat "$T/h"
    [ "$(head -n 1 "$T/h")" = "DLTPATCHES 1" ]
    grep -qx 'channels 1' "$T/h"
    grep -qx 'classes 3' "$T/h"
    grep -qx 'patch 16,12,8' "$T/h"
    grep -qx 'label yes' "$T/h"
    grep -qx 'class_names background,box,smallbox' "$T/h"
    grep -qx 'preprocessing whiten;clip:-3,3' "$T/h"
    grep -qx 'sampler balanced' "$T/h"
    grep -qx 'seed 9' "$T/h"
    grep -qx 'augment flip=x,z' "$T/h"
    [ "$(nrec "$T/s")" -eq 2 ]
    # the memory report
    grep -q '3 subjects, 6 volumes held in memory' "$T/err"
}

@test "a description not written by dlt-normalize is not preprocessing; differing ones are warned about" {
    python3 "$H" nifti "$T/foreign.nii.gz" 40,36,30 --spacing 1.5,1.5,2 --descrip "scanner X protocol 7"
    run --separate-stderr dlt-sample --image "$T/foreign.nii.gz" --label "$D/sub/lab1.nii.gz" --count 1
    [ "$status" -eq 0 ]
    ! grep -aq '^preprocessing' <(head -n 20 <<<"$output")
    printf 'id\timage\tlabel\n' >"$T/mixed.tsv"
    printf 'a\t%s\t%s\n' "$D/sub/img1.nii.gz" "$D/sub/lab1.nii.gz" >>"$T/mixed.tsv"
    printf 'b\t%s\t%s\n' "$T/foreign.nii.gz" "$D/sub/lab1.nii.gz" >>"$T/mixed.tsv"
    run --separate-stderr dlt-sample --list "$T/mixed.tsv" --count 1
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"warning: subjects differ in preprocessing ('whiten;clip:-3,3' in a, '' in b)"* ]]
}

@test "header columns image1, image2 give the channels in number order" {
    printf 'label\timage2\tid\timage1\n%s\t%s\tr\t%s\n' "$D/sub/lab1.nii.gz" "$D/sub/img1.nii.gz" "$D/ramp.nii.gz" >"$T/two.tsv"
    dlt-sample --list "$T/two.tsv" --patch 8 --count 3 -q >"$T/s"
    python3 -c "
import sys; sys.path.insert(0, '$ROOT/tests/helpers')
import sample_check as s
head, recs = s.read_stream(open('$T/s', 'rb'))
for rid, c, size, ch, has, img, lab in recs:
    assert rid == 'r' and ch == 2
    assert img[0] == c[0] + 100 * c[1] + 10000 * c[2], 'channel 0 is image1 (the ramp)'
    assert all(int(img[512 + i]) == lab[i] for i in range(512)), 'channel 1 is image2 (equals the label)'
"
}

@test "--classes overrides the class count; a label beyond it is an error" {
    dlt-sample --list "$D/list.tsv" --classes 4 --count 1 2>/dev/null | head -n 3 | grep -qx 'classes 4'
    run --separate-stderr dlt-sample --list "$D/list.tsv" --classes 2 --sampler balanced --count 1
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"label value 2"* ]]
}

@test "--count, --epochs and --per-volume set the record count; ids and sizes are right" {
    dlt-sample --list "$D/list.tsv" --patch 8 --per-volume 4 --epochs 2 -q >"$T/s"
    [ "$(nrec "$T/s")" -eq 24 ]
    python3 "$H" records <"$T/s" | head -n 8 | awk '{print $1, $5, $6, $7, $8, $9}' | uniq -c >"$T/ids"
    cat "$T/ids"
    [ "$(awk '{print $1, $2}' "$T/ids" | tr '\n' ' ')" = "4 s1 4 s2 " ]
    grep -q 's1 8 8 8 1 1' "$T/ids"
    dlt-sample --list "$D/list.tsv" --patch 8 --per-volume 4 --epochs 2 --count 5 -q >"$T/s"
    [ "$(nrec "$T/s")" -eq 5 ]
}

@test "same seed, same bytes, whatever the thread count; another seed differs" {
    args="--list $D/list.tsv --patch 12 --sampler balanced --per-volume 3 --epochs 2 --shuffle --flip x,y,z --noise 0.1 --elastic 2,6 -q"
    DLT_THREADS=1 dlt-sample $args --seed 5 >"$T/a"
    DLT_THREADS=2 dlt-sample $args --seed 5 >"$T/b"
    DLT_THREADS=3 dlt-sample $args --seed 5 >"$T/c"
    cmp "$T/a" "$T/b"
    cmp "$T/a" "$T/c"
    dlt-sample $args --seed 6 >"$T/d"
    ! cmp -s "$T/a" "$T/d"
}

@test "--skip N gives exactly the tail of the unskipped stream, header unchanged" {
    args="--list $D/list.tsv --patch 10 --sampler foreground --per-volume 2 --shuffle --flip x --elastic 1.5,5 --noise 0.05 -q"
    dlt-sample $args --count 11 >"$T/full"
    dlt-sample $args --skip 4 --count 7 >"$T/tail"
    hb=$(python3 "$H" header-bytes <"$T/full")
    [ "$hb" -eq "$(python3 "$H" header-bytes <"$T/tail")" ]
    cmp <(head -c "$hb" "$T/full") <(head -c "$hb" "$T/tail")
    n=$(($(stat -c %s "$T/tail") - hb))
    cmp <(tail -c "$n" "$T/full") <(tail -c "$n" "$T/tail")
    [ "$(nrec "$T/tail")" -eq 7 ]
    # skipping past the end writes the header only
    dlt-sample $args --epochs 1 --skip 100 >"$T/none"
    [ "$(nrec "$T/none")" -eq 0 ]
}

@test "balanced sampler: patch centres split equally between the classes" {
    dlt-sample --list "$D/list.tsv" --patch 9 --sampler balanced --per-volume 30 --epochs 1 -q >"$T/s"
    python3 "$H" centres <"$T/s" >"$T/c"
    cat "$T/c"
    [ "$(cat "$T/c" | tr '\n' ' ')" = "0 30 1 30 2 30 " ]
    # class weights 1,0,3: no class 1, three times as many 2 as 0
    dlt-sample --list "$D/list.tsv" --patch 9 --sampler balanced --class-weights 1,0,3 --per-volume 8 --epochs 1 -q |
        python3 "$H" centres >"$T/w"
    cat "$T/w"
    [ "$(cat "$T/w" | tr '\n' ' ')" = "0 6 2 18 " ]
    # the random sampler, for contrast, rarely centres on the small class
    dlt-sample --list "$D/list.tsv" --patch 9 --per-volume 30 --epochs 1 -q | python3 "$H" centres >"$T/r"
    cat "$T/r"
    [ "$(awk '$1 == 2 {print $2}' "$T/r")" -lt 20 ]
}

@test "foreground sampler: at least the fraction of patches contain foreground" {
    dlt-sample --list "$D/list.tsv" --patch 9 --sampler foreground --fg-fraction 0.5 --per-volume 20 --epochs 1 -q |
        python3 "$H" centres >"$T/c"
    cat "$T/c"
    fg=$(awk '$1 > 0 {n += $2} END {print n + 0}' "$T/c")
    [ "$fg" -ge 30 ]
}

@test "a class absent from every volume is named in a warning (balanced)" {
    run --separate-stderr dlt-sample --list "$D/list.tsv" --class-names <(printf '0\tbg\n1\tbox\n3\ttumour\n') \
        --classes 4 --sampler balanced --patch 8 --count 3
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"warning: class 3 (tumour) is absent from every volume"* ]]
}

@test "flips and rotations keep image and label aligned exactly" {
    dlt-sample --list "$D/list.tsv" --patch 16,16,10 --sampler balanced --per-volume 6 --epochs 1 \
        --flip x,y,z --rot90 -q >"$T/s"
    [ "$(python3 "$H" aligned <"$T/s")" = "1.0000" ]
}

@test "elastic deformation keeps image and label aligned (labels nearest, images trilinear)" {
    dlt-sample --list "$D/list.tsv" --patch 16 --sampler balanced --per-volume 4 --epochs 1 \
        --elastic 2,6 --flip x -q >"$T/s"
    a=$(python3 "$H" aligned <"$T/s")
    echo "aligned $a"
    awk -v a="$a" 'BEGIN {exit !(a >= 0.80)}'
    # and it does move voxels: the stream differs from the unwarped one
    dlt-sample --list "$D/list.tsv" --patch 16 --sampler balanced --per-volume 4 --epochs 1 --flip x -q >"$T/u"
    ! cmp -s "$T/s" "$T/u"
}

@test "nnU-Net's rotation, scaling, blur, contrast: aligned, recorded in the header, thread-count independent" {
    A=(--rotate 30,0.5 --spatial-scale 0.7,1.4,0.5 --blur 0.5,1,0.2 --contrast 0.75,1.25,0.15 --low-res 0.5,1,0.25)
    DLT_THREADS=1 dlt-sample --list "$D/list.tsv" --patch 16 --sampler balanced --per-volume 6 --epochs 1 \
        --seed 4 "${A[@]}" -q >"$T/s"
    a=$(python3 "$H" aligned <"$T/s")
    echo "aligned $a"
    awk -v a="$a" 'BEGIN {exit !(a >= 0.80)}'
    sed '/^end$/q' "$T/s" | grep -qx 'augment rotate=30,0.5 spatial-scale=0.7,1.4,0.5 blur=0.5,1,0.2 contrast=0.75,1.25,0.15 low-res=0.5,1,0.25'
    DLT_THREADS=2 dlt-sample --list "$D/list.tsv" --patch 16 --sampler balanced --per-volume 6 --epochs 1 \
        --seed 4 "${A[@]}" -q >"$T/s2"
    cmp "$T/s" "$T/s2"
    dlt-sample --list "$D/list.tsv" --patch 16 --sampler balanced --per-volume 6 --epochs 1 --seed 4 -q >"$T/u"
    ! cmp -s "$T/s" "$T/u"
    for bad in "--rotate 0" "--rotate 200" "--rotate 30,1.5" "--spatial-scale 1.4,0.7" "--spatial-scale 0,1" \
               "--blur 0,1" "--blur 1" "--contrast 0,1" "--contrast 1,2,-1" "--low-res 0.5,2" "--low-res 0,1"; do
        run --separate-stderr dlt-sample --list "$D/list.tsv" --patch 16 --count 1 $bad
        echo "$bad: $status $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        [[ "$stderr" == *"${bad%% *}"* ]]
    done
}

@test "the patch holds the volume's voxels at the recorded corner" {
    # ramp image: value = x + 100 y + 10000 z, so the first voxel names the corner
    dlt-sample --image "$D/ramp.nii.gz" --patch 8,6,4 --count 5 -q >"$T/s"
    grep -aqx 'label no' <(head -n 20 "$T/s")
    python3 -c "
import sys; sys.path.insert(0, '$ROOT/tests/helpers')
import sample_check as s
head, recs = s.read_stream(open('$T/s', 'rb'))
assert len(recs) == 5
for rid, c, size, ch, has, img, lab in recs:
    assert rid == 'ramp' and not has and size == (8, 6, 4), (rid, has, size)
    assert img[0] == c[0] + 100 * c[1] + 10000 * c[2], (c, img[0])
    assert img[-1] == img[0] + 7 + 500 + 30000
"
}

@test "two images are two channels" {
    dlt-sample --image "$D/sub/img1.nii.gz" --image "$D/ramp.nii.gz" --label "$D/sub/lab1.nii.gz" --patch 8 --count 2 -q >"$T/s"
    head -n 5 "$T/s" | grep -qx 'channels 2'
    python3 "$H" records <"$T/s" | awk '{exit !($8 == 2)}'
}

@test "a list without a header, run from elsewhere: paths relative to the list" {
    tail -n +2 "$D/list.tsv" >"$D/nohead.tsv"
    cd "$T"
    dlt-sample --list "$D/nohead.tsv" --patch 8 --count 3 -q >"$T/s"
    [ "$(nrec "$T/s")" -eq 3 ]
}

@test "a list with a missing path names the line, leaves stdout empty" {
    cp "$D/list.tsv" "$D/bad.tsv"
    printf 's4\tsub/nothere.nii.gz\tsub/lab1.nii.gz\n' >>"$D/bad.tsv"
    run --separate-stderr dlt-sample --list "$D/bad.tsv" --count 1
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"bad.tsv:5: "*"nothere.nii.gz: no such file"* ]]
}

@test "image and label on different grids are refused" {
    run --separate-stderr dlt-sample --image "$D/sub/img1.nii.gz" --label "$D/otherlab.nii.gz" --count 1
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"different grids"* ]]
}

@test "a patch larger than the volume: refused with --pad none, padded otherwise" {
    run --separate-stderr dlt-sample --image "$D/small.nii.gz" --label "$D/smalllab.nii.gz" --patch 16 --pad none --count 1
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"smaller than the patch 16x16x16"*"--pad none"* ]]
    for pad in zero edge reflect; do
        dlt-sample --image "$D/small.nii.gz" --label "$D/smalllab.nii.gz" --patch 16 --pad $pad --count 2 -q >"$T/s"
        [ "$(nrec "$T/s")" -eq 2 ]
    done
}

@test "the balanced sampler needs labels" {
    run --separate-stderr dlt-sample --image "$D/ramp.nii.gz" --sampler balanced --count 1
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"needs label volumes"* ]]
}

@test "an early-exiting consumer ends the endless stream quietly" {
    run bash -c "dlt-sample --list '$D/list.tsv' --patch 16 --flip x 2>'$T/err' | head -c 1000 >/dev/null; echo \${PIPESTATUS[0]}"
    echo "status $output; stderr: $(cat "$T/err")"
    [[ "$output" == 0 || "$output" == 141 ]]
    ! grep -qi 'error\|broken pipe' "$T/err"
    # with SIGPIPE ignored by the parent, likewise
    run bash -c "trap '' PIPE; dlt-sample --list '$D/list.tsv' --patch 16 2>'$T/err2' | head -c 1000 >/dev/null; echo \${PIPESTATUS[0]}"
    [[ "$output" == 0 || "$output" == 141 ]]
    ! grep -qi 'error' "$T/err2"
}

@test "binary output to a terminal is refused" {
    command -v script >/dev/null || skip "script(1) not installed"
    run script -qec "dlt-sample --list '$D/list.tsv' --count 1" /dev/null
    [ "$status" -eq 2 ]
    [[ "$output" == *"refusing to write a binary patch stream to a terminal"* ]]
    [[ "$output" != *DLTPATCHES* ]]
}

@test "dlt-phantom | dlt-sample --sampler balanced | dlt-info - shows the classes" {
    command -v dlt-phantom >/dev/null || skip "dlt-phantom not built"
    command -v dlt-info >/dev/null || skip "dlt-info not built"
    dlt-phantom -n 2 --seed 1 -o "$T/ph" 2>/dev/null
    cn=""
    [ -f "$T/ph/classes.tsv" ] && cn="--class-names $T/ph/classes.tsv"
    dlt-sample --list "$T/ph/list.tsv" $cn --patch 24 --sampler balanced --per-volume 12 --epochs 1 -q >"$T/s"
    run dlt-info "$T/s"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"records"*"24"* ]]
    [[ "$output" == *"sampler"*"balanced"* ]]
}
