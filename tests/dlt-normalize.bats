#!/usr/bin/env bats
# dlt-normalize: each method's effect (read back by an independent stdlib
# NIfTI reader), chaining order and the recorded description, geometry round
# trips (reorient, crop-or-pad, resample), labels and masks, patch streams
# (per-patch steps, labels untouched, header record, whole-volume steps
# refused), stdin/stdout, and bad input (exit codes, nothing on stdout, no
# file left behind). Fixtures: tests/data (tests/data/mkfixtures.py).

bats_require_minimum_version 1.5.0

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    export PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    D="$ROOT/tests/data"
    H="$ROOT/tests/helpers/normdice_check.py"
    T="$BATS_TEST_TMPDIR"
}

val() { python3 "$H" info "$1" | awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }'; }
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

@test "--help to stdout, exit 0; --version" {
    run --separate-stderr dlt-normalize --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--ct LO,HI"* && "$output" == *"--reorient CODE"* ]]
    [ -z "$stderr" ]
    run dlt-normalize --version
    [[ "$output" == "dlt-normalize "* ]]
}

@test "--ct maps the HU window to [0,1], --ct-sym to [-1,1]; recorded in the description" {
    dlt-normalize --ct -500,300 "$D/img.nii.gz" -o "$T/ct.nii.gz"
    [ "$(val "$T/ct.nii.gz" min)" = 0 ]
    [ "$(val "$T/ct.nii.gz" max)" = 1 ]
    [ "$(val "$T/ct.nii.gz" descrip)" = "dlt:ct=-500,300" ]
    dlt-normalize --ct-sym -500,300 "$D/img.nii.gz" -o "$T/cs.nii"
    [ "$(val "$T/cs.nii" min)" = -1 ]
    [ "$(val "$T/cs.nii" max)" = 1 ]
    # the geometry is the input's
    [ "$(val "$T/cs.nii" affine)" = "$(val "$D/img.nii.gz" affine)" ]
}

@test "--whiten gives mean 0, std 1; --zero-one and --one-one span their ranges" {
    dlt-normalize --whiten "$D/img.nii.gz" -o "$T/w.nii"
    near "$(val "$T/w.nii" mean)" 0 1e-5
    near "$(val "$T/w.nii" std)" 1 1e-4
    dlt-normalize --zero-one "$D/img.nii.gz" -o "$T/z.nii"
    [ "$(val "$T/z.nii" min)" = 0 ] && [ "$(val "$T/z.nii" max)" = 1 ]
    dlt-normalize --one-one "$D/img.nii.gz" -o "$T/o.nii"
    [ "$(val "$T/o.nii" min)" = -1 ] && [ "$(val "$T/o.nii" max)" = 1 ]
}

@test "--clip and --clip-percentile bound the values" {
    dlt-normalize --clip -100,200 "$D/img.nii.gz" -o "$T/c.nii"
    [ "$(val "$T/c.nii" min)" = -100 ] && [ "$(val "$T/c.nii" max)" = 200 ]
    dlt-normalize --clip-percentile 0,100 "$D/img.nii.gz" -o "$T/p0.nii"
    [ "$(val "$T/p0.nii" min)" = "$(val "$D/img.nii.gz" min)" ]
    dlt-normalize --clip-percentile 10,90 "$D/img.nii.gz" -o "$T/p.nii"
    min=$(val "$T/p.nii" min) max=$(val "$T/p.nii" max)
    awk -v a="$min" -v b="$max" -v lo="$(val "$D/img.nii.gz" min)" -v hi="$(val "$D/img.nii.gz" max)" \
        'BEGIN { exit !(a > lo + 50 && b < hi - 50) }'
    [ "$(val "$T/p.nii" descrip)" = "dlt:clip-pct=10,90" ]
}

@test "methods chain in the order given, and the record keeps that order" {
    dlt-normalize --ct -500,300 --whiten "$D/img.nii.gz" -o "$T/a.nii"
    dlt-normalize --whiten --ct -500,300 "$D/img.nii.gz" -o "$T/b.nii"
    [ "$(val "$T/a.nii" descrip)" = "dlt:ct=-500,300;whiten" ]
    [ "$(val "$T/b.nii" descrip)" = "dlt:whiten;ct=-500,300" ]
    near "$(val "$T/a.nii" mean)" 0 1e-5
    # whitened values lie far inside the window: ct maps them all near 0.625
    near "$(val "$T/b.nii" mean)" 0.625 0.01
    # a second run appends to an earlier dlt record; --plan takes the text form
    dlt-normalize --plan 'zero-one;clip=0.1,0.9' "$T/a.nii" -o "$T/c.nii"
    [ "$(val "$T/c.nii" descrip)" = "dlt:ct=-500,300;whiten;zero-one;clip=0.1,0.9" ]
    [ "$(val "$T/c.nii" max)" = 0.9 ]
    dlt-normalize --no-record --zero-one "$T/a.nii" -o "$T/d.nii"
    [ "$(val "$T/d.nii" descrip)" = "dlt:ct=-500,300;whiten" ]
}

