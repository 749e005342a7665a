/* ops_vs_ref.c - the CUDA backend against the CPU reference, on a GPU
 * machine (built and run by tests/gpu/run.sh; not part of `make check`).
 *
 *   ops_vs_ref [--precision fp32|tf32|bf16] [--net] [--quick]
 *
 * Every operation of dlt/backend.h, forward and backward, on random inputs
 * (never zeros) uploaded identically to "cpu-ref" and "cuda"; outputs are
 * downloaded and compared by relative error max|gpu - ref| / max|ref|.
 * Tolerances: 1e-4 for everything in fp32; convolutions under tf32 2e-2 and
 * bf16 5e-2 (10- and 8-bit mantissas, errors grow with the reduction
 * length); the other operations are fp32 in every mode and keep 1e-4.
 * --net adds one DLTK U-Net training step (batch 2, 32^3, 4 classes) on both
 * backends with the same seed: loss and every parameter after the Adam step
 * must agree to 1e-4 (fp32) or the conv tolerance. Also checks the Philox
 * stream computed on the GPU. Prints TAP-like lines and a summary; exit 1 on
 * any failure. --against NAME replaces "cuda" by another backend (e.g.
 * cpu-ref, to check this harness on a machine without a GPU). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "backend/cuda/cuda.h"
#include "dlt/backend.h"
#include "dlt/core.h"
#include "dlt/net.h"
#include "dlt/train.h"

static dlt_backend *BE[2]; /* 0: cpu-ref, 1: cuda */
static int nfail, npass;
static double conv_tol = 1e-4;
static const double TOL = 1e-4;
static dlt_rng rng;

