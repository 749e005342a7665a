/* train.c - the trainer of dlt/train.h: optimiser state per trainable
 * parameter, learning-rate schedules, one training step, and checkpoints
 * (weights + optimiser state + step + RNG) that resume bit-identically. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlt/train.h"

struct dlt_trainer {
    dlt_net *net;
    dlt_train_config cfg;
    int64_t step;     /* optimiser steps done */
    dlt_rng rng;
    int np;           /* net params */
    dlt_tensor *m, *v; /* per param (trainable only allocated) */
    dlt_tensor labels, dlogits;
    /* deep supervision: the auxiliary outputs' labels and gradients */
    dlt_tensor aux_labels[DLT_NET_MAX_SCALES], aux_dlogits[DLT_NET_MAX_SCALES];
    int32_t *aux_host; /* labels subsampled to an auxiliary grid */
    int64_t aux_cap;   /* its length in labels */
    dlt_dist *dist;   /* data-parallel ranks, or NULL */
    int on_device;    /* the backend averages the gradients itself (NCCL) */
    dlt_tensor **gptr; /* the trainable gradients, for it */
    float *gbuf;      /* every trainable gradient, packed, and the loss (dist only) */
};

void dlt_train_config_default(dlt_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->loss.kind = DLT_LOSS_CE;
    c->loss.smooth = 1e-5f;
    c->loss.include_bg = 1;
    c->optim.kind = DLT_OPTIM_ADAM;
    c->optim.lr = 1e-3f;
    c->optim.beta1 = 0.9f;
    c->optim.beta2 = 0.999f;
    c->optim.eps = 1e-5f;
    c->optim.momentum = 0.9f;
    c->sched = DLT_SCHED_CONSTANT;
    c->sched_step = 10000;
    c->sched_gamma = 0.1;
    c->poly_power = 0.9;
}

int dlt_train_config_check(const dlt_train_config *c)
{
    if (!dlt_loss_name(c->loss.kind)) return dlt_err(DLT_EINVAL, "train: unknown loss %d", c->loss.kind);
    if (!dlt_optim_name(c->optim.kind)) return dlt_err(DLT_EINVAL, "train: unknown optimiser %d", c->optim.kind);
    if (!dlt_sched_name(c->sched)) return dlt_err(DLT_EINVAL, "train: unknown schedule %d", c->sched);
    if (!(c->optim.lr > 0) || !isfinite(c->optim.lr)) return dlt_err(DLT_EINVAL, "train: learning rate must be > 0");
    if (c->optim.kind == DLT_OPTIM_ADAM &&
        (!(c->optim.beta1 >= 0 && c->optim.beta1 < 1) || !(c->optim.beta2 >= 0 && c->optim.beta2 < 1) || !(c->optim.eps > 0)))
        return dlt_err(DLT_EINVAL, "train: Adam needs betas in [0,1) and eps > 0");
    if (!(c->optim.weight_decay >= 0)) return dlt_err(DLT_EINVAL, "train: weight decay must be >= 0");
    if (c->sched == DLT_SCHED_STEP && (c->sched_step < 1 || !(c->sched_gamma > 0)))
        return dlt_err(DLT_EINVAL, "train: step schedule needs a step >= 1 and gamma > 0");
    if (c->sched == DLT_SCHED_POLY && c->total_steps < 1)
        return dlt_err(DLT_EINVAL, "train: poly schedule needs the total step count");
    return 0;
}

static const char *const loss_names[] = {NULL, "ce", "balanced-ce", "dice", "dice+ce"};
static const char *const optim_names[] = {NULL, "adam", "sgd"};
static const char *const sched_names[] = {"constant", "step", "poly"};
#define FIND(tab, s)                                                                                               \
    do {                                                                                                           \
        for (int i_ = 0; s && i_ < (int)(sizeof tab / sizeof tab[0]); i_++)                                        \
            if (tab[i_] && !strcmp(tab[i_], s)) return i_;                                                         \
        return -1;                                                                                                 \
    } while (0)
