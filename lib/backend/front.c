/* backend/front.c - the front of the backend table (dlt/backend.h): every
 * operation's arguments are checked here, once, for every backend; then the
 * backend's slot runs, or, where the slot is empty or declines with
 * DLT_EUNSUP, the reference backend runs it on host copies (the generic
 * fallback below). So backends hold kernels and layout logic, not argument
 * checks, and a new one needs no hand-written fallbacks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "dlt/backend.h"

#define ARRLEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

dlt_backend *dlt_backend_new(const dlt_backend_ops *ops, void *ctx)
{
    dlt_backend *be = calloc(1, sizeof *be);
    if (!be) {
        dlt_err(DLT_ENOMEM, "backend %s: out of memory", ops->name);
        return NULL;
    }
    be->ops = ops, be->name = ops->name, be->ctx = ctx;
    return be;
}

void dlt_backend_free(dlt_backend *be)
{
    if (!be) return;
    dlt_backend_free(be->fallback);
    if (be->ops->destroy) be->ops->destroy(be);
    free(be);
}

/* ------------------------------------------------------------ checks */

static int shape_err(const char *op, const dlt_tensor *a, const char *what)
{
    return dlt_err(DLT_ESHAPE, "%s: %s (tensor %lldx%lldx%lldx%lldx%lld)", op, what, (long long)a->n,
                   (long long)a->c, (long long)a->d, (long long)a->h, (long long)a->w);
}

static int same_shape(const dlt_tensor *a, const dlt_tensor *b)
{
    return a->n == b->n && a->c == b->c && a->d == b->d && a->h == b->h && a->w == b->w;
}

static int spatial_eq(const dlt_tensor *a, const dlt_tensor *b)
{
    return a->n == b->n && a->d == b->d && a->h == b->h && a->w == b->w;
}

static int check_vec(const char *op, const dlt_tensor *v, int64_t n, const char *what)
{
    return v && dlt_tensor_numel(v) != n ? shape_err(op, v, what) : 0;
}

/* Every tensor of a call belongs to the backend that runs it. */
static int check_owner(dlt_backend *be, const char *op, const dlt_tensor *const *t, int n)
{
    for (int i = 0; i < n; i++)
        if (t[i] && (t[i]->be != be || !t[i]->data))
            return dlt_err(DLT_EINVAL, "%s: tensor %d %s", op, i + 1,
                           !t[i]->data ? "has no storage" : "belongs to another backend");
    return 0;
}
#define OWNERS(op, ...)                                                                                             \
    do {                                                                                                            \
        const dlt_tensor *t_[] = {__VA_ARGS__};                                                                     \
        int rc_ = check_owner(be, op, t_, ARRLEN(t_));                                                              \
        if (rc_) return rc_;                                                                                        \
    } while (0)

/* x (big) -> y (small) is a convolution with descriptor c and weights w
 * [Cout, Cin/g, k...]; conv and (roles swapped) convt. */