#define CK(call)                                                                                                  \
    do {                                                                                                          \
        int r_ = (call);                                                                                          \
        if (r_ < 0) {                                                                                             \
            printf("not ok - %s:%d: %s: %s\n", __FILE__, __LINE__, #call, dlt_errmsg());                          \
            nfail++;                                                                                              \
            return;                                                                                               \
        }                                                                                                         \
    } while (0)

/* the same tensor on both backends */
typedef struct {
    dlt_tensor t[2];
    int64_t numel;
} T2;

enum { FILL_RAND, FILL_POS, FILL_LABEL };

static int t2(T2 *x, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, int fill, int classes)
{
    x->numel = n * c * d * h * w;
    void *host = malloc((size_t)x->numel * 4 + 4);
    for (int64_t i = 0; i < x->numel; i++) {
        if (fill == FILL_LABEL)
            ((int32_t *)host)[i] = (int32_t)dlt_rng_below(&rng, (uint64_t)classes);
        else if (fill == FILL_POS)
            ((float *)host)[i] = (float)(0.5 + dlt_rng_uniform(&rng));
        else
            ((float *)host)[i] = (float)(2 * dlt_rng_uniform(&rng) - 1);
    }
    int r = 0;
    for (int b = 0; b < 2 && !r; b++) {
        r = dlt_tensor_alloc(BE[b], &x->t[b], role, n, c, d, h, w);
        if (!r) r = dlt_tensor_upload(&x->t[b], host);
    }
    free(host);
    return r;
}

static void t2_free(T2 *x)
{
    for (int b = 0; b < 2; b++) dlt_tensor_release(&x->t[b]);
}

/* compare the two copies; prints one line */
static void cmp(T2 *x, double tol, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cmp(T2 *x, double tol, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    float *a = malloc((size_t)x->numel * 4 + 4), *g = malloc((size_t)x->numel * 4 + 4);
    int r = dlt_tensor_download(&x->t[0], a);
    if (!r) r = dlt_tensor_download(&x->t[1], g);
    if (r) {
        printf("not ok - %s: download: %s\n", name, dlt_errmsg());
        nfail++;
    } else {
        double mx = 0, md = 0;
        int nan = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            if (!isfinite(g[i])) nan = 1;
            mx = fmax(mx, fabs(a[i]));
            md = fmax(md, fabs((double)a[i] - g[i]));
        }
        double rel = md / (mx > 1e-30 ? mx : 1e-30);
        int ok = !nan && rel <= tol && (mx > 0 || md == 0);
        printf("%sok - %-58s rel %.2e (tol %.0e, max|ref| %.3g)%s\n", ok ? "" : "not ", name, rel, tol, mx,
               nan ? " NON-FINITE" : "");
        ok ? npass++ : nfail++;
    }
    free(a);
    free(g);
}

static void check_value(double ref, double gpu, double tol, const char *name)
{
    double rel = fabs(ref - gpu) / fmax(fabs(ref), 1e-30);
    int ok = rel <= tol && isfinite(gpu);
    printf("%sok - %-58s rel %.2e (ref %.6g gpu %.6g)\n", ok ? "" : "not ", name, rel, ref, gpu);
    ok ? npass++ : nfail++;
}

#define BOTH(expr)                                                                                                \
    for (int i = 0; i < 2; i++) {                                                                                 \
        dlt_backend *be = BE[i];                                                                                  \
        CK(expr);                                                                                                 \
    }

/* ---- convolutions ---- */
static void conv_case(const char *tag, int n, int cin, int cout, const int64_t in[3], int k0, int k1, int k2, int s0,
                      int s1, int s2, int groups, int bias)
{
    dlt_conv_desc c = {{k0, k1, k2}, {s0, s1, s2}, {0, 0, 0}, {0, 0, 0}, groups, bias};
    int64_t out[3];
    dlt_conv_same(&c, in, out);
    T2 x, w, b, y, dy, dx, dw, db;
    CK(t2(&x, DLT_T_ACT, n, cin, in[0], in[1], in[2], FILL_RAND, 0));
    CK(t2(&w, DLT_T_WEIGHT, cout, cin / groups, k0, k1, k2, FILL_RAND, 0));
    CK(t2(&b, DLT_T_VEC, cout, 1, 1, 1, 1, FILL_RAND, 0));
    CK(t2(&y, DLT_T_ACT, n, cout, out[0], out[1], out[2], FILL_RAND, 0));
    CK(t2(&dy, DLT_T_ACT, n, cout, out[0], out[1], out[2], FILL_RAND, 0));
    CK(t2(&dx, DLT_T_ACT, n, cin, in[0], in[1], in[2], FILL_RAND, 0));
    CK(t2(&dw, DLT_T_WEIGHT, cout, cin / groups, k0, k1, k2, FILL_RAND, 0));
    CK(t2(&db, DLT_T_VEC, cout, 1, 1, 1, 1, FILL_RAND, 0));
    BOTH(dlt_op_conv_fwd(be, &c, &x.t[i], &w.t[i], bias ? &b.t[i] : NULL, &y.t[i]));
    cmp(&y, conv_tol, "conv_fwd %s", tag);
    BOTH(dlt_op_conv_bwd_data(be, &c, &dy.t[i], &w.t[i], &dx.t[i], 1));
    cmp(&dx, conv_tol, "conv_bwd_data accum %s", tag);
    BOTH(dlt_op_conv_bwd_data(be, &c, &dy.t[i], &w.t[i], &dx.t[i], 0));
    cmp(&dx, conv_tol, "conv_bwd_data %s", tag);
    BOTH(dlt_op_conv_bwd_weights(be, &c, &x.t[i], &dy.t[i], &dw.t[i], bias ? &db.t[i] : NULL));
    cmp(&dw, conv_tol, "conv_bwd_weights %s", tag);
    if (bias) cmp(&db, TOL, "conv_bwd_weights bias %s", tag);
    /* transposed: x' has y's shape (small), y' has x's shape (large); weights [small C, large C/g, k] */
    T2 tw, ty;
    CK(t2(&tw, DLT_T_WEIGHT, cout, cin / groups, k0, k1, k2, FILL_RAND, 0));
    CK(t2(&ty, DLT_T_ACT, n, cin, in[0], in[1], in[2], FILL_RAND, 0));
    T2 tb;
    CK(t2(&tb, DLT_T_VEC, cin, 1, 1, 1, 1, FILL_RAND, 0));
    BOTH(dlt_op_convt_fwd(be, &c, &dy.t[i], &tw.t[i], bias ? &tb.t[i] : NULL, &ty.t[i]));
    cmp(&ty, conv_tol, "convt_fwd %s", tag);
    BOTH(dlt_op_convt_bwd_data(be, &c, &x.t[i], &tw.t[i], &y.t[i], 1));
    cmp(&y, conv_tol, "convt_bwd_data accum %s", tag);
    BOTH(dlt_op_convt_bwd_weights(be, &c, &dy.t[i], &x.t[i], &tw.t[i], bias ? &tb.t[i] : NULL));
    cmp(&tw, conv_tol, "convt_bwd_weights %s", tag);
    if (bias) cmp(&tb, TOL, "convt_bwd_weights bias %s", tag);
    T2 *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db, &tw, &ty, &tb};
    for (size_t j = 0; j < sizeof all / sizeof *all; j++) t2_free(all[j]);
}