@test "reorient to RAS and back: identical bytes and geometry" {
    dlt-normalize --no-record --reorient RAS "$D/img.nii.gz" -o "$T/ras.nii"
    [ "$(val "$T/ras.nii" dims)" = "16 10 12" ]
    [ "$(val "$T/ras.nii" affine)" = "1.5 0 0 -2.5 0 1 0 -10 0 0 2 5" ]
    [ "$(val "$T/ras.nii" mean)" = "$(val "$D/img.nii.gz" mean)" ]
    # back to the input's LSA: its dims and affine
    dlt-normalize --no-record --reorient lsa "$T/ras.nii" -o "$T/lsa.nii"
    [ "$(val "$T/lsa.nii" dims)" = "16 12 10" ]
    [ "$(val "$T/lsa.nii" affine)" = "$(val "$D/img.nii.gz" affine)" ]
    run python3 "$H" diff "$D/img.nii.gz" "$T/lsa.nii"
    [ "$output" = "maxdiff 0 affinediff 0" ]
    # and once more to RAS: the same bytes as the first RAS file (both
    # written by dlt), also through LPS and a pipe
    dlt-normalize --no-record --reorient RAS "$T/lsa.nii" -o "$T/ras2.nii"
    cmp "$T/ras.nii" "$T/ras2.nii"
    dlt-normalize --no-record --reorient LPS "$T/ras.nii" | dlt-normalize --no-record --reorient RAS >"$T/ras3.nii"
    cmp "$T/ras.nii" "$T/ras3.nii"
}

@test "crop-or-pad there and back: identical data and geometry; the origin moves by the offset" {
    dlt-normalize --no-record --size 16,12,10 "$D/img.nii.gz" -o "$T/orig.nii"
    dlt-normalize --no-record --size 21,8,10 "$T/orig.nii" -o "$T/cp.nii"
    [ "$(val "$T/cp.nii" dims)" = "21 8 10" ]
    # x padded by 2 before (x axis points left, 1.5 mm): origin 20 -> 23;
    # y cropped by 2 (axis j is +z, 2 mm): 5 -> 9
    [ "$(val "$T/cp.nii" affine)" = "-1.5 0 0 23 0 0 1 -10 0 2 0 9" ]
    dlt-normalize --no-record --size 21,12,10 "$T/orig.nii" | dlt-normalize --no-record --size 16,12,10 >"$T/back.nii"
    cmp "$T/orig.nii" "$T/back.nii"
}

@test "resample to half the voxel size and back: the input grid, values within tolerance" {
    dlt-normalize --spacing 0.75,0.75,1 "$D/smooth.nii.gz" -o "$T/up.nii"
    [ "$(val "$T/up.nii" dims)" = "40 32 24" ]
    [ "$(val "$T/up.nii" pixdim)" = "0.75 0.75 1" ]
    # the extent centre stays: origin -14 - 0.375 in x
    [ "$(val "$T/up.nii" affine)" = "0.75 0 0 -14.375 0 0.75 0 -11.375 0 0 1 -11.5" ]
    dlt-normalize --spacing 1.5,1.5,2 "$T/up.nii" -o "$T/back.nii"
    run python3 "$H" diff "$D/smooth.nii.gz" "$T/back.nii" 1
    [[ "$output" == *"affinediff 0" ]]
    d=$(echo "$output" | awk '{ print $2 }')
    near "$d" 0 2.5   # values span about 300
    dlt-normalize --interp bspline --spacing 0.75,0.75,1 "$D/smooth.nii.gz" | dlt-normalize --interp bspline --spacing 1.5,1.5,2 -o "$T/bs.nii"
    d2=$(python3 "$H" diff "$D/smooth.nii.gz" "$T/bs.nii" 1 | awk '{ print $2 }')
    near "$d2" 0 0.5
    [ "$(val "$T/bs.nii" descrip)" = "dlt:spacing=0.75,0.75,1:bspline;spacing=1.5,1.5,2:bspline" ]
}