static int check_conv(const char *op, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                      const dlt_tensor *y, int tr)
{
    int g = c->groups > 0 ? c->groups : 1;
    const dlt_tensor *in = tr ? y : x, *out = tr ? x : y; /* the op's channel roles */
    if (x->n != y->n) return shape_err(op, y, "batch sizes differ");
    if (x->c % g || y->c % g) return shape_err(op, x, "channels not divisible by groups");
    if (w->n != (tr ? in->c : out->c) || w->c != (tr ? out->c : in->c) / g || w->d != c->k[0] || w->h != c->k[1] ||
        w->w != c->k[2])
        return shape_err(op, w, "weight shape does not match the descriptor and channels");
    const int64_t big[3] = {x->d, x->h, x->w}, small[3] = {y->d, y->h, y->w};
    for (int i = 0; i < 3; i++) {
        if (c->stride[i] < 1 || c->k[i] < 1) return dlt_err(DLT_EINVAL, "%s: kernel and stride must be >= 1", op);
        if (c->pad_lo[i] < 0 || c->pad_hi[i] < 0) return dlt_err(DLT_EINVAL, "%s: negative padding", op);
        int64_t o = big[i] + c->pad_lo[i] + c->pad_hi[i] - c->k[i];
        if (o < 0 || o / c->stride[i] + 1 != small[i])
            return dlt_err(DLT_ESHAPE,
                           "%s: axis %d: input %lld, kernel %d, stride %d, padding %d+%d gives %lld, not %lld", op, i,
                           (long long)big[i], c->k[i], c->stride[i], c->pad_lo[i], c->pad_hi[i],
                           (long long)(o < 0 ? 0 : o / c->stride[i] + 1), (long long)small[i]);
    }
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

static int check_norm(const char *op, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *gamma,
                      const dlt_tensor *beta, const dlt_tensor *sm, const dlt_tensor *sr)
{
    const int inst = nd->kind == DLT_NORM_INSTANCE;
    if (nd->kind != DLT_NORM_BATCH && !inst) return dlt_err(DLT_EINVAL, "%s: unknown norm kind %d", op, nd->kind);
    if (nd->act == DLT_ACT_PRELU) return dlt_err(DLT_EUNSUP, "%s: PReLU cannot be fused; use act_fwd", op);
    if (nd->act < DLT_ACT_NONE || nd->act > DLT_ACT_PRELU)
        return dlt_err(DLT_EINVAL, "%s: unknown activation %d", op, nd->act);
    const int64_t ns = inst ? x->n * x->c : x->c;
    int rc = check_vec(op, gamma, x->c, "gamma is not C long");
    if (!rc) rc = check_vec(op, beta, x->c, "beta is not C long");
    if (!rc) rc = check_vec(op, sm, ns, "saved mean has the wrong length");
    if (!rc) rc = check_vec(op, sr, ns, "saved rstd has the wrong length");
    return rc;
}

static int check_act(const char *op, int act, const dlt_tensor *slope, const dlt_tensor *x)
{
    if (act < DLT_ACT_NONE || act > DLT_ACT_PRELU) return dlt_err(DLT_EINVAL, "%s: unknown activation %d", op, act);
    if (act == DLT_ACT_PRELU && (!slope || dlt_tensor_numel(slope) != x->c))
        return dlt_err(DLT_EINVAL, "%s: PReLU needs a slope vector of C", op);
    return 0;
}

/* ------------------------------------------------------------ fallback */

enum {
    OP_CONV_FWD, OP_CONV_BWD_DATA, OP_CONV_BWD_WEIGHTS, OP_CONVT_FWD, OP_CONVT_BWD_DATA, OP_CONVT_BWD_WEIGHTS,
    OP_NORM_FWD, OP_NORM_BWD, OP_ACT_FWD, OP_ACT_BWD, OP_MAXPOOL_FWD, OP_MAXPOOL_BWD, OP_PADC_FWD, OP_PADC_BWD,
    OP_CONCAT_FWD, OP_CONCAT_BWD, OP_ADD_FWD, OP_COPY, OP_SCALE, OP_SOFTMAX_FWD, OP_LOSS, OP_OPTIM_STEP
};
static const char *const op_names[] = {
    "conv_fwd", "conv_bwd_data", "conv_bwd_weights", "convt_fwd", "convt_bwd_data", "convt_bwd_weights",
    "norm_fwd", "norm_bwd", "act_fwd", "act_bwd", "maxpool_fwd", "maxpool_bwd", "padc_fwd", "padc_bwd",
    "concat_fwd", "concat_bwd", "add_fwd", "copy", "scale", "softmax_fwd", "loss", "optim_step"};

/* A tensor of the call and its host copy on the reference backend; `out`:
 * the op writes it (copied back when the op succeeds). Every copy starts
 * from the tensor's values, so accumulating outputs accumulate. */
typedef struct twin {
    const dlt_tensor *t;
    int out;
    dlt_tensor r;
} twin;
#define IN(t) {(t), 0, {0}}
#define OUT(t) {(t), 1, {0}}
#define T(i) (tw[i].t ? &tw[i].r : NULL)

/* The slot's verdict: 1 when the fallback must run (an empty slot, or
 * DLT_EUNSUP from a backend other than the reference itself). */
static int declined(dlt_backend *be, int rc) { return rc == DLT_EUNSUP && be->ops != &dlt_cpu_ref_ops; }

static int fb_begin(dlt_backend *be, int op, twin *tw, int n, int slot_empty, dlt_backend **ref)
{
    if (!(be->fell_back & (1ull << op))) {
        be->fell_back |= 1ull << op;
        dlt_log(DLT_LOG_DEBUG, "backend %s: %s runs on the reference backend (%s)", be->name, op_names[op],
                slot_empty ? "no kernel" : dlt_errmsg());
    }
    int rc = 0;
    if (!be->fallback && (rc = dlt_cpu_ref_create(&be->fallback))) return rc;
    dlt_backend *r = be->fallback;
    r->reduce = be->reduce; /* synchronised batch norm stays synchronised */
    for (int i = 0; i < n && !rc; i++) {
        const dlt_tensor *t = tw[i].t;
        if (!t) continue;
        rc = r->ops->alloc(r, &tw[i].r, DLT_T_ACT, t->n, t->c, t->d, t->h, t->w);
        if (!rc) rc = t->be->ops->download(t->be, t, tw[i].r.data); /* the reference stores plain host arrays */
    }
    *ref = r;
    return rc;
}

static int fb_end(twin *tw, int n, int rc)
{
    for (int i = 0; i < n; i++) {
        if (!tw[i].r.data) continue;
        if (!rc && tw[i].out) rc = tw[i].t->be->ops->upload(tw[i].t->be, (dlt_tensor *)tw[i].t, tw[i].r.data);
        dlt_tensor_release(&tw[i].r);
    }
    return rc;
}

/* Run the slot; return its result unless it declined. Then the fallback
 * follows: FALLBACK(op, twins...) { rc = r->ops->slot(r, ..T(i)..); } */
#define TRY_SLOT(slot, ...)                                                                                         \
    int slot_empty = !be->ops->slot;                                                                                \
    if (!slot_empty) {                                                                                              \
        int rc_ = be->ops->slot(be, __VA_ARGS__);                                                                   \
        if (!declined(be, rc_)) return rc_;                                                                         \
    }
#define FALLBACK(op, ...)                                                                                           \
    twin tw[] = {__VA_ARGS__};                                                                                      \
    dlt_backend *r = NULL;                                                                                          \
    int rc = fb_begin(be, op, tw, ARRLEN(tw), slot_empty, &r);                                                      \
    if (!rc)
#define FALLBACK_END return fb_end(tw, ARRLEN(tw), rc)

/* ------------------------------------------------------------ memory */

int dlt_tensor_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
    memset(t, 0, sizeof *t);
    if (n <= 0 || c <= 0 || d <= 0 || h <= 0 || w <= 0)
        return dlt_err(DLT_ESHAPE, "tensor shape %lldx%lldx%lldx%lldx%lld is empty", (long long)n, (long long)c,
                       (long long)d, (long long)h, (long long)w);
    if (dlt_mul_checked(dlt_mul_checked(dlt_mul_checked(n, c), dlt_mul_checked(d, h)), w) < 0)
        return dlt_err(DLT_ENOMEM, "tensor shape %lldx%lldx%lldx%lldx%lld overflows", (long long)n, (long long)c,
                       (long long)d, (long long)h, (long long)w);
    return be->ops->alloc(be, t, role, n, c, d, h, w);
}

