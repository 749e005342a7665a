#!/usr/bin/env python3
"""mkstream.py - a learnable patch stream (dlt-patches(5)) for dlt-train's
tests, written from the format description with the standard library only.

  mkstream.py [--records N] [--skip K] [--patch P] [--classes C] [--channels N]
              [--seed S] [--nan-at R] [--preprocessing TEXT] > stream

Record r depends only on (seed, r), so --skip K gives exactly the tail of the
stream (as dlt-sample --skip). Images are smooth-ish noise in [0,1) made of
2x2x2 blocks; the label of a voxel is floor(value * C) of channel 0, so a
network can learn it in a few steps. --nan-at R puts a NaN into record R.
--records 0 writes the header only; --records -1 is endless.
"""
import argparse, random, struct, sys, zlib


def record(a, r):
    rng = random.Random(a.seed * 1000003 + r)
    P = a.patch
    vox = P * P * P
    blocks = {}
    img = []
    for c in range(a.channels):
        for z in range(P):
            for y in range(P):
                for x in range(P):
                    k = (c, z // 2, y // 2, x // 2)
                    if k not in blocks:
                        blocks[k] = rng.random()
                    img.append(blocks[k])
    lab = [min(int(v * a.classes), a.classes - 1) for v in img[:vox]]
    if r == a.nan_at:
        img[vox // 2] = float('nan')
    sid = ('subject-%d' % (r % 3)).encode()
    body = struct.pack('<H', len(sid)) + sid
    body += struct.pack('<3i3iI', 0, 0, r, P, P, P, a.channels)
    body += struct.pack('<%df' % len(img), *img)
    body += b'\1' + struct.pack('<%dH' % vox, *lab)
    rec = b'PREC' + struct.pack('<I', len(body) + 4) + body
    return rec + struct.pack('<I', zlib.crc32(rec) & 0xffffffff)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--records', type=int, default=64)
    p.add_argument('--skip', type=int, default=0)
    p.add_argument('--patch', type=int, default=8)
    p.add_argument('--classes', type=int, default=3)
    p.add_argument('--channels', type=int, default=1)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--nan-at', type=int, default=-1)
    p.add_argument('--preprocessing', default='')
    a = p.parse_args()
    names = ','.join(['background'] + ['class%d' % k for k in range(1, a.classes)])
    hdr = ('DLTPATCHES 1\nchannels %d\nclasses %d\npatch %d,%d,%d\nlabel yes\nclass_names %s\n'
           % (a.channels, a.classes, a.patch, a.patch, a.patch, names))
    if a.preprocessing:
        hdr += 'preprocessing %s\n' % a.preprocessing
    hdr += 'sampler mkstream\nseed %d\nsource mkstream.py\nend\n' % a.seed
    out = sys.stdout.buffer
    out.write(hdr.encode())
    r = a.skip
    try:
        while a.records < 0 or r < a.records:
            out.write(record(a, r))
            r += 1
        out.flush()
    except BrokenPipeError:
        sys.stderr.close()


if __name__ == '__main__':
    main()
