/* test_fast_bf16.c - the fast path's precision=bf16 option: convolutions
 * in bfloat16 (AMX or AVX512-BF16 kernels; forward, backward data with and
 * without accumulation, backward weights accumulating dw and db) against
 * the f32 reference within bf16's error (convs with fewer than 16
 * channels in or out stay f32, exactly), the option's parsing, the weights
 * left exact (only a converted copy is bf16), fp32 restored exactly by
 * setting the option back, a whole U-Net's probabilities close to the f32
 * ones, and a bf16 training step close to the f32 one. On a CPU with bf16 instructions (cpuinfo: avx512_bf16 or
 * amx_bf16) the error must also be above f32 rounding, which shows that
 * the bf16 kernels ran; elsewhere the op stays f32 (said once). */
#include <stdio.h>

#include "fastcheck.h"
#include "dlt/net.h"
#include "dlt/train.h"

/* bf16 keeps 8 significant bits (relative rounding 2^-9 per operand);
 * random-sign sums of K products then err ~2^-8 normwise; 2e-2 leaves
 * room without admitting a wrong result (those err ~1). */
#define BF16_TOL 2e-2

/* Whether bf16 convolutions run here: the backend's answer, not the CPU's
 * flags, since DLT_CPU_ISA=avx2 on an AMX machine caps oneDNN below its
 * bf16 kernels (make check runs this test so). */
static int backend_runs_bf16(dlt_backend *be)
{
    if (dlt_backend_set_option(be, "precision", "bf16")) return 0;
    int yes = !strcmp(dlt_backend_info(be, "precision"), "bf16");
    dlt_backend_set_option(be, "precision", "fp32");
    return yes;
}

static int has_bf16;

