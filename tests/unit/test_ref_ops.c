/* test_ref_ops.c - the reference kernels other than convolution: norms with
 * fused activations (batch/instance, training), activations incl. PReLU,
 * max pooling, channel padding, concat, softmax, the four losses and their
 * options, against central finite differences in float64 (the same kernel
 * source compiled for double, see backend/ref/ref.h); running statistics, inference
 * mode, and the optimiser steps against PyTorch's update formulas. */
#include <string.h>

#include "check.h"
#include "backend/backends.h"
#include "refcheck.h"

/* ---- norm ---- */
typedef struct {
    dlt_norm_desc nd;
    dlt_shape s;
    double *x, *g, *b, *r, *y, *sm, *sr;
} norm_case;

static double norm_L(void *ctx)
{
    norm_case *c = ctx;
    dlt_ref_norm_fwd_d(&c->nd, 1, c->s, c->x, c->g, c->b, NULL, NULL, c->sm, c->sr, c->y, NULL);
    return rc_dot(dlt_shape_numel(c->s), c->r, c->y);
}

static void test_norm(int kind, int act, const char *name)
{
    norm_case c = {.nd = {.kind = kind, .eps = 1e-3f, .momentum = 0.99f, .affine = 1, .act = act, .alpha = 0.1f},
                   .s = {2, 3, 3, 4, 5}};
    int64_t n = dlt_shape_numel(c.s), ns = kind == DLT_NORM_INSTANCE ? 6 : 3;
    c.x = rc_rand(n, 1), c.r = rc_rand(n, 2), c.g = rc_rand(3, 3), c.b = rc_rand(3, 4);
    for (int i = 0; i < 3; i++) c.g[i] += 1.5, c.b[i] *= 0.5; /* move z off the kinks a bit */
    c.y = calloc(n, 8), c.sm = calloc(ns, 8), c.sr = calloc(ns, 8);
    double *dx = calloc(n, 8), *dg = calloc(3, 8), *db = calloc(3, 8);
    norm_L(&c);
    dlt_ref_norm_bwd_d(&c.nd, c.s, c.x, c.y, c.r, c.g, c.sm, c.sr, dx, 0, dg, db, NULL);
    double ex = rc_fd_check(norm_L, &c, c.x, n, dx, 1e-6);
    double eg = rc_fd_check(norm_L, &c, c.g, 3, dg, 1e-6);
    double eb = rc_fd_check(norm_L, &c, c.b, 3, db, 1e-6);
    CHECK(ex < 1e-5 && eg < 1e-5 && eb < 1e-5, "%s: dx, dgamma, dbeta match FD (%.2g %.2g %.2g)", name, ex, eg, eb);
    free(c.x), free(c.r), free(c.g), free(c.b), free(c.y), free(c.sm), free(c.sr), free(dx), free(dg), free(db);
}

/* ---- act ---- */
typedef struct {
    int act;
    dlt_shape s;
    double *x, *sl, *r, *y;
} act_case;

static double act_L(void *ctx)
{
    act_case *c = ctx;
    dlt_ref_act_fwd_d(c->act, 0.1f, c->sl, c->s, c->x, c->y);
    return rc_dot(dlt_shape_numel(c->s), c->r, c->y);
}

static void test_act(int act, const char *name)
{
    act_case c = {.act = act, .s = {2, 3, 2, 3, 4}};
    int64_t n = dlt_shape_numel(c.s);
    c.x = rc_rand(n, 5), c.r = rc_rand(n, 6), c.sl = rc_rand(3, 7), c.y = calloc(n, 8);
    for (int64_t i = 0; i < n; i++) c.x[i] *= 8; /* reach relu6's upper kink */
    double *dx = calloc(n, 8), *ds = calloc(3, 8);
    dlt_ref_act_bwd_d(act, 0.1f, c.sl, c.s, c.x, c.r, dx, 0, ds);
    double ex = rc_fd_check(act_L, &c, c.x, n, dx, 1e-6);
    CHECK(ex < 1e-6, "%s: dx matches FD (%.2g)", name, ex);
    if (act == DLT_ACT_PRELU) {
        double es = rc_fd_check(act_L, &c, c.sl, 3, ds, 1e-6);
        CHECK(es < 1e-6, "%s: dslope matches FD (%.2g)", name, es);
    }
    free(c.x), free(c.r), free(c.sl), free(c.y), free(dx), free(ds);
}

