#!/usr/bin/env bats
# dlt-render: PNG pictures of slices with label overlays.

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    PATH="${DLT_TEST_BIN:-$ROOT/bin}:$PATH"
    D="$BATS_TEST_TMPDIR"
    command -v dlt-phantom >/dev/null || skip "dlt-phantom not built"
    if [ ! -e "$D/ph/img0001.nii.gz" ]; then
        dlt-phantom -n 1 --seed 5 --size 48,40,32 -o "$D/ph" 2>/dev/null
    fi
}

png_size() { # prints "W H" from the IHDR chunk
    od -An -tu1 -j16 -N8 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'
}

@test "writes a PNG with one column per label volume" {
    run dlt-render "$D/ph/img0001.nii.gz" -l "$D/ph/label0001.nii.gz" -o "$D/one.png"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [ "$(head -c 8 "$D/one.png" | od -An -tx1 | tr -d ' ')" = "89504e470d0a1a0a" ]
    read w1 h1 < <(png_size "$D/one.png")
    dlt-render "$D/ph/img0001.nii.gz" -l "$D/ph/label0001.nii.gz" -l "$D/ph/label0001.nii.gz" -o "$D/two.png"
    read w2 h2 < <(png_size "$D/two.png")
    [ "$h1" -eq "$h2" ]
    [ "$w2" -gt "$w1" ]
}

@test "the overlay is coloured and the image alone is grey" {
    dlt-render "$D/ph/img0001.nii.gz" --view axial -o "$D/grey.png"
    dlt-render "$D/ph/img0001.nii.gz" -l "$D/ph/label0001.nii.gz" --view axial --alpha 1 -o "$D/col.png"
    /usr/bin/python3 -c 'import zlib' 2>/dev/null || skip "no python3"
    cat > "$D/colours.py" <<'PY'
import sys, zlib, struct
d = open(sys.argv[1], 'rb').read()
w, h = struct.unpack('>II', d[16:24])
raw = b''; i = 8
while i < len(d):
    n, = struct.unpack('>I', d[i:i+4]); t = d[i+4:i+8]
    if t == b'IDAT': raw += d[i+8:i+8+n]
    i += 12 + n
raw = zlib.decompress(raw); stride = w * 3 + 1
out = bytearray(); prev = bytearray(w * 3)
for y in range(h):
    f = raw[y*stride]; line = bytearray(raw[y*stride+1:(y+1)*stride])
    for x in range(w * 3):
        a = line[x-3] if x >= 3 else 0; b = prev[x]; c = prev[x-3] if x >= 3 else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    out += line; prev = line
cols = sum(1 for k in range(0, len(out), 3) if not (out[k] == out[k+1] == out[k+2]))
print(cols)
PY
    grey=$(/usr/bin/python3 "$D/colours.py" "$D/grey.png")
    col=$(/usr/bin/python3 "$D/colours.py" "$D/col.png")
    [ "$col" -gt $((grey + 500)) ]
}

@test "mosaic, outline, window, at and size options" {
    run dlt-render "$D/ph/img0001.nii.gz" -l "$D/ph/label0001.nii.gz" --view coronal --mosaic 6 --outline \
        -w -160,240 --classes "$D/ph/classes.tsv" --size 64 -o "$D/m.png"
    [ "$status" -eq 0 ]
    run dlt-render "$D/ph/img0001.nii.gz" --at 1,2,3 --view sagittal,axial -o "$D/a.png"
    [ "$status" -eq 0 ]
    [ -s "$D/a.png" ]
}

@test "PNG to stdout when not a terminal" {
    dlt-render "$D/ph/img0001.nii.gz" -o - > "$D/s.png"
    [ "$(head -c 4 "$D/s.png" | od -An -tx1 | tr -d ' ')" = "89504e47" ]
}

@test "usage errors exit 2 with a message and no output" {
    run dlt-render "$D/ph/img0001.nii.gz"
    [ "$status" -eq 2 ] && [[ "$output" == *"error: no output given"* ]]
    run dlt-render -o "$D/x.png"
    [ "$status" -eq 2 ]
    run dlt-render "$D/ph/img0001.nii.gz" --view top -o "$D/x.png"
    [ "$status" -eq 2 ] && [[ "$output" == *"unknown view 'top'"* ]]
    run dlt-render "$D/ph/img0001.nii.gz" -w 5,1 -o "$D/x.png"
    [ "$status" -eq 2 ] && [[ "$output" == *"--window"* ]]
    run dlt-render "$D/ph/img0001.nii.gz" --at 999,0,0 -o "$D/x.png"
    [ "$status" -eq 2 ]
    [ ! -e "$D/x.png" ]
}

@test "bad files: missing, not NIfTI, label on another grid" {
    run dlt-render "$D/none.nii.gz" -o "$D/x.png"
    [ "$status" -eq 1 ] && [[ "$output" == *"dlt-render: error: "*"none.nii.gz"* ]]
    echo "not a volume" > "$D/bad.nii"
    run dlt-render "$D/bad.nii" -o "$D/x.png"
    [ "$status" -eq 1 ] && [[ "$output" == *"bad.nii"* ]]
    dlt-phantom -n 1 --seed 5 --size 40,40,32 -o "$D/other" 2>/dev/null
    run dlt-render "$D/ph/img0001.nii.gz" -l "$D/other/label0001.nii.gz" -o "$D/x.png"
    [ "$status" -eq 1 ] && [[ "$output" == *"not on the grid"* ]]
    [ ! -e "$D/x.png" ]
    ls "$D" | grep -q tmp && false || true
}
