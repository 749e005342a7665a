#!/usr/bin/env bats
# dlt-info: summaries of each kind (volume, label volume, patch stream,
# model), --json, stdin, several files, and every bad input of issue 2 with
# its message, exit status and empty stdout. Inputs come from
# tests/helpers/fixtures.py, written from the format descriptions alone.

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    FX="$ROOT/tests/helpers/fixtures.py"
    DATA="${DLT_SHARED:-$ROOT/../shared}/data"
    cd "$BATS_TEST_TMPDIR"
}

fx() { python3 "$FX" "$@"; }

# run a command with stdout and stderr apart: $out, $err, $status
run2() {
    set +e
    "$@" >out.txt 2>err.txt
    status=$?
    set -e
    out="$(cat out.txt)"
    err="$(cat err.txt)"
}

# bad input: exit 1, nothing on stdout, the message on stderr
fails_with() {
    local msg="$1"; shift
    run2 "$@"
    echo "status=$status stdout=[$out] stderr=[$err]"
    [ "$status" -eq 1 ]
    [ -z "$out" ]
    [[ "$err" == *"$msg"* ]]
}

@test "--help prints usage on stdout, exit 0; --version" {
    run2 dlt-info --help
    [ "$status" -eq 0 ]
    [[ "$out" == *"Usage: dlt-info"* ]]
    [ -z "$err" ]
    run2 dlt-info --version
    [ "$status" -eq 0 ]
    [[ "$out" == "dlt-info "* ]]
}

@test "usage errors exit 2 with nothing on stdout" {
    run2 dlt-info
    [ "$status" -eq 2 ]; [ -z "$out" ]
    [[ "$err" == *"dlt-info: error: no input file"* ]]
    run2 dlt-info --bogus x
    [ "$status" -eq 2 ]; [ -z "$out" ]
    run2 dlt-info - -
    [ "$status" -eq 2 ]; [ -z "$out" ]
    [[ "$err" == *"more than once"* ]]
}

@test "image volume: dims, voxel size, datatype, orientation, codes, affine, values" {
    fx nifti ct.nii --dtype int16 --dims 5,4,3
    run2 dlt-info ct.nii
    echo "$out"
    [ "$status" -eq 0 ]
    [[ "$out" == "ct.nii: NIfTI-1 image volume"* ]]
    [[ "$out" == *"dims          5 x 4 x 3 (1 channel)"* ]]
    [[ "$out" == *"voxel size    2 x 2 x 3 mm"* ]]
    [[ "$out" == *"datatype      int16"* ]]
    [[ "$out" == *"orientation   LPS"* ]]
    [[ "$out" == *"qform_code    1 (scanner)"* ]]
    [[ "$out" == *"sform_code    1 (scanner)"* ]]
    [[ "$out" == *"affine           -2.0000     0.0000     0.0000    10.0000"* ]]
    [[ "$out" == *"min -50  max 50"* ]]
    [[ "$out" == *"description   dlt fixture"* ]]
    [[ "$out" != *"label"* ]]
}

@test "label volume: voxel count per label (auto-detected), --image turns it off" {
    fx nifti seg.nii --dtype uint8 --label --dims 4,3,2
    run2 dlt-info seg.nii
    echo "$out"
    [ "$status" -eq 0 ]
    [[ "$out" == *"NIfTI-1 label volume"* ]]
    [[ "$out" == *"labels        4 distinct"* ]]
    # values (i // 7) % 4 over 24 voxels: 7, 7, 7, 3; a voxel is 12 mm^3
    echo "$out" | grep -E '^  label 0 +7 voxels +0.08 ml$'
    echo "$out" | grep -E '^  label 3 +3 voxels +0.04 ml$'
    run2 dlt-info --image seg.nii
    [ "$status" -eq 0 ]
    [[ "$out" == *"image volume"* ]]
    [[ "$out" != *"label 0"* ]]
}

@test "--label forces a label summary; non-integer values are refused" {
    fx nifti img.nii --dtype float32 --dims 4,3,2
    fails_with "img.nii" dlt-info --label img.nii
    fx nifti ints.nii --dtype int16 --dims 20,20,1 --label
    run2 dlt-info --label ints.nii
    [ "$status" -eq 0 ]
    [[ "$out" == *"label volume"* ]]
}

