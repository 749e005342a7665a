#!/usr/bin/env bats
# pipelines/: the plots, train.sh's usage, the demo and BTCV pipelines at
# tiny sizes (phantoms), the BTCV checksum check and the hippocampus
# pipeline (skipped without ../shared/data). The tiny runs check the
# plumbing (files, tables, pictures, no rework), not accuracy.

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    P="$ROOT/pipelines"
    BIN="${DLT_TEST_BIN:-$ROOT/bin}"
    D="$BATS_TEST_TMPDIR"
}

need_tools() {
    for t in "$@"; do [ -x "$BIN/$t" ] || skip "$t not built"; done
}
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
# make -n output with no step to run (the tool check aside)
no_work() { ! grep -E '^(dlt-|.*/(train|curve|boxes)\.sh|TITLE=|cp |awk )' <<< "$output"; }
png_w() { od -An -tu1 -j16 -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}'; }

dice_table() { # a dlt-dice-like table with $2 cases for classes 1..3
    { printf 'case\tclass\tname\tdice\tprecision\trecall\tvol_pred_ml\tvol_ref_ml\thd95\tassd\n'
      for c in $(seq "$2"); do for k in 1 2 3; do
          printf 'c%s\t%s\torgan %s\t0.%s\t0.%s\t0.%s\t1\t1\t-\t-\n' $c $k $k $((50 + 10 * k + c)) $((60 + c)) $((70 + k))
      done; done
      printf 'mean\t1\torgan 1\t0.6\t0.6\t0.7\t1\t1\t-\t-\nmean\tfg\tforeground\t0.6\t0.6\t0.7\t1\t1\t-\t-\n'; } > "$1"
}

@test "boxes.sh: Figure 2 from dlt-dice tables, any number of cases" {
    command -v gnuplot >/dev/null || skip "gnuplot missing"
    dice_table "$D/a.tsv" 5
    dice_table "$D/b.tsv" 2
    run "$P/plots/boxes.sh" "$D/fig.png" unet="$D/a.tsv" fcn="$D/b.tsv"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    is_png "$D/fig.png"
    [ "$(png_w "$D/fig.png")" -eq 1400 ]
}

@test "boxes.sh: bad arguments and unreadable tables" {
    run "$P/plots/boxes.sh" "$D/x.png"
    [ "$status" -eq 2 ]
    run "$P/plots/boxes.sh" "$D/x.png" "$D/a.tsv"
    [ "$status" -eq 2 ]
    [[ "$output" == *"expected NAME=FILE"* ]]
    run "$P/plots/boxes.sh" "$D/x.png" u="$D/missing.tsv"
    [ "$status" -eq 1 ]
    [[ "$output" == *"missing.tsv: cannot read"* ]]
    [ ! -e "$D/x.png" ]
}

@test "curve.sh: loss and validation Dice; repeated steps of a resumed run counted once" {
    command -v gnuplot >/dev/null || skip "gnuplot missing"
    { printf 'step\tloss\tlr\tpatches_per_s\telapsed_s\tval_dice_mean\tval_dice_a\n'
      for s in 10 20 30 20 30 40; do printf '%s\t%s\t0.001\t5\t1\t%s\tnan\n' $s "1.$s" $([ $s = 40 ] && echo 0.8 || echo nan); done; } > "$D/log.tsv"
    run "$P/plots/curve.sh" "$D/log.tsv" "$D/c.png" "title"
    [ "$status" -eq 0 ]
    is_png "$D/c.png"
    printf 'step\tloss\n' > "$D/empty.tsv"
    run "$P/plots/curve.sh" "$D/empty.tsv" "$D/e.png"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no rows"* ]]
}

@test "train.sh: usage errors" {
    run "$P/train.sh" ckpt
    [ "$status" -eq 2 ]
    run "$P/train.sh" "$D/ckpt" --list x.tsv
    [ "$status" -eq 2 ]
    [[ "$output" == *"no '--'"* ]]
}

@test "btcv checksums: prints sums when the list has none, checks them when it has" {
    mkdir -p "$D/raw/img" "$D/raw/label"
    echo a > "$D/raw/img/img0001.nii.gz"; echo b > "$D/raw/label/label0001.nii.gz"
    printf '# test\n-  img/img0001.nii.gz\n-  label/label0001.nii.gz\n' > "$D/S"
    run make -s -C "$P/btcv" checksums BTCV_DIR="$D/raw" SUMS="$D/S"
    [ "$status" -eq 0 ]
    [[ "$output" == *"records no checksums"* ]]
    echo "$output" | grep -E '^[0-9a-f]{64}  img/img0001.nii.gz$'
    { echo '# real'; echo "$output" | grep -E '^[0-9a-f]{64}  '; } > "$D/S2"
    run make -s -C "$P/btcv" checksums BTCV_DIR="$D/raw" SUMS="$D/S2"
    [ "$status" -eq 0 ]
    echo c > "$D/raw/img/img0001.nii.gz"
    run make -s -C "$P/btcv" checksums BTCV_DIR="$D/raw" SUMS="$D/S2"
    [ "$status" -ne 0 ]
    [[ "$output" == *"img0001.nii.gz: FAILED"* ]]
    # the shipped list names the 30 labelled training cases and their labels
    [ "$(grep -c '^-  img/img00[0-9][0-9].nii.gz$' "$ROOT/data/btcv/SHA256SUMS")" -eq 30 ]
    [ "$(grep -c '^-  label/label00[0-9][0-9].nii.gz$' "$ROOT/data/btcv/SHA256SUMS")" -eq 30 ]
}

