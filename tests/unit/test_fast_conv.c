/* test_fast_conv.c - the fast path's convolutions against the reference
 * backend on random inputs: forward, backward data (overwrite and
 * accumulate), backward weights (accumulating onto random dw, bias), for
 * odd channel counts (1, 4, 14, 48), strides 2, kernel 4 stride 2,
 * anisotropic kernels and strides, odd sizes (asymmetric 'same' padding),
 * groups, bias; transposed convolutions: the depthwise upsampling (own
 * kernel) and a dense one (oneDNN deconvolution); 3x3x3 stride-1 ones
 * large enough for the own Winograd kernel (fast_wino.c: 256 tiles or
 * more; F(4,3) from 512 tiles of 4^3, and everywhere with DLT_WINOGRAD=4),
 * with lanes partly used, odd sizes, a one-voxel-thick slab, a last
 * chunk of tiles part-filled, the weight gradient's products 1 to 4
 * vectors wide, into a dw in oneDNN's layout, called where OpenMP gives
 * fewer threads, transformed weights kept between calls and the weights
 * then changed in place, and the report saying
 * Winograd ran (all three ops), and
 * DLT_WINOGRAD=0 saying it did not. The weights are used
 * again after the first call has moved them to oneDNN's layout, and read
 * back plain. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "fastcheck.h"

static void conv_case(const char *name, int n, int cin, int cout, int groups, const int in[3], const int k[3],
                      const int s[3], int bias, uint64_t seed)
{
    dlt_conv_desc cd;
    memset(&cd, 0, sizeof cd);
    for (int i = 0; i < 3; i++) cd.k[i] = k[i], cd.stride[i] = s[i];
    cd.groups = groups, cd.bias = bias;
    const int64_t in64[3] = {in[0], in[1], in[2]};
    int64_t out[3];
    dlt_conv_same(&cd, in64, out);
    ft_pair x, w, b, y, dy, dx, dw, db;
    int rc = ft_new(&x, DLT_T_ACT, n, cin, in[0], in[1], in[2], seed);
    rc = rc ? rc : ft_new(&w, DLT_T_WEIGHT, cout, cin / groups, k[0], k[1], k[2], seed + 1);
    rc = rc ? rc : ft_new(&b, DLT_T_VEC, cout, 1, 1, 1, 1, seed + 2);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, n, cout, out[0], out[1], out[2], 0);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, n, cout, out[0], out[1], out[2], seed + 3);
    rc = rc ? rc : ft_new(&dx, DLT_T_ACT, n, cin, in[0], in[1], in[2], seed + 4);
    rc = rc ? rc : ft_new(&dw, DLT_T_WEIGHT, cout, cin / groups, k[0], k[1], k[2], seed + 5);
    rc = rc ? rc : ft_new(&db, DLT_T_VEC, cout, 1, 1, 1, 1, seed + 6);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    const dlt_tensor *fb = bias ? &b.f : NULL, *rb = bias ? &b.r : NULL;
    for (int rep = 0; rep < 2; rep++) { /* the second time with the weights already moved */
        rc = dlt_op_conv_fwd(ft_fast, &cd, &x.f, &w.f, fb, &y.f);
        rc = rc ? rc : dlt_op_conv_fwd(ft_ref, &cd, &x.r, &w.r, rb, &y.r);
        CHECK(rc == 0, "%s: conv_fwd runs (%s)", name, rc ? dlt_errmsg() : "ok");
        FT_CHECK(&y, "%s: conv_fwd%s", name, rep ? " again" : "");
    }
    FT_CHECK(&w, "%s: weights read back plain after the move", name);
    if (cin > 1 || n > 0) {
        for (int accum = 1; accum >= 0; accum--) {
            rc = dlt_op_conv_bwd_data(ft_fast, &cd, &dy.f, &w.f, &dx.f, accum);
            rc = rc ? rc : dlt_op_conv_bwd_data(ft_ref, &cd, &dy.r, &w.r, &dx.r, accum);
            CHECK(rc == 0, "%s: conv_bwd_data accum=%d runs (%s)", name, accum, rc ? dlt_errmsg() : "ok");
            FT_CHECK(&dx, "%s: conv_bwd_data accum=%d", name, accum);
        }
    }
    rc = dlt_op_conv_bwd_weights(ft_fast, &cd, &x.f, &dy.f, &dw.f, bias ? &db.f : NULL);
    rc = rc ? rc : dlt_op_conv_bwd_weights(ft_ref, &cd, &x.r, &dy.r, &dw.r, bias ? &db.r : NULL);
    CHECK(rc == 0, "%s: conv_bwd_weights runs (%s)", name, rc ? dlt_errmsg() : "ok");
    FT_CHECK(&dw, "%s: conv_bwd_weights accumulates dw", name);
    if (bias) FT_CHECK(&db, "%s: conv_bwd_weights accumulates db", name);
    ft_free(&x), ft_free(&w), ft_free(&b), ft_free(&y), ft_free(&dy), ft_free(&dx), ft_free(&dw), ft_free(&db);
}