void dlt_tensor_release(dlt_tensor *t)
{
    if (t && t->be && t->data) t->be->ops->release(t->be, t);
    if (t) t->data = NULL, t->priv = NULL;
}

int dlt_tensor_upload(dlt_tensor *t, const void *host) { return t->be->ops->upload(t->be, t, host); }
int dlt_tensor_download(const dlt_tensor *t, void *host) { return t->be->ops->download(t->be, t, host); }
int dlt_tensor_zero(dlt_tensor *t) { return t->be->ops->zero(t->be, t); }
int dlt_backend_sync(dlt_backend *be) { return be->ops->sync ? be->ops->sync(be) : 0; }

int dlt_backend_dist_attach(dlt_backend *be, dlt_dist *d)
{
    if (!be->ops->dist_attach || !be->ops->dist_average)
        return dlt_err(DLT_EUNSUP, "backend %s has no device collective", be->name);
    return be->ops->dist_attach(be, d);
}

int dlt_backend_dist_average(dlt_backend *be, dlt_tensor *const *t, int n)
{
    for (int i = 0; i < n; i++)
        if (!t[i] || t[i]->be != be) return dlt_err(DLT_EINVAL, "dist_average: tensor %d is not this backend's", i);
    if (!be->ops->dist_average) return dlt_err(DLT_EUNSUP, "backend %s has no device collective", be->name);
    return be->ops->dist_average(be, t, n);
}