/* One forward op (conv, or convt with tr) in bf16 against the reference. */
static void fwd_case(const char *name, int tr, int n, int cin, int cout, int groups, const int sp[3], const int k[3],
                     const int s[3], int bias, uint64_t seed)
{
    dlt_conv_desc cd;
    memset(&cd, 0, sizeof cd);
    for (int i = 0; i < 3; i++) cd.k[i] = k[i], cd.stride[i] = s[i];
    cd.groups = groups, cd.bias = bias;
    int64_t in[3] = {sp[0], sp[1], sp[2]}, out[3];
    if (tr) { /* sp is the small side; the big side is small * stride */
        for (int i = 0; i < 3; i++) out[i] = in[i] * s[i];
        dlt_conv_same(&cd, out, in);
    } else {
        dlt_conv_same(&cd, in, out);
    }
    ft_pair x, w, b, y, dy, dx, dw, db;
    int rc = ft_new(&x, DLT_T_ACT, n, cin, in[0], in[1], in[2], seed);
    rc = rc ? rc : tr ? ft_new(&w, DLT_T_WEIGHT, cin, cout / groups, k[0], k[1], k[2], seed + 1)
                      : ft_new(&w, DLT_T_WEIGHT, cout, cin / groups, k[0], k[1], k[2], seed + 1);
    rc = rc ? rc : ft_new(&b, DLT_T_VEC, cout, 1, 1, 1, 1, seed + 2);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, n, cout, out[0], out[1], out[2], 0);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, n, cout, out[0], out[1], out[2], seed + 3);
    rc = rc ? rc : ft_new(&dx, DLT_T_ACT, n, cin, in[0], in[1], in[2], seed + 4);
    rc = rc ? rc : tr ? ft_new(&dw, DLT_T_WEIGHT, cin, cout / groups, k[0], k[1], k[2], seed + 5)
                      : ft_new(&dw, DLT_T_WEIGHT, cout, cin / groups, k[0], k[1], k[2], seed + 5);
    rc = rc ? rc : ft_new(&db, DLT_T_VEC, cout, 1, 1, 1, 1, seed + 6);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    const dlt_tensor *fb = bias ? &b.f : NULL, *rb = bias ? &b.r : NULL;
    /* convs with fewer than 16 channels in or out stay f32 (memory-bound),
     * as does the own depthwise upsampling kernel */
    const int in16 = has_bf16 && cin >= 16 && cout >= 16 && !(groups > 1 && groups == cin);
    rc = tr ? dlt_op_convt_fwd(ft_ref, &cd, &x.r, &w.r, rb, &y.r) : dlt_op_conv_fwd(ft_ref, &cd, &x.r, &w.r, rb, &y.r);
    CHECK(rc == 0, "%s: reference runs", name);
    for (int rep = 0; rep < 2; rep++) { /* the second time from the cache */
        rc = dlt_backend_set_option(ft_fast, "precision", "bf16");
        rc = rc ? rc : tr ? dlt_op_convt_fwd(ft_fast, &cd, &x.f, &w.f, fb, &y.f)
                          : dlt_op_conv_fwd(ft_fast, &cd, &x.f, &w.f, fb, &y.f);
        CHECK(rc == 0, "%s: bf16 forward runs (%s)", name, rc ? dlt_errmsg() : "ok");
        double e = ft_err(&y);
        CHECK(e <= BF16_TOL, "%s: bf16 forward%s within %g (rel err %.2g)", name, rep ? " again" : "", BF16_TOL, e);
        if (in16)
            CHECK(e > 1e-5, "%s: bf16 forward%s rounds like bf16 (rel err %.2g > 1e-5: the bf16 kernel ran)", name,
                  rep ? " again" : "", e);
        else
            CHECK(e <= FT_TOL, "%s: forward%s stays f32 (rel err %.2g)", name, rep ? " again" : "", e);
    }
    FT_CHECK(&w, "%s: weights unchanged and plain after bf16", name);
    for (int accum = 1; accum >= 0; accum--) {
        rc = tr ? dlt_op_convt_bwd_data(ft_ref, &cd, &dy.r, &w.r, &dx.r, accum)
                : dlt_op_conv_bwd_data(ft_ref, &cd, &dy.r, &w.r, &dx.r, accum);
        rc = rc ? rc : tr ? dlt_op_convt_bwd_data(ft_fast, &cd, &dy.f, &w.f, &dx.f, accum)
                          : dlt_op_conv_bwd_data(ft_fast, &cd, &dy.f, &w.f, &dx.f, accum);
        CHECK(rc == 0, "%s: bf16 backward data accum=%d runs (%s)", name, accum, rc ? dlt_errmsg() : "ok");
        double e = ft_err(&dx);
        CHECK(e <= BF16_TOL, "%s: bf16 backward data accum=%d within %g (rel err %.2g)", name, accum, BF16_TOL, e);
        if (in16) CHECK(e > 1e-5, "%s: bf16 backward data accum=%d rounds like bf16 (%.2g)", name, accum, e);
    }
    rc = tr ? dlt_op_convt_bwd_weights(ft_ref, &cd, &x.r, &dy.r, &dw.r, bias ? &db.r : NULL)
            : dlt_op_conv_bwd_weights(ft_ref, &cd, &x.r, &dy.r, &dw.r, bias ? &db.r : NULL);
    rc = rc ? rc : tr ? dlt_op_convt_bwd_weights(ft_fast, &cd, &x.f, &dy.f, &dw.f, bias ? &db.f : NULL)
                      : dlt_op_conv_bwd_weights(ft_fast, &cd, &x.f, &dy.f, &dw.f, bias ? &db.f : NULL);
    CHECK(rc == 0, "%s: bf16 backward weights runs (%s)", name, rc ? dlt_errmsg() : "ok");
    double e = ft_err(&dw);
    CHECK(e <= BF16_TOL, "%s: bf16 backward weights accumulates dw within %g (rel err %.2g)", name, BF16_TOL, e);
    if (in16) CHECK(e > 1e-7, "%s: bf16 backward weights rounds like bf16 (%.2g)", name, e);
    if (bias) {
        e = ft_err(&db);
        CHECK(e <= BF16_TOL, "%s: bf16 backward weights accumulates db within %g (rel err %.2g)", name, BF16_TOL, e);
    }
    rc = dlt_backend_set_option(ft_fast, "precision", "fp32");
    rc = rc ? rc : tr ? dlt_op_convt_fwd(ft_fast, &cd, &x.f, &w.f, fb, &y.f)
                      : dlt_op_conv_fwd(ft_fast, &cd, &x.f, &w.f, fb, &y.f);
    CHECK(rc == 0, "%s: fp32 forward runs after bf16", name);
    FT_CHECK(&y, "%s: precision fp32 again gives the f32 result", name);
    ft_free(&x), ft_free(&w), ft_free(&b), ft_free(&y), ft_free(&dy), ft_free(&dx), ft_free(&dw), ft_free(&db);
}