/* Transposed conv: x small [n, cin, small], y big [n, cout, big] with big =
 * small * stride; weights [cin, cout/g, k]. */
static void convt_case(const char *name, int n, int cin, int cout, int groups, const int small[3], const int k[3],
                       const int s[3], int bias, uint64_t seed)
{
    dlt_conv_desc cd;
    memset(&cd, 0, sizeof cd);
    for (int i = 0; i < 3; i++) cd.k[i] = k[i], cd.stride[i] = s[i];
    cd.groups = groups, cd.bias = bias;
    const int64_t big[3] = {(int64_t)small[0] * s[0], (int64_t)small[1] * s[1], (int64_t)small[2] * s[2]};
    int64_t sm[3];
    dlt_conv_same(&cd, big, sm);
    ft_pair x, w, b, y, dy, dx, dw, db;
    int rc = ft_new(&x, DLT_T_ACT, n, cin, sm[0], sm[1], sm[2], seed);
    rc = rc ? rc : ft_new(&w, DLT_T_WEIGHT, cin, cout / groups, k[0], k[1], k[2], seed + 1);
    rc = rc ? rc : ft_new(&b, DLT_T_VEC, cout, 1, 1, 1, 1, seed + 2);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, n, cout, big[0], big[1], big[2], 0);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, n, cout, big[0], big[1], big[2], seed + 3);
    rc = rc ? rc : ft_new(&dx, DLT_T_ACT, n, cin, sm[0], sm[1], sm[2], seed + 4);
    rc = rc ? rc : ft_new(&dw, DLT_T_WEIGHT, cin, cout / groups, k[0], k[1], k[2], seed + 5);
    rc = rc ? rc : ft_new(&db, DLT_T_VEC, cout, 1, 1, 1, 1, seed + 6);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    const dlt_tensor *fb = bias ? &b.f : NULL, *rb = bias ? &b.r : NULL;
    for (int rep = 0; rep < 2; rep++) {
        rc = dlt_op_convt_fwd(ft_fast, &cd, &x.f, &w.f, fb, &y.f);
        rc = rc ? rc : dlt_op_convt_fwd(ft_ref, &cd, &x.r, &w.r, rb, &y.r);
        CHECK(rc == 0, "%s: convt_fwd runs (%s)", name, rc ? dlt_errmsg() : "ok");
        FT_CHECK(&y, "%s: convt_fwd%s", name, rep ? " again" : "");
    }
    for (int accum = 1; accum >= 0; accum--) {
        rc = dlt_op_convt_bwd_data(ft_fast, &cd, &dy.f, &w.f, &dx.f, accum);
        rc = rc ? rc : dlt_op_convt_bwd_data(ft_ref, &cd, &dy.r, &w.r, &dx.r, accum);
        CHECK(rc == 0, "%s: convt_bwd_data accum=%d runs (%s)", name, accum, rc ? dlt_errmsg() : "ok");
        FT_CHECK(&dx, "%s: convt_bwd_data accum=%d", name, accum);
    }
    rc = dlt_op_convt_bwd_weights(ft_fast, &cd, &x.f, &dy.f, &dw.f, bias ? &db.f : NULL);
    rc = rc ? rc : dlt_op_convt_bwd_weights(ft_ref, &cd, &x.r, &dy.r, &dw.r, bias ? &db.r : NULL);
    CHECK(rc == 0, "%s: convt_bwd_weights runs (%s)", name, rc ? dlt_errmsg() : "ok");
    FT_CHECK(&dw, "%s: convt_bwd_weights accumulates dw", name);
    if (bias) FT_CHECK(&db, "%s: convt_bwd_weights accumulates db", name);
    ft_free(&x), ft_free(&w), ft_free(&b), ft_free(&y), ft_free(&dy), ft_free(&dx), ft_free(&dw), ft_free(&db);
}

