/* backend/cpu/fast_softmax.h - per-voxel softmax helpers shared by the fast path's
 * softmax (fast_ops.c) and losses (fast_loss.c). Inline only: they are
 * compiled into each ISA's copy of their callers (backend/cpu/fast_kern.h). */
#ifndef DLT_CPU_FAST_SOFTMAX_H
#define DLT_CPU_FAST_SOFTMAX_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FSM_INL static inline __attribute__((always_inline))

/* exp(x) for x <= 0 (softmax after subtracting the maximum): 2^(x log2 e)
 * split into 2^n * 2^f, f in [-1/2, 1/2], with Cephes' exp2f polynomial;
 * relative error a few 1e-7, and it vectorises (libm's expf does not). */
FSM_INL float fexp(float x)
{
    x = x < -87.f ? -87.f : x;
    const float t = x * 1.44269504088896341f;
    const float fi = floorf(t + 0.5f);
    const float f = t - fi;
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.f;
    /* 2^n from its bits; memcpy, not a union, so that loops vectorise */
    const uint32_t u = (uint32_t)((int32_t)fi + 127) << 23;
    float sc;
    memcpy(&sc, &u, 4);
    return p * sc;
}

/* Softmax of the C values of one voxel, channel c at z[(c/B)*bs + c%B]:
 * p[c] = exp(z - max), *sum_out = sum p. */
FSM_INL void vox_softmax(const float *z, int64_t C, int64_t B, int64_t bs, float *p, float *mx_out, double *sum_out)
{
    float mx = -INFINITY;
    for (int64_t c = 0; c < C; c++) {
        float v = z[(c / B) * bs + c % B];
        p[c] = v;
        mx = v > mx ? v : mx;
    }
    double s = 0;
    for (int64_t c = 0; c < C; c++) {
        p[c] = fexp(p[c] - mx);
        s += p[c];
    }
    *mx_out = mx;
    *sum_out = s;
}

/* The same for C <= 16 classes (the usual case) in 16 lanes z[16]: e[16]
 * (zero past C), returns the sum. In GCC's generic vectors, which become
 * one AVX-512 register, or two AVX2 ones, in the caller's copy (plain
 * loops here stay scalar at -O2: the reductions and the bit cast defeat
 * GCC 12's cheap vectoriser cost model). */
/* GCC warns at the end of each including file that 64-byte vector values
 * change the ABI without AVX-512; these functions are inline only, so no
 * call crosses that ABI (hence no push/pop: the warning comes late). */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float fsm_v16 __attribute__((vector_size(64)));
typedef int32_t fsm_i16 __attribute__((vector_size(64)));

/* For a vector type V (lanes of float) and I (of int32, as wide): SEL,
 * mask ? a : b lane by lane (mask lanes all ones or all zeros), and EXP,
 * fexp on every lane: the same polynomial; n = round(t) by the 1.5*2^23
 * trick. Made for 16 lanes and, without AVX-512, for 8. */
#define FSM_VEC_FUNCS(SEL, EXP, V, I)                                                                            \
    FSM_INL V SEL(I mask, V a, V b) { return (V)(((I)a & mask) | ((I)b & ~mask)); }                              \
    FSM_INL V EXP(V x)                                                                                           \
    {                                                                                                            \
        const V lo = (V){0} - 87.f;                                                                              \
        x = SEL(x < lo, lo, x);                                                                                  \
        const V t = x * 1.44269504088896341f;                                                                    \
        const V fi = (t + 12582912.f) - 12582912.f;                                                              \
        const V f = t - fi;                                                                                      \
        V p = f * 1.535336188319500e-4f + 1.339887440266574e-3f;                                                 \
        p = p * f + 9.618437357674640e-3f;                                                                       \
        p = p * f + 5.550332471162809e-2f;                                                                       \
        p = p * f + 2.402264791363012e-1f;                                                                       \
        p = p * f + 6.931472028550421e-1f;                                                                       \
        p = p * f + 1.f;                                                                                         \
        const I n = __builtin_convertvector(fi, I);                                                              \
        return p * (V)((n + 127) << 23);                                                                         \
    }
FSM_VEC_FUNCS(fsm_sel, fexp16, fsm_v16, fsm_i16)