static void test_convs(int quick)
{
    int64_t a[3] = {16, 16, 16}, odd[3] = {15, 13, 11}, an[3] = {8, 16, 16};
    conv_case("3^3 s1 8->16 16^3", 2, 8, 16, a, 3, 3, 3, 1, 1, 1, 1, 0);
    conv_case("4^3 s2 16->32 (DLTK strided unit)", 2, 16, 32, a, 4, 4, 4, 2, 2, 2, 1, 0);
    conv_case("2x4x4 s1,2,2 (asymmetric pad) +bias", 2, 8, 8, an, 2, 4, 4, 1, 2, 2, 1, 1);
    conv_case("4^3 s2 on 15x13x11 (odd, asymmetric)", 1, 4, 8, odd, 4, 4, 4, 2, 2, 2, 1, 0);
    conv_case("1^3 head 16->14", 2, 16, 14, a, 1, 1, 1, 1, 1, 1, 1, 0);
    conv_case("depthwise 4^3 s2 g=8 (upsampling geometry)", 2, 8, 8, a, 4, 4, 4, 2, 2, 2, 8, 0);
    if (!quick) {
        int64_t b[3] = {32, 32, 32};
        conv_case("3^3 s1 32->32 32^3 +bias", 2, 32, 32, b, 3, 3, 3, 1, 1, 1, 1, 1);
        conv_case("3^3 s1 cin=1 (stem)", 2, 1, 16, b, 3, 3, 3, 1, 1, 1, 1, 0);
    }
}

/* ---- norms ---- */
static void test_norms(void)
{
    static const char *acts[] = {"none", "relu", "leaky", "relu6"};
    int actv[] = {DLT_ACT_NONE, DLT_ACT_RELU, DLT_ACT_LEAKY, DLT_ACT_RELU6};
    for (int kind = DLT_NORM_BATCH; kind <= DLT_NORM_INSTANCE; kind++)
        for (int a = 0; a < 4; a++) {
            const char *kn = kind == DLT_NORM_BATCH ? "batch" : "instance";
            dlt_norm_desc nd = {kind, 1e-3f, 0.99f, 1, actv[a], 0.1f};
            int N = 3, C = 24;
            int64_t ns = kind == DLT_NORM_BATCH ? C : N * C;
            T2 x, g, bt, rm, rv, sm, sr, y, dy, dx, dg, db;
            CK(t2(&x, DLT_T_ACT, N, C, 6, 7, 9, FILL_RAND, 0));
            CK(t2(&g, DLT_T_VEC, C, 1, 1, 1, 1, FILL_POS, 0));
            CK(t2(&bt, DLT_T_VEC, C, 1, 1, 1, 1, FILL_RAND, 0));
            CK(t2(&rm, DLT_T_VEC, C, 1, 1, 1, 1, FILL_RAND, 0));
            CK(t2(&rv, DLT_T_VEC, C, 1, 1, 1, 1, FILL_POS, 0));
            CK(t2(&sm, DLT_T_VEC, ns, 1, 1, 1, 1, FILL_RAND, 0));
            CK(t2(&sr, DLT_T_VEC, ns, 1, 1, 1, 1, FILL_RAND, 0));
            CK(t2(&y, DLT_T_ACT, N, C, 6, 7, 9, FILL_RAND, 0));
            CK(t2(&dy, DLT_T_ACT, N, C, 6, 7, 9, FILL_RAND, 0));
            CK(t2(&dx, DLT_T_ACT, N, C, 6, 7, 9, FILL_RAND, 0));
            CK(t2(&dg, DLT_T_VEC, C, 1, 1, 1, 1, FILL_RAND, 0));
            CK(t2(&db, DLT_T_VEC, C, 1, 1, 1, 1, FILL_RAND, 0));
            if (kind == DLT_NORM_BATCH) {
                BOTH(dlt_op_norm_fwd(be, &nd, 0, &x.t[i], &g.t[i], &bt.t[i], &rm.t[i], &rv.t[i], NULL, NULL, &y.t[i]));
                cmp(&y, TOL, "norm_fwd %s %s inference", kn, acts[a]);
            }
            BOTH(dlt_op_norm_fwd(be, &nd, 1, &x.t[i], &g.t[i], &bt.t[i], kind == DLT_NORM_BATCH ? &rm.t[i] : NULL,
                              kind == DLT_NORM_BATCH ? &rv.t[i] : NULL, &sm.t[i], &sr.t[i], &y.t[i]));
            cmp(&y, TOL, "norm_fwd %s %s training", kn, acts[a]);
            cmp(&sm, TOL, "norm_fwd %s %s saved mean", kn, acts[a]);
            cmp(&sr, TOL, "norm_fwd %s %s saved rstd", kn, acts[a]);
            if (kind == DLT_NORM_BATCH) {
                cmp(&rm, TOL, "norm_fwd batch %s running mean", acts[a]);
                cmp(&rv, TOL, "norm_fwd batch %s running var", acts[a]);
            }
            BOTH(dlt_op_norm_bwd(be, &nd, &x.t[i], &y.t[i], &dy.t[i], &g.t[i], &sm.t[i], &sr.t[i], &dx.t[i], a & 1,
                              &dg.t[i], &db.t[i]));
            cmp(&dx, TOL, "norm_bwd %s %s dx%s", kn, acts[a], a & 1 ? " accum" : "");
            cmp(&dg, TOL, "norm_bwd %s %s dgamma", kn, acts[a]);
            cmp(&db, TOL, "norm_bwd %s %s dbeta", kn, acts[a]);
            T2 *all[] = {&x, &g, &bt, &rm, &rv, &sm, &sr, &y, &dy, &dx, &dg, &db};
            for (size_t j = 0; j < sizeof all / sizeof *all; j++) t2_free(all[j]);
        }
}