@test "--label: nearest resampling keeps the label set, 2x and back is exact; intensity steps refused" {
    dlt-normalize --label --spacing 1,0.5,0.5 "$D/cube.nii.gz" -o "$T/up.nii.gz"
    [ "$(val "$T/up.nii.gz" dims)" = "24 20 16" ]
    [ "$(val "$T/up.nii.gz" max)" = 3 ]
    [ "$(val "$T/up.nii.gz" nonzero)" -eq $(((64 + 8) * 8)) ]
    dlt-normalize --label --spacing 2,1,1 "$T/up.nii.gz" -o "$T/back.nii"
    run dlt-dice "$D/cube.nii.gz" "$T/back.nii"
    [ "$status" -eq 0 ]
    [[ "${lines[1]}" == *$'\t1.000000\t1.000000\t1.000000\t'* && "${lines[2]}" == *$'\t-\t'* ]]
    run --separate-stderr dlt-normalize --label --whiten "$D/cube.nii.gz" -o "$T/x.nii"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"label volume"* ]]
    [ ! -e "$T/x.nii" ]
}

@test "--mask and --nonzero: statistics inside, outside set to 0; a mask on another grid is refused" {
    dlt-normalize --whiten --mask "$D/mask.nii.gz" "$D/img.nii.gz" -o "$T/m.nii"
    [ "$(val "$T/m.nii" nonzero)" -le $((8 * 7 * 7)) ]
    [ "$(val "$T/m.nii" descrip)" = "dlt:whiten=mask" ]
    # the mask follows a geometric step that comes first
    dlt-normalize --reorient RAS --whiten --mask "$D/mask.nii.gz" "$D/img.nii.gz" -o "$T/m2.nii"
    [ "$(val "$T/m2.nii" nonzero)" -eq "$(val "$T/m.nii" nonzero)" ]
    dlt-normalize --clip 0,5000 --whiten --nonzero "$D/img.nii.gz" -o "$T/nz.nii"
    dlt-normalize --clip 0,5000 "$D/img.nii.gz" -o "$T/c.nii"
    [ "$(val "$T/nz.nii" nonzero)" -eq "$(val "$T/c.nii" nonzero)" ]
    run --separate-stderr dlt-normalize --whiten --mask "$D/cube.nii.gz" "$D/img.nii.gz" -o "$T/bad.nii"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"mask and image"*"dims"* ]]
    [ ! -e "$T/bad.nii" ]
    run --separate-stderr dlt-normalize --nonzero --ct 0,1 "$D/img.nii.gz"
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"--nonzero given without --whiten"* ]]
}

@test "stdin to stdout" {
    dlt-normalize --zero-one <"$D/img.nii.gz" >"$T/s.nii"
    [ "$(val "$T/s.nii" max)" = 1 ]
    cat "$D/img.nii.gz" | dlt-normalize --ct -500,300 - | dlt-normalize --reorient RAS >"$T/p.nii"
    [ "$(val "$T/p.nii" descrip)" = "dlt:ct=-500,300;reorient=RAS" ]
}

@test "patch stream: per-patch steps on the image channels, labels untouched, header record appended" {
    dlt-normalize --zero-one "$D/stream.dltp" >"$T/z.dltp"
    run python3 "$H" stream "$T/z.dltp"
    [ "${lines[0]}" = "preprocessing ct=-1000,800;zero-one" ]
    [ "${#lines[@]}" -eq 4 ]
    for i in 1 2 3; do [[ "${lines[$i]}" == "case"?" 0,1,"*" 0,1,"*" labels="* ]]; done
    # the labels are the input's
    diff <(python3 "$H" stream "$D/stream.dltp" | awk 'NR > 1 { print $NF }') <(python3 "$H" stream "$T/z.dltp" | awk 'NR > 1 { print $NF }')
    # from stdin, whitened per patch and channel
    cat "$D/stream.dltp" | dlt-normalize --whiten -o "$T/w.dltp"
    python3 "$H" stream "$T/w.dltp" | awk 'NR > 1 { for (i = 2; i <= 3; i++) { split($i, v, ","); if (v[3] > 1e-5 || v[3] < -1e-5) exit 1 } }'
    dlt-normalize --no-record --whiten "$D/stream.dltp" | python3 "$H" stream - | head -1 | grep -qx "preprocessing ct=-1000,800"
}

