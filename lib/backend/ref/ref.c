/* backend/ref/ref.c - the "cpu-ref" backend: the operation table of dlt/backend.h on
 * plain NCDHW float32 host arrays, calling the float reference kernels
 * (backend/ref/ref_kern.h). The front (lib/backend/front.c) has checked every
 * shape; what remains here is the call. This backend is the oracle the
 * others are tested against, and the fallback that runs the operations
 * another backend lacks. */
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "backend/ref/ref.h"

#define D(t) ((float *)(t)->data)
#define CD(t) ((const float *)(t)->data)
#define OPT(t) ((t) ? D(t) : NULL)
#define COPT(t) ((t) ? CD(t) : NULL)
#define SH(t) dlt_shape_of(t)

static int ref_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
    memset(t, 0, sizeof *t);
    t->data = dlt_calloc(n * c * d * h * w, 4, "tensor"); /* the front checked the product */
    if (!t->data) return DLT_ENOMEM;
    t->n = n, t->c = c, t->d = d, t->h = h, t->w = w;
    t->fmt = role;
    t->be = be;
    return 0;
}

static void ref_release(dlt_backend *be, dlt_tensor *t)
{
    dlt_free(t->data);
    t->data = NULL;
}

static int ref_upload(dlt_backend *be, dlt_tensor *t, const void *host)
{
    memcpy(t->data, host, (size_t)dlt_tensor_numel(t) * 4);
    return 0;
}

static int ref_download(dlt_backend *be, const dlt_tensor *t, void *host)
{
    memcpy(host, t->data, (size_t)dlt_tensor_numel(t) * 4);
    return 0;
}

static int ref_zero(dlt_backend *be, dlt_tensor *t)
{
    memset(t->data, 0, (size_t)dlt_tensor_numel(t) * 4);
    return 0;
}

static int ref_conv_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                        const dlt_tensor *b, dlt_tensor *y)
{
    dlt_ref_conv_fwd_f(c, SH(x), CD(x), CD(w), COPT(b), SH(y), D(y));
    return 0;
}

static int ref_conv_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                             dlt_tensor *dx, int accum)
{
    dlt_ref_conv_bwd_data_f(c, SH(dy), CD(dy), CD(w), SH(dx), D(dx), accum);
    return 0;
}

static int ref_conv_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                                dlt_tensor *dw, dlt_tensor *db)
{
    dlt_ref_conv_bwd_weights_f(c, SH(x), CD(x), SH(dy), CD(dy), D(dw), OPT(db));
    return 0;
}

/* Transposed convolution: the adjoint of the convolution big -> small. */
static int ref_convt_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                         const dlt_tensor *b, dlt_tensor *y)
{
    dlt_ref_conv_bwd_data_f(c, SH(x), CD(x), CD(w), SH(y), D(y), 0);
    if (b) dlt_ref_bias_add_f(SH(y), D(y), CD(b));
    return 0;
}

static int ref_convt_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                              dlt_tensor *dx, int accum)
{
    if (!accum) {
        dlt_ref_conv_fwd_f(c, SH(dy), CD(dy), CD(w), NULL, SH(dx), D(dx));
        return 0;
    }
    float *tmp = dlt_alloc(dlt_tensor_numel(dx), 4, "convt_bwd_data temporary");
    if (!tmp) return DLT_ENOMEM;
    dlt_ref_conv_fwd_f(c, SH(dy), CD(dy), CD(w), NULL, SH(dx), tmp);
    dlt_ref_copy_f(dlt_tensor_numel(dx), tmp, D(dx), 1);
    dlt_free(tmp);
    return 0;
}

static int ref_convt_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                                 dlt_tensor *dw, dlt_tensor *db)
{
    /* w[ci_t, co_t/g, k] pairs x (the conv's output role) with dy (its input role) */
    dlt_ref_conv_bwd_weights_f(c, SH(dy), CD(dy), SH(x), CD(x), D(dw), NULL);
    if (db) dlt_ref_bias_grad_f(SH(dy), CD(dy), D(db));
    return 0;
}

static int ref_norm_fwd(dlt_backend *be, const dlt_norm_desc *nd, int training, const dlt_tensor *x,
                        const dlt_tensor *gamma, const dlt_tensor *beta, dlt_tensor *rm, dlt_tensor *rv,
                        dlt_tensor *sm, dlt_tensor *sr, dlt_tensor *y)
{
    return dlt_ref_norm_fwd_f(nd, training, SH(x), CD(x), COPT(gamma), COPT(beta), OPT(rm), OPT(rv), OPT(sm),
                              OPT(sr), D(y), &be->reduce);
}

static int ref_norm_bwd(dlt_backend *be, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                        const dlt_tensor *dy, const dlt_tensor *gamma, const dlt_tensor *sm, const dlt_tensor *sr,
                        dlt_tensor *dx, int accum, dlt_tensor *dgamma, dlt_tensor *dbeta)
{
    return dlt_ref_norm_bwd_f(nd, SH(x), CD(x), CD(y), CD(dy), COPT(gamma), CD(sm), CD(sr), D(dx), accum,
                              OPT(dgamma), OPT(dbeta), &be->reduce);
}

