#!/usr/bin/env bats
# dlt-dice: hand-computed cube cases, self-comparison, options (--labels,
# --classes, --model, --summary, --list, --no-distances, stdin), an
# independent scipy implementation, and bad input (grids, non-integer
# labels, missing files, list lines), each with nothing on stdout.
# Fixtures: tests/data (made by tests/data/mkfixtures.py).

bats_require_minimum_version 1.5.0

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    export PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    D="$ROOT/tests/data"
    H="$ROOT/tests/helpers/normdice_check.py"
    T="$BATS_TEST_TMPDIR"
    HDR=$'case\tclass\tname\tdice\tprecision\trecall\tvol_pred_ml\tvol_ref_ml\thd95\tassd'
}

@test "--help to stdout, exit 0; --version" {
    run --separate-stderr dlt-dice --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--summary"* && "$output" == *"--list FILE"* ]]
    [ -z "$stderr" ]
    run dlt-dice --version
    [ "$status" -eq 0 ]
    [[ "$output" == "dlt-dice "* ]]
}

@test "cube against a copy shifted by one voxel: the hand-computed values" {
    # voxel 2x1x1 mm. Class 1: 48 of 64 voxels overlap -> Dice 0.75; 56
    # surface voxels each, 16 at 2 mm (the x faces), 4 at 1 mm, 36 at 0 ->
    # ASSD 36/56 = 0.642857 mm; HD95 of 72x0, 8x1, 32x2 = 2 mm; 64 voxels
    # of 2 mm^3 = 0.128 ml. Class 2 only in REF: Dice 0, inf mm.
    # Class 3 identical: 1 and 0 mm.
    run --separate-stderr dlt-dice "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "$HDR" ]
    [ "${lines[1]}" = $'cube\t1\t-\t0.750000\t0.750000\t0.750000\t0.128\t0.128\t2\t0.642857' ]
    [ "${lines[2]}" = $'cube\t2\t-\t0.000000\t0.000000\t0.000000\t0\t0.016\tinf\tinf' ]
    [ "${lines[3]}" = $'cube\t3\t-\t1.000000\t1.000000\t1.000000\t0.016\t0.016\t0\t0' ]
    [ "${#lines[@]}" -eq 4 ]
    [ -z "$stderr" ]
}

@test "--nsd: normalised surface Dice at a tolerance, per class, in the summary too" {
    # the cubes above: class 1 surface distances per side 36 x 0, 4 x 1 mm,
    # 16 x 2 mm -> NSD at 1 mm (36 + 4) * 2 / 112 = 0.714286, at 2 mm 1;
    # class 2 only in REF: 0; class 3 identical: 1
    run --separate-stderr dlt-dice --nsd 2,1=1 "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "$HDR"$'\tnsd' ]
    [ "${lines[1]}" = $'cube\t1\t-\t0.750000\t0.750000\t0.750000\t0.128\t0.128\t2\t0.642857\t0.714286' ]
    [ "${lines[2]}" = $'cube\t2\t-\t0.000000\t0.000000\t0.000000\t0\t0.016\tinf\tinf\t0.000000' ]
    [ "${lines[3]}" = $'cube\t3\t-\t1.000000\t1.000000\t1.000000\t0.016\t0.016\t0\t0\t1.000000' ]
    run dlt-dice --nsd 2 "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [[ "${lines[1]}" == *$'\t1.000000' ]]
    # only the classes named: the others print '-'
    run dlt-dice --nsd 1=1 "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [[ "${lines[1]}" == *$'\t0.714286' ]]
    [[ "${lines[3]}" == *$'\t0\t-' ]]
    # summary: NSD (0.714286 + 0 + 1) / 3 in the foreground mean
    run dlt-dice --summary --nsd 2,1=1 "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [[ "${lines[19]}" == $'mean\tfg\tforeground\t0.583333\t'*$'\tinf\tinf\t0.571429' ]]
    for bad in 0 -1 x 1,2 1=0 =1 1, 70000=1 2,1=; do
        run --separate-stderr dlt-dice --nsd "$bad" "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
        echo "$bad: $status $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        [[ "$stderr" == *"--nsd: '$bad'"* ]]
    done
    run --separate-stderr dlt-dice --nsd 1 --no-distances "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [ "$status" -eq 2 ]
    [ -z "$output" ]
}

@test "a volume against itself: Dice 1 and 0 mm everywhere; absent class marked '-'" {
    run dlt-dice "$D/cube_shift.nii.gz" "$D/cube_shift.nii.gz"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 4 ]
    for i in 1 2 3; do
        [[ "${lines[$i]}" == *$'\t1.000000\t1.000000\t1.000000\t'*$'\t0\t0' ]]
    done
    run dlt-dice "$D/cube.nii.gz" "$D/cube.nii.gz"
    [ "${lines[2]}" = $'cube\t2\t-\t-\t-\t-\t-\t-\t-\t-' ]
}