/* ------------------------------------------------------------ convolution */

int dlt_op_conv_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                    const dlt_tensor *b, dlt_tensor *y)
{
    OWNERS("conv_fwd", x, w, b, y);
    int e = check_conv("conv_fwd", c, x, w, y, 0);
    if (!e) e = check_vec("conv_fwd", b, y->c, "bias is not Cout long");
    if (e) return e;
    TRY_SLOT(conv_fwd, c, x, w, b, y);
    FALLBACK(OP_CONV_FWD, IN(x), IN(w), IN(b), OUT(y)) rc = r->ops->conv_fwd(r, c, T(0), T(1), T(2), T(3));
    FALLBACK_END;
}

int dlt_op_conv_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                         dlt_tensor *dx, int accum)
{
    OWNERS("conv_bwd_data", dy, w, dx);
    int e = check_conv("conv_bwd_data", c, dx, w, dy, 0);
    if (e) return e;
    TRY_SLOT(conv_bwd_data, c, dy, w, dx, accum);
    FALLBACK(OP_CONV_BWD_DATA, IN(dy), IN(w), OUT(dx)) rc = r->ops->conv_bwd_data(r, c, T(0), T(1), T(2), accum);
    FALLBACK_END;
}

int dlt_op_conv_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                            dlt_tensor *dw, dlt_tensor *db)
{
    OWNERS("conv_bwd_weights", x, dy, dw, db);
    int e = check_conv("conv_bwd_weights", c, x, dw, dy, 0);
    if (!e) e = check_vec("conv_bwd_weights", db, dy->c, "bias is not Cout long");
    if (e) return e;
    TRY_SLOT(conv_bwd_weights, c, x, dy, dw, db);
    FALLBACK(OP_CONV_BWD_WEIGHTS, IN(x), IN(dy), OUT(dw), OUT(db))
    rc = r->ops->conv_bwd_weights(r, c, T(0), T(1), T(2), T(3));
    FALLBACK_END;
}

/* Transposed convolution y[N,Cout_t,big] from x[N,Cin_t,small], weights
 * [Cin_t, Cout_t/g, k]: the adjoint of the convolution big -> small. */
int dlt_op_convt_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                     const dlt_tensor *b, dlt_tensor *y)
{
    OWNERS("convt_fwd", x, w, b, y);
    int e = check_conv("convt_fwd", c, y, w, x, 1);
    if (!e) e = check_vec("convt_fwd", b, y->c, "bias is not Cout long");
    if (e) return e;
    TRY_SLOT(convt_fwd, c, x, w, b, y);
    FALLBACK(OP_CONVT_FWD, IN(x), IN(w), IN(b), OUT(y)) rc = r->ops->convt_fwd(r, c, T(0), T(1), T(2), T(3));
    FALLBACK_END;
}

int dlt_op_convt_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                          dlt_tensor *dx, int accum)
{
    OWNERS("convt_bwd_data", dy, w, dx);
    int e = check_conv("convt_bwd_data", c, dy, w, dx, 1);
    if (e) return e;
    TRY_SLOT(convt_bwd_data, c, dy, w, dx, accum);
    FALLBACK(OP_CONVT_BWD_DATA, IN(dy), IN(w), OUT(dx)) rc = r->ops->convt_bwd_data(r, c, T(0), T(1), T(2), accum);
    FALLBACK_END;
}

int dlt_op_convt_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                             dlt_tensor *dw, dlt_tensor *db)
{
    OWNERS("convt_bwd_weights", x, dy, dw, db);
    int e = check_conv("convt_bwd_weights", c, dy, dw, x, 1);
    if (!e) e = check_vec("convt_bwd_weights", db, dy->c, "bias is not Cout long");
    if (e) return e;
    TRY_SLOT(convt_bwd_weights, c, x, dy, dw, db);
    FALLBACK(OP_CONVT_BWD_WEIGHTS, IN(x), IN(dy), OUT(dw), OUT(db))
    rc = r->ops->convt_bwd_weights(r, c, T(0), T(1), T(2), T(3));
    FALLBACK_END;
}

/* ------------------------------------------------------------ normalisation */