/* ---- activations, pooling, channel ops, softmax ---- */
static void test_eltwise(void)
{
    static const char *names[] = {"none", "relu", "leaky", "relu6", "prelu"};
    for (int a = DLT_ACT_NONE; a <= DLT_ACT_PRELU; a++) {
        T2 x, sl, y, dy, dx, ds;
        CK(t2(&x, DLT_T_ACT, 2, 5, 6, 7, 8, FILL_RAND, 0));
        /* spread over the relu6 kinks too */
        CK(t2(&sl, DLT_T_VEC, 5, 1, 1, 1, 1, FILL_POS, 0));
        CK(t2(&y, DLT_T_ACT, 2, 5, 6, 7, 8, FILL_RAND, 0));
        CK(t2(&dy, DLT_T_ACT, 2, 5, 6, 7, 8, FILL_RAND, 0));
        CK(t2(&dx, DLT_T_ACT, 2, 5, 6, 7, 8, FILL_RAND, 0));
        CK(t2(&ds, DLT_T_VEC, 5, 1, 1, 1, 1, FILL_RAND, 0));
        BOTH(dlt_op_act_fwd(be, a, 0.1f, &sl.t[i], &x.t[i], &y.t[i]));
        cmp(&y, TOL, "act_fwd %s", names[a]);
        BOTH(dlt_op_act_bwd(be, a, 0.1f, &sl.t[i], &x.t[i], &dy.t[i], &dx.t[i], 1, a == DLT_ACT_PRELU ? &ds.t[i] : NULL));
        cmp(&dx, TOL, "act_bwd %s accum", names[a]);
        if (a == DLT_ACT_PRELU) cmp(&ds, TOL, "act_bwd prelu dslope");
        T2 *all[] = {&x, &sl, &y, &dy, &dx, &ds};
        for (size_t j = 0; j < 6; j++) t2_free(all[j]);
    }
    int ks[2][3] = {{2, 2, 2}, {1, 2, 2}};
    for (int q = 0; q < 2; q++) {
        int *k = ks[q];
        T2 x, y, dy, dx;
        CK(t2(&x, DLT_T_ACT, 2, 6, 8, 8, 12, FILL_RAND, 0));
        CK(t2(&y, DLT_T_ACT, 2, 6, 8 / k[0], 8 / k[1], 12 / k[2], FILL_RAND, 0));
        CK(t2(&dy, DLT_T_ACT, 2, 6, 8 / k[0], 8 / k[1], 12 / k[2], FILL_RAND, 0));
        CK(t2(&dx, DLT_T_ACT, 2, 6, 8, 8, 12, FILL_RAND, 0));
        BOTH(dlt_op_maxpool_fwd(be, k, &x.t[i], &y.t[i]));
        cmp(&y, TOL, "maxpool_fwd %dx%dx%d", k[0], k[1], k[2]);
        BOTH(dlt_op_maxpool_bwd(be, k, &x.t[i], &y.t[i], &dy.t[i], &dx.t[i], q));
        cmp(&dx, TOL, "maxpool_bwd %dx%dx%d%s", k[0], k[1], k[2], q ? " accum" : "");
        t2_free(&x), t2_free(&y), t2_free(&dy), t2_free(&dx);
    }
    {
        T2 x, y, dx, a, b, cy, da, db, s, sy;
        CK(t2(&x, DLT_T_ACT, 2, 5, 4, 6, 8, FILL_RAND, 0));
        CK(t2(&y, DLT_T_ACT, 2, 12, 4, 6, 8, FILL_RAND, 0));
        CK(t2(&dx, DLT_T_ACT, 2, 5, 4, 6, 8, FILL_RAND, 0));
        BOTH(dlt_op_padc_fwd(be, 3, 4, &x.t[i], &y.t[i]));
        cmp(&y, TOL, "padc_fwd 3+5+4");
        BOTH(dlt_op_padc_bwd(be, 3, 4, &y.t[i], &dx.t[i], 1));
        cmp(&dx, TOL, "padc_bwd accum");
        CK(t2(&a, DLT_T_ACT, 2, 7, 4, 6, 8, FILL_RAND, 0));
        CK(t2(&cy, DLT_T_ACT, 2, 12, 4, 6, 8, FILL_RAND, 0));
        CK(t2(&da, DLT_T_ACT, 2, 7, 4, 6, 8, FILL_RAND, 0));
        CK(t2(&db, DLT_T_ACT, 2, 5, 4, 6, 8, FILL_RAND, 0));
        BOTH(dlt_op_concat_fwd(be, &a.t[i], &x.t[i], &cy.t[i]));
        cmp(&cy, TOL, "concat_fwd 7+5");
        BOTH(dlt_op_concat_bwd(be, &y.t[i], &da.t[i], 0, &db.t[i], 1));
        cmp(&da, TOL, "concat_bwd a");
        cmp(&db, TOL, "concat_bwd b accum");
        CK(t2(&b, DLT_T_ACT, 2, 12, 4, 6, 8, FILL_RAND, 0));
        BOTH(dlt_op_add_fwd(be, &y.t[i], &cy.t[i], &b.t[i]));
        cmp(&b, TOL, "add_fwd");
        BOTH(dlt_op_copy(be, &y.t[i], &b.t[i], 1));
        cmp(&b, TOL, "copy accum");
        BOTH(dlt_op_copy(be, &cy.t[i], &b.t[i], 0));
        cmp(&b, TOL, "copy");
        BOTH(dlt_op_scale(be, -0.625f, &b.t[i]));
        cmp(&b, TOL, "scale");
        CK(t2(&s, DLT_T_ACT, 2, 14, 5, 6, 7, FILL_RAND, 0));
        CK(t2(&sy, DLT_T_ACT, 2, 14, 5, 6, 7, FILL_RAND, 0));
        BOTH(dlt_op_softmax_fwd(be, &s.t[i], &sy.t[i]));
        cmp(&sy, TOL, "softmax_fwd 14 classes");
        T2 *all[] = {&x, &y, &dx, &a, &b, &cy, &da, &db, &s, &sy};
        for (size_t j = 0; j < sizeof all / sizeof *all; j++) t2_free(all[j]);
    }
}