@test "scaled integers: slope and intercept shown and applied" {
    fx nifti sc.nii --dtype int16 --dims 5,4,3 --slope 2 --inter 1
    run2 dlt-info sc.nii
    echo "$out"
    [ "$status" -eq 0 ]
    [[ "$out" == *"int16 (scl_slope 2, scl_inter 1)"* ]]
    [[ "$out" == *"min -99  max 101"* ]]
}

@test "gzipped volume, from a file and from stdin" {
    fx nifti v.nii.gz --dims 6,5,4
    run2 dlt-info v.nii.gz
    [ "$status" -eq 0 ]
    [[ "$out" == "v.nii.gz: NIfTI-1 image volume"* ]]
    run2 dlt-info - < v.nii.gz
    [ "$status" -eq 0 ]
    [[ "$out" == "stdin: NIfTI-1 image volume"* ]]
    [[ "$out" == *"dims          6 x 5 x 4"* ]]
}

@test "patch stream: header, records, subjects, sizes, class histogram, foreground" {
    fx patches s.dltp --records 5
    run2 dlt-info s.dltp
    echo "$out"
    [ "$status" -eq 0 ]
    [[ "$out" == "s.dltp: patch stream (dlt-patches 1)"* ]]
    [[ "$out" == *"header        channels 1"* ]]
    [[ "$out" == *"class_names background,liver,spleen,kidney"* ]]
    [[ "$out" == *"records       5 (5 with labels), 3 subjects"* ]]
    [[ "$out" == *"patch sizes   4x3x2 (5)"* ]]
    echo "$out" | grep -E '^  class 0 +84 voxels +70.00% +[0-9]+ centres  background$'
    echo "$out" | grep -E '^  class 3 +12 voxels +10.00% +[0-9]+ centres  kidney$'
    [[ "$out" == *"min 0.0000  mean 0.3000  max 0.5000; 1 records without"* ]]
}

@test "patch stream from dlt-sample --sampler balanced: equal patch centres per class" {
    dlt-phantom -q -n 2 --seed 4 --size 48,48,32 -o ph
    dlt-sample -q --list ph/list.tsv --patch 16 --sampler balanced --per-volume 28 --epochs 1 --seed 3 \
        | dlt-info --json - > info.json
    python3 - <<'PY'
import json
c = json.load(open("info.json"))["class_centres"]
print(c)
assert sorted(c) == sorted(str(k) for k in range(14)), c
assert set(c.values()) == {4}, c
PY
}

@test "patch stream without labels, two channels" {
    fx patches s2.dltp --records 3 --channels 2 --nolabel
    run2 dlt-info s2.dltp
    echo "$out"
    [ "$status" -eq 0 ]
    [[ "$out" == *"records       3 (0 with labels)"* ]]
    [[ "$out" == *"channels      2"* ]]
    [[ "$out" != *"class 0"* ]]
}

@test "concatenated streams on stdin count every record; different headers refused" {
    fx patches a.dltp --records 4
    fx patches b.dltp --records 3
    run2 sh -c 'cat a.dltp b.dltp | dlt-info -'
    [ "$status" -eq 0 ]
    [[ "$out" == "stdin: patch stream"* ]]
    [[ "$out" == *"records       7 (7 with labels)"* ]]
    fx patches c.dltp --records 3 --seed 2
    fails_with "different header in the middle of the stream" sh -c 'cat a.dltp c.dltp | dlt-info -'
}

@test "model: network metadata, parameter count, classes, step, checkpoint state" {
    fx model m.dltm
    run2 dlt-info m.dltm
    echo "$out"
    [ "$status" -eq 0 ]
    [[ "$out" == "m.dltm: model (safetensors), 7 tensors"* ]]
    [[ "$out" == *"net           unet"* ]]
    [[ "$out" == *"step          1500"* ]]
    # 16*27 + 16 + 16 + 16*16*27 + 3*16 = 7424; running stats are buffers
    [[ "$out" == *"parameters    7,424 in 5 tensors"* ]]
    [[ "$out" == *"buffers       32 in 2 tensors"* ]]
    [[ "$out" == *"class ids     0=background 1=liver 2=spleen"* ]]
    [[ "$out" == *"note          made by fixtures.py"* ]]
    [[ "$out" != *"checkpoint"* ]]
    fx model ck.dltm --checkpoint
    run2 dlt-info ck.dltm
    [ "$status" -eq 0 ]
    [[ "$out" == *"11 tensors"*", checkpoint"* ]]
    [[ "$out" == *"parameters    7,424 in 5 tensors"* ]]
    [[ "$out" == *"state         960 in 4 tensors"* ]]
}

