#!/usr/bin/env bats
# dlt-infer: options, output on exactly the input's grid (dlt-info --json),
# stdin/stdout, volumes smaller than the window, probabilities, lists,
# mirroring, largest component, channel mismatch, intensity warning, bad input.
bats_require_minimum_version 1.5.0

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
}

teardown() {
    rm -rf "$T"
}

# the geometry fields of dlt-info --json: dims, voxel size, orientation, codes, affine
geom() {
    dlt-info --json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print([d[k] for k in ("dims","voxel_size","orientation","qform_code","sform_code","affine")])'
}

@test "--help goes to stdout and exits 0; --version" {
    run --separate-stderr dlt-infer --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"Usage: dlt-infer"* ]]
    [[ "$output" == *"--largest-component"* ]]
    [ -z "$stderr" ]
    run dlt-infer --version
    [[ "$output" =~ ^dlt-infer\ [0-9] ]]
}

@test "bad options exit 2 with a message and nothing on stdout" {
    for args in "--overlap 1" "--overlap x" "--blend max" "--batch 0" "--tta=q" "--connectivity 8" "--pad wrap" \
                "--window 7" "--window 0" "--bogus" "--precision fp16"; do
        run --separate-stderr dlt-infer -m "$D/m.dltm" $args "$D/n.nii.gz" -o "$T/p.nii.gz"
        [ "$status" -eq 2 ] || { echo "args: $args -> $status: $stderr"; false; }
        [ -z "$output" ]
        [[ "$stderr" == *"dlt-infer"* ]]
    done
    run --separate-stderr dlt-infer "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 2 ]
    run --separate-stderr dlt-infer -m "$D/m.dltm" -o "$T/p.nii.gz"
    [ "$status" -eq 2 ]
    run --separate-stderr dlt-infer -m "$D/m.dltm" --list "$T/l.tsv"
    [ "$status" -eq 2 ]
    [ "$(ls "$T" | wc -l)" -eq 0 ]
}

@test "the prediction overlays its input: the same geometry, labels within the classes" {
    run --separate-stderr dlt-infer -m "$D/m.dltm" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [ "$(geom "$T/p.nii.gz")" = "$(geom "$D/n.nii.gz")" ]
    [ "$(geom "$T/p.nii.gz")" = "$(geom "$D/ph/img0001.nii.gz")" ]
    dlt-info --json "$T/p.nii.gz" | grep -q '"datatype":"uint8"'
    max=$(dlt-info --json "$T/p.nii.gz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max"])')
    [ "${max%.*}" -le 2 ]
}

@test "stdin to stdout; binary output to a terminal is refused" {
    dlt-infer -m "$D/m.dltm" - < "$D/n.nii.gz" > "$T/p.nii"
    dlt-infer -m "$D/m.dltm" "$D/n.nii.gz" -o "$T/q.nii.gz"
    [ "$(geom "$T/p.nii")" = "$(geom "$T/q.nii.gz")" ]
    cmp <(dlt-info --json "$T/p.nii" | sed 's/"file":"[^"]*"//') <(dlt-info --json "$T/q.nii.gz" | sed 's/"file":"[^"]*"//')
    command -v script >/dev/null || skip "no script(1) for a terminal"
    run script -qec "dlt-infer -m '$D/m.dltm' '$D/n.nii.gz'" /dev/null
    [ "$status" -eq 2 ]
    [[ "$output" == *"terminal"* ]]
}

@test "a volume smaller than the window is padded; the output keeps its size" {
    dlt-phantom -q -n 1 --size 5,6,4 --spacing 30 -o "$T/tiny"
    dlt-normalize --ct -1000,800 "$T/tiny/img0001.nii.gz" -o "$T/t.nii.gz"
    for pad in zero edge reflect; do
        run --separate-stderr dlt-infer -m "$D/m.dltm" --pad $pad "$T/t.nii.gz" -o "$T/p.nii.gz"
        [ "$status" -eq 0 ]
        [ "$(geom "$T/p.nii.gz")" = "$(geom "$T/t.nii.gz")" ]
    done
}

