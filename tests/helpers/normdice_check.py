#!/usr/bin/env python3
"""normdice_check.py - independent readers and reference computations for
tests/dlt-normalize.bats and tests/dlt-dice.bats.

Standard library only (NIfTI-1 and patch streams read by hand):
  info FILE                 dims, affine, descrip, codes, value statistics
  diff A B [MARGIN]         max |A-B| over voxels at least MARGIN from the
                            border, and max |affine A - affine B|
  stream FILE               the header's preprocessing and, per record and
                            channel, min/max/mean; label checksum
Needs numpy, scipy, nibabel (exit 77 when they are missing):
  mkpair DIR                write a random smooth pair pred.nii.gz/ref.nii.gz
                            (classes 1, 2; anisotropic voxels) into DIR
  metrics PRED REF          Dice, precision, recall, volumes, HD95 and ASSD
                            per class as medpy defines them, with
                            scipy.ndimage.distance_transform_edt(sampling=...)
"""
import gzip, math, struct, sys, zlib

DT = {2: ("B", 1), 4: ("h", 2), 8: ("i", 4), 16: ("f", 4), 64: ("d", 8), 256: ("b", 1), 512: ("H", 2), 768: ("I", 4)}


def load(path):
    raw = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    (sz,) = struct.unpack_from("<i", raw, 0)
    if sz != 348:
        sys.exit("%s: not a NIfTI-1 file (sizeof_hdr %d)" % (path, sz))
    dim = struct.unpack_from("<8h", raw, 40)
    dtype, _ = struct.unpack_from("<hh", raw, 70)
    pix = struct.unpack_from("<8f", raw, 76)
    (off,) = struct.unpack_from("<f", raw, 108)
    slope, inter = struct.unpack_from("<ff", raw, 112)
    descrip = raw[148:228].split(b"\0")[0].decode()
    qcode, scode = struct.unpack_from("<hh", raw, 252)
    srow = [struct.unpack_from("<4f", raw, 280 + 16 * r) for r in range(3)]
    n = 1
    for i in range(1, dim[0] + 1):
        n *= dim[i]
    fmt, size = DT[dtype]
    data = struct.unpack_from("<%d%s" % (n, fmt), raw, int(off))
    if slope not in (0.0, 1.0) or inter != 0.0:
        data = [v * (slope or 1.0) + inter for v in data]
    return dict(dims=dim[1 : dim[0] + 1], pixdim=pix[1:4], descrip=descrip, qcode=qcode, scode=scode,
                affine=[list(r) for r in srow], data=data, dtype=dtype)


def info(path):
    v = load(path)
    d = [x for x in v["data"] if math.isfinite(x)]
    mean = sum(d) / len(d)
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / len(d))
    print("dims", *v["dims"])
    print("pixdim", *["%g" % p for p in v["pixdim"]])
    print("affine", *["%g" % a for r in v["affine"] for a in r])
    print("codes", v["qcode"], v["scode"])
    print("descrip", v["descrip"])
    print("datatype", v["dtype"])
    print("min %.6g" % min(d))
    print("max %.6g" % max(d))
    print("mean %.6g" % mean)
    print("std %.6g" % std)
    print("nonzero", sum(1 for x in d if x != 0))


def diff(a, b, margin=0):
    A, B = load(a), load(b)
    if A["dims"] != B["dims"]:
        print("dims differ", A["dims"], B["dims"])
        return
    nx, ny, nz = A["dims"][:3]
    m = 0.0
    for z in range(margin, nz - margin):
        for y in range(margin, ny - margin):
            for x in range(margin, nx - margin):
                i = (z * ny + y) * nx + x
                m = max(m, abs(A["data"][i] - B["data"][i]))
    ad = max(abs(p - q) for r, s in zip(A["affine"], B["affine"]) for p, q in zip(r, s))
    print("maxdiff %.6g affinediff %.6g" % (m, ad))