int dlt_loss_parse(const char *s) { FIND(loss_names, s); }
int dlt_optim_parse(const char *s) { FIND(optim_names, s); }
int dlt_sched_parse(const char *s) { FIND(sched_names, s); }
const char *dlt_loss_name(int k) { return k >= 1 && k <= 4 ? loss_names[k] : NULL; }
const char *dlt_optim_name(int k) { return k >= 1 && k <= 2 ? optim_names[k] : NULL; }
const char *dlt_sched_name(int k) { return k >= 0 && k <= 2 ? sched_names[k] : NULL; }

int dlt_trainer_create(dlt_net *net, const dlt_train_config *c, uint64_t seed, dlt_trainer **out)
{
    *out = NULL;
    int rc = dlt_train_config_check(c);
    if (rc) return rc;
    dlt_trainer *t = calloc(1, sizeof *t);
    if (!t) return dlt_err(DLT_ENOMEM, "train: out of memory");
    t->net = net;
    t->cfg = *c;
    dlt_rng_init(&t->rng, seed, 7);
    t->np = dlt_net_nparams(net);
    t->m = calloc((size_t)t->np, sizeof(dlt_tensor));
    t->v = calloc((size_t)t->np, sizeof(dlt_tensor));
    if (!t->m || !t->v) {
        dlt_trainer_free(t);
        return dlt_err(DLT_ENOMEM, "train: out of memory");
    }
    dlt_backend *be = dlt_net_backend(net);
    for (int i = 0; i < t->np; i++) {
        dlt_param *p = dlt_net_param(net, i);
        if (!p->trainable) continue;
        const dlt_tensor *pv = &p->value;
        if ((rc = dlt_tensor_alloc(be, &t->m[i], p->role, pv->n, pv->c, pv->d, pv->h, pv->w)) ||
            (rc = dlt_tensor_zero(&t->m[i])))
            break;
        if (c->optim.kind == DLT_OPTIM_ADAM &&
            ((rc = dlt_tensor_alloc(be, &t->v[i], p->role, pv->n, pv->c, pv->d, pv->h, pv->w)) ||
             (rc = dlt_tensor_zero(&t->v[i]))))
            break;
    }
    if (rc) {
        dlt_trainer_free(t);
        return dlt_err_prefix(rc, "train: optimiser state");
    }
    *out = t;
    return 0;
}

void dlt_trainer_free(dlt_trainer *t)
{
    if (!t) return;
    for (int i = 0; i < t->np; i++) {
        if (t->m) dlt_tensor_release(&t->m[i]);
        if (t->v) dlt_tensor_release(&t->v[i]);
    }
    free(t->m), free(t->v);
    dlt_tensor_release(&t->labels);
    dlt_tensor_release(&t->dlogits);
    for (int k = 0; k < DLT_NET_MAX_SCALES; k++) dlt_tensor_release(&t->aux_labels[k]), dlt_tensor_release(&t->aux_dlogits[k]);
    dlt_free(t->aux_host);
    dlt_free(t->gbuf);
    free(t->gptr);
    free(t);
}

int64_t dlt_trainer_steps_done(const dlt_trainer *t) { return t->step; }
int dlt_trainer_set_dist(dlt_trainer *t, dlt_dist *d)
{
    t->dist = d;
    t->on_device = 0;
    dlt_backend *be = dlt_net_backend(t->net);
    if (dlt_dist_size(d) < 2) return 0;
    int rc = dlt_backend_dist_attach(be, d);
    if (rc == DLT_EUNSUP) {
        dlt_log(DLT_LOG_VERBOSE, "train: %s; averaging gradients through the host", dlt_errmsg());
        return 0;
    }
    if (rc) return dlt_err_prefix(rc, "train: joining the ranks on the device");
    t->on_device = 1;
    return 0;
}

/* The device path: every gradient in one group of the backend's own
 * collective; the loss (a host double) through MPI. */
static int average_on_device(dlt_trainer *t, double *loss)
{
    dlt_net *net = t->net;
    dlt_backend *be = dlt_net_backend(net);
    if (!t->gptr && !(t->gptr = calloc((size_t)t->np + 1, sizeof *t->gptr)))
        return dlt_err(DLT_ENOMEM, "train: out of memory");
    int n = 0;
    for (int i = 0; i < t->np; i++) {
        dlt_param *p = dlt_net_param(net, i);
        if (p->trainable) t->gptr[n++] = &p->grad;
    }
    int rc = dlt_backend_dist_average(be, t->gptr, n);
    if (!rc) rc = dlt_dist_sum(t->dist, loss, 1);
    if (rc) return dlt_err_prefix(rc, "train: averaging gradients over the ranks");
    *loss /= dlt_dist_size(t->dist);
    return 0;
}

