#!/usr/bin/env bats
# dlt-phantom: options, output files, determinism, bad options, failures.
bats_require_minimum_version 1.5.0

setup() {
    T=$(mktemp -d)
    ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    SMALL="--size 40,40,24 --spacing 7,7,8"
}

teardown() {
    chmod -R u+w "$T" 2>/dev/null
    rm -rf "$T"
}

@test "--help goes to stdout and exits 0" {
    run --separate-stderr dlt-phantom --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"Usage: dlt-phantom"* ]]
    [[ "$output" == *"--spacing"* ]]
    [ -z "$stderr" ]
}

@test "--version" {
    run dlt-phantom --version
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^dlt-phantom\ [0-9]+\.[0-9]+ ]]
}

@test "writes images, labels, list.tsv and classes.tsv; nothing on stdout" {
    run --separate-stderr dlt-phantom -q -n 2 --seed 3 $SMALL -o "$T/d"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    for f in img0001.nii.gz img0002.nii.gz label0001.nii.gz label0002.nii.gz list.tsv classes.tsv; do
        [ -s "$T/d/$f" ]
    done
    [ "$(ls "$T/d" | wc -l)" -eq 6 ]
    printf 'id\timage\tlabel\n0001\timg0001.nii.gz\tlabel0001.nii.gz\n0002\timg0002.nii.gz\tlabel0002.nii.gz\n' > "$T/want"
    cmp "$T/want" "$T/d/list.tsv"
    [ "$(head -1 "$T/d/classes.tsv")" = "$(printf 'id\tname')" ]
    [ "$(wc -l < "$T/d/classes.tsv")" -eq 15 ]
    grep -q "$(printf '^10\tportal and splenic vein$')" "$T/d/classes.tsv"
    grep -q "$(printf '^13\tleft adrenal gland$')" "$T/d/classes.tsv"
}

@test "same seed, same bytes; different seeds or subjects differ" {
    dlt-phantom -q -n 2 --seed 5 $SMALL -o "$T/a"
    dlt-phantom -q -n 2 --seed 5 $SMALL -o "$T/b"
    dlt-phantom -q -n 1 --seed 6 $SMALL -o "$T/c"
    for f in img0001.nii.gz img0002.nii.gz label0001.nii.gz label0002.nii.gz list.tsv; do
        cmp "$T/a/$f" "$T/b/$f"
    done
    ! cmp -s "$T/a/img0001.nii.gz" "$T/c/img0001.nii.gz"
    ! cmp -s "$T/a/img0001.nii.gz" "$T/a/img0002.nii.gz"
}

@test "--first K gives subject K, the same as in a longer run" {
    dlt-phantom -q -n 3 --seed 5 $SMALL -o "$T/a"
    dlt-phantom -q -n 1 --first 3 --seed 5 $SMALL -o "$T/b"
    cmp "$T/a/img0003.nii.gz" "$T/b/img0003.nii.gz"
    [ ! -e "$T/b/img0001.nii.gz" ]
    grep -q "$(printf '^0003\timg0003.nii.gz\tlabel0003.nii.gz$')" "$T/b/list.tsv"
}

@test "gzip output carries no timestamp (mtime field zero)" {
    dlt-phantom -q -n 1 $SMALL -o "$T/d"
    [ "$(od -An -tx1 -j4 -N4 "$T/d/img0001.nii.gz" | tr -d ' ')" = "00000000" ]
}