int dlt_op_norm_fwd(dlt_backend *be, const dlt_norm_desc *nd, int training, const dlt_tensor *x,
                    const dlt_tensor *gamma, const dlt_tensor *beta, dlt_tensor *rm, dlt_tensor *rv, dlt_tensor *sm,
                    dlt_tensor *sr, dlt_tensor *y)
{
    OWNERS("norm_fwd", x, gamma, beta, rm, rv, sm, sr, y);
    int e = check_norm("norm_fwd", nd, x, gamma, beta, sm, sr);
    if (!e && !same_shape(x, y)) e = shape_err("norm_fwd", y, "output shape differs from input");
    if (!e) e = check_vec("norm_fwd", rm, x->c, "running mean is not C long");
    if (!e) e = check_vec("norm_fwd", rv, x->c, "running var is not C long");
    if (e) return e;
    if (!training && nd->kind == DLT_NORM_BATCH && (!rm || !rv))
        return dlt_err(DLT_EINVAL, "norm_fwd: inference needs running stats");
    if (nd->affine && (!gamma || !beta)) return dlt_err(DLT_EINVAL, "norm_fwd: affine norm needs gamma and beta");
    TRY_SLOT(norm_fwd, nd, training, x, gamma, beta, rm, rv, sm, sr, y);
    FALLBACK(OP_NORM_FWD, IN(x), IN(gamma), IN(beta), OUT(rm), OUT(rv), OUT(sm), OUT(sr), OUT(y))
    rc = r->ops->norm_fwd(r, nd, training, T(0), T(1), T(2), T(3), T(4), T(5), T(6), T(7));
    FALLBACK_END;
}

int dlt_op_norm_bwd(dlt_backend *be, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                    const dlt_tensor *dy, const dlt_tensor *gamma, const dlt_tensor *sm, const dlt_tensor *sr,
                    dlt_tensor *dx, int accum, dlt_tensor *dgamma, dlt_tensor *dbeta)
{
    OWNERS("norm_bwd", x, y, dy, gamma, sm, sr, dx, dgamma, dbeta);
    if (!same_shape(x, y) || !same_shape(x, dy) || !same_shape(x, dx))
        return shape_err("norm_bwd", dy, "x, y, dy and dx must have one shape");
    if (!sm || !sr) return dlt_err(DLT_EINVAL, "norm_bwd: needs the saved statistics of a training forward");
    int e = check_norm("norm_bwd", nd, x, gamma, NULL, sm, sr);
    if (!e) e = check_vec("norm_bwd", dgamma, x->c, "dgamma is not C long");
    if (!e) e = check_vec("norm_bwd", dbeta, x->c, "dbeta is not C long");
    if (e) return e;
    TRY_SLOT(norm_bwd, nd, x, y, dy, gamma, sm, sr, dx, accum, dgamma, dbeta);
    FALLBACK(OP_NORM_BWD, IN(x), IN(y), IN(dy), IN(gamma), IN(sm), IN(sr), OUT(dx), OUT(dgamma), OUT(dbeta))
    rc = r->ops->norm_bwd(r, nd, T(0), T(1), T(2), T(3), T(4), T(5), T(6), accum, T(7), T(8));
    FALLBACK_END;
}

/* ------------------------------------------------------------ activation, pooling */

int dlt_op_act_fwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x, dlt_tensor *y)
{
    OWNERS("act_fwd", slope, x, y);
    if (!same_shape(x, y)) return shape_err("act_fwd", y, "output shape differs from input");
    int e = check_act("act_fwd", act, slope, x);
    if (e) return e;
    TRY_SLOT(act_fwd, act, alpha, slope, x, y);
    FALLBACK(OP_ACT_FWD, IN(slope), IN(x), OUT(y)) rc = r->ops->act_fwd(r, act, alpha, T(0), T(1), T(2));
    FALLBACK_END;
}

int dlt_op_act_bwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                   const dlt_tensor *dy, dlt_tensor *dx, int accum, dlt_tensor *dslope)
{
    OWNERS("act_bwd", slope, x, dy, dx, dslope);
    if (!same_shape(x, dy) || !same_shape(x, dx)) return shape_err("act_bwd", dy, "x, dy, dx must have one shape");
    int e = check_act("act_bwd", act, slope, x);
    if (!e) e = check_vec("act_bwd", dslope, x->c, "dslope is not C long");
    if (e) return e;
    TRY_SLOT(act_bwd, act, alpha, slope, x, dy, dx, accum, dslope);
    FALLBACK(OP_ACT_BWD, IN(slope), IN(x), IN(dy), OUT(dx), OUT(dslope))
    rc = r->ops->act_bwd(r, act, alpha, T(0), T(1), T(2), T(3), accum, T(4));
    FALLBACK_END;
}