/* Gradients and loss averaged over the ranks: each rank's loss is the mean
 * over its share, so the mean of the ranks' gradients is the gradient of
 * the mean over the whole batch. Packed into one host buffer (the download
 * also turns a backend's private layout into NCDHW), summed in buckets. */
#define GRAD_BUCKET ((int64_t)4 << 20)
static int average_grads(dlt_trainer *t, double *loss)
{
    dlt_net *net = t->net;
    int64_t n = 1;
    for (int i = 0; i < t->np; i++) {
        dlt_param *p = dlt_net_param(net, i);
        if (p->trainable) n += dlt_tensor_numel(&p->grad);
    }
    if (!t->gbuf && !(t->gbuf = dlt_alloc(n, sizeof(float), "gradient buffer"))) return DLT_ENOMEM;
    int rc = 0;
    int64_t o = 0;
    for (int i = 0; !rc && i < t->np; i++) {
        dlt_param *p = dlt_net_param(net, i);
        if (!p->trainable) continue;
        rc = dlt_tensor_download(&p->grad, t->gbuf + o);
        o += dlt_tensor_numel(&p->grad);
    }
    t->gbuf[o] = (float)*loss;
    for (int64_t b = 0; !rc && b < n; b += GRAD_BUCKET)
        rc = dlt_dist_sum_f32(t->dist, t->gbuf + b, n - b < GRAD_BUCKET ? n - b : GRAD_BUCKET);
    if (rc) return dlt_err_prefix(rc, "train: averaging gradients over the ranks");
    const float inv = 1.0f / (float)dlt_dist_size(t->dist);
    for (int64_t k = 0; k < n; k++) t->gbuf[k] *= inv;
    *loss = t->gbuf[o];
    o = 0;
    for (int i = 0; !rc && i < t->np; i++) {
        dlt_param *p = dlt_net_param(net, i);
        if (!p->trainable) continue;
        rc = dlt_tensor_upload(&p->grad, t->gbuf + o);
        o += dlt_tensor_numel(&p->grad);
    }
    return rc;
}
dlt_rng *dlt_trainer_rng(dlt_trainer *t) { return &t->rng; }
dlt_net *dlt_trainer_net(dlt_trainer *t) { return t->net; }
const dlt_train_config *dlt_trainer_config(const dlt_trainer *t) { return &t->cfg; }

double dlt_trainer_lr(const dlt_trainer *t)
{
    const dlt_train_config *c = &t->cfg;
    double lr = c->optim.lr;
    switch (c->sched) {
    case DLT_SCHED_STEP: return lr * pow(c->sched_gamma, (double)(t->step / c->sched_step));
    case DLT_SCHED_POLY: {
        double f = 1.0 - (double)t->step / (double)c->total_steps;
        return f > 0 ? lr * pow(f, c->poly_power) : 0;
    }
    default: return lr;
    }
}

/* labels [n,1,d,h,w] on the grid of an auxiliary output [n,*,ad,ah,aw]:
 * the voxel at the centre of each block (nearest, as nnU-Net's
 * nearest-exact downsampling of the segmentation). */
static void subsample_labels(const int32_t *src, int64_t n, int64_t d, int64_t h, int64_t w, int32_t *dst, int64_t ad,
                             int64_t ah, int64_t aw)
{
    const int64_t fd = d / ad, fh = h / ah, fw = w / aw;
    for (int64_t b = 0; b < n; b++)
        for (int64_t z = 0; z < ad; z++)
            for (int64_t y = 0; y < ah; y++)
                for (int64_t x = 0; x < aw; x++)
                    dst[((b * ad + z) * ah + y) * aw + x] =
                        src[((b * d + z * fd + fd / 2) * h + y * fh + fh / 2) * w + x * fw + fw / 2];
}