/* Convolutions for the Winograd loops: odd sizes, bias, batch 2, lanes
 * partly used, a one-voxel-thick slab, the weight gradient's products 1
 * to 4 vectors wide (64 inputs: 4). */
static void wino_cases(void)
{
    const int k3[3] = {3, 3, 3}, s1[3] = {1, 1, 1};
    conv_case("Winograd 48->16 k3 odd size", 1, 48, 16, 1, (int[3]){13, 13, 12}, k3, s1, 0, 301);
    conv_case("Winograd 16->24 k3 bias batch 2", 2, 16, 24, 1, (int[3]){12, 11, 10}, k3, s1, 1, 311);
    conv_case("Winograd 12->8 k3 (lanes partly used)", 1, 12, 8, 1, (int[3]){16, 16, 16}, k3, s1, 0, 321);
    conv_case("Winograd 40->40 k3 bias", 2, 40, 40, 1, (int[3]){10, 9, 11}, k3, s1, 1, 331);
    conv_case("Winograd 16->16 k3 slab 1 voxel thick", 1, 16, 16, 1, (int[3]){1, 32, 40}, k3, s1, 0, 341);
    conv_case("Winograd 64->8 k3 bias", 1, 64, 8, 1, (int[3]){8, 16, 15}, k3, s1, 1, 351);
}

/* A 3x3x3 convolution of stride 1 and padding 1 ('same' at any size). */
static dlt_conv_desc k3_same(void)
{
    dlt_conv_desc cd;
    memset(&cd, 0, sizeof cd);
    for (int i = 0; i < 3; i++) cd.k[i] = 3, cd.stride[i] = 1;
    int64_t out[3];
    dlt_conv_same(&cd, (int64_t[3]){8, 8, 8}, out);
    return cd;
}

/* The Winograd weight gradient into a dw that the optimiser has moved to
 * its parameter's oneDNN layout (the parameter used by a oneDNN kernel on
 * a smaller input first): summed into a plain copy, then into dw's own
 * layout. */
