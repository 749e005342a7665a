/* cpu/ref.c - the "cpu-ref" backend: the operation table of dlt/backend.h on
 * plain NCDHW float32 host arrays, calling the float reference kernels
 * (cpu/ref_kern.h). Every call checks the shapes it is given, so a caller's
 * mistake is an error message, not a wrong result: this backend is the
 * oracle the others are tested against. */
#include <stdlib.h>
#include <string.h>

#include "cpu/backends.h"
#include "cpu/ref.h"

#define D(t) ((float *)(t)->data)
#define CD(t) ((const float *)(t)->data)
#define SH(t) dlt_shape_of(t)

static int ref_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
    memset(t, 0, sizeof *t);
    if (n <= 0 || c <= 0 || d <= 0 || h <= 0 || w <= 0)
        return dlt_err(DLT_ESHAPE, "tensor shape %lldx%lldx%lldx%lldx%lld is empty", (long long)n, (long long)c,
                       (long long)d, (long long)h, (long long)w);
    int64_t numel = dlt_mul_checked(dlt_mul_checked(dlt_mul_checked(n, c), dlt_mul_checked(d, h)), w);
    if (numel < 0) return dlt_err(DLT_ENOMEM, "tensor shape overflows");
    t->data = dlt_calloc(numel, 4, "tensor");
    if (!t->data) return DLT_ENOMEM;
    t->n = n, t->c = c, t->d = d, t->h = h, t->w = w;
    t->fmt = role;
    t->be = be;
    return 0;
}

static void ref_release(dlt_backend *be, dlt_tensor *t)
{
    if (!t) return;
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

static int ref_sync(dlt_backend *be) { return 0; }

static int shape_err(const char *op, const dlt_tensor *a, const char *what)
{
    return dlt_err(DLT_ESHAPE, "%s: %s (tensor %lldx%lldx%lldx%lldx%lld)", op, what, (long long)a->n,
                   (long long)a->c, (long long)a->d, (long long)a->h, (long long)a->w);
}

static int same_shape(const dlt_tensor *a, const dlt_tensor *b)
{
    return a->n == b->n && a->c == b->c && a->d == b->d && a->h == b->h && a->w == b->w;
}

/* Check that x (big) -> y (small) is a convolution with descriptor c and
 * weights w [Cout, Cin/g, k...]; used by conv and (roles swapped) convt. */
static int check_conv(const char *op, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                      const dlt_tensor *y)
{
    int g = c->groups > 0 ? c->groups : 1;
    if (x->n != y->n) return shape_err(op, y, "batch sizes differ");
    if (x->c % g || y->c % g) return shape_err(op, x, "channels not divisible by groups");
    if (w->n != y->c || w->c != x->c / g || w->d != c->k[0] || w->h != c->k[1] || w->w != c->k[2])
        return shape_err(op, w, "weight shape does not match the descriptor and channels");
    const int64_t in[3] = {x->d, x->h, x->w}, out[3] = {y->d, y->h, y->w};
    for (int i = 0; i < 3; i++) {
        if (c->stride[i] < 1 || c->k[i] < 1) return dlt_err(DLT_EINVAL, "%s: kernel and stride must be >= 1", op);
        int64_t o = (in[i] + c->pad_lo[i] + c->pad_hi[i] - c->k[i]);
        if (o < 0 || o / c->stride[i] + 1 != out[i])
            return dlt_err(DLT_ESHAPE,
                           "%s: axis %d: input %lld, kernel %d, stride %d, padding %d+%d gives %lld, not %lld", op, i,
                           (long long)in[i], c->k[i], c->stride[i], c->pad_lo[i], c->pad_hi[i],
                           (long long)(o < 0 ? 0 : o / c->stride[i] + 1), (long long)out[i]);
    }
    return 0;
}

static int ref_conv_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                        const dlt_tensor *b, dlt_tensor *y)
{
    int rc = check_conv("conv_fwd", c, x, w, y);
    if (rc) return rc;
    if (b && dlt_tensor_numel(b) != y->c) return shape_err("conv_fwd", b, "bias is not Cout long");
    dlt_ref_conv_fwd_f(c, SH(x), CD(x), CD(w), b ? CD(b) : NULL, SH(y), D(y));
    return 0;
}