@test "options that change the windows all give a labelled volume on the same grid" {
    for args in "--window 16,8,4 --overlap 0" "--window whole" "--blend gaussian --batch 3" "--tta" "--tta=x,z" \
                "--largest-component" "--largest-component --connectivity 26" "--device cpu-ref --threads 1"; do
        run --separate-stderr dlt-infer -m "$D/m.dltm" $args "$D/n.nii.gz" -o "$T/p.nii.gz"
        [ "$status" -eq 0 ] || { echo "args: $args: $stderr"; false; }
        [ "$(geom "$T/p.nii.gz")" = "$(geom "$D/n.nii.gz")" ]
    done
}

@test "--probs: a 4-D float volume, one channel per class, summing to 1" {
    run --separate-stderr dlt-infer -m "$D/m.dltm" --probs "$T/pr.nii.gz" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 0 ]
    dlt-info --json "$T/pr.nii.gz" | grep -q '"channels":3'
    dlt-info --json "$T/pr.nii.gz" | grep -q '"datatype":"float32"'
    /usr/bin/python3 -c 'import nibabel' 2>/dev/null || skip "no nibabel"
    /usr/bin/python3 - "$T/pr.nii.gz" "$T/p.nii.gz" <<'EOF'
import sys, nibabel as nib, numpy as np
p = np.asarray(nib.load(sys.argv[1]).dataobj)
l = np.asarray(nib.load(sys.argv[2]).dataobj)
assert p.shape[:3] == l.shape and p.shape[3] == 3, p.shape
assert np.allclose(p.sum(3), 1, atol=1e-4)
assert (p.argmax(3) == l).mean() > 0.999
EOF
}

@test "--precision bf16 says once what it costs: fp32 without bf16 kernels, slower without AMX, nothing with AMX" {
    # oneDNN's ISA cap stands in for the lesser CPUs
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    run --separate-stderr env ONEDNN_MAX_CPU_ISA=AVX2 dlt-infer -m "$D/m.dltm" --precision bf16 "$D/n.nii.gz" -o "$T/a.nii.gz"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"no bf16 convolution kernels"*"computing in fp32"* ]]
    [ "$(grep -c warning <<<"$stderr")" -eq 1 ]
    [[ "$flags" == *" avx512_bf16"* ]] || skip "no AVX512-BF16 here"
    run --separate-stderr env ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 dlt-infer -m "$D/m.dltm" --precision bf16 "$D/n.nii.gz" -o "$T/b.nii.gz"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"no AMX"*"slower than fp32"* ]]
    [ "$(grep -c warning <<<"$stderr")" -eq 1 ]
    [[ "$flags" == *" amx_bf16"* ]] || skip "no AMX here"
    run --separate-stderr dlt-infer -m "$D/m.dltm" --precision bf16 "$D/n.nii.gz" -o "$T/c.nii.gz"
    [ "$status" -eq 0 ]
    [ -z "$stderr" ]
}

@test "--precision bf16: probabilities within 0.03 of fp32, the same grid; cpu-ref refuses it" {
    # 16 filters: thinner convolutions stay fp32 (memory-bound)
    python3 "$ROOT/tests/helpers/mkstream.py" --records 4 > "$T/s"
    dlt-train --filters 16,16 --strides 1,2 --batch 2 -q -o "$T/m.dltm" "$T/s"
    dlt-infer -q -m "$T/m.dltm" --probs "$T/p32.nii" "$D/n.nii.gz" -o "$T/l32.nii.gz"
    run --separate-stderr dlt-infer -m "$T/m.dltm" --precision bf16 --probs "$T/p16.nii" "$D/n.nii.gz" -o "$T/l16.nii.gz"
    [ "$status" -eq 0 ]
    [ "$(geom "$T/l16.nii.gz")" = "$(geom "$D/n.nii.gz")" ]
    run --separate-stderr dlt-infer -m "$D/m.dltm" --device cpu-ref --precision bf16 "$D/n.nii.gz" -o "$T/x.nii.gz"
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"precision"* ]]
    [ ! -e "$T/x.nii.gz" ]
    /usr/bin/python3 -c 'import nibabel' 2>/dev/null || skip "no nibabel"
    /usr/bin/python3 - "$T/p32.nii" "$T/p16.nii" <<'EOF'