@test "phantom against itself: Dice 1, 0 mm for every class, names from its classes.tsv" {
    command -v dlt-phantom >/dev/null || skip "dlt-phantom not built"
    dlt-phantom -q -n 1 --seed 3 -o "$T/ph"
    run dlt-dice --classes "$T/ph/classes.tsv" "$T/ph/label0001.nii.gz" "$T/ph/label0001.nii.gz"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 14 ]
    [[ "${lines[1]}" == $'label0001\t1\tspleen\t'* ]]
    n=$(printf '%s\n' "${lines[@]:1}" | awk -F'\t' '!($4 == "1.000000" && $9 == "0" && $10 == "0")' | wc -l)
    [ "$n" -eq 0 ]
}

@test "an independent implementation (numpy/scipy, medpy conventions) agrees" {
    /usr/bin/python3 "$H" mkpair "$T" || { [ $? -eq 77 ] && skip "numpy/scipy/nibabel absent"; false; }
    /usr/bin/python3 "$H" metrics "$T/pred.nii.gz" "$T/ref.nii.gz" >"$T/ref.txt"
    dlt-dice --nsd 1.5 "$T/pred.nii.gz" "$T/ref.nii.gz" | tail -n +2 | cut -f2,4- >"$T/ours.txt"
    [ "$(wc -l <"$T/ours.txt")" -eq 2 ]
    run paste "$T/ours.txt" "$T/ref.txt"
    echo "$output"
    # columns: ours (class, 8 values: dice..assd, nsd at 1.5 mm), theirs (the same), tab/space mixed
    bad=$(paste "$T/ours.txt" "$T/ref.txt" | tr ' ' '\t' | awk -F'\t' '{
        for (i = 2; i <= 9; i++) { a = $i; b = $(i + 9); d = a - b; if (d < 0) d = -d;
            m = (a < 0 ? -a : a); if (m < 1) m = 1; if (d / m > 2e-4 || $1 != $10) print NR, i, a, b } }')
    [ -z "$bad" ]
}

@test "PRED or REF from stdin; both from stdin is a usage error" {
    run dlt-dice - "$D/cube_shift.nii.gz" <"$D/cube.nii.gz"
    [ "$status" -eq 0 ]
    [ "${lines[1]}" = $'stdin\t1\t-\t0.750000\t0.750000\t0.750000\t0.128\t0.128\t2\t0.642857' ]
    run dlt-dice --case c7 "$D/cube.nii.gz" - <"$D/cube_shift.nii.gz"
    [ "${lines[1]}" = $'c7\t1\t-\t0.750000\t0.750000\t0.750000\t0.128\t0.128\t2\t0.642857' ]
    run --separate-stderr dlt-dice - - <"$D/cube.nii.gz"
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    [[ "$stderr" == *"both be stdin"* ]]
}

@test "--labels restricts and may name background; --no-distances prints '-'" {
    run dlt-dice --labels 3,1 "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 3 ]
    [[ "${lines[1]}" == $'cube\t3\t'* && "${lines[2]}" == $'cube\t1\t'* ]]
    run dlt-dice --labels 0 "$D/cube.nii.gz" "$D/cube.nii.gz"
    [[ "${lines[1]}" == $'cube\t0\t-\t1.000000\t'* ]]
    run dlt-dice --no-distances "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [ "${lines[1]}" = $'cube\t1\t-\t0.750000\t0.750000\t0.750000\t0.128\t0.128\t-\t-' ]
    run --separate-stderr dlt-dice --labels 1,x "$D/cube.nii.gz" "$D/cube.nii.gz"
    [ "$status" -eq 2 ]
    [ -z "$output" ]
}

@test "--classes names the classes and chooses them (background left out)" {
    printf 'id\tname\n0\tbackground\n1\tcube\n3\tbar\n7\tnever\n' >"$T/classes.tsv"
    run dlt-dice --classes "$T/classes.tsv" "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 4 ]
    [[ "${lines[1]}" == $'cube\t1\tcube\t0.750000\t'* ]]
    [[ "${lines[2]}" == $'cube\t3\tbar\t1.000000\t'* ]]
    [ "${lines[3]}" = $'cube\t7\tnever\t-\t-\t-\t-\t-\t-\t-' ]
    printf '1\tcube\nx\ty\n' >"$T/bad.tsv"
    run --separate-stderr dlt-dice --classes "$T/bad.tsv" "$D/cube.nii.gz" "$D/cube.nii.gz"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"bad.tsv:2:"* ]]
}