@test "patch stream: whole-volume steps, --label and --mask are refused with a clear message" {
    for a in "--spacing 2,2,2" "--size 4,4,4" "--reorient LPS"; do
        run --separate-stderr dlt-normalize --zero-one $a "$D/stream.dltp" -o "$T/x.dltp"
        [ "$status" -eq 1 ]
        [ -z "$output" ]
        [[ "$stderr" == "dlt-normalize: error: "*"stream.dltp: a patch stream: --"*"needs whole volumes"* ]]
        [ ! -e "$T/x.dltp" ]
    done
    run --separate-stderr dlt-normalize --whiten --mask "$D/mask.nii.gz" - <"$D/stream.dltp"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"stdin: a patch stream: --mask applies to volumes only"* ]]
}

@test "a corrupted patch stream is named; no output file left behind" {
    head -c 900 "$D/stream.dltp" >"$T/trunc.dltp"
    run --separate-stderr dlt-normalize --zero-one "$T/trunc.dltp" -o "$T/out.dltp"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"record 1"* ]]
    [ ! -e "$T/out.dltp" ]
    [ -z "$(ls "$T" | grep '\.tmp\.')" ]
}

@test "bad input: missing file, not NIfTI, empty input; nothing on stdout, no file left" {
    mkdir "$T/out"
    run --separate-stderr dlt-normalize --ct 0,1 "$T/nope.nii.gz" -o "$T/out/o.nii"
    [ "$status" -eq 1 ]
    [[ "$stderr" == "dlt-normalize: error: "*"nope.nii.gz"* ]]
    run --separate-stderr dlt-normalize --ct 0,1 "$H" -o "$T/out/o.nii"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    run --separate-stderr dlt-normalize --ct 0,1 </dev/null
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"stdin: empty input"* ]]
    run --separate-stderr dlt-normalize --ct 0,1 -o "$T/out/o.nii" </dev/null
    [ "$status" -eq 1 ]
    [ -z "$(ls -A "$T/out")" ]
}

@test "usage errors exit 2 with nothing on stdout" {
    for a in "" "--ct 800,-1000" "--ct 1" "--clip-percentile 5,101" "--spacing 0,1,1" "--size 0,4,4" \
        "--reorient RAX" "--reorient RAL" "--interp cubic --spacing 1" "--plan frob=1" "--zero-one a b" \
        "--nonzero --mask m --whiten" "--bogus"; do
        run --separate-stderr dlt-normalize $a "$D/img.nii.gz"
        echo "$a -> $status: $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        [[ "$stderr" == "dlt-normalize: "* ]]
    done
}

@test "phantom (LPS, both xforms): reorient and crop-pad round trips give the same bytes" {
    command -v dlt-phantom >/dev/null || skip "dlt-phantom not built"
    dlt-phantom -q -n 1 --seed 3 -o "$T/ph"
    dlt-normalize --no-record --reorient RAS "$T/ph/img0001.nii.gz" | dlt-normalize --no-record --reorient LPS >"$T/back.nii"
    cmp <(gzip -dc "$T/ph/img0001.nii.gz") "$T/back.nii"
    dlt-normalize --label --no-record --size 101,100,70 "$T/ph/label0001.nii.gz" |
        dlt-normalize --label --no-record --size 96,96,64 >"$T/lab.nii"
    cmp <(gzip -dc "$T/ph/label0001.nii.gz") "$T/lab.nii"
}

@test "real data (when present): the CT sample windowed and resampled keeps its extent centre" {
    S="${DLT_SHARED:-$ROOT/../shared}/data/ct-sample/example_ct_sm.nii.gz"
    [ -f "$S" ] || skip "shared data absent"
    dlt-normalize --ct -1000,800 --spacing 2,2,2 --reorient RAS "$S" -o "$T/ct.nii.gz"
    # interpolated values stay inside the window
    [ "$(val "$T/ct.nii.gz" min)" = 0 ]
    awk -v m="$(val "$T/ct.nii.gz" max)" 'BEGIN { exit !(m > 0.9 && m <= 1) }'
    [ "$(val "$T/ct.nii.gz" pixdim)" = "2 2 2" ]
    [ "$(val "$T/ct.nii.gz" codes)" = "2 2" ]
    [ "$(val "$T/ct.nii.gz" descrip)" = "dlt:ct=-1000,800;spacing=2,2,2;reorient=RAS" ]
}