import sys, nibabel as nib, numpy as np
a = np.asarray(nib.load(sys.argv[1]).dataobj)
b = np.asarray(nib.load(sys.argv[2]).dataobj)
d = np.abs(a - b).max()
assert d < 0.03, d
has = any(f in open("/proc/cpuinfo").read() for f in (" avx512_bf16", " amx_bf16"))
assert not has or d > 1e-6, "bf16 gave exactly the fp32 probabilities"
EOF
}

@test "an ensemble (-m twice): one model twice is that model; two models average their probabilities" {
    dlt-infer -q -m "$D/m.dltm" --probs "$T/p1.nii" "$D/n.nii.gz" -o "$T/l1.nii"
    run --separate-stderr dlt-infer -m "$D/m.dltm" -m "$D/m.dltm" --probs "$T/p11.nii" "$D/n.nii.gz" -o "$T/l11.nii"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    # the voxels after the 352-byte header are identical (the description differs)
    cmp -i 352 "$T/p1.nii" "$T/p11.nii"
    cmp -i 352 "$T/l1.nii" "$T/l11.nii"
    [ "$(geom "$T/l11.nii")" = "$(geom "$D/n.nii.gz")" ]
    dlt-info "$T/l11.nii" | grep -q 'ensemble of 2'
    # a second model (another seed) and the ensemble of both
    python3 "$ROOT/tests/helpers/mkstream.py" --records 8 --seed 2 --preprocessing "dlt:ct=-1000,800" > "$T/s2"
    dlt-train --filters 4,8 --strides 1,2 --batch 2 --seed 5 -q -o "$T/m2.dltm" "$T/s2"
    dlt-infer -q -m "$T/m2.dltm" --probs "$T/p2.nii" "$D/n.nii.gz" -o "$T/l2.nii"
    dlt-infer -q -m "$D/m.dltm" -m "$T/m2.dltm" --probs "$T/p12.nii" "$D/n.nii.gz" -o "$T/l12.nii"
    ! cmp -s -i 352 "$T/p1.nii" "$T/p12.nii"
    /usr/bin/python3 -c 'import nibabel' 2>/dev/null || skip "no nibabel"
    /usr/bin/python3 - "$T/p1.nii" "$T/p2.nii" "$T/p12.nii" "$T/l12.nii" <<'EOF'
import sys, nibabel as nib, numpy as np
a, b, e = (np.asarray(nib.load(f).dataobj) for f in sys.argv[1:4])
l = np.asarray(nib.load(sys.argv[4]).dataobj)
assert np.abs(a - b).max() > 1e-3, "the two models agree: the test shows nothing"
assert np.abs(e - (a + b) / 2).max() < 1e-6, np.abs(e - (a + b) / 2).max()
assert (e.argmax(3) == l).all()
EOF
}

@test "an ensemble's models must agree on classes and preprocessing; nothing written otherwise" {
    python3 "$ROOT/tests/helpers/mkstream.py" --records 4 --classes 4 --preprocessing "dlt:ct=-1000,800" > "$T/s4"
    dlt-train --filters 4,8 --strides 1,2 --batch 2 -q -o "$T/m4.dltm" "$T/s4"
    run --separate-stderr dlt-infer -m "$D/m.dltm" -m "$T/m4.dltm" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"m.dltm and "*"m4.dltm differ in the number of classes"* ]]
    python3 "$ROOT/tests/helpers/mkstream.py" --records 4 --preprocessing "dlt:whiten" > "$T/sw"
    dlt-train --filters 4,8 --strides 1,2 --batch 2 -q -o "$T/mw.dltm" "$T/sw"
    run --separate-stderr dlt-infer -m "$D/m.dltm" -m "$T/mw.dltm" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"differ in the preprocessing"* ]]
    run --separate-stderr dlt-infer -m "$D/m.dltm" -m "$T/none.dltm" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"none.dltm"* ]]
    [ -z "$output" ]
    [ ! -e "$T/p.nii.gz" ]
}