/* ---- losses ---- */
static void test_losses(void)
{
    struct {
        const char *name;
        dlt_loss_desc d;
    } L[] = {
        {"ce", {DLT_LOSS_CE, 1e-5f, 1, 0}},
        {"balanced-ce", {DLT_LOSS_BALANCED_CE, 1e-5f, 1, 0}},
        {"dice", {DLT_LOSS_DICE, 1e-5f, 1, 0}},
        {"dice no-bg", {DLT_LOSS_DICE, 1e-5f, 0, 0}},
        {"dice only-present", {DLT_LOSS_DICE, 1e-5f, 1, 1}},
        {"dice+ce", {DLT_LOSS_DICE_CE, 1e-5f, 1, 0}},
    };
    for (size_t q = 0; q < sizeof L / sizeof *L; q++) {
        int C = q == 4 ? 9 : 5; /* only-present: 9 classes, labels use 0..4 */
        T2 z, lab, dz;
        CK(t2(&z, DLT_T_ACT, 2, C, 6, 7, 8, FILL_RAND, 0));
        CK(t2(&lab, DLT_T_LABEL, 2, 1, 6, 7, 8, FILL_LABEL, 5));
        CK(t2(&dz, DLT_T_ACT, 2, C, 6, 7, 8, FILL_RAND, 0));
        double v[2] = {0, 0};
        BOTH(dlt_op_loss(be, &L[q].d, &z.t[i], &lab.t[i], &v[i], &dz.t[i]));
        char nm[96];
        snprintf(nm, sizeof nm, "loss %s value", L[q].name);
        check_value(v[0], v[1], TOL, nm);
        cmp(&dz, TOL, "loss %s dlogits", L[q].name);
        t2_free(&z), t2_free(&lab), t2_free(&dz);
    }
}