@test "--json: one object per file that parses, with the expected fields" {
    fx nifti seg.nii --dtype uint8 --label
    fx patches s.dltp
    fx model m.dltm --checkpoint
    for f in seg.nii s.dltp m.dltm; do
        dlt-info --json $f | python3 -c 'import json,sys; json.load(sys.stdin)'
    done
    run2 dlt-info --json seg.nii s.dltp m.dltm
    [ "$status" -eq 0 ]
    [ "$(echo "$out" | wc -l)" -eq 3 ]
    echo "$out" | python3 -c '
import json, sys
v, s, m = [json.loads(l) for l in sys.stdin]
assert v["kind"] == "volume" and v["dims"] == [4, 3, 2] and v["label"] is True, v
assert v["label_voxels"] == {"0": 7, "1": 7, "2": 7, "3": 3}, v["label_voxels"]
assert v["orientation"] == "LPS" and v["affine"][0] == [-2, 0, 0, 10], v
assert s["kind"] == "patches" and s["records"] == 5 and s["subjects"] == 3, s
assert s["class_voxels"] == {"0": 84, "1": 12, "2": 12, "3": 12}, s
assert s["header"]["class_names"] == "background,liver,spleen,kidney"
assert m["kind"] == "model" and m["parameters"] == 7424 and m["step"] == 1500 and m["checkpoint"] is True, m
assert m["class_names"] == ["background", "liver", "spleen"], m
assert m["metadata"]["preprocessing"] == "ct:-1000,800"
'
}