@test "--largest-component=CLASSES: only those classes; a class the model lacks is a usage error" {
    run --separate-stderr dlt-infer -m "$D/m.dltm" --largest-component=1,2 "$D/n.nii.gz" -o "$T/a.nii"
    [ "$status" -eq 0 ]
    dlt-infer -q -m "$D/m.dltm" --largest-component "$D/n.nii.gz" -o "$T/b.nii"
    cmp -i 352 "$T/a.nii" "$T/b.nii"
    dlt-infer -q -m "$D/m.dltm" --largest-component=2 "$D/n.nii.gz" -o "$T/c.nii"
    dlt-infer -q -m "$D/m.dltm" "$D/n.nii.gz" -o "$T/d.nii"
    for bad in 3 0 x 1,; do
        run --separate-stderr dlt-infer -m "$D/m.dltm" --largest-component=$bad "$D/n.nii.gz" -o "$T/e.nii"
        [ "$status" -eq 2 ]
        [[ "$stderr" == *"--largest-component"* ]]
        [ ! -e "$T/e.nii" ]
    done
    # class 1 as without post-processing, class 2 as with it
    /usr/bin/python3 -c 'import nibabel' 2>/dev/null || skip "no nibabel"
    /usr/bin/python3 - "$T/b.nii" "$T/c.nii" "$T/d.nii" <<'EOF'
import sys, nibabel as nib, numpy as np
b, c, d = (np.asarray(nib.load(f).dataobj) for f in sys.argv[1:])
assert ((b == 2) != (d == 2)).any(), "the post-processing changed nothing: the test shows nothing"
assert ((c == 1) == (d == 1)).all() and ((c == 2) == (b == 2)).all()
EOF
}

@test "--plan: preprocess here, predict on the plan's grid, map back to the input's grid" {
    # a plan without geometry: the same voxels as dlt-normalize | dlt-infer
    dlt-normalize -q --plan 'ct=-1000,800' "$D/ph/img0001.nii.gz" -o "$T/n.nii"
    dlt-infer -q -m "$D/m.dltm" "$T/n.nii" -o "$T/a.nii"
    run --separate-stderr dlt-infer -m "$D/m.dltm" --plan 'ct=-1000,800' "$D/ph/img0001.nii.gz" -o "$T/b.nii"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    cmp -i 352 "$T/a.nii" "$T/b.nii"
    # resampling to the input's own spacing and back changes nothing either
    dlt-infer -q -m "$D/m.dltm" --plan 'ct=-1000,800;spacing=9,8,10' "$D/ph/img0001.nii.gz" -o "$T/c.nii"
    cmp -i 352 "$T/a.nii" "$T/c.nii"
    # a coarser grid: the prediction comes back on the input's grid
    run --separate-stderr dlt-infer -m "$D/m.dltm" --plan 'ct=-1000,800;spacing=12,12,12' --probs "$T/p.nii" \
        "$D/ph/img0001.nii.gz" -o "$T/d.nii"
    [ "$status" -eq 0 ]
    [ "$(geom "$T/d.nii")" = "$(geom "$D/ph/img0001.nii.gz")" ]
    # the same through a plan file
    printf 'DLTPLAN 1\nnormalize ct=-1000,800;spacing=12,12,12\nend\n' > "$T/plan.txt"
    dlt-infer -q -m "$D/m.dltm" --plan "$T/plan.txt" "$D/ph/img0001.nii.gz" -o "$T/e.nii"
    cmp -i 352 "$T/d.nii" "$T/e.nii"
    /usr/bin/python3 -c 'import nibabel' 2>/dev/null || skip "no nibabel"
    /usr/bin/python3 - "$T/p.nii" "$T/d.nii" "$T/a.nii" <<'EOF'
import sys, nibabel as nib, numpy as np
p, d, a = (np.asarray(nib.load(f).dataobj) for f in sys.argv[1:])
assert np.allclose(p.sum(3), 1, atol=1e-4)
assert (p.argmax(3) == d).all()
# the coarse prediction agrees with the full-resolution one in most voxels
assert (d == a).mean() > 0.6, (d == a).mean()
EOF
}