static int ref_conv_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                             dlt_tensor *dx, int accum)
{
    int rc = check_conv("conv_bwd_data", c, dx, w, dy);
    if (rc) return rc;
    dlt_ref_conv_bwd_data_f(c, SH(dy), CD(dy), CD(w), SH(dx), D(dx), accum);
    return 0;
}

static int ref_conv_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                                dlt_tensor *dw, dlt_tensor *db)
{
    int rc = check_conv("conv_bwd_weights", c, x, dw, dy);
    if (rc) return rc;
    if (db && dlt_tensor_numel(db) != dy->c) return shape_err("conv_bwd_weights", db, "bias is not Cout long");
    dlt_ref_conv_bwd_weights_f(c, SH(x), CD(x), SH(dy), CD(dy), D(dw), db ? D(db) : NULL);
    return 0;
}

/* Transposed convolution y[N,Cout_t,big] from x[N,Cin_t,small], weights
 * [Cin_t, Cout_t/g, k]: the adjoint of the convolution big -> small. */
static int ref_convt_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                         const dlt_tensor *b, dlt_tensor *y)
{
    int rc = check_conv("convt_fwd", c, y, w, x);
    if (rc) return rc;
    if (b && dlt_tensor_numel(b) != y->c) return shape_err("convt_fwd", b, "bias is not Cout long");
    dlt_ref_conv_bwd_data_f(c, SH(x), CD(x), CD(w), SH(y), D(y), 0);
    if (b) dlt_ref_bias_add_f(SH(y), D(y), CD(b));
    return 0;
}

static int ref_convt_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                              dlt_tensor *dx, int accum)
{
    int rc = check_conv("convt_bwd_data", c, dy, w, dx);
    if (rc) return rc;
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
    int rc = check_conv("convt_bwd_weights", c, dy, dw, x);
    if (rc) return rc;
    if (db && dlt_tensor_numel(db) != dy->c) return shape_err("convt_bwd_weights", db, "bias is not Cout long");
    /* w[ci_t, co_t/g, k] pairs x (the conv's output role) with dy (its input role) */
    dlt_ref_conv_bwd_weights_f(c, SH(dy), CD(dy), SH(x), CD(x), D(dw), NULL);
    if (db) dlt_ref_bias_grad_f(SH(dy), CD(dy), D(db));
    return 0;
}

static int check_vec(const char *op, const dlt_tensor *v, int64_t n, const char *what)
{
    if (v && dlt_tensor_numel(v) != n) return shape_err(op, v, what);
    return 0;
}