/* Deep supervision, as nnU-Net weighs it: output k at 1/2^k of the full
 * resolution (k = 0 the main one) weighs 1/2^k, normalised to sum 1. Each
 * auxiliary loss is the run's loss on the subsampled labels; the gradients
 * (main one included) are scaled by their weights, and *loss becomes the
 * weighted sum. */
static int aux_losses(dlt_trainer *t, const int32_t *labels, int64_t n, int64_t d, int64_t h, int64_t w, double *loss)
{
    dlt_net *net = t->net;
    dlt_backend *be = dlt_net_backend(net);
    const int na = dlt_net_aux_count(net);
    double wsum = 1, total = *loss;
    for (int k = 0; k < na; k++) wsum += 1.0 / (double)(2 << k);
    int rc = dlt_op_scale(be, (float)(1 / wsum), &t->dlogits);
    if (!rc && n * d * h * w > t->aux_cap) { /* the full grid: no auxiliary one is larger */
        dlt_free(t->aux_host);
        t->aux_cap = (t->aux_host = dlt_alloc(n * d * h * w, sizeof(int32_t), "labels")) ? n * d * h * w : 0;
        if (!t->aux_host) rc = DLT_ENOMEM;
    }
    for (int k = 0; !rc && k < na; k++) {
        const dlt_tensor *lg = dlt_net_aux_logits(net, k);
        dlt_tensor *lb = &t->aux_labels[k], *dl = &t->aux_dlogits[k];
        if (!lg) return dlt_err(DLT_EINVAL, "train: auxiliary output %d missing after the training forward", k);
        if (!lb->data || lb->n != lg->n || lb->d != lg->d || lb->h != lg->h || lb->w != lg->w) {
            dlt_tensor_release(lb), dlt_tensor_release(dl);
            if ((rc = dlt_tensor_alloc(be, lb, DLT_T_LABEL, lg->n, 1, lg->d, lg->h, lg->w)) ||
                (rc = dlt_tensor_alloc(be, dl, DLT_T_ACT, lg->n, lg->c, lg->d, lg->h, lg->w)))
                break;
        }
        subsample_labels(labels, n, d, h, w, t->aux_host, lg->d, lg->h, lg->w);
        double lk = 0;
        const double wk = 1.0 / (double)(2 << k); /* before normalising */
        if (!(rc = dlt_tensor_upload(lb, t->aux_host)) && !(rc = dlt_op_loss(be, &t->cfg.loss, lg, lb, &lk, dl)))
            rc = dlt_op_scale(be, (float)(wk / wsum), dl);
        total += wk * lk;
    }
    if (rc) return dlt_err_prefix(rc, "train: deep supervision");
    *loss = total / wsum;
    return 0;
}

/* Forward + loss (+ dlogits when grad). */
static int forward_loss(dlt_trainer *t, const float *x, const int32_t *labels, int64_t n, int64_t d, int64_t h,
                        int64_t w, int training, double *loss)
{
    dlt_net *net = t->net;
    dlt_backend *be = dlt_net_backend(net);
    const dlt_tensor *lg;
    int rc = dlt_net_forward(net, x, n, d, h, w, training, &lg);
    if (rc) return rc;
    if (!t->labels.data || t->labels.n != n || t->labels.d != d || t->labels.h != h || t->labels.w != w) {
        dlt_tensor_release(&t->labels);
        dlt_tensor_release(&t->dlogits);
        if ((rc = dlt_tensor_alloc(be, &t->labels, DLT_T_LABEL, n, 1, d, h, w)) ||
            (rc = dlt_tensor_alloc(be, &t->dlogits, DLT_T_ACT, lg->n, lg->c, lg->d, lg->h, lg->w)))
            return rc;
    }
    if ((rc = dlt_tensor_upload(&t->labels, labels))) return rc;
    if ((rc = dlt_op_loss(be, &t->cfg.loss, lg, &t->labels, loss, &t->dlogits))) return rc;
    return training && dlt_net_aux_count(net) ? aux_losses(t, labels, n, d, h, w, loss) : 0;
}