@test "btcv PHANTOM=1: 12 configurations, results table and Figure-2 plots" {
    need_tools dlt-phantom dlt-normalize dlt-sample dlt-train dlt-infer dlt-dice
    command -v gnuplot >/dev/null || skip "gnuplot missing"
    run make -s -C "$P/btcv" PHANTOM=1 BIN="$BIN" OUT="$D/btcv" -j2
    [ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
    [ "$(head -1 "$D/btcv/results.tsv" | tr '\t' '\n' | wc -l)" -eq 13 ]
    head -1 "$D/btcv/results.tsv" | grep -q 'unet-balanced-balanced-ce'
    [ "$(wc -l < "$D/btcv/results.tsv")" -eq 15 ]
    grep -q '^spleen' "$D/btcv/results.tsv"
    grep -q '^mean' "$D/btcv/results.tsv"
    [ "$(ls "$D"/btcv/figure2-*.png | wc -l)" -eq 6 ]
    for f in "$D"/btcv/figure2-*.png; do is_png "$f"; done
    # a second run redoes nothing
    run make -n -C "$P/btcv" PHANTOM=1 BIN="$BIN" OUT="$D/btcv" "$D/btcv/results.tsv" figures
    [ "$status" -eq 0 ]
    no_work
}

@test "demo at tiny sizes: table, pictures, and a second run redoes nothing" {
    need_tools dlt-phantom dlt-normalize dlt-sample dlt-train dlt-infer dlt-dice dlt-render
    command -v gnuplot >/dev/null || skip "gnuplot missing"
    v=(BIN="$BIN" OUT="$D/demo" N_TRAIN=3 N_TEST=2 PHANTOM_OPTS="--size 32,32,24" PATCH=16 FILTERS=4,8
       STRIDES=1,2 STEPS=3 BATCH=1 VAL_EVERY=2 CKPT_EVERY=2)
    run make -s -C "$P/demo" "${v[@]}"
    [ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
    [[ "$output" == *"Dice per organ"* ]]
    [[ "$output" == *"left adrenal gland"* ]]
    [[ "$output" == *"mean (foreground)"* ]]
    [[ "$output" == *"$D/demo/overlay.png"* ]]
    for f in overlay curve boxes; do is_png "$D/demo/$f.png"; done
    run make -n -C "$P/demo" "${v[@]}" "$D/demo/dice.tsv" "$D/demo/overlay.png" "$D/demo/curve.png" "$D/demo/boxes.png"
    [ "$status" -eq 0 ]
    no_work
}

@test "hippocampus at tiny sizes: train, evaluate, predict unseen images on their grid" {
    need_tools dlt-normalize dlt-sample dlt-train dlt-infer dlt-dice dlt-info
    data="${DLT_SHARED:-$ROOT/../shared}/data/msd-hippocampus"
    [ -d "$data/imagesTr" ] || skip "no $data"
    v=(BIN="$BIN" DATA="$data" WORK="$D/hip" TRAIN_N=3 VAL_N=2 N_VAL_CURVE=1 STEPS=2 BATCH=1
       PATCH=16,16,16 FILTERS=4,8 STRIDES=1,2 VAL_EVERY=1 TRAIN_OPTS="--optim sgd --weight-decay 3e-5")
    run make -s -C "$P/hippocampus" "${v[@]}"
    [ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
    [[ "$output" == *anterior*posterior* ]]
    # TRAIN_OPTS reach dlt-train
    "$BIN/dlt-info" "$D/hip/model.dltm" | grep -qx ' *optim *sgd'
    mkdir -p "$D/in"
    f=$(ls "$data/imagesTr" | sort | tail -1)
    cp "$data/imagesTr/$f" "$D/in/"
    run make -s -C "$P/hippocampus" "${v[@]}" predict IN="$D/in" OUT="$D/pred"
    [ "$status" -eq 0 ]
    [[ "$output" == *"segmented 1 images"* ]]
    a=$("$BIN/dlt-info" --json "$D/in/$f" | grep -o '"dims":[^]]*')
    b=$("$BIN/dlt-info" --json "$D/pred/$f" | grep -o '"dims":[^]]*')
    [ "$a" = "$b" ]
    run make -s -C "$P/hippocampus" "${v[@]}" predict
    [ "$status" -ne 0 ]
    [[ "$output" == *"usage: make predict IN=DIR OUT=DIR"* ]]
}

@test "hippocampus cross-validation at tiny sizes: make FOLD=k, make cv (post-processing chosen, fold ensemble)" {
    need_tools dlt-normalize dlt-sample dlt-train dlt-infer dlt-dice dlt-info
    data="${DLT_SHARED:-$ROOT/../shared}/data/msd-hippocampus"
    [ -d "$data/imagesTr" ] || skip "no $data"
    v=(BIN="$BIN" DATA="$data" WORK="$D/w" TRAIN_N=4 FOLDS=2 VAL_N=2 N_VAL_CURVE=1 STEPS=2 BATCH=1
       PATCH=16,16,16 FILTERS=4,8 STRIDES=1,2 VAL_EVERY=1)
    run make -s -C "$P/hippocampus" "${v[@]}" FOLD=1
    [ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
    [[ "$output" == *"Fold 1 of 2: Dice on its 2 out-of-fold cases"*anterior*posterior* ]]
    [ -s "$D/w/fold1/model.dltm" ] && [ ! -e "$D/w/fold0" ]
    # fold 1 validates on the 2nd and 4th training case and never trains on them
    names=($(ls "$data/imagesTr" | LC_ALL=C sort | head -4))
    [ "$(tail -n +2 "$D/w/fold1/pairs.tsv" | cut -f1 | tr '\n' ' ')" = "${names[1]%.nii.gz} ${names[3]%.nii.gz} " ]
    [ "$(tail -n +2 "$D/w/fold1/train.tsv" | cut -f1 | tr '\n' ' ')" = "${names[0]%.nii.gz} ${names[2]%.nii.gz} " ]
    run make -s -C "$P/hippocampus" "${v[@]}" cv
    [ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
    [[ "$output" == *"out-of-fold Dice"*"Largest component kept for classes: "*"Ensemble of the 2 fold models"*anterior* ]]
    # the choice is a (possibly empty) comma list of classes
    grep -qxE '([12](,[12])?)?' "$D/w/cv/lcc.txt"
    [ "$(tail -n +2 "$D/w/cv/oof-pred.tsv.list" | wc -l)" -eq 4 ]
    p=$(ls "$D/w/cv/pred" | head -1)
    "$BIN/dlt-info" "$D/w/cv/pred/$p" | grep -q 'ensemble of 2'
    a=$("$BIN/dlt-info" --json "$data/imagesTr/$p" | grep -o '"dims":[^]]*')
    b=$("$BIN/dlt-info" --json "$D/w/cv/pred/$p" | grep -o '"dims":[^]]*')
    [ "$a" = "$b" ]
    run make -s -C "$P/hippocampus" "${v[@]}" FOLD=2
    [ "$status" -ne 0 ]
    [[ "$output" == *"FOLD=2 is not one of 0..1"* ]]
}

@test "hippocampus PLAN=1 at tiny sizes: dlt-plan's settings where none are given" {
    need_tools dlt-normalize dlt-sample dlt-train dlt-infer dlt-dice dlt-info dlt-plan
    data="${DLT_SHARED:-$ROOT/../shared}/data/msd-hippocampus"
    [ -d "$data/imagesTr" ] || skip "no $data"
    v=(BIN="$BIN" DATA="$data" WORK="$D/w" TRAIN_N=4 VAL_N=2 N_VAL_CURVE=1 STEPS=2 BATCH=1
       FILTERS=4,8 STRIDES=1,2 VAL_EVERY=1 PLAN=1 PLAN_OPTS="--minutes 1")
    run make -s -C "$P/hippocampus" "${v[@]}"
    [ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
    [[ "$output" == *anterior*posterior* ]]
    [ "$(head -1 "$D/w/plan.txt")" = "DLTPLAN 1" ]
    # the plan's patch (not given here) reached the model; the given filters won
    patch=$(awk '$1 == "patch" { print $2 }' "$D/w/plan.txt")
    "$BIN/dlt-info" "$D/w/model.dltm" | grep -q "patch *$patch\$"
    "$BIN/dlt-info" "$D/w/model.dltm" | grep -q "filters *4,8\$"
    # images and labels on the plan's grid
    f=$(tail -n +2 "$D/w/train.tsv" | head -1 | cut -f1).nii.gz
    [ -s "$D/w/prep-label/$f" ]
    # predictions from the raw images (dlt-infer --plan), scored against the original labels
    tail -n +2 "$D/w/pairs.tsv" | cut -f3 | grep -q "/labelsTr/"
    ! grep -q prep-label "$D/w/pairs.tsv"
    mkdir -p "$D/in"
    g=$(ls "$data/imagesTr" | sort | tail -1)
    cp "$data/imagesTr/$g" "$D/in/"
    run make -s -C "$P/hippocampus" "${v[@]}" predict IN="$D/in" OUT="$D/pred"
    [ "$status" -eq 0 ]
    [ "$("$BIN/dlt-info" --json "$D/in/$g" | grep -o '"dims":[^]]*')" = "$("$BIN/dlt-info" --json "$D/pred/$g" | grep -o '"dims":[^]]*')" ]
}
