#!/usr/bin/env python3
"""sample_check.py - fixtures and stream checks for tests/dlt-sample.bats,
standard library only (struct, gzip), written from the NIfTI-1 and
dlt-patches(5) descriptions, independent of dlt's own readers.

  sample_check.py nifti OUT NX,NY,NZ [--label] [--pattern blobs|ramp]
        [--spacing SX,SY,SZ] [--descrip TEXT]
      blobs: a box of class 1, a smaller box of class 2, background 0 (the
      image holds the same numbers as float32, so image == label);
      ramp: image = x + 100 y + 10000 z.
  sample_check.py header-bytes < STREAM    byte length of the header
  sample_check.py records < STREAM         one line per record: id cx cy cz
                                           sx sy sz channels has_label
                                           centre_label
  sample_check.py centres < STREAM         counts of the label at the patch
                                           centre, as "class count" lines
  sample_check.py aligned < STREAM         the fraction of voxels where
                                           round(image channel 0) == label,
                                           lowest over the records
"""
import gzip, struct, sys, zlib


def nifti(argv):
    out, dims = argv[0], [int(x) for x in argv[1].split(',')]
    label = '--label' in argv
    pattern = argv[argv.index('--pattern') + 1] if '--pattern' in argv else 'blobs'
    sp = [float(x) for x in argv[argv.index('--spacing') + 1].split(',')] if '--spacing' in argv else [1.0, 1.0, 1.0]
    descrip = argv[argv.index('--descrip') + 1].encode() if '--descrip' in argv else b''
    nx, ny, nz = dims
    code, bitpix, fmt = (2, 8, 'B') if label else (16, 32, 'f')
    h = bytearray(348)
    struct.pack_into('<i', h, 0, 348)
    struct.pack_into('<8h', h, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into('<hh', h, 70, code, bitpix)
    struct.pack_into('<8f', h, 76, 1.0, sp[0], sp[1], sp[2], 1, 1, 1, 1)
    struct.pack_into('<fff', h, 108, 352.0, 1.0, 0.0)
    h[123] = 10
    struct.pack_into('<hh', h, 252, 0, 1)  # sform only
    struct.pack_into('<4f', h, 280, sp[0], 0, 0, 0)
    struct.pack_into('<4f', h, 296, 0, sp[1], 0, 0)
    struct.pack_into('<4f', h, 312, 0, 0, sp[2], 0)
    h[148:148 + len(descrip[:79])] = descrip[:79]
    h[344:348] = b'n+1\0'
    vals = []
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if pattern == 'ramp':
                    vals.append(x + 100 * y + 10000 * z)
                    continue
                c = 0
                if nx // 4 <= x < nx // 2 and ny // 4 <= y < 3 * ny // 4 and nz // 4 <= z < 3 * nz // 4:
                    c = 1
                if 3 * nx // 5 <= x < 4 * nx // 5 and ny // 5 <= y < 2 * ny // 5 and nz // 2 <= z < 3 * nz // 4:
                    c = 2
                vals.append(c)
    data = struct.pack('<%d%s' % (len(vals), fmt), *vals)
    blob = bytes(h) + b'\0' * 4 + data
    if out.endswith('.gz'):
        blob = gzip.compress(blob, 1)
    open(out, 'wb').write(blob)


def read_stream(f):
    head = b''
    while True:
        line = f.readline()
        if not line:
            raise SystemExit('stream ends in the header')
        head += line
        if line == b'end\n':
            break
    recs = []
    while True:
        pre = f.read(8)
        if not pre:
            break
        magic, n = pre[:4], struct.unpack('<I', pre[4:])[0]
        if magic != b'PREC':
            raise SystemExit('bad record magic %r at record %d' % (magic, len(recs)))
        body = f.read(n)
        if zlib.crc32(pre + body[:-4]) != struct.unpack('<I', body[-4:])[0]:
            raise SystemExit('crc mismatch in record %d' % len(recs))
        idl = struct.unpack('<H', body[:2])[0]
        rid = body[2:2 + idl].decode()
        o = 2 + idl
        corner = struct.unpack('<3i', body[o:o + 12])
        size = struct.unpack('<3i', body[o + 12:o + 24])
        ch = struct.unpack('<I', body[o + 24:o + 28])[0]
        o += 28
        vox = size[0] * size[1] * size[2]
        img = struct.unpack('<%df' % (vox * ch), body[o:o + 4 * vox * ch])
        o += 4 * vox * ch
        has = body[o]
        o += 1
        lab = struct.unpack('<%dH' % vox, body[o:o + 2 * vox]) if has else None
        recs.append((rid, corner, size, ch, has, img, lab))
    return head, recs


def centre(size, lab):
    cx, cy, cz = size[0] // 2, size[1] // 2, size[2] // 2
    return lab[(cz * size[1] + cy) * size[0] + cx] if lab else -1


def main():
    cmd = sys.argv[1]
    if cmd == 'nifti':
        return nifti(sys.argv[2:])
    head, recs = read_stream(sys.stdin.buffer)
    if cmd == 'header-bytes':
        print(len(head))
    elif cmd == 'records':
        for rid, corner, size, ch, has, img, lab in recs:
            print(rid, *corner, *size, ch, has, centre(size, lab))
    elif cmd == 'centres':
        counts = {}
        for rid, corner, size, ch, has, img, lab in recs:
            c = centre(size, lab)
            counts[c] = counts.get(c, 0) + 1
        for c in sorted(counts):
            print(c, counts[c])
    elif cmd == 'aligned':
        worst = 1.0
        for rid, corner, size, ch, has, img, lab in recs:
            vox = len(lab)
            ok = sum(1 for i in range(vox) if int(round(img[i])) == lab[i])
            worst = min(worst, ok / vox)
        print('%.4f' % worst)
    else:
        raise SystemExit('unknown command ' + cmd)


if __name__ == '__main__':
    main()