int dlt_op_maxpool_fwd(dlt_backend *be, const int k[3], const dlt_tensor *x, dlt_tensor *y)
{
    OWNERS("maxpool_fwd", x, y);
    int e = check_pool("maxpool_fwd", k, x, y);
    if (e) return e;
    TRY_SLOT(maxpool_fwd, k, x, y);
    FALLBACK(OP_MAXPOOL_FWD, IN(x), OUT(y)) rc = r->ops->maxpool_fwd(r, k, T(0), T(1));
    FALLBACK_END;
}

int dlt_op_maxpool_bwd(dlt_backend *be, const int k[3], const dlt_tensor *x, const dlt_tensor *y,
                       const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    OWNERS("maxpool_bwd", x, y, dy, dx);
    int e = check_pool("maxpool_bwd", k, x, dy);
    if (!e && y && !same_shape(y, dy)) e = shape_err("maxpool_bwd", y, "y and dy shapes differ");
    if (!e && !same_shape(x, dx)) e = shape_err("maxpool_bwd", dx, "dx shape differs from x");
    if (e) return e;
    TRY_SLOT(maxpool_bwd, k, x, y, dy, dx, accum);
    FALLBACK(OP_MAXPOOL_BWD, IN(x), IN(y), IN(dy), OUT(dx)) rc = r->ops->maxpool_bwd(r, k, T(0), T(1), T(2), T(3), accum);
    FALLBACK_END;
}

/* ------------------------------------------------------------ channel ops */

int dlt_op_padc_fwd(dlt_backend *be, int lo, int hi, const dlt_tensor *x, dlt_tensor *y)
{
    OWNERS("padc_fwd", x, y);
    if (lo < 0 || hi < 0 || !spatial_eq(x, y) || y->c != x->c + lo + hi)
        return shape_err("padc_fwd", y, "output is not the input with lo+hi more channels");
    TRY_SLOT(padc_fwd, lo, hi, x, y);
    FALLBACK(OP_PADC_FWD, IN(x), OUT(y)) rc = r->ops->padc_fwd(r, lo, hi, T(0), T(1));
    FALLBACK_END;
}

int dlt_op_padc_bwd(dlt_backend *be, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    OWNERS("padc_bwd", dy, dx);
    if (lo < 0 || hi < 0 || !spatial_eq(dx, dy) || dy->c != dx->c + lo + hi)
        return shape_err("padc_bwd", dy, "dy is not dx with lo+hi more channels");
    TRY_SLOT(padc_bwd, lo, hi, dy, dx, accum);
    FALLBACK(OP_PADC_BWD, IN(dy), OUT(dx)) rc = r->ops->padc_bwd(r, lo, hi, T(0), T(1), accum);
    FALLBACK_END;
}

int dlt_op_concat_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    OWNERS("concat_fwd", a, b, y);
    if (!spatial_eq(a, b) || !spatial_eq(a, y) || y->c != a->c + b->c)
        return shape_err("concat_fwd", y, "output is not [a, b] along channels");
    TRY_SLOT(concat_fwd, a, b, y);
    FALLBACK(OP_CONCAT_FWD, IN(a), IN(b), OUT(y)) rc = r->ops->concat_fwd(r, T(0), T(1), T(2));
    FALLBACK_END;
}

int dlt_op_concat_bwd(dlt_backend *be, const dlt_tensor *dy, dlt_tensor *da, int accum_a, dlt_tensor *db, int accum_b)
{
    if (!da || !db) return dlt_err(DLT_EINVAL, "concat_bwd: needs both da and db");
    OWNERS("concat_bwd", dy, da, db);
    if (!spatial_eq(da, db) || !spatial_eq(da, dy) || dy->c != da->c + db->c)
        return shape_err("concat_bwd", dy, "dy is not [da, db] along channels");
    TRY_SLOT(concat_bwd, dy, da, accum_a, db, accum_b);
    FALLBACK(OP_CONCAT_BWD, IN(dy), OUT(da), OUT(db)) rc = r->ops->concat_bwd(r, T(0), T(1), accum_a, T(2), accum_b);
    FALLBACK_END;
}