@test "every organ label present in every subject; geometry and datatypes" {
    /usr/bin/python3 -c 'import nibabel' 2>/dev/null || skip "no nibabel"
    dlt-phantom -q -n 3 --seed 2 --size 48,48,32 --spacing 6 -o "$T/d"
    run /usr/bin/python3 -c '
import sys, nibabel as nib, numpy as np
d = sys.argv[1]
for k in (1, 2, 3):
    im = nib.load("%s/img%04d.nii.gz" % (d, k)); lb = nib.load("%s/label%04d.nii.gz" % (d, k))
    l = np.asarray(lb.dataobj)
    assert im.get_data_dtype() == np.float32 and l.dtype == np.uint8, (im.get_data_dtype(), l.dtype)
    assert im.shape == (48, 48, 32) and np.allclose(im.header.get_zooms(), 6)
    assert nib.aff2axcodes(im.affine) == ("L", "P", "S") and np.array_equal(im.affine, lb.affine)
    missing = set(range(14)) - set(np.unique(l).tolist())
    assert not missing, (k, missing)
print("ok")' "$T/d"
    [ "$status" -eq 0 ]
    [ "$output" = ok ]
}

@test "default size is 96x96x64 at 3 mm" {
    /usr/bin/python3 -c 'import nibabel' 2>/dev/null || skip "no nibabel"
    dlt-phantom -q -n 1 -o "$T/d"
    run /usr/bin/python3 -c 'import nibabel as nib, sys; i = nib.load(sys.argv[1]); print(i.shape, tuple(float(z) for z in i.header.get_zooms()))' "$T/d/img0001.nii.gz"
    [ "$output" = "(96, 96, 64) (3.0, 3.0, 3.0)" ]
}

@test "--noise 0 gives a different image than the default, same labels" {
    dlt-phantom -q -n 1 $SMALL -o "$T/a"
    dlt-phantom -q -n 1 $SMALL --noise 0 -o "$T/b"
    ! cmp -s "$T/a/img0001.nii.gz" "$T/b/img0001.nii.gz"
    cmp "$T/a/label0001.nii.gz" "$T/b/label0001.nii.gz"
}

@test "bad options: exit 2, a message, nothing on stdout, nothing written" {
    for args in "" "-n 0 -o $T/x" "-n abc -o $T/x" "--size 2 -o $T/x" "--size 1,2 -o $T/x" \
                "--spacing 0 -o $T/x" "--spacing 1,2 -o $T/x" "--noise -1 -o $T/x" "--seed -3 -o $T/x" \
                "--bogus -o $T/x" "-o $T/x extra" "-o"; do
        run --separate-stderr dlt-phantom $args
        [ "$status" -eq 2 ] || { echo "args: $args -> $status"; false; }
        [ -z "$output" ]
        [[ "$stderr" == *"dlt-phantom: error: "* ]] || { echo "args: $args: $stderr"; false; }
    done
    [ ! -e "$T/x" ]
}

@test "unwritable output: exit 1, message names it, nothing left behind" {
    [ "$(id -u)" -ne 0 ] || [ -n "$(command -v setpriv)" ] || skip "root cannot be denied writing"
    chmod 755 "$T"
    mkdir "$T/ro"
    chmod 555 "$T/ro"
    if [ "$(id -u)" -eq 0 ]; then
        run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups "${DLT_TEST_BIN:-$ROOT/bin}/dlt-phantom" -n 2 $SMALL -o "$T/ro"
    else
        run --separate-stderr dlt-phantom -n 2 $SMALL -o "$T/ro"
    fi
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"dlt-phantom: error: $T/ro/"* ]]
    [ -z "$(ls -A "$T/ro")" ]
}

@test "missing parent folder, or -o naming a file: exit 1, nothing made" {
    run --separate-stderr dlt-phantom -n 1 $SMALL -o "$T/no/such"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"dlt-phantom: error: $T/no/such: cannot create"* ]]
    [ ! -e "$T/no" ]
    touch "$T/file"
    run --separate-stderr dlt-phantom -n 1 $SMALL -o "$T/file"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"not a directory"* ]]
}

@test "a failure part-way removes what this run wrote, and the folder it made" {
    # list.tsv is a folder: the last write fails after all volumes are written
    mkdir -p "$T/d/list.tsv"
    run --separate-stderr dlt-phantom -n 2 $SMALL -o "$T/d"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"list.tsv"* ]]
    [ "$(ls -A "$T/d")" = "list.tsv" ]
}