static void wino_moved_dw(void)
{
    const char *name = "Winograd weight gradient into a moved dw";
    const dlt_conv_desc cd = k3_same();
    ft_pair xs, ys, x, dy, w, dw, m;
    int rc = ft_new(&xs, DLT_T_ACT, 1, 16, 6, 6, 6, 361);
    rc = rc ? rc : ft_new(&ys, DLT_T_ACT, 1, 16, 6, 6, 6, 0);
    rc = rc ? rc : ft_new(&x, DLT_T_ACT, 1, 16, 16, 16, 14, 362);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, 1, 16, 16, 16, 14, 363);
    rc = rc ? rc : ft_new(&w, DLT_T_WEIGHT, 16, 16, 3, 3, 3, 364);
    rc = rc ? rc : ft_new(&dw, DLT_T_WEIGHT, 16, 16, 3, 3, 3, 365);
    rc = rc ? rc : ft_new(&m, DLT_T_WEIGHT, 16, 16, 3, 3, 3, 0);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    dlt_optim_desc od = {.kind = DLT_OPTIM_SGD, .lr = 0.01f, .momentum = 0.9f, .t = 1};
    rc = dlt_op_conv_fwd(ft_fast, &cd, &xs.f, &w.f, NULL, &ys.f);
    rc = rc ? rc : dlt_op_optim_step(ft_fast, &od, &w.f, &dw.f, &m.f, NULL);
    rc = rc ? rc : dlt_op_conv_bwd_weights(ft_fast, &cd, &x.f, &dy.f, &dw.f, NULL);
    rc = rc ? rc : dlt_op_conv_fwd(ft_ref, &cd, &xs.r, &w.r, NULL, &ys.r);
    rc = rc ? rc : dlt_op_optim_step(ft_ref, &od, &w.r, &dw.r, &m.r, NULL);
    rc = rc ? rc : dlt_op_conv_bwd_weights(ft_ref, &cd, &x.r, &dy.r, &dw.r, NULL);
    CHECK(rc == 0, "%s: runs (%s)", name, rc ? dlt_errmsg() : "ok");
    FT_CHECK(&dw, "%s", name);
    const char *rep = dlt_backend_info(ft_fast, "convolutions");
    CHECK(rep && strstr(rep, "conv fwd 16->16 k3x3x3 s1 1x6x6x6\toneDNN") &&
              strstr(rep, "conv bwd-weights 16->16 k3x3x3 s1 1x16x16x14\tdlt Winograd"),
          "%s: oneDNN ran the small forward, Winograd the weight gradient", name);
    ft_free(&xs), ft_free(&ys), ft_free(&x), ft_free(&dy), ft_free(&w), ft_free(&dw), ft_free(&m);
}

/* Transformed weights kept between calls (fast_wino.c): forward and
 * backward data five times over the same weights (the third call on
 * uses the kept transform), then the weights changed in place, by an
 * optimiser step and by an upload: each call agrees with the reference. */
static void wino_cache(void)
{
    const char *name = "Winograd weights kept between calls";
    const dlt_conv_desc cd = k3_same();
    ft_pair x, y, dy, dx, w, g, m;
    int rc = ft_new(&x, DLT_T_ACT, 1, 16, 16, 16, 14, 381);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, 1, 24, 16, 16, 14, 0);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, 1, 24, 16, 16, 14, 382);
    rc = rc ? rc : ft_new(&dx, DLT_T_ACT, 1, 16, 16, 16, 14, 0);
    rc = rc ? rc : ft_new(&w, DLT_T_WEIGHT, 24, 16, 3, 3, 3, 383);
    rc = rc ? rc : ft_new(&g, DLT_T_WEIGHT, 24, 16, 3, 3, 3, 384);
    rc = rc ? rc : ft_new(&m, DLT_T_WEIGHT, 24, 16, 3, 3, 3, 0);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    dlt_optim_desc od = {.kind = DLT_OPTIM_SGD, .lr = 0.5f, .momentum = 0.9f, .t = 1};
    float *nw = malloc(sizeof(float) * (size_t)w.numel);
    for (int call = 0; call < 9 && nw; call++) {
        if (call == 5) { /* changed in place by the optimiser */
            rc = dlt_op_optim_step(ft_fast, &od, &w.f, &g.f, &m.f, NULL);
            rc = rc ? rc : dlt_op_optim_step(ft_ref, &od, &w.r, &g.r, &m.r, NULL);
        } else if (call == 7) { /* new values uploaded */
            ft_fill(nw, w.numel, 385, -1.f, 1.f);
            rc = ft_upload(&w, nw);
        }
        rc = rc ? rc : dlt_op_conv_fwd(ft_fast, &cd, &x.f, &w.f, NULL, &y.f);
        rc = rc ? rc : dlt_op_conv_fwd(ft_ref, &cd, &x.r, &w.r, NULL, &y.r);
        rc = rc ? rc : dlt_op_conv_bwd_data(ft_fast, &cd, &dy.f, &w.f, &dx.f, 0);
        rc = rc ? rc : dlt_op_conv_bwd_data(ft_ref, &cd, &dy.r, &w.r, &dx.r, 0);
        CHECK(rc == 0, "%s: call %d runs (%s)", name, call, rc ? dlt_errmsg() : "ok");
        FT_CHECK(&y, "%s: forward, call %d", name, call);
        FT_CHECK(&dx, "%s: backward data, call %d", name, call);
    }
    free(nw);
    const char *rep = dlt_backend_info(ft_fast, "convolutions");
    CHECK(rep && strstr(rep, "conv fwd 16->24 k3x3x3 s1 1x16x16x14\tdlt Winograd"), "%s: Winograd ran", name);
    ft_free(&x), ft_free(&y), ft_free(&dy), ft_free(&dx), ft_free(&w), ft_free(&g), ft_free(&m);
}

