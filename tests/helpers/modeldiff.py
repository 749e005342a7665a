#!/usr/bin/env python3
"""modeldiff.py A.dltm B.dltm [--prefix P]: the largest absolute and
relative difference between the f32 tensors two model files share (both
safetensors), one line: "max_abs X max_rel Y tensors N worst NAME". Exit 2
if the files hold different tensor names or shapes."""
import json, struct, sys


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in head.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        cnt = (b - a) // 4
        out[name] = (tuple(t["shape"]), struct.unpack("<%df" % cnt, data[base + a:base + b]))
    return out


def main():
    args = sys.argv[1:]
    prefix = ""
    if "--prefix" in args:
        i = args.index("--prefix")
        prefix = args[i + 1]
        del args[i:i + 2]
    A, B = load(args[0]), load(args[1])
    names = sorted(k for k in A if k.startswith(prefix))
    if names != sorted(k for k in B if k.startswith(prefix)):
        print("different tensors", file=sys.stderr)
        sys.exit(2)
    worst, mabs, mrel = "", 0.0, 0.0
    for k in names:
        if A[k][0] != B[k][0]:
            print("%s: shapes %s and %s" % (k, A[k][0], B[k][0]), file=sys.stderr)
            sys.exit(2)
        scale = max(1e-6, max(abs(v) for v in A[k][1]) if A[k][1] else 1.0)
        for x, y in zip(A[k][1], B[k][1]):
            d = abs(x - y)
            if d > mabs:
                mabs = d
            if d / scale > mrel:
                mrel, worst = d / scale, k
    print("max_abs %.3g max_rel %.3g tensors %d worst %s" % (mabs, mrel, len(names), worst or "-"))


main()