static int ref_norm_fwd(dlt_backend *be, const dlt_norm_desc *nd, int training, const dlt_tensor *x,
                        const dlt_tensor *gamma, const dlt_tensor *beta, dlt_tensor *rm, dlt_tensor *rv,
                        dlt_tensor *sm, dlt_tensor *sr, dlt_tensor *y)
{
    const int inst = nd->kind == DLT_NORM_INSTANCE;
    if (nd->kind != DLT_NORM_BATCH && !inst) return dlt_err(DLT_EINVAL, "norm_fwd: unknown norm kind %d", nd->kind);
    if (nd->act == DLT_ACT_PRELU) return dlt_err(DLT_EUNSUP, "norm_fwd: PReLU cannot be fused; use act_fwd");
    if (!same_shape(x, y)) return shape_err("norm_fwd", y, "output shape differs from input");
    const int64_t ns = inst ? x->n * x->c : x->c;
    int rc = check_vec("norm_fwd", gamma, x->c, "gamma is not C long");
    if (!rc) rc = check_vec("norm_fwd", beta, x->c, "beta is not C long");
    if (!rc) rc = check_vec("norm_fwd", rm, x->c, "running mean is not C long");
    if (!rc) rc = check_vec("norm_fwd", rv, x->c, "running var is not C long");
    if (!rc) rc = check_vec("norm_fwd", sm, ns, "saved mean has the wrong length");
    if (!rc) rc = check_vec("norm_fwd", sr, ns, "saved rstd has the wrong length");
    if (rc) return rc;
    if (!training && !inst && (!rm || !rv)) return dlt_err(DLT_EINVAL, "norm_fwd: inference needs running stats");
    if (nd->affine && (!gamma || !beta)) return dlt_err(DLT_EINVAL, "norm_fwd: affine norm needs gamma and beta");
    return dlt_ref_norm_fwd_f(nd, training, SH(x), CD(x), gamma ? CD(gamma) : NULL, beta ? CD(beta) : NULL,
                              rm ? D(rm) : NULL, rv ? D(rv) : NULL, sm ? D(sm) : NULL, sr ? D(sr) : NULL, D(y),
                              &be->reduce);
}

static int ref_norm_bwd(dlt_backend *be, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                        const dlt_tensor *dy, const dlt_tensor *gamma, const dlt_tensor *sm, const dlt_tensor *sr,
                        dlt_tensor *dx, int accum, dlt_tensor *dgamma, dlt_tensor *dbeta)
{
    const int inst = nd->kind == DLT_NORM_INSTANCE;
    if (!same_shape(x, y) || !same_shape(x, dy) || !same_shape(x, dx))
        return shape_err("norm_bwd", dy, "x, y, dy and dx must have one shape");
    const int64_t ns = inst ? x->n * x->c : x->c;
    if (!sm || !sr) return dlt_err(DLT_EINVAL, "norm_bwd: needs the saved statistics of a training forward");
    int rc = check_vec("norm_bwd", sm, ns, "saved mean has the wrong length");
    if (!rc) rc = check_vec("norm_bwd", sr, ns, "saved rstd has the wrong length");
    if (!rc) rc = check_vec("norm_bwd", gamma, x->c, "gamma is not C long");
    if (!rc) rc = check_vec("norm_bwd", dgamma, x->c, "dgamma is not C long");
    if (!rc) rc = check_vec("norm_bwd", dbeta, x->c, "dbeta is not C long");
    if (rc) return rc;
    return dlt_ref_norm_bwd_f(nd, SH(x), CD(x), CD(y), CD(dy), gamma ? CD(gamma) : NULL, CD(sm), CD(sr), D(dx),
                              accum, dgamma ? D(dgamma) : NULL, dbeta ? D(dbeta) : NULL, &be->reduce);
}

static int ref_act_fwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                       dlt_tensor *y)
{
    if (!same_shape(x, y)) return shape_err("act_fwd", y, "output shape differs from input");
    if (act == DLT_ACT_PRELU && (!slope || dlt_tensor_numel(slope) != x->c))
        return dlt_err(DLT_EINVAL, "act_fwd: PReLU needs a slope vector of C");
    dlt_ref_act_fwd_f(act, alpha, slope ? CD(slope) : NULL, SH(x), CD(x), D(y));
    return 0;
}

static int ref_act_bwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                       const dlt_tensor *dy, dlt_tensor *dx, int accum, dlt_tensor *dslope)
{
    if (!same_shape(x, dy) || !same_shape(x, dx)) return shape_err("act_bwd", dy, "x, dy, dx must have one shape");
    if (act == DLT_ACT_PRELU && (!slope || dlt_tensor_numel(slope) != x->c))
        return dlt_err(DLT_EINVAL, "act_bwd: PReLU needs a slope vector of C");
    if (dslope && check_vec("act_bwd", dslope, x->c, "dslope is not C long")) return DLT_ESHAPE;
    dlt_ref_act_bwd_f(act, alpha, slope ? CD(slope) : NULL, SH(x), CD(x), CD(dy), D(dx), accum,
                      dslope ? D(dslope) : NULL);
    return 0;
}