#ifdef __AVX512F__
FSM_INL float vox_softmax16(const float *z, int64_t C, float *e, float *mx_out)
{
    static const fsm_i16 idx = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const fsm_i16 s8 = {8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7};
    static const fsm_i16 s4 = {4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11};
    static const fsm_i16 s2 = {2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13};
    static const fsm_i16 s1 = {1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14};
    fsm_v16 v, m;
    memcpy(&v, z, sizeof v); /* all 16 lanes are in the block */
    const fsm_i16 valid = idx < (int32_t)C;
    m = fsm_sel(valid, v, (fsm_v16){0} - INFINITY);
    /* pairwise max and sum across the lanes: every lane ends with the total */
    fsm_v16 t = __builtin_shuffle(m, s8);
    m = fsm_sel(t > m, t, m);
    t = __builtin_shuffle(m, s4);
    m = fsm_sel(t > m, t, m);
    t = __builtin_shuffle(m, s2);
    m = fsm_sel(t > m, t, m);
    t = __builtin_shuffle(m, s1);
    m = fsm_sel(t > m, t, m);
    const fsm_v16 ev = fsm_sel(valid, fexp16(v - m), (fsm_v16){0});
    memcpy(e, &ev, sizeof ev);
    fsm_v16 s = ev + __builtin_shuffle(ev, s8);
    s += __builtin_shuffle(s, s4);
    s += __builtin_shuffle(s, s2);
    s += __builtin_shuffle(s, s1);
    *mx_out = m[0];
    return s[0];
}
#else
/* Without AVX-512 the 16 lanes are two 8-lane halves: shuffles across a
 * 64-byte vector would not be single instructions (GCC split them into
 * scalar moves and cmovs on AVX2: 250 cycles a voxel), so the reductions
 * run on the halves' lane-wise max and sum, within 8 lanes. */
typedef float fsm_v8 __attribute__((vector_size(32)));
typedef int32_t fsm_i8 __attribute__((vector_size(32)));

FSM_VEC_FUNCS(fsm_sel8, fexp8, fsm_v8, fsm_i8)

FSM_INL float vox_softmax16(const float *z, int64_t C, float *e, float *mx_out)
{
    static const fsm_i8 idx = {0, 1, 2, 3, 4, 5, 6, 7};
    static const fsm_i8 s4 = {4, 5, 6, 7, 0, 1, 2, 3}, s2 = {2, 3, 0, 1, 6, 7, 4, 5}, s1 = {1, 0, 3, 2, 5, 4, 7, 6};
    const fsm_v8 ninf = (fsm_v8){0} - INFINITY;
    fsm_v8 a, b;
    memcpy(&a, z, sizeof a);
    memcpy(&b, z + 8, sizeof b);
    const fsm_i8 va = idx < (int32_t)C, vb = idx + 8 < (int32_t)C;
    const fsm_v8 ma = fsm_sel8(va, a, ninf), mb = fsm_sel8(vb, b, ninf);
    fsm_v8 m = fsm_sel8(mb > ma, mb, ma), t = __builtin_shuffle(m, s4);
    m = fsm_sel8(t > m, t, m);
    t = __builtin_shuffle(m, s2);
    m = fsm_sel8(t > m, t, m);
    t = __builtin_shuffle(m, s1);
    m = fsm_sel8(t > m, t, m);
    const fsm_v8 zero = {0}, ea = fsm_sel8(va, fexp8(a - m), zero), eb = fsm_sel8(vb, fexp8(b - m), zero);
    memcpy(e, &ea, sizeof ea);
    memcpy(e + 8, &eb, sizeof eb);
    fsm_v8 s = ea + eb;
    s += __builtin_shuffle(s, s4);
    s += __builtin_shuffle(s, s2);
    s += __builtin_shuffle(s, s1);
    *mx_out = m[0];
    return s[0];
}
#endif

/* The C <= 16 values of one voxel, in blocks of B = 8 or 16 lanes bs floats
 * apart, to and from 16 consecutive lanes (lanes past C read as zero and
 * are written back only where the layout has them, as zero). */
FSM_INL void vox_gather16(const float *z, int64_t B, int64_t bs, int64_t C, float *z16)
{
    if (B == 16) {
        memcpy(z16, z, 64);
        return;
    }
    memcpy(z16, z, 32);
    if (C > 8) memcpy(z16 + 8, z + bs, 32);
    else memset(z16 + 8, 0, 32);
}
FSM_INL void vox_scatter16(const float *g16, int64_t B, int64_t bs, int64_t C, float *g)
{
    if (B == 16) {
        memcpy(g, g16, 64);
        return;
    }
    memcpy(g, g16, 32);
    if (C > 8) memcpy(g + bs, g16 + 8, 32);
}
/* Whether a layout of b lanes and C classes suits the 16-lane helpers. */
FSM_INL int vox_fits16(int64_t b, int64_t C) { return C <= 16 && (b == 16 || b == 8); }

#endif