@test "--json escapes odd characters in metadata" {
    python3 - <<'PY'
import json, struct
meta = {"net": "unet", "note": "quote\" backslash\\ tab\t newline\n \u00e9"}
h = json.dumps({"__metadata__": meta, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open("odd.dltm", "wb").write(struct.pack("<Q", len(h)) + h + b"\0\0\0\0")
PY
    dlt-info --json odd.dltm | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["metadata"]["note"] == "quote\" backslash\\ tab\t newline\n \u00e9", d
'
}

@test "stdin: stream, model and volume recognised by content" {
    fx patches s.dltp
    fx model m.dltm
    fx nifti v.nii
    run2 dlt-info - < s.dltp
    [ "$status" -eq 0 ]; [[ "$out" == "stdin: patch stream"* ]]
    run2 dlt-info - < m.dltm
    [ "$status" -eq 0 ]; [[ "$out" == "stdin: model"* ]]
    run2 dlt-info - < v.nii
    [ "$status" -eq 0 ]; [[ "$out" == "stdin: NIfTI-1 image volume"* ]]
    run2 sh -c 'dlt-info --json - < v.nii'
    echo "$out" | python3 -c 'import json,sys; assert json.load(sys.stdin)["file"] == "stdin"'
}

@test "several files: each reported; one failure gives exit 1 and the others still print" {
    fx nifti v.nii
    fx model m.dltm
    run2 dlt-info v.nii missing.nii m.dltm
    [ "$status" -eq 1 ]
    [[ "$out" == *"v.nii: NIfTI-1"* ]]
    [[ "$out" == *"m.dltm: model"* ]]
    [[ "$err" == "dlt-info: error: missing.nii: No such file or directory" ]]
}

@test "bad input: missing file, directory, empty file, not a known format" {
    fails_with "dlt-info: error: nope.nii: No such file or directory" dlt-info nope.nii
    mkdir d
    fails_with "dlt-info: error: d: is a directory" dlt-info d
    : > empty
    fails_with "dlt-info: error: empty: empty file" dlt-info empty
    fails_with "dlt-info: error: stdin: empty input" dlt-info - < empty
    echo "hello world, this is text" > t.txt
    fails_with "dlt-info: error: t.txt: not a NIfTI volume, patch stream or model file" dlt-info t.txt
    fails_with "dlt-info: error: stdin: not a NIfTI volume, patch stream or model file" dlt-info - < t.txt
}

@test "bad input: truncated gzip, from a file and from stdin" {
    fx nifti big.nii.gz --dims 60,60,60
    n=$(stat -c %s big.nii.gz)
    head -c $((n / 2)) big.nii.gz > cut.nii.gz
    fails_with "dlt-info: error: cut.nii.gz: truncated" dlt-info cut.nii.gz
    fails_with "dlt-info: error: stdin: truncated gzip data" dlt-info - < cut.nii.gz
}

@test "bad input: zero and negative dims" {
    fx nifti z.nii --dims=0,3,2 --nodata
    fails_with "dlt-info: error: z.nii: bad header: dimension 1 is 0" dlt-info z.nii
    fx nifti n.nii --dims=4,-3,2 --nodata
    fails_with "dlt-info: error: n.nii: bad header: dimension 2 is -3" dlt-info n.nii
    fails_with "dlt-info: error: stdin: bad header: dimension 2 is -3" dlt-info - < n.nii
}

@test "bad input: dims whose product overflows or exceeds memory" {
    fx nifti o.nii --dims 32767,32767,32767,32767,32767,32767,32767 --nodata
    fails_with "dlt-info: error: o.nii: bad header: dims 32767x32767x32767x32767x32767x32767x32767: the voxel count overflows" dlt-info o.nii
    fx nifti b.nii --dims 32767,32767,32767 --nodata
    fails_with "dlt-info: error: b.nii: dims 32767x32767x32767" dlt-info b.nii
    [[ "$err" == *"more than the"* ]]
}

@test "bad input: a header that lies about the data size" {
    fx nifti lie.nii --dims 100,100,100 --lie
    fails_with "dlt-info: error: lie.nii: truncated or bad header" dlt-info lie.nii
    fails_with "dlt-info: error: stdin: truncated or bad header" dlt-info - < lie.nii
    fx nifti lie.nii.gz --dims 100,100,100 --lie
    fails_with "dlt-info: error: lie.nii.gz:" dlt-info lie.nii.gz
}

@test "bad input: truncated and corrupt patch streams name the record and byte" {
    fx patches s.dltp --records 3
    n=$(stat -c %s s.dltp)
    head -c $((n - 10)) s.dltp > cut.dltp
    fails_with "dlt-info: error: cut.dltp: record 2 at byte" dlt-info cut.dltp
    [[ "$err" == *"truncated"* ]]
    fails_with "dlt-info: error: stdin: record 2 at byte" dlt-info - < cut.dltp
    # flip one image byte of record 1 (past the header and record 0)
    python3 -c '
import sys
b = bytearray(open("s.dltp", "rb").read())
h = b.index(b"end\n") + 4
rec = (len(b) - h) // 3
b[h + rec + 60] ^= 0x40
open("bad.dltp", "wb").write(b)
'
    fails_with "record 1 at byte" dlt-info bad.dltp
    [[ "$err" == *"crc mismatch"* ]]
}

@test "bad input: truncated model, corrupt JSON, lying offsets name the tensor" {
    fx model m.dltm
    n=$(stat -c %s m.dltm)
    head -c $((n - 100)) m.dltm > cut.dltm
    fails_with "dlt-info: error: cut.dltm: tensor 'stem.weight': data_offsets exceed file" dlt-info cut.dltm
    fails_with "dlt-info: error: stdin: tensor 'stem.weight': data_offsets exceed file" dlt-info - < cut.dltm
    python3 -c '
b = bytearray(open("m.dltm", "rb").read())
i = b.index(b":")
b[i] = ord(";")
open("json.dltm", "wb").write(b)
'
    fails_with "dlt-info: error: json.dltm: header JSON: byte" dlt-info json.dltm
    python3 - <<'PY'
import json, struct
h = json.dumps({"enc.0.0.conv0.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1600]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open("lie.dltm", "wb").write(struct.pack("<Q", len(h)) + h + b"\0" * 16)
PY
    fails_with "dlt-info: error: lie.dltm: tensor 'enc.0.0.conv0.weight': data_offsets exceed file" dlt-info lie.dltm
}

@test "real scans (skipped without ../shared/data): a CT and its segmentation" {
    [ -f "$DATA/ct-sample/example_seg.nii.gz" ] || skip "no shared data"
    run2 dlt-info --json "$DATA/ct-sample/example_ct_sm.nii.gz" "$DATA/ct-sample/example_seg.nii.gz"
    [ "$status" -eq 0 ]
    echo "$out" | python3 -c '
import json, sys
ct, seg = [json.loads(l) for l in sys.stdin]
assert ct["dims"] == [122, 101, 30] and ct["datatype"] == "int16" and ct["label"] is False, ct
assert seg["label"] is True and len(seg["label_voxels"]) == 42, seg
assert sum(seg["label_voxels"].values()) == 122 * 101 * 30
'
}

@test "the PyTorch peer's state_dict as safetensors: 2,287,024 parameters (skipped without torch)" {
    peer="${DLT_SHARED:-$ROOT/../shared}/peers/torch_dltk_unet.py"
    [ -f "$peer" ] || skip "no peer"
    /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || skip "no torch"
    PEER="$peer" /usr/bin/python3 - <<'PY'
import json, os, struct, sys
sys.path.insert(0, os.path.dirname(os.environ["PEER"]))
import torch_dltk_unet as t
m = t.ResUNet3D(1, 14, (16, 32, 64, 128), (1, 2, 2, 2), 1)
h, blobs, off = {"__metadata__": {"net": "unet", "classes": "14"}}, [], 0
sd = m.state_dict()
for k in sorted(sd):
    a = sd[k].numpy()
    d = a.tobytes()
    h[k] = {"dtype": {"float32": "F32", "int64": "I64"}[str(a.dtype)], "shape": list(a.shape),
            "data_offsets": [off, off + len(d)]}
    off += len(d)
    blobs.append(d)
s = json.dumps(h).encode()
s += b" " * ((8 - len(s) % 8) % 8)
open("peer.safetensors", "wb").write(struct.pack("<Q", len(s)) + s + b"".join(blobs))
PY
    run2 dlt-info peer.safetensors
    echo "$out"
    [ "$status" -eq 0 ]
    [[ "$out" == *"80 tensors"* ]]
    [[ "$out" == *"parameters    2,287,024 in"* ]]
}

@test "--backend: the CPU, the ISA and block, every convolution's implementation; none is reference code on AVX2" {
    run2 dlt-info --backend --patch 32 --batch 1
    echo "$out"
    [ "$status" -eq 0 ]
    [[ "$out" == *$'cpu\t'* ]]
    [[ "$out" == *$'backend\tcpu'* ]]
    [[ "$out" == *$'isa\t'*"-channel blocks"* ]]
    [[ "$out" == *$'precision\tfp32'* ]]
    [ "$(grep -c $'^convolution\t' out.txt)" -ge 40 ]
    if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
        [[ "$out" == *$'reference code\t0 convolution(s)'* ]]
    fi
}

@test "--backend under DLT_CPU_ISA: the cap is taken; a bad value is an error naming it" {
    DLT_CPU_ISA=sse2 run2 dlt-info --backend --net fcn --patch 16 --batch 1
    [ "$status" -eq 0 ]
    [[ "$out" == *$'isa\tsse2 (oneDNN SSE41), 8-channel blocks'* ]]
    DLT_CPU_ISA=avx9 fails_with "DLT_CPU_ISA=avx9: unknown ISA (expected avx512, avx2 or sse2)" dlt-info --backend --patch 16
}

@test "--backend: usage errors exit 2, nothing on stdout" {
    run2 dlt-info --backend x.nii
    [ "$status" -eq 2 ]; [ -z "$out" ]; [[ "$err" == *"--backend takes no FILE"* ]]
    run2 dlt-info --backend --patch 0
    [ "$status" -eq 2 ]; [ -z "$out" ]; [[ "$err" == *"--patch: '0'"* ]]
    run2 dlt-info --backend --batch x
    [ "$status" -eq 2 ]; [ -z "$out" ]
    fails_with "is not a multiple of 8" dlt-info --backend --patch 30
    fails_with "unknown network" dlt-info --backend --net vnet
    fails_with "unknown device" dlt-info --backend --device tpu
}