static int check_pool(const char *op, const int k[3], const dlt_tensor *x, const dlt_tensor *y)
{
    if (k[0] < 1 || k[1] < 1 || k[2] < 1) return dlt_err(DLT_EINVAL, "%s: pool size must be >= 1", op);
    if (x->d % k[0] || x->h % k[1] || x->w % k[2])
        return shape_err(op, x, "spatial size not divisible by the pool size");
    if (y->n != x->n || y->c != x->c || y->d != x->d / k[0] || y->h != x->h / k[1] || y->w != x->w / k[2])
        return shape_err(op, y, "output shape is not input / pool size");
    return 0;
}

static int ref_maxpool_fwd(dlt_backend *be, const int k[3], const dlt_tensor *x, dlt_tensor *y)
{
    int rc = check_pool("maxpool_fwd", k, x, y);
    if (rc) return rc;
    dlt_ref_maxpool_fwd_f(k, SH(x), CD(x), D(y));
    return 0;
}

static int ref_maxpool_bwd(dlt_backend *be, const int k[3], const dlt_tensor *x, const dlt_tensor *y,
                           const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    int rc = check_pool("maxpool_bwd", k, x, dy);
    if (rc) return rc;
    if (!same_shape(x, dx)) return shape_err("maxpool_bwd", dx, "dx shape differs from x");
    dlt_ref_maxpool_bwd_f(k, SH(x), CD(x), CD(dy), D(dx), accum);
    return 0;
}

static int spatial_eq(const dlt_tensor *a, const dlt_tensor *b)
{
    return a->n == b->n && a->d == b->d && a->h == b->h && a->w == b->w;
}

static int ref_padc_fwd(dlt_backend *be, int lo, int hi, const dlt_tensor *x, dlt_tensor *y)
{
    if (lo < 0 || hi < 0 || !spatial_eq(x, y) || y->c != x->c + lo + hi)
        return shape_err("padc_fwd", y, "output is not the input with lo+hi more channels");
    dlt_ref_padc_fwd_f(lo, hi, SH(x), CD(x), D(y));
    return 0;
}

static int ref_padc_bwd(dlt_backend *be, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    if (lo < 0 || hi < 0 || !spatial_eq(dx, dy) || dy->c != dx->c + lo + hi)
        return shape_err("padc_bwd", dy, "dy is not dx with lo+hi more channels");
    dlt_ref_padc_bwd_f(lo, hi, SH(dx), CD(dy), D(dx), accum);
    return 0;
}

static int ref_concat_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    if (!spatial_eq(a, b) || !spatial_eq(a, y) || y->c != a->c + b->c)
        return shape_err("concat_fwd", y, "output is not [a, b] along channels");
    dlt_ref_concat_fwd_f(SH(a), CD(a), SH(b), CD(b), D(y));
    return 0;
}

static int ref_concat_bwd(dlt_backend *be, const dlt_tensor *dy, dlt_tensor *da, int accum_a, dlt_tensor *db,
                          int accum_b)
{
    if (!da || !db || !spatial_eq(da, db) || !spatial_eq(da, dy) || dy->c != da->c + db->c)
        return shape_err("concat_bwd", dy, "dy is not [da, db] along channels");
    dlt_ref_concat_bwd_f(SH(da), SH(db), CD(dy), D(da), accum_a, D(db), accum_b);
    return 0;
}

static int ref_add_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    if (!same_shape(a, b) || !same_shape(a, y)) return shape_err("add_fwd", y, "a, b, y must have one shape");
    dlt_ref_add_fwd_f(dlt_tensor_numel(a), CD(a), CD(b), D(y));
    return 0;
}