/* ---- pool / padc / concat through one scalar ---- */
typedef struct {
    dlt_shape s;
    int k[3];
    double *x, *r, *y;
} pool_case;

static double pool_L(void *ctx)
{
    pool_case *c = ctx;
    dlt_ref_maxpool_fwd_d(c->k, c->s, c->x, c->y);
    dlt_shape o = {c->s.n, c->s.c, c->s.d / c->k[0], c->s.h / c->k[1], c->s.w / c->k[2]};
    return rc_dot(dlt_shape_numel(o), c->r, c->y);
}

/* ---- losses ---- */
typedef struct {
    dlt_loss_desc ld;
    dlt_shape s;
    double *z, *dz;
    int32_t *lab;
} loss_case;

static double loss_L(void *ctx)
{
    loss_case *c = ctx;
    double v;
    double *tmp = malloc(8 * (size_t)dlt_shape_numel(c->s));
    dlt_ref_loss_d(&c->ld, c->s, c->z, c->lab, &v, tmp);
    free(tmp);
    return v;
}

static void test_loss(int kind, int include_bg, int only_present, int absent_class, const char *name)
{
    loss_case c = {.ld = {.kind = kind, .smooth = 1e-5f, .include_bg = include_bg, .only_present = only_present},
                   .s = {2, 4, 2, 3, 3}};
    int64_t n = dlt_shape_numel(c.s), nv = n / 4;
    c.z = rc_rand(n, 8), c.dz = calloc(n, 8), c.lab = malloc(4 * nv);
    for (int64_t i = 0; i < n; i++) c.z[i] *= 3;
    for (int64_t i = 0; i < nv; i++) {
        c.lab[i] = (int32_t)((i * 7 + i / 5) % 4);
        if (absent_class && c.lab[i] == 2) c.lab[i] = 1;
    }
    double v;
    int rc = dlt_ref_loss_d(&c.ld, c.s, c.z, c.lab, &v, c.dz);
    double e = rc_fd_check(loss_L, &c, c.z, n, c.dz, 1e-6);
    CHECK(rc == 0 && isfinite(v) && e < 1e-6, "%s: value %.6f, dlogits match FD (%.2g)", name, v, e);
    free(c.z), free(c.dz), free(c.lab);
}