/* ---- optimisers ---- */
static void test_optim(void)
{
    dlt_optim_desc ods[] = {
        {DLT_OPTIM_ADAM, 1e-3f, 0.9f, 0.999f, 1e-5f, 0, 0, 0, 1},
        {DLT_OPTIM_ADAM, 1e-3f, 0.9f, 0.999f, 1e-5f, 1e-4f, 0, 0, 7},
        {DLT_OPTIM_SGD, 1e-2f, 0, 0, 0, 0, 0.9f, 0, 3},
        {DLT_OPTIM_SGD, 1e-2f, 0, 0, 0, 1e-4f, 0.9f, 1, 3},
    };
    const char *nm[] = {"adam t=1", "adam t=7 wd", "sgd momentum", "sgd nesterov wd"};
    for (int q = 0; q < 4; q++) {
        T2 p, g, m, v;
        CK(t2(&p, DLT_T_WEIGHT, 16, 8, 3, 3, 3, FILL_RAND, 0));
        CK(t2(&g, DLT_T_WEIGHT, 16, 8, 3, 3, 3, FILL_RAND, 0));
        CK(t2(&m, DLT_T_WEIGHT, 16, 8, 3, 3, 3, FILL_RAND, 0));
        CK(t2(&v, DLT_T_WEIGHT, 16, 8, 3, 3, 3, FILL_POS, 0));
        int adam = ods[q].kind == DLT_OPTIM_ADAM;
        BOTH(dlt_op_optim_step(be, &ods[q], &p.t[i], &g.t[i], &m.t[i], adam ? &v.t[i] : NULL));
        cmp(&p, TOL, "optim %s params", nm[q]);
        cmp(&m, TOL, "optim %s first moment / momentum", nm[q]);
        if (adam) cmp(&v, TOL, "optim %s second moment", nm[q]);
        t2_free(&p), t2_free(&g), t2_free(&m), t2_free(&v);
    }
}

static void test_philox(void)
{
    int64_t n = 1 << 16;
    float *u = malloc(n * 4), *z = malloc(n * 4);
    CK(dlt_cuda_philox_fill(BE[1], 1234, 5, n, u, z));
    int64_t bad_u = 0;
    double dz = 0;
    for (int64_t i = 0; i < n; i++) {
        bad_u += u[i] != dlt_rng_uniform_at(1234, 5, (uint64_t)i);
        dz = fmax(dz, fabs((double)z[i] - dlt_rng_normal_at(1234, 5, (uint64_t)i)));
    }
    printf("%sok - philox on the GPU: uniforms bit-identical (%lld of %lld differ)\n", bad_u ? "not " : "",
           (long long)bad_u, (long long)n);
    bad_u ? nfail++ : npass++;
    printf("%sok - philox on the GPU: normals within 1e-5 (max diff %.2e)\n", dz <= 1e-5 ? "" : "not ", dz);
    dz <= 1e-5 ? npass++ : nfail++;
    free(u), free(z);
}

static void test_roundtrip(void)
{
    T2 a;
    CK(t2(&a, DLT_T_ACT, 2, 7, 5, 6, 9, FILL_RAND, 0));
    cmp(&a, 0, "upload/download NCDHW <-> NDHWC round trip");
    t2_free(&a);
}