static int ref_act_fwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                       dlt_tensor *y)
{
    dlt_ref_act_fwd_f(act, alpha, COPT(slope), SH(x), CD(x), D(y));
    return 0;
}

static int ref_act_bwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                       const dlt_tensor *dy, dlt_tensor *dx, int accum, dlt_tensor *dslope)
{
    dlt_ref_act_bwd_f(act, alpha, COPT(slope), SH(x), CD(x), CD(dy), D(dx), accum, OPT(dslope));
    return 0;
}

static int ref_maxpool_fwd(dlt_backend *be, const int k[3], const dlt_tensor *x, dlt_tensor *y)
{
    dlt_ref_maxpool_fwd_f(k, SH(x), CD(x), D(y));
    return 0;
}

static int ref_maxpool_bwd(dlt_backend *be, const int k[3], const dlt_tensor *x, const dlt_tensor *y,
                           const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    dlt_ref_maxpool_bwd_f(k, SH(x), CD(x), CD(dy), D(dx), accum);
    return 0;
}

static int ref_padc_fwd(dlt_backend *be, int lo, int hi, const dlt_tensor *x, dlt_tensor *y)
{
    dlt_ref_padc_fwd_f(lo, hi, SH(x), CD(x), D(y));
    return 0;
}

static int ref_padc_bwd(dlt_backend *be, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    dlt_ref_padc_bwd_f(lo, hi, SH(dx), CD(dy), D(dx), accum);
    return 0;
}

static int ref_concat_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    dlt_ref_concat_fwd_f(SH(a), CD(a), SH(b), CD(b), D(y));
    return 0;
}

static int ref_concat_bwd(dlt_backend *be, const dlt_tensor *dy, dlt_tensor *da, int accum_a, dlt_tensor *db,
                          int accum_b)
{
    dlt_ref_concat_bwd_f(SH(da), SH(db), CD(dy), D(da), accum_a, D(db), accum_b);
    return 0;
}

static int ref_add_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    dlt_ref_add_fwd_f(dlt_tensor_numel(a), CD(a), CD(b), D(y));
    return 0;
}

static int ref_copy(dlt_backend *be, const dlt_tensor *src, dlt_tensor *dst, int accum)
{
    dlt_ref_copy_f(dlt_tensor_numel(src), CD(src), D(dst), accum);
    return 0;
}

static int ref_scale(dlt_backend *be, float alpha, dlt_tensor *x)
{
    float *d = D(x);
    const int64_t n = dlt_tensor_numel(x);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) d[i] *= alpha;
    return 0;
}

static int ref_softmax_fwd(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y)
{
    dlt_ref_softmax_fwd_f(SH(x), CD(x), D(y));
    return 0;
}

static int ref_loss(dlt_backend *be, const dlt_loss_desc *ld, const dlt_tensor *logits, const dlt_tensor *labels,
                    double *value, dlt_tensor *dlogits)
{
    float *tmp = NULL;
    if (!dlogits && !(tmp = dlt_alloc(dlt_tensor_numel(logits), 4, "loss gradient"))) return DLT_ENOMEM;
    int rc = dlt_ref_loss_f(ld, SH(logits), CD(logits), (const int32_t *)labels->data, value,
                            dlogits ? D(dlogits) : tmp);
    dlt_free(tmp);
    return rc;
}

static int ref_optim_step(dlt_backend *be, const dlt_optim_desc *od, dlt_tensor *p, const dlt_tensor *g,
                          dlt_tensor *m, dlt_tensor *v)
{
    dlt_ref_optim_step_f(od, dlt_tensor_numel(p), D(p), CD(g), OPT(m), OPT(v));
    return 0;
}

const dlt_backend_ops dlt_cpu_ref_ops = {
    .name = "cpu-ref",
    .alloc = ref_alloc,
    .release = ref_release,
    .upload = ref_upload,
    .download = ref_download,
    .zero = ref_zero,
    .conv_fwd = ref_conv_fwd,
    .conv_bwd_data = ref_conv_bwd_data,
    .conv_bwd_weights = ref_conv_bwd_weights,
    .convt_fwd = ref_convt_fwd,
    .convt_bwd_data = ref_convt_bwd_data,
    .convt_bwd_weights = ref_convt_bwd_weights,
    .norm_fwd = ref_norm_fwd,
    .norm_bwd = ref_norm_bwd,
    .act_fwd = ref_act_fwd,
    .act_bwd = ref_act_bwd,
    .maxpool_fwd = ref_maxpool_fwd,
    .maxpool_bwd = ref_maxpool_bwd,
    .padc_fwd = ref_padc_fwd,
    .padc_bwd = ref_padc_bwd,
    .concat_fwd = ref_concat_fwd,
    .concat_bwd = ref_concat_bwd,
    .add_fwd = ref_add_fwd,
    .copy = ref_copy,
    .scale = ref_scale,
    .softmax_fwd = ref_softmax_fwd,
    .loss = ref_loss,
    .optim_step = ref_optim_step,
};

int dlt_cpu_ref_create(dlt_backend **out)
{
    *out = dlt_backend_new(&dlt_cpu_ref_ops, NULL);
    return *out ? 0 : DLT_ENOMEM;
}