/* A default-shaped U-Net (filters 16,32,64) predicts in bf16 close to f32. */
static void net_case(void)
{
    dlt_net_config c;
    dlt_net_config_default(&c, DLT_NET_UNET, 1, 14);
    dlt_net_parse_filters(&c, "16,32,64");
    dlt_net_parse_strides(&c, "1,2,2");
    dlt_net *net = NULL;
    int rc = dlt_net_create(&c, ft_fast, 7, &net);
    CHECK(rc == 0, "net: U-Net built (%s)", rc ? dlt_errmsg() : "ok");
    if (rc) return;
    const int64_t N = 2, D = 12, H = 16, W = 20, nv = N * D * H * W;
    float *x = malloc(4 * (size_t)nv), *p32 = malloc(4 * (size_t)(nv * 14)), *p16 = malloc(4 * (size_t)(nv * 14));
    ft_fill(x, nv, 5, -2.f, 2.f);
    rc = dlt_net_predict(net, x, N, D, H, W, p32);
    rc = rc ? rc : dlt_backend_set_option(ft_fast, "precision", "bf16");
    rc = rc ? rc : dlt_net_predict(net, x, N, D, H, W, p16);
    CHECK(rc == 0, "net: predicts in fp32 and bf16 (%s)", rc ? dlt_errmsg() : "ok");
    double md = 0;
    for (int64_t i = 0; i < nv * 14; i++) md = fabs(p32[i] - p16[i]) > md ? fabs(p32[i] - p16[i]) : md;
    CHECK(md < 0.03, "net: bf16 probabilities within 0.03 of fp32 (max diff %.3g)", md);
    if (has_bf16) CHECK(md > 1e-6, "net: bf16 probabilities differ from fp32 (%.3g): the bf16 kernels ran", md);
    dlt_backend_set_option(ft_fast, "precision", "fp32");
    free(x), free(p32), free(p16);
    dlt_net_free(net);
}

/* Training steps of a small U-Net on one batch: bf16 (a second fast
 * backend) against f32, from the same initial weights. */
static void train_case(void)
{
    dlt_backend *be16 = NULL;
    int rc = test_fast_backend(&be16);
    rc = rc ? rc : dlt_backend_set_option(be16, "precision", "bf16");
    dlt_net_config c;
    dlt_net_config_default(&c, DLT_NET_UNET, 1, 14);
    dlt_net_parse_filters(&c, "16,32,64");
    dlt_net_parse_strides(&c, "1,2,2");
    dlt_net *n32 = NULL, *n16 = NULL;
    rc = rc ? rc : dlt_net_create(&c, ft_fast, 7, &n32);
    rc = rc ? rc : dlt_net_create(&c, be16, 7, &n16);
    dlt_train_config tc;
    dlt_train_config_default(&tc);
    dlt_trainer *t32 = NULL, *t16 = NULL;
    rc = rc ? rc : dlt_trainer_create(n32, &tc, 1, &t32);
    rc = rc ? rc : dlt_trainer_create(n16, &tc, 1, &t16);
    CHECK(rc == 0, "train: nets and trainers on fp32 and bf16 backends (%s)", rc ? dlt_errmsg() : "ok");
    const int N = 2, X = 16, Y = 16, Z = 16;
    const int64_t nv = (int64_t)N * X * Y * Z;
    float *x = malloc(4 * (size_t)nv);
    int32_t *lab = malloc(4 * (size_t)nv);
    ft_fill(x, nv, 99, -2.f, 2.f);
    for (int64_t i = 0; i < nv; i++) lab[i] = x[i] > 0.5f ? 2 : x[i] < -0.5f ? 1 : 0; /* learnable */
    double l32 = 0, l16 = 0, first = 0, worst = 0;
    for (int s = 0; s < 8 && !rc; s++) {
        rc = dlt_trainer_step(t32, x, lab, N, Z, Y, X, &l32);
        rc = rc ? rc : dlt_trainer_step(t16, x, lab, N, Z, Y, X, &l16);
        double e = fabs(l16 - l32) / fabs(l32);
        printf("# step %d loss fp32 %.5f bf16 %.5f\n", s + 1, l32, l16);
        if (s == 0) {
            first = l16;
            CHECK(e < 0.005, "train: first bf16 loss within 0.5%% of fp32 (%.5f vs %.5f)", l16, l32);
        }
        worst = e > worst ? e : worst;
    }
    CHECK(rc == 0, "train: 8 steps in both precisions (%s)", rc ? dlt_errmsg() : "ok");
    /* the paths part slowly (Adam moves every weight by ~lr a step) */
    CHECK(worst < 0.1, "train: bf16 losses within 10%% of fp32 over 8 steps (worst %.3g; last %.4f vs %.4f)", worst,
          l16, l32);
    CHECK(l16 < 0.7 * first, "train: bf16 training learns (loss %.3f -> %.3f)", first, l16);
    if (has_bf16) CHECK(l16 != l32, "train: bf16 loss differs from fp32 (%.7f vs %.7f): the bf16 kernels ran", l16, l32);
    dlt_trainer_free(t32), dlt_trainer_free(t16);
    dlt_net_free(n32), dlt_net_free(n16);
    if (be16) dlt_backend_free(be16);
    free(x), free(lab);
}

