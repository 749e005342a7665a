#!/usr/bin/env python3
"""mkfixtures.py - write the small NIfTI and patch-stream fixtures that
tests/dlt-normalize.bats and tests/dlt-dice.bats use (standard library only,
deterministic bytes). Run from anywhere: python3 tests/data/mkfixtures.py

  cube.nii.gz        12x10x8 uint8 labels, voxel 2x1x1 mm: class 1 = the
                     cube x,y,z in [2,5]; class 3 = x,y,z in [8,9]x[7,8]x[5,6]
  cube_shift.nii.gz  the same grid: class 1 shifted by +1 voxel in x,
                     class 2 = x,y,z in [9,10]x[1,2]x[1,2] (absent from cube),
                     class 3 unchanged
  cube_moved.nii.gz  like cube.nii.gz with the origin moved 3 mm in y
  cube_small.nii.gz  like cube.nii.gz but 12x10x7 voxels
  float_label.nii.gz float32 "labels" holding 0.5 (not integers)
  img.nii.gz         16x12x10 float32 image, voxel axes L,S,A (1.5, 2, 1 mm),
                     origin (20,-10,5): a smooth ramp plus a sine pattern
  smooth.nii.gz      20x16x12 float32, voxel 1.5,1.5,2 mm (RAS), slowly varying
  mask.nii.gz        uint8 on img.nii.gz's grid: 1 in x,y,z [3,10]x[2,8]x[1,7]
  stream.dltp        a patch stream: 3 records of 4x4x4, 2 channels, labels
"""
import gzip, math, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def nifti(path, dims, dtype, data, srow, pixdim):
    code, bitpix, fmt = {"u8": (2, 8, "B"), "f32": (16, 32, "f")}[dtype]
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, dims[0], dims[1], dims[2], 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, code, bitpix)
    struct.pack_into("<8f", h, 76, 1.0, pixdim[0], pixdim[1], pixdim[2], 1, 1, 1, 1)
    struct.pack_into("<f", h, 108, 352.0)
    struct.pack_into("<ff", h, 112, 1.0, 0.0)
    h[123] = 2 | 8  # mm, s
    struct.pack_into("<hh", h, 252, 0, 1)  # qform_code 0, sform_code 1 (scanner)
    for r in range(3):
        struct.pack_into("<4f", h, 280 + 16 * r, *srow[r])
    h[344:348] = b"n+1\0"
    body = bytes(h) + b"\0\0\0\0" + struct.pack("<%d%s" % (len(data), fmt), *data)
    with open(os.path.join(HERE, path), "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(body)


def labels(dims, boxes):
    nx, ny, nz = dims
    v = [0] * (nx * ny * nz)
    for lab, (x0, x1, y0, y1, z0, z1) in boxes:
        for z in range(z0, z1 + 1):
            for y in range(y0, y1 + 1):
                for x in range(x0, x1 + 1):
                    v[(z * ny + y) * nx + x] = lab
    return v


D = (12, 10, 8)
S = [[2, 0, 0, -11], [0, 1, 0, -4.5], [0, 0, 1, -3.5]]
P = (2, 1, 1)
c1 = (1, (2, 5, 2, 5, 2, 5))
c3 = (3, (8, 9, 7, 8, 5, 6))
nifti("cube.nii.gz", D, "u8", labels(D, [c1, c3]), S, P)
nifti("cube_shift.nii.gz", D, "u8", labels(D, [(1, (3, 6, 2, 5, 2, 5)), (2, (9, 10, 1, 2, 1, 2)), c3]), S, P)
nifti("cube_moved.nii.gz", D, "u8", labels(D, [c1, c3]), [S[0], [0, 1, 0, -1.5], S[2]], P)
nifti("cube_small.nii.gz", (12, 10, 7), "u8", labels((12, 10, 7), [c1, c3]), S, P)
fl = [0.0] * (D[0] * D[1] * D[2])
fl[5] = 0.5
fl[6] = 1.0
nifti("float_label.nii.gz", D, "f32", fl, S, P)

DI = (16, 12, 10)
img = []
for z in range(DI[2]):
    for y in range(DI[1]):
        for x in range(DI[0]):
            img.append(100.0 * x - 30.0 * y + 7.0 * z + 50.0 * math.sin(0.7 * x + 0.3 * y * z) - 400.0)
nifti("img.nii.gz", DI, "f32", img, [[-1.5, 0, 0, 20], [0, 0, 1, -10], [0, 2, 0, 5]], (1.5, 2, 1))

DS = (20, 16, 12)
sm = [100.0 * math.sin(0.2 * x) + 50.0 * math.cos(0.15 * y) + 3.0 * z for z in range(DS[2]) for y in range(DS[1]) for x in range(DS[0])]
nifti("smooth.nii.gz", DS, "f32", sm, [[1.5, 0, 0, -14], [0, 1.5, 0, -11], [0, 0, 2, -11]], (1.5, 1.5, 2))
nifti("mask.nii.gz", DI, "u8", labels(DI, [(1, (3, 10, 2, 8, 1, 7))]), [[-1.5, 0, 0, 20], [0, 0, 1, -10], [0, 2, 0, 5]], (1.5, 2, 1))

# patch stream (dlt-patches(5))
hdr = b"DLTPATCHES 1\nchannels 2\nclasses 3\npatch 4,4,4\nlabel yes\npreprocessing ct=-1000,800\nend\n"
recs = b""
for r in range(3):
    sid = ("case%d" % r).encode()
    n = 64
    im = [((i * 37 + r * 11) % 23) * (1.0 + c * 9.0) - 5.0 for c in range(2) for i in range(n)]
    lab = [(i + r) % 3 for i in range(n)]
    payload = struct.pack("<H", len(sid)) + sid + struct.pack("<3i3iI", r, -1, 2, 4, 4, 4, 2)
    payload += struct.pack("<%df" % (2 * n), *im) + b"\x01" + struct.pack("<%dH" % n, *lab)
    body = b"PREC" + struct.pack("<I", len(payload) + 4) + payload
    recs += body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
with open(os.path.join(HERE, "stream.dltp"), "wb") as f:
    f.write(hdr + recs)
