/* backend/cpu/fast_conv.h - shared by the fast path's convolution files:
 * the geometry of one call and the oneDNN descriptors made from it
 * (fast_geo.c), used by the dispatch and fp32 ops (fast_conv.c), bf16
 * (fast_bf16.c) and the depth-sliced weight gradient (fast_fold.c);
 * fast_conv.c calls the other two, they call only fast_geo.c. */
#ifndef DLT_CPU_FAST_CONV_H
#define DLT_CPU_FAST_CONV_H

#include "backend/cpu/fast.h"


enum { K_FWD = 1, K_BWD_DATA, K_BWD_WEIGHTS };

/* The geometry of one call. */
typedef struct cgeo {
    int tr, g, bias;
    int64_t ipad; /* >0: the op's input channels as oneDNN is told them (padded lanes, see geo_prim) */
    const dlt_tensor *big, *small, *w;
    dnnl_dims_t st, pl, pr;
} cgeo;

/* ---- fast_geo.c ---- */
/* Weight dims and layout as oneDNN sees them for this op (any: format_tag
 * any, else the plain oidhw/iodhw/goidhw...), in data type dt. */
void fast_geo_wmd(const cgeo *G, int any, dnnl_data_type_t dt, dnnl_memory_desc_t *md);
/* A plain f32 vector of n (biases). */
void fast_bias_md(int64_t n, dnnl_memory_desc_t *md);
/* The primitive cache key of (kind, geometry, big and small layouts) into
 * k (room for 96); returns its length in bytes. */
size_t fast_geo_key(int64_t *k, int kind, const cgeo *G, const dnnl_memory_desc_t *bmd,
                    const dnnl_memory_desc_t *smd);
/* The operation descriptor (conv or deconv) of one propagation kind. */
dnnl_status_t fast_geo_desc(const cgeo *G, int kind, const dnnl_memory_desc_t *bmd, const dnnl_memory_desc_t *smd,
                            const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *bimd, void *desc);
/* A primitive descriptor of one kind: the forward on layouts (hb, hs, hw)
 * describes it (kind K_FWD) or hints it, on the op's own (bmd, smd, wmd);
 * biases f32 where G has them; scratchpad supplied by the caller. */
dnnl_status_t fast_geo_pd(fast_ctx *cx, int kind, const cgeo *G, const dnnl_memory_desc_t *hb,
                          const dnnl_memory_desc_t *hs, const dnnl_memory_desc_t *hw, const dnnl_memory_desc_t *bmd,
                          const dnnl_memory_desc_t *smd, const dnnl_memory_desc_t *wmd, dnnl_primitive_desc_t *pdp);
/* The (arg, layout) pairs of a primitive of this kind in fast_exec's order
 * (fwd: src, weights, [bias], dst; bwd data: diff dst, weights, diff src;
 * bwd weights: src, diff dst, diff weights, [diff bias]); src/dst are the
 * op's input and output sides. *wq: the (diff) weights layout pd picked.
 * Returns the count (at most 4). */
int fast_geo_args(int kind, dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst,
                  const dnnl_memory_desc_t *bias, int *args, const dnnl_memory_desc_t **mds,
                  const dnnl_memory_desc_t **wq);

/* "conv fwd 16->32 k3x3x3 s1 2x64x64x64": the op, channels, kernel,
 * stride and the big side's batch and size, for the report and logs. */
void fast_geo_str(const cgeo *G, int kind, char *buf, size_t len);

/* fast_wino.c: whether this geometry runs by Winograd (3x3x3, stride 1,
 * padding 1, blocked activations on both sides, the option on), and the
 * op (kind K_FWD: in = x, b = bias, out = y; K_BWD_DATA: in = dy, out =
 * dx, accum adds), and its weight gradient (added to dw and to db, NULL:
 * no bias). */
int fast_wino_worth(const fast_ctx *cx, const cgeo *G);
int fast_wino_conv(fast_ctx *cx, int kind, const cgeo *G, const dlt_tensor *in, const dlt_tensor *w,
                   const dlt_tensor *b, dlt_tensor *out, int accum);
int fast_wino_bwd_weights(fast_ctx *cx, const cgeo *G, const dlt_tensor *x, const dlt_tensor *dy, dlt_tensor *dw,
                          dlt_tensor *db);

/* fast_bf16.c: whether this geometry runs in bf16, and the op itself
 * (kind K_FWD: a = x, b = w, c = bias, t = y; K_BWD_DATA: a = dy, b = w,
 * t = dx, accum; K_BWD_WEIGHTS: a = x, b = dy, t = dw, c = db, both
 * accumulate). *done = 0, nothing written, where oneDNN has no bf16
 * kernel for it (the caller then runs the f32 op). */
int fast_bf16_worth(const cgeo *G);
int fast_bf16_run(fast_ctx *cx, int kind, const cgeo *G, const dlt_tensor *a, const dlt_tensor *b,
                  const dlt_tensor *c, dlt_tensor *t, int accum, int *done);

/* fast_fold.c: the weight gradient of a depth-stride-1 convolution on
 * blocked data as 2-D ones over depth slices, for CPUs whose oneDNN has a
 * 2-D kernel but no 3-D one (AVX2); *done = 0, nothing written, where the
 * 2-D kernels are reference code too. dw accumulates. */
int fast_fold_worth(const cgeo *G);
int fast_fold_bwd_weights(fast_ctx *cx, const cgeo *G, const dlt_tensor *x, const dlt_tensor *dy, dlt_tensor *dw,
                          int *done);

#endif