/* The Winograd weight gradient where OpenMP gives fewer threads than the
 * backend has (called from inside a parallel region): only the partial
 * sums of the threads that ran count. The first call, outside, leaves
 * every thread's partial sums filled. */
static void wino_nested(void)
{
    const char *name = "Winograd weight gradient inside a parallel region";
    const dlt_conv_desc cd = k3_same();
    ft_pair x, dy, dw;
    int rc = ft_new(&x, DLT_T_ACT, 1, 16, 16, 16, 14, 371);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, 1, 16, 16, 16, 14, 372);
    rc = rc ? rc : ft_new(&dw, DLT_T_WEIGHT, 16, 16, 3, 3, 3, 373);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    for (int nested = 0; nested < 2; nested++) {
        if (nested) {
            omp_set_max_active_levels(1);
#pragma omp parallel num_threads(2)
#pragma omp single
            rc = dlt_op_conv_bwd_weights(ft_fast, &cd, &x.f, &dy.f, &dw.f, NULL);
        } else
            rc = dlt_op_conv_bwd_weights(ft_fast, &cd, &x.f, &dy.f, &dw.f, NULL);
        rc = rc ? rc : dlt_op_conv_bwd_weights(ft_ref, &cd, &x.r, &dy.r, &dw.r, NULL);
        CHECK(rc == 0, "%s: runs (%s)", name, rc ? dlt_errmsg() : "ok");
        FT_CHECK(&dw, "%s%s", name, nested ? "" : ": the call outside first");
    }
    ft_free(&x), ft_free(&dy), ft_free(&dw);
}