static int ref_copy(dlt_backend *be, const dlt_tensor *src, dlt_tensor *dst, int accum)
{
    if (!same_shape(src, dst)) return shape_err("copy", dst, "src and dst shapes differ");
    dlt_ref_copy_f(dlt_tensor_numel(src), CD(src), D(dst), accum);
    return 0;
}

static int ref_softmax_fwd(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y)
{
    if (!same_shape(x, y)) return shape_err("softmax_fwd", y, "output shape differs from input");
    dlt_ref_softmax_fwd_f(SH(x), CD(x), D(y));
    return 0;
}

static int ref_loss(dlt_backend *be, const dlt_loss_desc *ld, const dlt_tensor *logits, const dlt_tensor *labels,
                    double *value, dlt_tensor *dlogits)
{
    if (ld->kind < DLT_LOSS_CE || ld->kind > DLT_LOSS_DICE_CE)
        return dlt_err(DLT_EINVAL, "loss: unknown loss kind %d", ld->kind);
    if (labels->n != logits->n || labels->c != 1 || labels->d != logits->d || labels->h != logits->h ||
        labels->w != logits->w)
        return shape_err("loss", labels, "labels are not [N,1,D,H,W] of the logits");
    if (dlogits && !same_shape(logits, dlogits)) return shape_err("loss", dlogits, "dlogits shape differs");
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
    const int64_t n = dlt_tensor_numel(p);
    if (dlt_tensor_numel(g) != n || (m && dlt_tensor_numel(m) != n) || (v && dlt_tensor_numel(v) != n))
        return shape_err("optim_step", g, "parameter, gradient and state sizes differ");
    if (od->kind == DLT_OPTIM_ADAM && (!m || !v)) return dlt_err(DLT_EINVAL, "optim_step: Adam needs m and v");
    if (od->kind == DLT_OPTIM_ADAM && od->t < 1) return dlt_err(DLT_EINVAL, "optim_step: Adam step t must be >= 1");
    if (od->kind != DLT_OPTIM_ADAM && od->kind != DLT_OPTIM_SGD)
        return dlt_err(DLT_EINVAL, "optim_step: unknown optimiser %d", od->kind);
    dlt_ref_optim_step_f(od, n, D(p), CD(g), m ? D(m) : NULL, v ? D(v) : NULL);
    return 0;
}

static void ref_destroy(dlt_backend *be) { free(be); }

int dlt_cpu_ref_create(dlt_backend **out)
{
    dlt_backend *be = calloc(1, sizeof *be);
    if (!be) return dlt_err(DLT_ENOMEM, "cpu-ref backend: out of memory");
    be->name = "cpu-ref";
    be->alloc = ref_alloc;
    be->release = ref_release;
    be->upload = ref_upload;
    be->download = ref_download;
    be->zero = ref_zero;
    be->sync = ref_sync;
    be->conv_fwd = ref_conv_fwd;
    be->conv_bwd_data = ref_conv_bwd_data;
    be->conv_bwd_weights = ref_conv_bwd_weights;
    be->convt_fwd = ref_convt_fwd;
    be->convt_bwd_data = ref_convt_bwd_data;
    be->convt_bwd_weights = ref_convt_bwd_weights;
    be->norm_fwd = ref_norm_fwd;
    be->norm_bwd = ref_norm_bwd;
    be->act_fwd = ref_act_fwd;
    be->act_bwd = ref_act_bwd;
    be->maxpool_fwd = ref_maxpool_fwd;
    be->maxpool_bwd = ref_maxpool_bwd;
    be->padc_fwd = ref_padc_fwd;
    be->padc_bwd = ref_padc_bwd;
    be->concat_fwd = ref_concat_fwd;
    be->concat_bwd = ref_concat_bwd;
    be->add_fwd = ref_add_fwd;
    be->copy = ref_copy;
    be->softmax_fwd = ref_softmax_fwd;
    be->loss = ref_loss;
    be->optim_step = ref_optim_step;
    be->destroy = ref_destroy;
    *out = be;
    return 0;
}
