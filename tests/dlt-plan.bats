#!/usr/bin/env bats
# dlt-plan: the fingerprint and plan of phantom datasets (CT, MR, anisotropic),
# budgets, dlt-normalize --plan FILE, and bad input.
bats_require_minimum_version 1.5.0

setup_file() {
    D="$BATS_FILE_TMPDIR"
    ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    dlt-phantom -q -n 3 --size 48,40,24 --spacing 3,3,6 -o "$D/ct"
    # anisotropic: z spacings 6, 7, 8 mm under 2 mm in-plane
    for z in 6 7 8; do dlt-phantom -q -n 1 --first $z --size 40,40,16 --spacing 2,2,$z -o "$D/an$z"; done
    { printf 'id\timage\tlabel\n'
      for z in 6 7 8; do printf 'c%s\tan%s/img%04d.nii.gz\tan%s/label%04d.nii.gz\n' $z $z $z $z $z; done; } > "$D/an.tsv"
}

setup() {
    D="$BATS_FILE_TMPDIR"
    T="$BATS_TEST_TMPDIR"
    ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
}

key() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

@test "--help to stdout, exit 0; --version" {
    run dlt-plan --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--list"*"--memory"*"--minutes"* ]]
    run dlt-plan --version
    [[ "$output" == "dlt-plan "* ]]
}

@test "CT phantoms: fingerprint, foreground clip + z-score, patch on the network's multiple" {
    run --separate-stderr dlt-plan --list "$D/ct/list.tsv" -o "$T/p"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    cat "$T/p"
    [ "$(head -1 "$T/p")" = "DLTPLAN 1" ]
    [ "$(tail -1 "$T/p")" = "end" ]
    [ "$(key modality "$T/p")" = ct ]
    [ "$(key cases "$T/p")" = 3 ]
    [ "$(key classes "$T/p")" = 14 ]
    [ "$(key target_spacing "$T/p")" = 3,3,6 ]
    [ "$(key anisotropic_axis "$T/p")" = none ]
    # the clip is the foreground's 0.5 and 99.5 percentiles, inside the phantom's HU range
    n=$(key normalize "$T/p")
    [[ "$n" =~ ^clip=-?[0-9.]+,[0-9.]+\;zscore=[0-9.]+,[0-9.]+$ ]]
    # the same spacing everywhere: no resampling step
    [[ "$n" != *spacing* ]]
    [ "$(key patch "$T/p")" = 48,40,24 ]
    [ "$(key filters "$T/p")" = 16,32,64,128 ]
    # z (6 mm) is halved with x and y (3 mm) until its 24 voxels run short
    [ "$(key strides "$T/p")" = 1x1x1,2x2x2,2x2x2,2x2x1 ]
    # 13 organ fractions and the background, summing to 1
    key class_fraction "$T/p" | tr ',' '\n' | awk '{ s += $1; n++ } END { exit !(n == 14 && s > 0.999 && s < 1.001) }'
    [[ "$stderr" == *"3 cases, ct: patch 48,40,24"* ]]
}

@test "dlt-normalize --plan FILE applies the plan's normalize steps and records them" {
    dlt-plan -q --list "$D/ct/list.tsv" -o "$T/p"
    run --separate-stderr dlt-normalize --plan "$T/p" "$D/ct/img0001.nii.gz" -o "$T/n.nii.gz"
    [ "$status" -eq 0 ]
    dlt-info "$T/n.nii.gz" | grep -q "description *dlt:$(key normalize "$T/p")"
    # the same as the steps given as text
    dlt-normalize --plan "$(key normalize "$T/p")" "$D/ct/img0001.nii.gz" -o "$T/m.nii"
    dlt-normalize --plan "$T/p" "$D/ct/img0001.nii.gz" -o "$T/n.nii"
    cmp "$T/m.nii" "$T/n.nii"
    # a file that is not a plan
    run --separate-stderr dlt-normalize --plan "$D/ct/list.tsv" "$D/ct/img0001.nii.gz" -o "$T/x.nii"
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"not a dlt plan"* ]]
    [ ! -e "$T/x.nii" ]
}

@test "--modality mr: per-image z-score; the guess says MR for whitened images" {
    dlt-plan -q --list "$D/ct/list.tsv" --modality mr -o "$T/p"
    [ "$(key modality "$T/p")" = mr ]
    [ "$(key normalize "$T/p")" = whiten ]
    mkdir "$T/w"
    for i in 1 2 3; do
        dlt-normalize -q --whiten "$D/ct/img000$i.nii.gz" -o "$T/w/img000$i.nii.gz"
        cp "$D/ct/label000$i.nii.gz" "$T/w/"
    done
    cp "$D/ct/list.tsv" "$T/w/"
    dlt-plan -q --list "$T/w/list.tsv" -o "$T/q"
    [ "$(key modality "$T/q")" = mr ]
}