def stream(path):
    raw = open(path, "rb").read() if path != "-" else sys.stdin.buffer.read()
    end = raw.index(b"\nend\n") + 5
    for line in raw[:end].decode().splitlines():
        if line.startswith("preprocessing "):
            print(line)
    pos = end
    while pos < len(raw):
        assert raw[pos : pos + 4] == b"PREC", "bad magic at %d" % pos
        (ln,) = struct.unpack_from("<I", raw, pos + 4)
        body = raw[pos : pos + 8 + ln - 4]
        (crc,) = struct.unpack_from("<I", raw, pos + 8 + ln - 4)
        assert zlib.crc32(body) & 0xFFFFFFFF == crc, "crc at %d" % pos
        p = pos + 8
        (il,) = struct.unpack_from("<H", raw, p)
        sid = raw[p + 2 : p + 2 + il].decode()
        p += 2 + il
        c = struct.unpack_from("<3i3iI", raw, p)
        p += 28
        n = c[3] * c[4] * c[5]
        out = [sid]
        for ch in range(c[6]):
            v = struct.unpack_from("<%df" % n, raw, p)
            p += 4 * n
            out.append("%.6g,%.6g,%.6g" % (min(v), max(v), sum(v) / n))
        if raw[p]:
            out.append("labels=%08x" % zlib.crc32(raw[p + 1 : p + 1 + 2 * n]))
        print(" ".join(out))
        pos += 8 + ln


def need_sci():
    try:
        import numpy, scipy.ndimage, nibabel  # noqa: F401
    except Exception:
        sys.exit(77)


def mkpair(d):
    need_sci()
    import numpy as np, nibabel as nib
    from scipy import ndimage as ndi
    rng = np.random.default_rng(3)
    shape = (34, 29, 21)
    aff = np.diag([1.2, 0.8, 2.0, 1.0])
    aff[:3, 3] = (-20, 7, 3)
    f = ndi.gaussian_filter(rng.standard_normal(shape), 3)
    g = f + ndi.gaussian_filter(rng.standard_normal(shape), 2) * 0.3
    ref = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    ref[f > 0.05] = 1
    ref[f < -0.08] = 2
    pred[g > 0.05] = 1
    pred[g < -0.08] = 2
    pred[:3] = 0  # make some surface lie on the border of one only
    nib.save(nib.Nifti1Image(ref, aff), d + "/ref.nii.gz")
    nib.save(nib.Nifti1Image(pred, aff), d + "/pred.nii.gz")


def metrics(pred, ref, nsd_tol=1.5):
    need_sci()
    import numpy as np, nibabel as nib
    from scipy import ndimage as ndi
    P, R = nib.load(pred), nib.load(ref)
    p, r = np.asarray(P.dataobj).astype(int), np.asarray(R.dataobj).astype(int)
    sp = R.header.get_zooms()[:3]
    st = ndi.generate_binary_structure(3, 1)
    for c in range(1, max(p.max(), r.max()) + 1):
        a, b = p == c, r == c
        tp, na, nb = (a & b).sum(), a.sum(), b.sum()
        va, vb = na * np.prod(sp) / 1000, nb * np.prod(sp) / 1000
        if na == 0 or nb == 0:
            print(c, 2 * tp / max(na + nb, 1), 0, 0, va, vb, "inf", "inf", 0)
            continue
        sa = a ^ ndi.binary_erosion(a, structure=st, iterations=1)
        sb = b ^ ndi.binary_erosion(b, structure=st, iterations=1)
        dab = ndi.distance_transform_edt(~sb, sampling=sp)[sa]
        dba = ndi.distance_transform_edt(~sa, sampling=sp)[sb]
        hd95 = np.percentile(np.hstack((dab, dba)), 95)
        assd = (dab.mean() + dba.mean()) / 2
        # NSD over surface voxels (MONAI compute_surface_dice, use_subvoxels=False)
        nsd = ((dab <= nsd_tol).sum() + (dba <= nsd_tol).sum()) / (len(dab) + len(dba))
        print(c, 2 * tp / (na + nb), tp / na, tp / nb, va, vb, hd95, assd, nsd)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "info":
        info(args[0])
    elif cmd == "diff":
        diff(args[0], args[1], int(args[2]) if len(args) > 2 else 0)
    elif cmd == "stream":
        stream(args[0])
    elif cmd == "mkpair":
        mkpair(args[0])
    elif cmd == "metrics":
        metrics(args[0], args[1])
    else:
        sys.exit("unknown command " + cmd)