@test "--model takes class names from the model metadata" {
    python3 - "$T/m.dltm" <<'EOF'
import json, struct, sys
h = json.dumps({"__metadata__": {"class_names": '["background","cube","box","bar"]'},
                "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + struct.pack("<f", 1.0))
EOF
    run dlt-dice --model "$T/m.dltm" "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [ "$status" -eq 0 ]
    [[ "${lines[1]}" == $'cube\t1\tcube\t'* && "${lines[2]}" == $'cube\t2\tbox\t'* && "${lines[3]}" == $'cube\t3\tbar\t'* ]]
    run --separate-stderr dlt-dice --model "$D/cube.nii.gz" "$D/cube.nii.gz" "$D/cube.nii.gz"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
}

@test "--summary: per-class statistics and the foreground mean" {
    run dlt-dice --summary "$D/cube.nii.gz" "$D/cube_shift.nii.gz"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq $((1 + 3 + 5 * 3 + 1)) ]
    [[ "${lines[4]}" == $'mean\t1\t-\t0.750000\t'* ]]
    [[ "${lines[7]}" == $'std\t1\t-\t-\t'* ]]
    # fg: Dice (0.75 + 0 + 1) / 3; a class with an empty side makes mean distances inf
    [[ "${lines[19]}" == $'mean\tfg\tforeground\t0.583333\t'*$'\tinf\tinf' ]]
}

@test "--list: relative paths, header row, per-case rows and summary over cases" {
    mkdir -p "$T/l/sub"
    cp "$D/cube.nii.gz" "$D/cube_shift.nii.gz" "$T/l/sub/"
    printf 'case\tpred\tref\nA\tsub/cube.nii.gz\tsub/cube_shift.nii.gz\nB\tsub/cube.nii.gz\tsub/cube.nii.gz\n' >"$T/l/pairs.tsv"
    cd "$T"
    run --separate-stderr dlt-dice --summary --labels 1 --list l/pairs.tsv
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 9 ]
    [[ "${lines[1]}" == $'A\t1\t-\t0.750000\t'* && "${lines[2]}" == $'B\t1\t-\t1.000000\t'* ]]
    [[ "${lines[3]}" == $'mean\t1\t-\t0.875000\t'*$'\t1\t0.321429' ]]
    [[ "${lines[4]}" == $'std\t1\t-\t0.176777\t'* ]]
    [[ "${lines[5]}" == $'median\t1\t-\t0.875000\t'* ]]
    [[ "${lines[6]}" == $'min\t1\t-\t0.750000\t'* && "${lines[7]}" == $'max\t1\t-\t1.000000\t'* ]]
}

@test "grids that differ: the message says how; nothing on stdout" {
    run --separate-stderr dlt-dice "$D/cube.nii.gz" "$D/cube_moved.nii.gz"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == "dlt-dice: error: "*"not on the same grid"*"origin (-11,-4.5,-3.5) vs (-11,-1.5,-3.5) mm"* ]]
    run --separate-stderr dlt-dice "$D/cube.nii.gz" "$D/cube_small.nii.gz"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"dims 12x10x8 vs 12x10x7"* ]]
    # a tolerance large enough accepts the moved origin
    run dlt-dice --tolerance 5 "$D/cube.nii.gz" "$D/cube_moved.nii.gz"
    [ "$status" -eq 0 ]
}

@test "a label file holding non-integers is refused, naming the file and voxel" {
    run --separate-stderr dlt-dice "$D/float_label.nii.gz" "$D/cube.nii.gz"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"float_label.nii.gz"*"0.5"* ]]
}

@test "missing file, not NIfTI, and usage errors: exit codes, nothing on stdout" {
    run --separate-stderr dlt-dice "$T/nope.nii.gz" "$D/cube.nii.gz"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == "dlt-dice: error: "*"nope.nii.gz"* ]]
    run --separate-stderr dlt-dice "$H" "$D/cube.nii.gz"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    run --separate-stderr dlt-dice "$D/cube.nii.gz"
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    run --separate-stderr dlt-dice --list x "$D/cube.nii.gz"
    [ "$status" -eq 2 ]
    run --separate-stderr dlt-dice --bogus a b
    [ "$status" -eq 2 ]
    [ -z "$output" ]
}

@test "a list with a missing path, or a malformed line, names the line; nothing on stdout" {
    printf 'case\tpred\tref\nA\t%s\t%s\nB\t%s\tmissing.nii.gz\n' "$D/cube.nii.gz" "$D/cube.nii.gz" "$D/cube.nii.gz" >"$T/pairs.tsv"
    run --separate-stderr dlt-dice --list "$T/pairs.tsv"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"pairs.tsv:3:"*"missing.nii.gz"* ]]
    printf 'case\tpred\tref\nA\t%s\n' "$D/cube.nii.gz" >"$T/short.tsv"
    run --separate-stderr dlt-dice --list "$T/short.tsv"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"short.tsv:2: expected 3 tab-separated columns"* ]]
    # a later case failing (grid) still leaves stdout empty
    printf 'case\tpred\tref\nA\t%s\t%s\nB\t%s\t%s\n' "$D/cube.nii.gz" "$D/cube.nii.gz" "$D/cube.nii.gz" "$D/cube_small.nii.gz" >"$T/grid.tsv"
    run --separate-stderr dlt-dice --list "$T/grid.tsv"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"grid.tsv:3 (case B)"*"dims"* ]]
}

@test "real data (when present): a hippocampus label against itself" {
    S="${DLT_SHARED:-$ROOT/../shared}/data/msd-hippocampus/labelsTr"
    [ -d "$S" ] || skip "shared data absent"
    f=$(ls "$S"/*.nii.gz | head -1)
    run dlt-dice --summary "$f" "$f"
    [ "$status" -eq 0 ]
    [[ "${lines[-1]}" == $'mean\tfg\tforeground\t1.000000\t1.000000\t1.000000\t'*$'\t0\t0' ]]
}
