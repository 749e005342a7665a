#!/usr/bin/env python3
"""fixtures.py - small test inputs written from the format descriptions alone
(standard library only: struct, zlib, json, gzip), so the tests check dlt's
readers against an independent writer.

  fixtures.py nifti OUT [--dims 4,3,2] [--dtype float32|uint8|int16] [--label]
              [--lie] [--nodata] [--slope S --inter I]  NIfTI-1 (.nii, .nii.gz)
  fixtures.py patches OUT [--records N] [--channels C] [--nolabel]
                          [--seed S]                 dlt-patches(5) stream
  fixtures.py model OUT [--checkpoint]               dlt-model(5) safetensors
"""
import argparse, gzip, json, struct, sys, zlib

DT = {'uint8': (2, 8, 'B'), 'int16': (4, 16, 'h'), 'float32': (16, 32, 'f'), 'int32': (8, 32, 'i')}


def nifti(a):
    dims = [int(x) for x in a.dims.split(',')]
    code, bitpix, fmt = DT[a.dtype]
    h = bytearray(348)
    struct.pack_into('<i', h, 0, 348)
    d = [len(dims)] + dims + [1] * (7 - len(dims))
    struct.pack_into('<8h', h, 40, *d)
    struct.pack_into('<hh', h, 70, code, bitpix)
    struct.pack_into('<8f', h, 76, 1.0, 2.0, 2.0, 3.0, 1, 1, 1, 1)
    struct.pack_into('<fff', h, 108, 352.0, a.slope, a.inter)
    h[123] = 10  # xyzt_units: mm, s
    struct.pack_into('<hh', h, 252, 1, 1)  # qform_code, sform_code
    struct.pack_into('<4f', h, 280, -2.0, 0, 0, 10)   # LPS-ish: x flipped
    struct.pack_into('<4f', h, 296, 0, -2.0, 0, 20)
    struct.pack_into('<4f', h, 312, 0, 0, 3.0, -30)
    h[148:148 + 11] = b'dlt fixture'
    h[344:348] = b'n+1\0'
    n = 1
    for x in dims:
        n *= max(x, 0)
    if a.lie:
        n = min(n, 10)  # the header promises more than the file holds
    if a.nodata:
        n = 0  # header only (absurd dims)
    if a.label:
        vals = [(i // 7) % 4 for i in range(n)]
    else:
        vals = [(i * 37) % 101 - 50 for i in range(n)]
        if fmt == 'f':
            vals = [v * 0.5 for v in vals]
        elif fmt == 'B':
            vals = [v + 50 for v in vals]
    data = struct.pack('<%d%s' % (n, fmt), *vals)
    blob = bytes(h) + b'\0' * 4 + data
    if a.out.endswith('.gz'):
        blob = gzip.compress(blob)
    open(a.out, 'wb').write(blob)


def patches(a):
    names = 'background,liver,spleen,kidney'
    hdr = ('DLTPATCHES 1\nchannels %d\nclasses 4\npatch 4,3,2\nlabel %s\nclass_names %s\n'
           'sampler uniform\nseed %s\nsource fixtures.py\nend\n'
           % (a.channels, 'no' if a.nolabel else 'yes', names, a.seed)).encode()
    out = [hdr]
    vox = 24
    for r in range(a.records):
        sid = ('subject-%d' % (r % 3)).encode()
        body = struct.pack('<H', len(sid)) + sid
        body += struct.pack('<3i3iI', -1, r, 2, 4, 3, 2, a.channels)
        body += struct.pack('<%df' % (vox * a.channels), *[(r + i) * 0.25 for i in range(vox * a.channels)])
        if a.nolabel:
            body += b'\0'
        else:
            lab = [0] * vox if r == 0 else [(i + r) % 4 if i % 2 else 0 for i in range(vox)]
            body += b'\1' + struct.pack('<%dH' % vox, *lab)
        rec = b'PREC' + struct.pack('<I', len(body) + 4) + body
        rec += struct.pack('<I', zlib.crc32(rec) & 0xffffffff)
        out.append(rec)
    open(a.out, 'wb').write(b''.join(out))


def model(a):
    t = {'stem.weight': ('F32', [16, 1, 3, 3, 3]),
         'enc.0.0.bn0.weight': ('F32', [16]), 'enc.0.0.bn0.bias': ('F32', [16]),
         'enc.0.0.bn0.running_mean': ('F32', [16]), 'enc.0.0.bn0.running_var': ('F32', [16]),
         'enc.0.0.conv0.weight': ('F32', [16, 16, 3, 3, 3]), 'head.weight': ('F32', [3, 16, 1, 1, 1])}
    meta = {'net': 'unet', 'in_channels': '1', 'classes': '3', 'class_names': 'background,liver,spleen',
            'filters': '16', 'strides': '1', 'res_units': '1', 'activation': 'leaky_relu', 'norm': 'batch',
            'patch': '64,64,64', 'step': '1500', 'preprocessing': 'ct:-1000,800', 'dlt_version': '0.1.0',
            'note': 'made by fixtures.py'}
    if a.checkpoint:
        for k in ['stem.weight', 'head.weight']:
            t['optim.m.' + k] = t[k]
            t['optim.v.' + k] = t[k]
        meta['optim'] = 'adam'
        meta['rng_seed'] = '1'
    h, blobs, off = {'__metadata__': meta}, [], 0
    for k in sorted(t):
        dt, shape = t[k]
        n = 1
        for s in shape:
            n *= s
        d = struct.pack('<%df' % n, *[(i % 7) * 0.1 for i in range(n)])
        h[k] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + len(d)]}
        off += len(d)
        blobs.append(d)
    s = json.dumps(h).encode()
    s += b' ' * ((8 - len(s) % 8) % 8)
    open(a.out, 'wb').write(struct.pack('<Q', len(s)) + s + b''.join(blobs))


p = argparse.ArgumentParser()
p.add_argument('kind', choices=['nifti', 'patches', 'model'])
p.add_argument('out')
p.add_argument('--dims', default='4,3,2')
p.add_argument('--dtype', default='float32', choices=sorted(DT))
p.add_argument('--label', action='store_true')
p.add_argument('--lie', action='store_true')
p.add_argument('--nodata', action='store_true')
p.add_argument('--slope', type=float, default=0.0)
p.add_argument('--inter', type=float, default=0.0)
p.add_argument('--records', type=int, default=5)
p.add_argument('--channels', type=int, default=1)
p.add_argument('--nolabel', action='store_true')
p.add_argument('--seed', default='1')
p.add_argument('--checkpoint', action='store_true')
a = p.parse_args()
{'nifti': nifti, 'patches': patches, 'model': model}[a.kind](a)