int dlt_trainer_step(dlt_trainer *t, const float *x, const int32_t *labels, int64_t n, int64_t d, int64_t h,
                     int64_t w, double *loss)
{
    dlt_net *net = t->net;
    dlt_backend *be = dlt_net_backend(net);
    int rc = dlt_net_zero_grad(net);
    if (!rc) rc = forward_loss(t, x, labels, n, d, h, w, 1, loss);
    const dlt_tensor *daux[DLT_NET_MAX_SCALES];
    for (int k = 0; k < dlt_net_aux_count(net); k++) daux[k] = &t->aux_dlogits[k];
    if (!rc) rc = dlt_net_backward_aux(net, &t->dlogits, daux);
    if (!rc && dlt_dist_size(t->dist) > 1) rc = t->on_device ? average_on_device(t, loss) : average_grads(t, loss);
    if (rc) return rc;
    dlt_optim_desc od = t->cfg.optim;
    od.lr = (float)dlt_trainer_lr(t);
    od.t = t->step + 1;
    for (int i = 0; i < t->np; i++) {
        dlt_param *p = dlt_net_param(net, i);
        if (!p->trainable) continue;
        rc = dlt_op_optim_step(be, &od, &p->value, &p->grad, &t->m[i], t->v[i].data ? &t->v[i] : NULL);
        if (rc) return dlt_err_prefix(rc, "train: %s", p->name);
    }
    t->step++;
    return 0;
}

int dlt_trainer_eval_loss(dlt_trainer *t, const float *x, const int32_t *labels, int64_t n, int64_t d, int64_t h,
                          int64_t w, double *loss)
{
    return forward_loss(t, x, labels, n, d, h, w, 0, loss);
}

static int add_state(dlt_model *m, const char *prefix, const dlt_param *p, const dlt_tensor *s)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    int64_t n = dlt_tensor_numel(s), shape[5] = {s->n, s->c, s->d, s->h, s->w};
    float *h = dlt_alloc(n, 4, name);
    if (!h) return DLT_ENOMEM;
    int rc = dlt_tensor_download(s, h);
    if (!rc) rc = dlt_model_add(m, name, DLT_DT_F32, p->role == DLT_T_VEC ? 1 : 5, shape, h);
    dlt_free(h);
    return rc;
}

int dlt_trainer_save(const dlt_trainer *t, dlt_model *m)
{
    int rc = dlt_net_save(t->net, m);
    if (rc) return rc;
    for (int i = 0; !rc && i < t->np; i++) {
        const dlt_param *p = dlt_net_param(t->net, i);
        if (!p->trainable) continue;
        rc = add_state(m, "optim.m.", p, &t->m[i]);
        if (!rc && t->v[i].data) rc = add_state(m, "optim.v.", p, &t->v[i]);
    }
    const dlt_train_config *c = &t->cfg;
    char buf[128];
#define META(k, ...) \
    if (!rc) { snprintf(buf, sizeof buf, __VA_ARGS__); rc = dlt_model_set_meta(m, k, buf); }
    META("step", "%" PRId64, t->step);
    META("optim", "%s", dlt_optim_name(c->optim.kind));
    META("lr", "%.9g", c->optim.lr);
    META("beta1", "%.9g", c->optim.beta1);
    META("beta2", "%.9g", c->optim.beta2);
    META("eps", "%.9g", c->optim.eps);
    META("weight_decay", "%.9g", c->optim.weight_decay);
    META("momentum", "%.9g", c->optim.momentum);
    META("nesterov", "%d", c->optim.nesterov);
    META("loss", "%s", dlt_loss_name(c->loss.kind));
    META("schedule", "%s", dlt_sched_name(c->sched));
    META("sched_step", "%" PRId64, c->sched_step);
    META("sched_gamma", "%.17g", c->sched_gamma);
    META("poly_power", "%.17g", c->poly_power);
    META("total_steps", "%" PRId64, c->total_steps);
    META("rng", "%" PRIu64 ",%" PRIu64 ",%" PRIu64, t->rng.seed, t->rng.stream, t->rng.pos);
#undef META
    return rc;
}