@test "--plan: steps that cannot be undone, or a mask, are usage errors" {
    for bad in 'ct=-1000,800;size=10,10,10' 'reorient=RAS' 'whiten=mask' 'frobnicate' "$D/s"; do
        run --separate-stderr dlt-infer -m "$D/m.dltm" --plan "$bad" "$D/n.nii.gz" -o "$T/x.nii"
        echo "$bad: $status $stderr"
        [ "$status" -eq 2 ]
        [[ "$stderr" == *"--plan"* ]]
        [ ! -e "$T/x.nii" ]
    done
}

@test "--list writes DIR/ID.nii.gz for every entry" {
    printf 'id\timage\ta\t%s\nb\t%s\n' "$D/n.nii.gz" "$D/n.nii.gz" | sed 's/^id\timage\ta\t/id\timage\na\t/' > "$T/l.tsv"
    run --separate-stderr dlt-infer -m "$D/m.dltm" --list "$T/l.tsv" -o "$T/out"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [ "$(geom "$T/out/a.nii.gz")" = "$(geom "$D/n.nii.gz")" ]
    [ -s "$T/out/b.nii.gz" ]
}

@test "a channel count other than the model's is refused; no output left" {
    run --separate-stderr dlt-infer -m "$D/m.dltm" "$D/n.nii.gz" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"2 channels, the model"*"expects 1"* ]]
    [ "$(ls "$T" | wc -l)" -eq 0 ]
}

@test "raw HU input to a model trained on a CT window: a warning" {
    run --separate-stderr dlt-infer -m "$D/m.dltm" "$D/ph/img0001.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"warning"*"far from what the model was trained on"*"ct=-1000,800"* ]]
    run --separate-stderr dlt-infer -m "$D/m.dltm" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [[ "$stderr" != *"warning"* ]]
}

@test "missing or corrupt model and input files are named; nothing written" {
    run --separate-stderr dlt-infer -m "$T/none.dltm" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"none.dltm"* ]]
    head -c 500 "$D/m.dltm" > "$T/bad.dltm"
    run --separate-stderr dlt-infer -m "$T/bad.dltm" "$D/n.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"bad.dltm"* ]]
    run --separate-stderr dlt-infer -m "$D/m.dltm" "$T/nope.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"nope.nii.gz"* ]]
    [ ! -e "$T/p.nii.gz" ]
}

@test "--tta mirrors along the axes the model was trained flipped along; none: refused; others: warned" {
    command -v dlt-phantom >/dev/null || skip "dlt-phantom not built"
    dlt-phantom -q -n 1 --size 16,16,16 --spacing 8 -o "$T/ph"
    TR="--filters 4,8 --strides 1,2 --batch 2 --steps 2 -q --device cpu-ref"
    dlt-sample -q --list "$T/ph/list.tsv" --patch 8 --count 8 --flip x > "$T/sx"
    dlt-train $TR -o "$T/fx.dltm" "$T/sx"
    dlt-info "$T/fx.dltm" | grep -q "stream_augment *flip=x"
    run --separate-stderr dlt-infer -v -m "$T/fx.dltm" --tta "$T/ph/img0001.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"trained flipped along (flip=x)"* ]]
    run --separate-stderr dlt-infer -m "$T/fx.dltm" --tta=x,y "$T/ph/img0001.nii.gz" -o "$T/p.nii.gz"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"warning: --tta=x,y mirrors along axes"* ]]
    dlt-sample -q --list "$T/ph/list.tsv" --patch 8 --count 8 > "$T/s0"
    dlt-train $TR -o "$T/f0.dltm" "$T/s0"
    run --separate-stderr dlt-infer -m "$T/f0.dltm" --tta "$T/ph/img0001.nii.gz" -o "$T/p0.nii.gz"
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    [[ "$stderr" == *"trained without flips"* ]]
    [ ! -e "$T/p0.nii.gz" ]
    run --separate-stderr dlt-infer -m "$T/f0.dltm" --tta=z "$T/ph/img0001.nii.gz" -o "$T/p0.nii.gz"
    [ "$status" -eq 0 ]
}