int dlt_op_add_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    OWNERS("add_fwd", a, b, y);
    if (!same_shape(a, b) || !same_shape(a, y)) return shape_err("add_fwd", y, "a, b, y must have one shape");
    TRY_SLOT(add_fwd, a, b, y);
    FALLBACK(OP_ADD_FWD, IN(a), IN(b), OUT(y)) rc = r->ops->add_fwd(r, T(0), T(1), T(2));
    FALLBACK_END;
}

int dlt_op_copy(dlt_backend *be, const dlt_tensor *src, dlt_tensor *dst, int accum)
{
    OWNERS("copy", src, dst);
    if (!same_shape(src, dst)) return shape_err("copy", dst, "src and dst shapes differ");
    TRY_SLOT(copy, src, dst, accum);
    FALLBACK(OP_COPY, IN(src), OUT(dst)) rc = r->ops->copy(r, T(0), T(1), accum);
    FALLBACK_END;
}

int dlt_op_scale(dlt_backend *be, float alpha, dlt_tensor *x)
{
    OWNERS("scale", x);
    if (!isfinite(alpha)) return dlt_err(DLT_EINVAL, "scale: factor %g is not finite", alpha);
    TRY_SLOT(scale, alpha, x);
    FALLBACK(OP_SCALE, OUT(x)) rc = r->ops->scale(r, alpha, T(0));
    FALLBACK_END;
}

int dlt_op_softmax_fwd(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y)
{
    OWNERS("softmax_fwd", x, y);
    if (!same_shape(x, y)) return shape_err("softmax_fwd", y, "output shape differs from input");
    TRY_SLOT(softmax_fwd, x, y);
    FALLBACK(OP_SOFTMAX_FWD, IN(x), OUT(y)) rc = r->ops->softmax_fwd(r, T(0), T(1));
    FALLBACK_END;
}

/* ------------------------------------------------------------ loss, optimiser */

int dlt_op_loss(dlt_backend *be, const dlt_loss_desc *ld, const dlt_tensor *logits, const dlt_tensor *labels,
                double *value, dlt_tensor *dlogits)
{
    OWNERS("loss", logits, labels, dlogits);
    if (ld->kind < DLT_LOSS_CE || ld->kind > DLT_LOSS_DICE_CE)
        return dlt_err(DLT_EINVAL, "loss: unknown loss kind %d", ld->kind);
    if (labels->n != logits->n || labels->c != 1 || labels->d != logits->d || labels->h != logits->h ||
        labels->w != logits->w)
        return shape_err("loss", labels, "labels are not [N,1,D,H,W] of the logits");
    if (dlogits && !same_shape(logits, dlogits)) return shape_err("loss", dlogits, "dlogits shape differs");
    TRY_SLOT(loss, ld, logits, labels, value, dlogits);
    FALLBACK(OP_LOSS, IN(logits), IN(labels), OUT(dlogits)) rc = r->ops->loss(r, ld, T(0), T(1), value, T(2));
    FALLBACK_END;
}

int dlt_op_optim_step(dlt_backend *be, const dlt_optim_desc *od, dlt_tensor *p, const dlt_tensor *g, dlt_tensor *m,
                      dlt_tensor *v)
{
    OWNERS("optim_step", p, g, m, v);
    const int64_t n = dlt_tensor_numel(p);
    if (dlt_tensor_numel(g) != n || (m && dlt_tensor_numel(m) != n) || (v && dlt_tensor_numel(v) != n))
        return shape_err("optim_step", g, "parameter, gradient and state sizes differ");
    if (od->kind != DLT_OPTIM_ADAM && od->kind != DLT_OPTIM_SGD)
        return dlt_err(DLT_EINVAL, "optim_step: unknown optimiser %d", od->kind);
    if (od->kind == DLT_OPTIM_ADAM && (!m || !v)) return dlt_err(DLT_EINVAL, "optim_step: Adam needs m and v");
    if (od->kind == DLT_OPTIM_ADAM && od->t < 1) return dlt_err(DLT_EINVAL, "optim_step: Adam step t must be >= 1");
    TRY_SLOT(optim_step, od, p, g, m, v);
    FALLBACK(OP_OPTIM_STEP, OUT(p), IN(g), OUT(m), OUT(v)) rc = r->ops->optim_step(r, od, T(0), T(1), T(2), T(3));
    FALLBACK_END;
}
