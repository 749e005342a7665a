/* backend/ref/ref.h - the reference kernels on plain arrays (internal to libdlt and
 * its tests). The same source, lib/backend/ref/ref_kern.h, is compiled twice: with
 * float (suffix _f, what the "cpu-ref" backend runs) and with double (suffix
 * _d, what the unit tests check against central finite differences in
 * float64). So the gradient checks test the very loops the backend runs, at
 * a precision where a finite difference is meaningful.
 *
 * Layout: plain NCDHW, W fastest. Every output element is produced by one
 * thread in a fixed order with double accumulators, so results do not depend
 * on the thread count. Shapes are checked by the backend wrappers (ref.c),
 * not here. */
#ifndef DLT_CPU_REF_H
#define DLT_CPU_REF_H

#include <stdint.h>

#include "dlt/backend.h"

typedef struct dlt_shape {
    int64_t n, c, d, h, w;
} dlt_shape;

static inline int64_t dlt_shape_numel(dlt_shape s) { return s.n * s.c * s.d * s.h * s.w; }
static inline dlt_shape dlt_shape_of(const dlt_tensor *t) { return (dlt_shape){t->n, t->c, t->d, t->h, t->w}; }

#define DLT_REF_DECLARE(R, S)                                                                                       \
    /* y[N,Cout,OD,OH,OW] = conv(x[N,Cin,D,H,W], w[Cout,Cin/g,KD,KH,KW]) + b[Cout] (b may be NULL) */                \
    void dlt_ref_conv_fwd##S(const dlt_conv_desc *cd, dlt_shape xs, const R *x, const R *w, const R *b,           \
                             dlt_shape ys, R *y);                                                                  \
    /* dx (+)= conv^T(dy): the adjoint of conv_fwd in x */                                                        \
    void dlt_ref_conv_bwd_data##S(const dlt_conv_desc *cd, dlt_shape dys, const R *dy, const R *w, dlt_shape dxs,  \
                                  R *dx, int accum);                                                               \
    /* dw += d/dw, db += sum(dy) (db may be NULL) */                                                               \
    void dlt_ref_conv_bwd_weights##S(const dlt_conv_desc *cd, dlt_shape xs, const R *x, dlt_shape dys,             \
                                     const R *dy, R *dw, R *db);                                                   \
    void dlt_ref_bias_add##S(dlt_shape ys, R *y, const R *b);                                                      \
    void dlt_ref_bias_grad##S(dlt_shape dys, const R *dy, R *db);                                                  \
    /* red: synchronised batch norm's cross-process sums, or NULL */                                              \
    int dlt_ref_norm_fwd##S(const dlt_norm_desc *nd, int training, dlt_shape xs, const R *x, const R *gamma,       \
                            const R *beta, R *rmean, R *rvar, R *smean, R *srstd, R *y, const dlt_reduce *red);    \
    int dlt_ref_norm_bwd##S(const dlt_norm_desc *nd, dlt_shape xs, const R *x, const R *y, const R *dy,            \
                            const R *gamma, const R *smean, const R *srstd, R *dx, int accum, R *dgamma,           \
                            R *dbeta, const dlt_reduce *red);                                                      \
    void dlt_ref_act_fwd##S(int act, float alpha, const R *slope, dlt_shape xs, const R *x, R *y);                 \
    void dlt_ref_act_bwd##S(int act, float alpha, const R *slope, dlt_shape xs, const R *x, const R *dy, R *dx,    \
                            int accum, R *dslope);                                                                 \
    void dlt_ref_maxpool_fwd##S(const int k[3], dlt_shape xs, const R *x, R *y);                                   \
    void dlt_ref_maxpool_bwd##S(const int k[3], dlt_shape xs, const R *x, const R *dy, R *dx, int accum);          \
    void dlt_ref_padc_fwd##S(int lo, int hi, dlt_shape xs, const R *x, R *y);                                      \
    void dlt_ref_padc_bwd##S(int lo, int hi, dlt_shape dxs, const R *dy, R *dx, int accum);                        \
    void dlt_ref_concat_fwd##S(dlt_shape as, const R *a, dlt_shape bs, const R *b, R *y);                          \
    void dlt_ref_concat_bwd##S(dlt_shape as, dlt_shape bs, const R *dy, R *da, int accum_a, R *db, int accum_b);   \
    void dlt_ref_add_fwd##S(int64_t n, const R *a, const R *b, R *y);                                              \
    void dlt_ref_copy##S(int64_t n, const R *src, R *dst, int accum);                                              \
    void dlt_ref_softmax_fwd##S(dlt_shape xs, const R *x, R *y);                                                   \
    /* labels int32 [N,1,D,H,W], checked to lie in [0,C) (DLT_EINVAL otherwise) */                               \
    int dlt_ref_loss##S(const dlt_loss_desc *ld, dlt_shape xs, const R *logits, const int32_t *labels,             \
                        double *value, R *dlogits);                                                                \
    void dlt_ref_optim_step##S(const dlt_optim_desc *od, int64_t n, R *p, const R *g, R *m, R *v);

DLT_REF_DECLARE(float, _f)
DLT_REF_DECLARE(double, _d)

#endif
