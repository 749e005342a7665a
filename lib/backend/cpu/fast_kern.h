/* backend/cpu/fast_kern.h - the fast path's own loops, compiled once per x86 ISA.
 *
 * Every file in lib/backend/cpu/simd/ is built several times (Makefile SIMD_ISAS:
 * avx512, avx2 with FMA, sse2; "generic" off x86), each time with that
 * ISA's -m flags and -DFAST_ISA=name, so GCC vectorises the same C for
 * each. FAST_K(f) names the copy of f of the ISA being compiled (f_avx2...);
 * lib/backend/cpu/simd/table.c gathers each copy's functions into one fast_kern
 * table, and the backend (fast_isa.c) picks one table when it starts: the
 * best the CPU has, capped by DLT_CPU_ISA or ONEDNN_MAX_CPU_ISA, so that a
 * developer on an AVX-512 machine can run the AVX2 and SSE2 code too.
 *
 * Picking by hand rather than by GCC's target_clones: the clones' resolver
 * runs before main() and cannot be told to use a lesser ISA. */
#ifndef DLT_CPU_FAST_KERN_H
#define DLT_CPU_FAST_KERN_H

#include "dlt/backend.h"

struct fast_ctx;
struct cgeo;

/* ISA levels, lowest first (fast_ctx.isa). */
enum { FAST_ISA_GENERIC = 0, FAST_ISA_SSE2, FAST_ISA_AVX2, FAST_ISA_AVX512, FAST_ISA_N };

typedef struct fast_kern {
    const char *isa; /* "avx512", "avx2", "sse2", "generic" */
    /* the backend's ops table with this copy's loops (simd/table.c) */
    const dlt_backend_ops *ops;
    /* dst[i] (+)= src[i] over n floats, threaded */
    void (*vcopy)(struct fast_ctx *cx, int64_t n, const float *src, float *dst, int accum);
    /* simd/dw.c: the depthwise transposed convolution (DLTK's upsampling):
     * forward (to_big=1: out big from in small) or its adjoint (to_big=0),
     * and its weight gradient (dw, db accumulate) */
    int (*dw_run)(struct fast_ctx *cx, const dlt_conv_desc *c, const struct cgeo *G, int to_big,
                  const dlt_tensor *in, dlt_tensor *out, int accum, const dlt_tensor *bias);
    int (*dw_bwd_weights)(struct fast_ctx *cx, const dlt_conv_desc *c, const struct cgeo *G, const dlt_tensor *x,
                          const dlt_tensor *dy, dlt_tensor *dw, dlt_tensor *db);
    /* simd/wino.c: a 3x3x3 stride-1 convolution by Winograd F(m,3), m
     * = 2 or 4, on blocked x (N x CIB blocks x D x H x W) into y (COB blocks, same
     * size), weights U transformed (backend/cpu/fast_wino.c), bias padded
     * to COB blocks or NULL; accum adds to y */
    int (*wino_run)(struct fast_ctx *cx, int m, int64_t N, int64_t CIB, int64_t COB, int64_t D, int64_t H, int64_t W,
                    const float *x, const float *U, const float *bias, float *y, int accum);
    /* simd/wino.c: the weight gradient of such a convolution from blocked x
     * (CI channels) and dy (CO), added to the plain dw[CO][CI][3][3][3]
     * and to db (NULL: no bias) */
    int (*wino_bw_run)(struct fast_ctx *cx, int64_t N, int64_t CI, int64_t CO, int64_t D, int64_t H, int64_t W,
                       const float *x, const float *dy, float *dw, float *db);
} fast_kern;

/* The tables the build has (FAST_HAVE_<isa> from the Makefile). */
extern const fast_kern fast_kern_avx512, fast_kern_avx2, fast_kern_sse2, fast_kern_generic;

#ifdef FAST_ISA
#define FAST_K2(f, i) f##_##i
#define FAST_K1(f, i) FAST_K2(f, i)
#define FAST_K(f) FAST_K1(f, FAST_ISA)

/* This copy's functions, for simd/table.c. */
int FAST_K(fast_norm_fwd)(dlt_backend *be, const dlt_norm_desc *nd, int training, const dlt_tensor *x,
                          const dlt_tensor *gamma, const dlt_tensor *beta, dlt_tensor *rm, dlt_tensor *rv,
                          dlt_tensor *sm, dlt_tensor *sr, dlt_tensor *y);
int FAST_K(fast_norm_bwd)(dlt_backend *be, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                          const dlt_tensor *dy, const dlt_tensor *gamma, const dlt_tensor *sm, const dlt_tensor *sr,
                          dlt_tensor *dx, int accum, dlt_tensor *dgamma, dlt_tensor *dbeta);
int FAST_K(fast_act_fwd)(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                         dlt_tensor *y);
int FAST_K(fast_act_bwd)(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                         const dlt_tensor *dy, dlt_tensor *dx, int accum, dlt_tensor *dslope);
int FAST_K(fast_maxpool_fwd)(dlt_backend *be, const int k[3], const dlt_tensor *x, dlt_tensor *y);
int FAST_K(fast_maxpool_bwd)(dlt_backend *be, const int k[3], const dlt_tensor *x, const dlt_tensor *y,
                             const dlt_tensor *dy, dlt_tensor *dx, int accum);
int FAST_K(fast_padc_fwd)(dlt_backend *be, int lo, int hi, const dlt_tensor *x, dlt_tensor *y);
int FAST_K(fast_padc_bwd)(dlt_backend *be, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int accum);
int FAST_K(fast_concat_fwd)(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y);
int FAST_K(fast_concat_bwd)(dlt_backend *be, const dlt_tensor *dy, dlt_tensor *da, int accum_a, dlt_tensor *db,
                            int accum_b);
int FAST_K(fast_add_fwd)(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y);
int FAST_K(fast_copy)(dlt_backend *be, const dlt_tensor *src, dlt_tensor *dst, int accum);
int FAST_K(fast_scale)(dlt_backend *be, float alpha, dlt_tensor *x);
int FAST_K(fast_softmax_fwd)(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y);
int FAST_K(fast_optim_step)(dlt_backend *be, const dlt_optim_desc *od, dlt_tensor *p, const dlt_tensor *g,
                            dlt_tensor *m, dlt_tensor *v);
void FAST_K(fast_vcopy)(struct fast_ctx *cx, int64_t n, const float *src, float *dst, int accum);
int FAST_K(fast_loss)(dlt_backend *be, const dlt_loss_desc *ld, const dlt_tensor *logits, const dlt_tensor *labels,
                      double *value, dlt_tensor *dlogits);
int FAST_K(fast_dw_run)(struct fast_ctx *cx, const dlt_conv_desc *c, const struct cgeo *G, int to_big,
                        const dlt_tensor *in, dlt_tensor *out, int accum, const dlt_tensor *bias);
int FAST_K(fast_dw_bwd_weights)(struct fast_ctx *cx, const dlt_conv_desc *c, const struct cgeo *G,
                                const dlt_tensor *x, const dlt_tensor *dy, dlt_tensor *dw, dlt_tensor *db);
int FAST_K(fast_wino_run)(struct fast_ctx *cx, int m, int64_t N, int64_t CIB, int64_t COB, int64_t D, int64_t H, int64_t W,
                          const float *x, const float *U, const float *bias, float *y, int accum);
int FAST_K(fast_wino_bw_run)(struct fast_ctx *cx, int64_t N, int64_t CI, int64_t CO, int64_t D, int64_t H,
                             int64_t W, const float *x, const float *dy, float *dw, float *db);
#endif

#endif
