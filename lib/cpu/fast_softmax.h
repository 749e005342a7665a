/* cpu/fast_softmax.h - per-voxel softmax helpers shared by the fast path's
 * softmax (fast_ops.c) and losses (fast_loss.c). Inline only: they are
 * compiled into each FAST_SIMD caller's clones. */
#ifndef DLT_CPU_FAST_SOFTMAX_H
#define DLT_CPU_FAST_SOFTMAX_H

#include <math.h>
#include <stdint.h>

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
    union {
        uint32_t u;
        float f;
    } sc;
    sc.u = (uint32_t)((int32_t)fi + 127) << 23;
    return p * sc.f;
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

/* The same for C <= 16 classes in one 16-lane block (the usual case):
 * e[16] (zero past C), returns the sum. */
FSM_INL float vox_softmax16(const float *z, int64_t C, float *e, float *mx_out)
{
    float mx = -INFINITY;
    for (int l = 0; l < 16; l++)
        if (l < C) mx = z[l] > mx ? z[l] : mx;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int l = 0; l < 16; l++) {
        e[l] = l < C ? fexp(z[l] - mx) : 0.f;
        s += e[l];
    }
    *mx_out = mx;
    return s;
}

#endif