/* ---- one U-Net training step on both backends ---- */
static void test_net(void)
{
    dlt_net_config cfg;
    dlt_net_config_default(&cfg, DLT_NET_UNET, 1, 4);
    dlt_net *net[2] = {0};
    dlt_trainer *tr[2] = {0};
    dlt_train_config tc;
    dlt_train_config_default(&tc);
    int64_t N = 2, S = 32, vox = N * S * S * S;
    float *x = malloc(vox * 4);
    int32_t *lab = malloc(vox * 4);
    for (int64_t i = 0; i < vox; i++) x[i] = (float)dlt_rng_normal(&rng), lab[i] = (int32_t)dlt_rng_below(&rng, 4);
    double loss[2] = {0, 0};
    for (int b = 0; b < 2; b++) {
        CK(dlt_net_create(&cfg, BE[b], 11, &net[b]));
        CK(dlt_trainer_create(net[b], &tc, 11, &tr[b]));
        CK(dlt_trainer_step(tr[b], x, lab, N, S, S, S, &loss[b]));
    }
    check_value(loss[0], loss[1], conv_tol, "unet step: loss");
    double worst = 0;
    char wname[128] = "";
    for (int p = 0; p < dlt_net_nparams(net[0]); p++) {
        dlt_param *a = dlt_net_param(net[0], p), *g = dlt_net_param(net[1], p);
        int64_t n = dlt_tensor_numel(&a->value);
        float *ha = malloc(n * 4), *hg = malloc(n * 4);
        CK(dlt_tensor_download(&a->value, ha));
        CK(dlt_tensor_download(&g->value, hg));
        double mx = 0, md = 0;
        for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(ha[i])), md = fmax(md, fabs((double)ha[i] - hg[i]));
        double rel = md / fmax(mx, 1e-30);
        if (rel > worst) worst = rel, snprintf(wname, sizeof wname, "%s", a->name);
        free(ha), free(hg);
    }
    int ok = worst <= conv_tol;
    printf("%sok - %-58s rel %.2e (worst: %s)\n", ok ? "" : "not ", "unet step: every parameter after Adam", worst,
           wname);
    ok ? npass++ : nfail++;
    for (int b = 0; b < 2; b++) dlt_trainer_free(tr[b]), dlt_net_free(net[b]);
    free(x), free(lab);
}

int main(int argc, char **argv)
{
    const char *prec = "fp32";
    const char *against = "cuda";
    int net = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else if (!strcmp(argv[i], "--net")) net = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--against") && i + 1 < argc) against = argv[++i];
        else {
            fprintf(stderr, "usage: ops_vs_ref [--precision fp32|tf32|bf16] [--net] [--quick] [--against BACKEND]\n");
            return 2;
        }
    }
    dlt_log_init("ops_vs_ref");
    dlt_rng_init(&rng, 2024, 1);
    if (dlt_backend_create("cpu-ref", &BE[0]) || dlt_backend_create(against, &BE[1])) {
        printf("not ok - backends: %s\n", dlt_errmsg());
        return 1;
    }
    int cuda = !strcmp(BE[1]->name, "cuda");
    if (cuda && dlt_backend_set_option(BE[1], "precision", prec)) {
        printf("not ok - precision: %s\n", dlt_errmsg());
        return 1;
    }
    conv_tol = !strcmp(prec, "tf32") ? 2e-2 : !strcmp(prec, "bf16") ? 5e-2 : 1e-4;
    printf("# ops_vs_ref: precision %s, conv tolerance %.0e, others %.0e\n", prec, conv_tol, TOL);
    test_roundtrip();
    test_convs(quick);
    if (!strcmp(prec, "fp32")) { /* the rest does not depend on the conv precision */
        test_norms();
        test_eltwise();
        test_losses();
        test_optim();
        if (cuda) test_philox();
    }
    if (net) test_net();
    int64_t held = 0, peak = 0;
    if (cuda) dlt_cuda_mem_stats(BE[1], &held, &peak);
    printf("# %d passed, %d failed (precision %s; GPU pool holds %.1f MiB, peak live %.1f MiB)\n", npass, nfail, prec,
           held / 1048576.0, peak / 1048576.0);
    dlt_backend_free(BE[1]);
    dlt_backend_free(BE[0]);
    return nfail ? 1 : 0;
}