int main(void)
{
    if (ft_init()) {
        SKIP("no oneDNN fast path in this build (%s)", dlt_errmsg());
        return check_done();
    }
    has_bf16 = backend_runs_bf16(ft_fast);
    printf("# bf16 convolution kernels on this CPU (at this ISA): %s\n", has_bf16 ? "yes" : "no (bf16 requests stay fp32)");
    CHECK(dlt_backend_set_option(ft_fast, "precision", "fp16") == DLT_EINVAL && strstr(dlt_errmsg(), "fp16"),
          "precision fp16 refused, naming it (%s)", dlt_errmsg());
    CHECK(dlt_backend_set_option(ft_fast, "threads", "2") == DLT_EINVAL, "unknown option refused (%s)", dlt_errmsg());
    CHECK(dlt_backend_set_option(ft_ref, "precision", "bf16") == DLT_EUNSUP && strstr(dlt_errmsg(), "cpu-ref"),
          "cpu-ref has no precision option (%s)", dlt_errmsg());
    const int k3[3] = {3, 3, 3}, k4[3] = {4, 4, 4}, k1[3] = {1, 1, 1}, s1[3] = {1, 1, 1}, s2[3] = {2, 2, 2};
    fwd_case("stem 1->16 k3", 0, 2, 1, 16, 1, (int[3]){10, 9, 8}, k3, s1, 0, 11);
    fwd_case("48->16 k3 odd size", 0, 1, 48, 16, 1, (int[3]){6, 5, 7}, k3, s1, 0, 41);
    fwd_case("16->32 k4 s2", 0, 2, 16, 32, 1, (int[3]){8, 8, 8}, k4, s2, 0, 31);
    fwd_case("16->14 k1 head bias", 0, 2, 16, 14, 1, (int[3]){6, 6, 6}, k1, s1, 1, 51);
    fwd_case("8->8 k3 (8 of 16 lanes)", 0, 2, 8, 8, 1, (int[3]){7, 6, 8}, k3, s1, 0, 181);
    fwd_case("14->48 k3,4,4 s1,2,2", 0, 2, 14, 48, 1, (int[3]){5, 8, 6}, (int[3]){3, 4, 4}, (int[3]){1, 2, 2}, 0, 61);
    fwd_case("32->16 k3 (result straight into 16 lanes)", 0, 2, 32, 16, 1, (int[3]){6, 7, 5}, k3, s1, 1, 71);
    fwd_case("16->16 k3 groups 4", 0, 1, 16, 16, 4, (int[3]){6, 6, 6}, k3, s1, 0, 101);
    fwd_case("convt dense 16->8 k4 s2", 1, 2, 16, 8, 1, (int[3]){4, 3, 4}, k4, s2, 0, 161);
    fwd_case("upsample dw 32 k4 s2 (own kernel, f32)", 1, 2, 32, 32, 32, (int[3]){4, 4, 4}, k4, s2, 0, 121);
    net_case();
    train_case();
    ft_done();
    return check_done();
}