int main(void)
{
    if (ft_init()) {
        SKIP("no oneDNN fast path in this build (%s)", dlt_errmsg());
        return check_done();
    }
    const int k3[3] = {3, 3, 3}, k4[3] = {4, 4, 4}, k1[3] = {1, 1, 1}, s1[3] = {1, 1, 1}, s2[3] = {2, 2, 2};
    const int kan[3] = {3, 4, 4}, san[3] = {1, 2, 2}, k2[3] = {2, 2, 2};
    conv_case("stem 1->16 k3", 2, 1, 16, 1, (int[3]){10, 9, 8}, k3, s1, 0, 11);
    conv_case("16->16 k3", 2, 16, 16, 1, (int[3]){8, 8, 8}, k3, s1, 0, 21);
    conv_case("16->32 k4 s2", 2, 16, 32, 1, (int[3]){8, 8, 8}, k4, s2, 0, 31);
    conv_case("48->16 k3 odd size", 1, 48, 16, 1, (int[3]){6, 5, 7}, k3, s1, 0, 41);
    conv_case("16->14 k1 (head)", 2, 16, 14, 1, (int[3]){6, 6, 6}, k1, s1, 0, 51);
    conv_case("14->48 k3,4,4 s1,2,2", 2, 14, 48, 1, (int[3]){5, 8, 6}, kan, san, 0, 61);
    conv_case("32->32 k3 s2 odd size", 1, 32, 32, 1, (int[3]){9, 7, 8}, k3, s2, 0, 71);
    conv_case("4->8 k3 (4 lanes of 16)", 2, 4, 8, 1, (int[3]){6, 7, 5}, k3, s1, 0, 81);
    conv_case("16->24 k3 bias", 1, 16, 24, 1, (int[3]){5, 6, 7}, k3, s1, 1, 91);
    conv_case("16->16 k3 groups 4", 1, 16, 16, 4, (int[3]){6, 6, 6}, k3, s1, 0, 101);
    conv_case("32->32 k2 s2 even kernel", 1, 32, 32, 1, (int[3]){8, 6, 4}, k2, s2, 0, 111);
    /* blocked inputs of fewer than 16 channels: oneDNN's jit refuses them,
     * so the fast path reads them as 16 channels (fast_conv.c geo_prim) */
    conv_case("8->8 k3 (8 filters) bias", 2, 8, 8, 1, (int[3]){7, 6, 8}, k3, s1, 1, 181);
    conv_case("8->16 k4 s2", 2, 8, 16, 1, (int[3]){8, 6, 8}, k4, s2, 0, 191);
    conv_case("12->8 k3", 1, 12, 8, 1, (int[3]){5, 6, 7}, k3, s1, 0, 201);
    conv_case("24->8 k3 odd size", 1, 24, 8, 1, (int[3]){5, 7, 6}, k3, s1, 0, 211);
    /* the convolutions of a U-Net 8,16 (one 8-lane block on AVX2) */
    conv_case("U-Net 8,16: 1->8 k3", 2, 1, 8, 1, (int[3]){8, 8, 8}, k3, s1, 0, 241);
    conv_case("U-Net 8,16: 8->8 k3", 2, 8, 8, 1, (int[3]){8, 8, 8}, k3, s1, 0, 251);
    conv_case("U-Net 8,16: 8->16 k4 s2", 2, 8, 16, 1, (int[3]){8, 8, 8}, k4, s2, 0, 261);
    conv_case("U-Net 8,16: 24->8 k3", 2, 24, 8, 1, (int[3]){8, 8, 8}, k3, s1, 0, 271);
    conv_case("U-Net 8,16: 16->16 k3 at 4^3", 2, 16, 16, 1, (int[3]){4, 4, 4}, k3, s1, 0, 291);
    conv_case("U-Net 8,16: 8->14 k1 (head)", 2, 8, 14, 1, (int[3]){8, 8, 8}, k1, s1, 0, 281);
    convt_case("convt dense 8->8 k4 s2 bias", 2, 8, 8, 1, (int[3]){3, 4, 3}, k4, s2, 1, 221);
    convt_case("upsample dw 32 k4 s2", 2, 32, 32, 32, (int[3]){4, 4, 4}, k4, s2, 0, 121);
    convt_case("upsample dw 14 k4 s2", 1, 14, 14, 14, (int[3]){3, 4, 5}, k4, s2, 0, 131);
    convt_case("upsample dw 16 k2,4,4 s1,2,2", 1, 16, 16, 16, (int[3]){5, 3, 4}, (int[3]){2, 4, 4}, san, 0, 141);
    convt_case("upsample dw 4 (4 lanes of 16) k4 s2 bias", 2, 4, 4, 4, (int[3]){3, 3, 3}, k4, s2, 1, 151);
    convt_case("upsample dw 1 plain k4 s2 bias", 2, 1, 1, 1, (int[3]){3, 4, 3}, k4, s2, 1, 231);
    convt_case("convt dense 16->8 k4 s2", 2, 16, 8, 1, (int[3]){4, 3, 4}, k4, s2, 0, 161);
    convt_case("convt dense 14->32 k3 s2 bias", 1, 14, 32, 1, (int[3]){3, 4, 3}, k3, s2, 1, 171);
    /* Winograd: F(2,3) (256 tiles of 2x2x2 or more), F(4,3) from 512
     * tiles of 4x4x4 (a 32^3 sample), odd sizes leaving part-filled tiles */
    wino_cases();
    conv_case("Winograd F(4,3) 16->16 k3 32^3", 1, 16, 16, 1, (int[3]){32, 32, 32}, k3, s1, 0, 361);
    conv_case("Winograd F(4,3) 24->16 k3 bias odd size", 1, 24, 16, 1, (int[3]){34, 31, 29}, k3, s1, 1, 371);
    wino_moved_dw();
    wino_nested();
    wino_cache();
    const char *rep = dlt_backend_info(ft_fast, "convolutions");
    CHECK(rep && strstr(rep, "conv fwd 48->16 k3x3x3 s1 1x13x13x12\tdlt Winograd"), "Winograd ran forward");
    CHECK(rep && strstr(rep, "conv bwd-data 40->40 k3x3x3 s1 2x10x9x11\tdlt Winograd"), "Winograd ran backward data");
    CHECK(rep && strstr(rep, "conv bwd-weights 16->24 k3x3x3 s1 2x12x11x10\tdlt Winograd"),
          "Winograd ran backward weights");
    CHECK(rep && strstr(rep, "conv fwd 16->16 k3x3x3 s1 2x8x8x8\toneDNN"), "too few tiles for Winograd: oneDNN");
    CHECK(rep && strstr(rep, "conv fwd 48->16 k3x3x3 s1 1x13x13x12\tdlt Winograd F(2,3)"),
          "fewer than 512 tiles of 4^3: F(2,3)");
    CHECK(rep && strstr(rep, "conv fwd 16->16 k3x3x3 s1 1x32x32x32\tdlt Winograd F(4,3)") &&
              strstr(rep, "conv bwd-data 24->16 k3x3x3 s1 1x34x31x29\tdlt Winograd F(4,3)") &&
              strstr(rep, "conv bwd-weights 16->16 k3x3x3 s1 1x32x32x32\tdlt Winograd F(2,3)"),
          "512 tiles of 4^3: F(4,3) forward and backward data, F(2,3) weight gradient");
    ft_done();
    /* DLT_WINOGRAD=4: F(4,3) wherever Winograd runs, so the small and odd
     * cases above run it too */
    setenv("DLT_WINOGRAD", "4", 1);
    CHECK(ft_init() == 0, "backends made again with DLT_WINOGRAD=4");
    wino_cases();
    rep = dlt_backend_info(ft_fast, "convolutions");
    CHECK(rep && strstr(rep, "conv fwd 16->16 k3x3x3 s1 1x1x32x40\tdlt Winograd F(4,3)") &&
              strstr(rep, "conv bwd-data 12->8 k3x3x3 s1 1x16x16x16\tdlt Winograd F(4,3)"),
          "DLT_WINOGRAD=4: F(4,3) on small volumes");
    ft_done();
    /* DLT_WINOGRAD=0 (read when the backend is made): oneDNN runs them all */
    setenv("DLT_WINOGRAD", "0", 1);
    CHECK(ft_init() == 0, "backends made again with DLT_WINOGRAD=0");
    conv_case("DLT_WINOGRAD=0: 48->16 k3", 1, 48, 16, 1, (int[3]){13, 13, 12}, k3, s1, 0, 301);
    rep = dlt_backend_info(ft_fast, "convolutions");
    CHECK(rep && strstr(rep, "conv fwd 48->16 k3x3x3 s1 1x13x13x12\toneDNN") && !strstr(rep, "Winograd"),
          "DLT_WINOGRAD=0: no Winograd");
    ft_done();
    return check_done();
}