@test "an anisotropic axis gets the 10th percentile of its spacings, and a resampling step" {
    dlt-plan -q --list "$D/an.tsv" -o "$T/p"
    cat "$T/p"
    [ "$(key spacing_median "$T/p")" = 2,2,7 ]
    [ "$(key anisotropic_axis "$T/p")" = z ]
    [ "$(key target_spacing "$T/p")" = 2,2,6.2 ]
    [[ "$(key normalize "$T/p")" == *";spacing=2,2,6.2" ]]
    # the coarse z axis is not halved until x and y (2 mm) have caught up
    [ "$(key strides "$T/p")" = 1x1x1,2x2x1,2x2x2,2x2x2 ]
    [ "$(key patch "$T/p")" = 40,40,20 ]
}

@test "the budget: less memory or time, a smaller patch and fewer steps" {
    dlt-plan -q --list "$D/ct/list.tsv" -o "$T/a"
    dlt-plan -q --list "$D/ct/list.tsv" --memory 40 -o "$T/b"
    dlt-plan -q --list "$D/ct/list.tsv" --minutes 5 -o "$T/c"
    pa=$(key patch "$T/a" | tr ',' '*' | bc) pb=$(key patch "$T/b" | tr ',' '*' | bc)
    echo "$pa $pb"
    [ "$pb" -lt "$pa" ]
    [ "$(key steps "$T/c")" -lt "$(key steps "$T/a")" ]
    dlt-plan -q --list "$D/ct/list.tsv" --max-batch 2 -o "$T/d"
    [ "$(key batch "$T/d")" = 2 ]
    [ "$(key speed "$T/d")" = 400000 ]
    # this machine's speed, timed on the planned network
    run --separate-stderr dlt-plan --list "$D/ct/list.tsv" --speed measure --memory 100 -o "$T/e"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"measured "*" patch voxels/s training on cpu"* ]]
    grep -qE '^speed [0-9]+ measured$' "$T/e"
    run --separate-stderr dlt-plan --list "$D/ct/list.tsv" --speed measure --device nodevice
    [ "$status" -eq 1 ]
    [ -z "$output" ]
}

@test "bad input: a clear message, nothing on stdout, no plan file" {
    run --separate-stderr dlt-plan
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    run --separate-stderr dlt-plan --list "$T/none.tsv"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ "$stderr" == *"none.tsv"* ]]
    # a case without a label
    printf 'id\timage\nc1\t%s\n' "$D/ct/img0001.nii.gz" > "$T/u.tsv"
    run --separate-stderr dlt-plan --list "$T/u.tsv" -o "$T/p"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"c1 has no label"* ]]
    [ ! -e "$T/p" ]
    # image and label on different grids
    printf 'id\timage\tlabel\nc1\t%s\t%s\n' "$D/ct/img0001.nii.gz" "$D/an6/label0006.nii.gz" > "$T/g.tsv"
    run --separate-stderr dlt-plan --list "$T/g.tsv" -o "$T/p"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"case c1"* ]]
    [ ! -e "$T/p" ]
    for bad in "--modality pet" "--memory 0" "--minutes x" "--speed -1" "--max-batch 1" "--bogus"; do
        run --separate-stderr dlt-plan --list "$D/ct/list.tsv" $bad
        [ "$status" -eq 2 ]
        [ -z "$output" ]
    done
    run --separate-stderr dlt-plan --list "$D/ct/list.tsv" -o "$T/nodir/p"
    [ "$status" -eq 1 ]
    [ ! -e "$T/nodir" ]
}

@test "a label volume takes only the plan's geometry steps (so one plan serves image and label)" {
    dlt-plan -q --list "$D/an.tsv" -o "$T/p"
    run --separate-stderr dlt-normalize --label --plan "$T/p" "$D/an6/label0006.nii.gz" -o "$T/l.nii.gz"
    [ "$status" -eq 0 ]
    dlt-normalize -q --plan "$T/p" "$D/an6/img0006.nii.gz" -o "$T/i.nii.gz"
    # image and label land on the same grid
    [ "$(dlt-info --json "$T/l.nii.gz" | grep -o '"dims":[^]]*')" = "$(dlt-info --json "$T/i.nii.gz" | grep -o '"dims":[^]]*')" ]
    dlt-info "$T/l.nii.gz" | grep -q 'description *dlt:spacing=2,2,6.2:nearest'
    # a plan without geometry: the label is copied, its description kept
    dlt-plan -q --list "$D/ct/list.tsv" -o "$T/q"
    dlt-normalize -q --label --plan "$T/q" "$D/ct/label0001.nii.gz" -o "$T/c.nii"
    dlt-info "$T/c.nii" | grep -q 'description *dlt-phantom'
    # intensity options given by hand are still refused on a label
    run --separate-stderr dlt-normalize --label --whiten "$D/ct/label0001.nii.gz" -o "$T/x.nii"
    [ "$status" -ne 0 ]
    [ ! -e "$T/x.nii" ]
}