int main(void)
{
    test_norm(DLT_NORM_BATCH, DLT_ACT_NONE, "batch norm");
    test_norm(DLT_NORM_BATCH, DLT_ACT_LEAKY, "batch norm + leaky");
    test_norm(DLT_NORM_BATCH, DLT_ACT_RELU6, "batch norm + relu6");
    test_norm(DLT_NORM_BATCH, DLT_ACT_RELU, "batch norm + relu");
    test_norm(DLT_NORM_INSTANCE, DLT_ACT_NONE, "instance norm");
    test_norm(DLT_NORM_INSTANCE, DLT_ACT_LEAKY, "instance norm + leaky");

    /* running statistics (TF momentum, unbiased var) and inference mode */
    {
        dlt_norm_desc nd = {.kind = DLT_NORM_BATCH, .eps = 1e-3f, .momentum = 0.9f, .affine = 1};
        dlt_shape s = {2, 1, 1, 1, 2};
        double x[4] = {1, 2, 3, 6}, g = 2, b = 1, rm = 0.5, rv = 2, sm, sr, y[4];
        dlt_ref_norm_fwd_d(&nd, 1, s, x, &g, &b, &rm, &rv, &sm, &sr, y, NULL);
        /* mean 3, biased var 3.5, unbiased 14/3 */
        const double mo = (double)0.9f;
        CHECK(fabs(rm - (mo * 0.5 + (1 - mo) * 3)) < 1e-12 && fabs(rv - (mo * 2 + (1 - mo) * 14.0 / 3)) < 1e-12,
              "running mean/var: r = m*r + (1-m)*batch, unbiased var");
        CHECK(fabs(y[3] - (2 * 3 / sqrt(3.5 + 1e-3) + 1)) < 1e-6, "training output uses batch statistics");
        dlt_ref_norm_fwd_d(&nd, 0, s, x, &g, &b, &rm, &rv, NULL, NULL, y, NULL);
        CHECK(fabs(y[0] - (2 * (1 - rm) / sqrt(rv + 1e-3) + 1)) < 1e-6, "inference output uses running statistics");
    }

    test_act(DLT_ACT_RELU, "relu");
    test_act(DLT_ACT_LEAKY, "leaky 0.1");
    test_act(DLT_ACT_RELU6, "relu6");
    test_act(DLT_ACT_PRELU, "prelu");

    {
        pool_case c = {.s = {2, 2, 4, 2, 6}, .k = {2, 1, 3}};
        int64_t n = dlt_shape_numel(c.s), no = n / 6;
        c.x = rc_rand(n, 9), c.r = rc_rand(no, 10), c.y = calloc(no, 8);
        double *dx = calloc(n, 8);
        dlt_ref_maxpool_bwd_d(c.k, c.s, c.x, c.r, dx, 0);
        double e = rc_fd_check(pool_L, &c, c.x, n, dx, 1e-7);
        CHECK(e < 1e-6, "maxpool 2x1x3: dx matches FD (%.2g)", e);
        double ties[8] = {1, 1, 1, 1, 1, 1, 1, 1}, yt, rt = 1, dt[8];
        dlt_ref_maxpool_bwd_d((int[]){2, 2, 2}, (dlt_shape){1, 1, 2, 2, 2}, ties, &rt, dt, 0);
        dlt_ref_maxpool_fwd_d((int[]){2, 2, 2}, (dlt_shape){1, 1, 2, 2, 2}, ties, &yt);
        CHECK(dt[0] == 1 && dt[1] == 0 && dt[7] == 0 && yt == 1, "maxpool ties: the first maximum takes the gradient");
        free(c.x), free(c.r), free(c.y), free(dx);
    }
    {
        /* padc / concat are linear maps: their backward must be the transpose */
        dlt_shape xs = {2, 3, 1, 2, 3};
        int64_t n = dlt_shape_numel(xs), ny = n / 3 * 6;
        double *x = rc_rand(n, 11), *r = rc_rand(ny, 12), *y = calloc(ny, 8), *dx = calloc(n, 8);
        dlt_ref_padc_fwd_d(1, 2, xs, x, y);
        dlt_ref_padc_bwd_d(1, 2, xs, r, dx, 0);
        CHECK(fabs(rc_dot(ny, r, y) - rc_dot(n, x, dx)) < 1e-12 && y[0] == 0 && y[6] == x[0],
              "padc 1+2: zero channels placed, backward is the adjoint");
        dlt_shape bs = {2, 3, 1, 2, 3};
        double *b = rc_rand(n, 13), *db = calloc(n, 8);
        dlt_ref_concat_fwd_d(xs, x, bs, b, y);
        dlt_ref_concat_bwd_d(xs, bs, r, dx, 0, db, 0);
        CHECK(fabs(rc_dot(ny, r, y) - rc_dot(n, x, dx) - rc_dot(n, b, db)) < 1e-12 && y[18] == b[0] && y[17] == x[17],
              "concat [a, b]: layout and adjoint");
        free(x), free(r), free(y), free(dx), free(b), free(db);
    }
    {
        dlt_shape s = {2, 3, 1, 2, 2};
        double *x = rc_rand(24, 14), y[24];
        x[0] = 800; /* stability */
        dlt_ref_softmax_fwd_d(s, x, y);
        double sum = y[0] + y[4] + y[8], e = fabs(y[5] - exp(x[5]) / (exp(x[1]) + exp(x[5]) + exp(x[9])));
        CHECK(fabs(sum - 1) < 1e-12 && e < 1e-12 && isfinite(y[0]), "softmax over channels, stable for large logits");
        free(x);
    }

    test_loss(DLT_LOSS_CE, 1, 0, 0, "CE");
    test_loss(DLT_LOSS_BALANCED_CE, 1, 0, 0, "balanced CE");
    test_loss(DLT_LOSS_BALANCED_CE, 1, 0, 1, "balanced CE, a class absent");
    test_loss(DLT_LOSS_DICE, 1, 0, 0, "Dice");
    test_loss(DLT_LOSS_DICE, 0, 0, 0, "Dice without background");
    test_loss(DLT_LOSS_DICE, 1, 1, 1, "Dice only present");
    test_loss(DLT_LOSS_DICE_CE, 1, 0, 1, "Dice + CE");
    {
        /* known values: 1 voxel, 2 classes, logits 0: CE = log 2; perfect Dice = 0 */
        dlt_loss_desc ld = {.kind = DLT_LOSS_CE, .smooth = 1e-5f, .include_bg = 1};
        double z[2] = {0, 0}, dz[2], v;
        int32_t l = 1;
        dlt_ref_loss_d(&ld, (dlt_shape){1, 2, 1, 1, 1}, z, &l, &v, dz);
        CHECK(fabs(v - log(2)) < 1e-12 && fabs(dz[1] + 0.5) < 1e-12, "CE of uniform logits is log 2");
        /* balanced weights: labels 0,0,0,1 -> w0 = (4/2)/3, w1 = 2 */
        double z4[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int32_t l4[4] = {0, 0, 0, 1};
        double dz4[8];
        ld.kind = DLT_LOSS_BALANCED_CE;
        dlt_ref_loss_d(&ld, (dlt_shape){1, 2, 1, 1, 4}, z4, l4, &v, dz4);
        CHECK(fabs(v - log(2) * (3 * (2.0 / 3) + 2) / 4) < 1e-7, "balanced CE weights N/(C*count_c) (%.6f)", v);
        double zp[2] = {-30, 30};
        ld.kind = DLT_LOSS_DICE;
        dlt_ref_loss_d(&ld, (dlt_shape){1, 2, 1, 1, 1}, zp, &l, &v, dz);
        CHECK(fabs(v) < 1e-5, "Dice of a perfect prediction ~ 0 (%.3g)", v);
        int32_t bad = 2;
        CHECK(dlt_ref_loss_d(&ld, (dlt_shape){1, 2, 1, 1, 1}, zp, &bad, &v, dz) == DLT_EINVAL,
              "label outside the classes refused: %s", dlt_errmsg());
    }

    /* optimisers: PyTorch's formulas, step by step */
    {
        dlt_optim_desc od = {.kind = DLT_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-5f,
                             .weight_decay = 0.1f};
        double p = 0.5, m = 0, v = 0, pm = 0.5, mm = 0, vv = 0;
        double gs[3] = {0.3, -0.2, 0.05};
        for (int t = 1; t <= 3; t++) {
            od.t = t;
            double g = gs[t - 1];
            dlt_ref_optim_step_d(&od, 1, &p, &g, &m, &v);
            double b1 = (float)0.9, b2 = (float)0.999, gg = g + (double)(float)0.1 * pm;
            mm = b1 * mm + (1 - b1) * gg, vv = b2 * vv + (1 - b2) * gg * gg;
            pm -= (double)(float)0.01 / (1 - pow(b1, t)) * mm / (sqrt(vv) / sqrt(1 - pow(b2, t)) + (double)(float)1e-5);
        }
        CHECK(fabs(p - pm) < 1e-15, "Adam with bias correction and weight decay (3 steps)");
        od = (dlt_optim_desc){.kind = DLT_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1};
        p = 1, m = 0;
        double g = 0.5;
        dlt_ref_optim_step_d(&od, 1, &p, &g, &m, NULL);
        dlt_ref_optim_step_d(&od, 1, &p, &g, &m, NULL);
        /* buf1 = .5, p = 1 - .1*(.5+.9*.5); buf2 = .9*.5+.5 = .95, p -= .1*(.5+.9*.95) */
        double mu = (float)0.9, lr = (float)0.1;
        double want = 1 - lr * (0.5 + mu * 0.5) - lr * (0.5 + mu * (mu * 0.5 + 0.5));
        CHECK(fabs(p - want) < 1e-12, "SGD Nesterov momentum (2 steps)");
    }

    /* the float backend refuses bad calls with a message */
    dlt_backend *be;
    dlt_cpu_ref_create(&be);
    dlt_tensor a, b;
    dlt_tensor_alloc(be, &a, DLT_T_ACT, 1, 2, 2, 2, 2);
    dlt_tensor_alloc(be, &b, DLT_T_ACT, 1, 3, 2, 2, 2);
    CHECK(dlt_op_add_fwd(be, &a, &b, &a) == DLT_ESHAPE, "add of different shapes refused: %s", dlt_errmsg());
    CHECK(dlt_op_maxpool_fwd(be, (int[]){3, 1, 1}, &a, &b) == DLT_ESHAPE, "pool not dividing refused: %s", dlt_errmsg());
    dlt_tensor_release(&a), dlt_tensor_release(&b);
    dlt_backend_free(be);
    CHECK(dlt_backend_create("tpu", &be) == DLT_EINVAL, "unknown device refused: %s", dlt_errmsg());
    return check_done();
}
