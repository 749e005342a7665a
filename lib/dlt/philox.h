/* dlt/philox.h - the Philox4x32-10 block function and the float conversions
 * of dlt/core.h, written once for both the host (lib/core/rng.c) and the GPU
 * (lib/backend/cuda), so the two produce identical bits by construction: there is
 * one source, compiled twice. DLT_HD marks a function usable from C, from
 * host C++ and from CUDA device code. Header-only; no state. */
#ifndef DLT_PHILOX_H
#define DLT_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define DLT_HD static __host__ __device__ __forceinline__
#else
#define DLT_HD static inline
#endif

/* Philox4x32-10 (Salmon et al. 2011): counter (ctr_hi, ctr_lo) under key,
 * four 32-bit words out. The 32x32->64 products are written with uint64_t
 * so host and device compute the same exact integers. */
DLT_HD void dlt_philox4x32_hd(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Uniform float in [0,1) from the top 24 bits of one word (exact in float). */
DLT_HD float dlt_philox_u24(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

/* dlt_rng_uniform_at(seed, stream, i) of dlt/core.h. */
DLT_HD float dlt_philox_uniform_at(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint32_t o[4];
    dlt_philox4x32_hd(seed, stream, i, o);
    return dlt_philox_u24(o[0]);
}

/* The two uniforms that dlt_rng_normal_at feeds to Box-Muller: u1 in (0,1]
 * (never 0, so log is finite), u2 in [0,1). Kept in double so the transform
 * itself is the only place host and device libm may differ (last ulp). */
DLT_HD void dlt_philox_normal_uniforms(uint64_t seed, uint64_t stream, uint64_t i, double *u1, double *u2)
{
    uint32_t o[4];
    dlt_philox4x32_hd(seed, stream, i, o);
    *u1 = ((o[0] >> 8) + 1.0) / 16777217.0;
    *u2 = (o[1] >> 8) / 16777216.0;
}

#endif
