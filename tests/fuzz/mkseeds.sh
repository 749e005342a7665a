#!/usr/bin/env bash
# tests/fuzz/mkseeds.sh - remake the seed corpus tests/fuzz/corpus/NAME/
# from our own tools' output: small files (a fuzzer mutates small inputs
# fastest) of every kind each reader takes. Run by make fuzz-seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/bin:$PATH"
C=tests/fuzz/corpus
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
rm -rf "$C"
mkdir -p "$C"/{nifti,patches,model,listfile,plan}

# volumes: float image (gzip and plain), uint8 label, resampled and reoriented
dlt-phantom -q -n 1 --size 6,5,4 --spacing 9,8,10 -o "$T/ph"
cp "$T/ph/img0001.nii.gz" "$C/nifti/image.nii.gz"
cp "$T/ph/label0001.nii.gz" "$C/nifti/label.nii.gz"
dlt-normalize -q --zero-one "$T/ph/img0001.nii.gz" -o "$C/nifti/image.nii"
dlt-normalize -q --label --reorient RAS "$T/ph/label0001.nii.gz" -o "$C/nifti/label-ras.nii"
dlt-normalize -q --ct -1000,800 --size 3,3,2 "$T/ph/img0001.nii.gz" -o "$C/nifti/ct.nii"

# patch streams: with and without labels, two channels
dlt-sample -q -i "$T/ph/img0001.nii.gz" -L "$T/ph/label0001.nii.gz" -p 3,2,2 -c 3 > "$C/patches/labelled.dltp"
dlt-sample -q -i "$T/ph/img0001.nii.gz" -i "$C/nifti/image.nii" -L "$T/ph/label0001.nii.gz" -p 2 -c 2 --classes 14 \
    --class-names "$T/ph/classes.tsv" > "$C/patches/two-channels.dltp"
dlt-normalize -q --whiten "$C/patches/labelled.dltp" -o "$C/patches/whitened.dltp"

# models: a thin U-Net and an FCN, one step each (training state included)
python3 tests/helpers/mkstream.py --records 2 --preprocessing "dlt:ct=-1000,800" > "$T/s"
dlt-train -q --filters 2,2 --strides 1,2 --batch 2 -o "$C/model/unet.dltm" "$T/s"
dlt-train -q --net fcn --filters 2,2 --strides 1,2 --batch 2 -o "$C/model/fcn.dltm" "$T/s"

# lists: a subject list, class names, a list of predictions and references
cp "$T/ph/list.tsv" "$C/listfile/list.tsv"
cp "$T/ph/classes.tsv" "$C/listfile/classes.tsv"
printf 'id\tpred\tref\n# a comment\n\na\tp/a.nii.gz\tr/a.nii.gz\nb\t/abs/b.nii\t r/b.nii \n' > "$C/listfile/dice.tsv"
printf 'id\timage1\timage2\tlabel\ns1\tt1.nii\tt2.nii\tl.nii\n' > "$C/listfile/channels.tsv"

# plans: every step kind, as dlt-normalize records them
dlt-normalize -q --ct -1000,800 --spacing 9,9,9 --interp bspline --nonzero --whiten --reorient RAS --size 8,8,8 \
    "$T/ph/img0001.nii.gz" -o "$T/x.nii.gz"
dlt-info "$T/x.nii.gz" | awk '$1 == "description" { printf "%s", $2 }' > "$C/plan/volume"
printf 'ct-sym=-200,300;clip-pct=0.5,99.5;one-one' > "$C/plan/patch"
printf 'clip=-5,5;zero-one;whiten;spacing=1.5,1.5,3:nearest' > "$C/plan/clip"
printf 'whiten=mask' > "$C/plan/mask"
printf 'clip=-163.43,182;zscore=78.4457178,53.4951606;spacing=2,2,6.2' > "$C/plan/zscore"
# a plan file, as dlt-plan writes it (without its comment line, which names a temporary)
dlt-plan -q --list "$T/ph/list.tsv" | sed '/^# /d' > "$C/plan/planfile"
ls -l "$C"/*