void dlt_train_config_resume(dlt_train_config *c, unsigned given, const dlt_model *ck)
{
    const char *s;
#define TAKE(bit, key) (!(given & (bit)) && (s = dlt_model_get_meta(ck, key)) != NULL)
    if (TAKE(DLT_GIVEN_OPTIM, "optim") && dlt_optim_parse(s) > 0) c->optim.kind = dlt_optim_parse(s);
    if (TAKE(DLT_GIVEN_LOSS, "loss") && dlt_loss_parse(s) > 0) c->loss.kind = dlt_loss_parse(s);
    if (TAKE(DLT_GIVEN_SCHED, "schedule") && dlt_sched_parse(s) >= 0) c->sched = dlt_sched_parse(s);
    if (TAKE(DLT_GIVEN_LR, "lr")) c->optim.lr = (float)atof(s);
    if (TAKE(DLT_GIVEN_EPS, "eps")) c->optim.eps = (float)atof(s);
    if (TAKE(DLT_GIVEN_MOMENTUM, "momentum")) c->optim.momentum = (float)atof(s);
    if (TAKE(DLT_GIVEN_WEIGHT_DECAY, "weight_decay")) c->optim.weight_decay = (float)atof(s);
    if (TAKE(DLT_GIVEN_SCHED_GAMMA, "sched_gamma")) c->sched_gamma = atof(s);
    if (TAKE(DLT_GIVEN_POLY, "poly_power")) c->poly_power = atof(s);
    if (TAKE(DLT_GIVEN_NESTEROV, "nesterov")) c->optim.nesterov = atoi(s);
    if (TAKE(DLT_GIVEN_SCHED_STEP, "sched_step") && atoll(s) > 0) c->sched_step = atoll(s);
#undef TAKE
}

static int load_state(const dlt_model *m, const char *prefix, const dlt_param *p, dlt_tensor *s)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    const dlt_model_tensor *mt = dlt_model_find(m, name);
    if (!mt) return 1;
    if (dlt_model_numel(mt) != dlt_tensor_numel(s) || mt->dtype != DLT_DT_F32)
        return dlt_err(DLT_ESHAPE, "checkpoint: %s has the wrong size or type", name);
    return dlt_tensor_upload(s, mt->data);
}

int dlt_trainer_restore(dlt_trainer *t, const dlt_model *m)
{
    dlt_net_config c;
    int rc = dlt_net_config_from_model(m, &c);
    if (rc) return rc;
    const dlt_net_config *mine = dlt_net_get_config(t->net);
    char a[128], b[128];
    dlt_net_format_filters(&c, a, sizeof a), dlt_net_format_filters(mine, b, sizeof b);
    if (c.kind != mine->kind || c.in_channels != mine->in_channels || c.classes != mine->classes || strcmp(a, b))
        return dlt_err(DLT_EINVAL, "checkpoint: network %s %d->%d filters %s differs from this one (%s %d->%d filters %s)",
                       dlt_net_kind_name(c.kind), c.in_channels, c.classes, a, dlt_net_kind_name(mine->kind),
                       mine->in_channels, mine->classes, b);
    if ((rc = dlt_net_load_weights(t->net, m))) return rc;
    int have = 0, missing = 0;
    for (int i = 0; i < t->np; i++) {
        const dlt_param *p = dlt_net_param(t->net, i);
        if (!p->trainable) continue;
        int r = load_state(m, "optim.m.", p, &t->m[i]);
        if (r < 0) return r;
        if (r == 0 && t->v[i].data && (r = load_state(m, "optim.v.", p, &t->v[i])) < 0) return r;
        if (r == 0) have++; else missing++;
    }
    if (have && missing) return dlt_err(DLT_EFORMAT, "checkpoint: optimiser state is incomplete (%d tensors missing)", missing);
    if (!have)
        for (int i = 0; i < t->np; i++) {
            if (t->m[i].data) dlt_tensor_zero(&t->m[i]);
            if (t->v[i].data) dlt_tensor_zero(&t->v[i]);
        }
    const char *s = dlt_model_get_meta(m, "step");
    t->step = 0;
    if (s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (*end || v < 0) return dlt_err(DLT_EFORMAT, "checkpoint: metadata step = '%s'", s);
        t->step = v;
    }
    if ((s = dlt_model_get_meta(m, "rng"))) {
        unsigned long long seed, stream, pos;
        if (sscanf(s, "%llu,%llu,%llu", &seed, &stream, &pos) != 3)
            return dlt_err(DLT_EFORMAT, "checkpoint: metadata rng = '%s'", s);
        t->rng.seed = seed, t->rng.stream = stream, t->rng.pos = pos;
    }
    return 0;
}
