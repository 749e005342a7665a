/* test_fast_ops.c - the fast path's non-convolution ops against the
 * reference backend on random inputs (never zeros): batch and instance
 * norm with each fused activation (training and inference; running and
 * saved statistics; backward with and without accumulation), activations
 * incl. PReLU, max pooling, channel padding, concatenation, add, copy, scale,
 * softmax, the losses (more cases in test_fast_loss.c), and the optimiser
 * steps on weights in oneDNN's layout. Channel counts 1, 4, 14, 16, 48
 * cover the plain, padded-blocked and blocked layouts. Also: the fallback
 * path (fused PReLU in a norm) names its op in the debug log. */
#include <stdio.h>
#include <unistd.h>

#include "fastcheck.h"

static void norm_case(const char *name, int kind, int act, int n, int c, const int sp[3], uint64_t seed)
{
    dlt_norm_desc nd = {kind, 1e-3f, 0.99f, 1, act, 0.1f};
    const int inst = kind == DLT_NORM_INSTANCE;
    const int64_t ns = inst ? (int64_t)n * c : c;
    ft_pair x, y, g, b, rm, rv, sm, sr, dy, dx, dg, db;
    /* a mean far from zero and a small spread test the one-pass statistics */
    int rc = ft_new_r(&x, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed, 2.0f, 4.0f);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], 0);
    rc = rc ? rc : ft_new_r(&g, DLT_T_VEC, c, 1, 1, 1, 1, seed + 1, 0.5f, 1.5f);
    rc = rc ? rc : ft_new(&b, DLT_T_VEC, c, 1, 1, 1, 1, seed + 2);
    rc = rc ? rc : ft_new(&rm, DLT_T_VEC, c, 1, 1, 1, 1, seed + 3);
    rc = rc ? rc : ft_new_r(&rv, DLT_T_VEC, c, 1, 1, 1, 1, seed + 4, 0.5f, 2.0f);
    rc = rc ? rc : ft_new(&sm, DLT_T_VEC, ns, 1, 1, 1, 1, 0);
    rc = rc ? rc : ft_new(&sr, DLT_T_VEC, ns, 1, 1, 1, 1, 0);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed + 5);
    rc = rc ? rc : ft_new(&dx, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed + 6);
    rc = rc ? rc : ft_new(&dg, DLT_T_VEC, c, 1, 1, 1, 1, seed + 7);
    rc = rc ? rc : ft_new(&db, DLT_T_VEC, c, 1, 1, 1, 1, seed + 8);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    /* inference first (running stats), then training */
    if (!inst) {
        rc = dlt_op_norm_fwd(ft_fast, &nd, 0, &x.f, &g.f, &b.f, &rm.f, &rv.f, NULL, NULL, &y.f);
        rc = rc ? rc : dlt_op_norm_fwd(ft_ref, &nd, 0, &x.r, &g.r, &b.r, &rm.r, &rv.r, NULL, NULL, &y.r);
        CHECK(rc == 0, "%s: norm_fwd inference runs (%s)", name, rc ? dlt_errmsg() : "ok");
        FT_CHECK(&y, "%s: norm_fwd inference", name);
    }
    rc = dlt_op_norm_fwd(ft_fast, &nd, 1, &x.f, &g.f, &b.f, &rm.f, &rv.f, &sm.f, &sr.f, &y.f);
    rc = rc ? rc : dlt_op_norm_fwd(ft_ref, &nd, 1, &x.r, &g.r, &b.r, &rm.r, &rv.r, &sm.r, &sr.r, &y.r);
    CHECK(rc == 0, "%s: norm_fwd training runs (%s)", name, rc ? dlt_errmsg() : "ok");
    FT_CHECK(&y, "%s: norm_fwd training y", name);
    FT_CHECK(&sm, "%s: saved mean", name);
    FT_CHECK(&sr, "%s: saved rstd", name);
    if (!inst) {
        FT_CHECK(&rm, "%s: running mean", name);
        FT_CHECK(&rv, "%s: running var", name);
    }
    for (int accum = 1; accum >= 0; accum--) {
        rc = dlt_op_norm_bwd(ft_fast, &nd, &x.f, &y.f, &dy.f, &g.f, &sm.f, &sr.f, &dx.f, accum, &dg.f, &db.f);
        rc = rc ? rc : dlt_op_norm_bwd(ft_ref, &nd, &x.r, &y.r, &dy.r, &g.r, &sm.r, &sr.r, &dx.r, accum, &dg.r, &db.r);
        CHECK(rc == 0, "%s: norm_bwd runs (%s)", name, rc ? dlt_errmsg() : "ok");
        FT_CHECK(&dx, "%s: norm_bwd dx accum=%d", name, accum);
        FT_CHECK(&dg, "%s: norm_bwd dgamma", name);
        FT_CHECK(&db, "%s: norm_bwd dbeta", name);
    }
    ft_free(&x), ft_free(&y), ft_free(&g), ft_free(&b), ft_free(&rm), ft_free(&rv), ft_free(&sm), ft_free(&sr);
    ft_free(&dy), ft_free(&dx), ft_free(&dg), ft_free(&db);
}

static void act_case(const char *name, int act, int n, int c, const int sp[3], uint64_t seed)
{
    ft_pair x, y, sl, dy, dx, ds;
    int rc = ft_new(&x, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed);
    if (act == DLT_ACT_RELU6) { /* spread past 6 */
        float *h = malloc(sizeof(float) * (size_t)x.numel);
        ft_fill(h, x.numel, seed, -2.f, 8.f);
        ft_upload(&x, h);
        free(h);
    }
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], 0);
    rc = rc ? rc : ft_new_r(&sl, DLT_T_VEC, c, 1, 1, 1, 1, seed + 1, 0.1f, 0.4f);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed + 2);
    rc = rc ? rc : ft_new(&dx, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed + 3);
    rc = rc ? rc : ft_new(&ds, DLT_T_VEC, c, 1, 1, 1, 1, seed + 4);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    rc = dlt_op_act_fwd(ft_fast, act, 0.1f, &sl.f, &x.f, &y.f);
    rc = rc ? rc : dlt_op_act_fwd(ft_ref, act, 0.1f, &sl.r, &x.r, &y.r);
    CHECK(rc == 0, "%s: act_fwd runs", name);
    FT_CHECK(&y, "%s: act_fwd", name);
    for (int accum = 1; accum >= 0; accum--) {
        rc = dlt_op_act_bwd(ft_fast, act, 0.1f, &sl.f, &x.f, &dy.f, &dx.f, accum, &ds.f);
        rc = rc ? rc : dlt_op_act_bwd(ft_ref, act, 0.1f, &sl.r, &x.r, &dy.r, &dx.r, accum, &ds.r);
        CHECK(rc == 0, "%s: act_bwd runs", name);
        FT_CHECK(&dx, "%s: act_bwd accum=%d", name, accum);
        if (act == DLT_ACT_PRELU) FT_CHECK(&ds, "%s: act_bwd dslope", name);
    }
    ft_free(&x), ft_free(&y), ft_free(&sl), ft_free(&dy), ft_free(&dx), ft_free(&ds);
}

static void pool_case(const char *name, int n, int c, const int sp[3], const int k[3], uint64_t seed)
{
    ft_pair x, y, dy, dx;
    const int o[3] = {sp[0] / k[0], sp[1] / k[1], sp[2] / k[2]};
    int rc = ft_new(&x, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, n, c, o[0], o[1], o[2], 0);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, n, c, o[0], o[1], o[2], seed + 1);
    rc = rc ? rc : ft_new(&dx, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed + 2);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    rc = dlt_op_maxpool_fwd(ft_fast, k, &x.f, &y.f);
    rc = rc ? rc : dlt_op_maxpool_fwd(ft_ref, k, &x.r, &y.r);
    CHECK(rc == 0, "%s: maxpool_fwd runs", name);
    FT_CHECK(&y, "%s: maxpool_fwd", name);
    for (int accum = 1; accum >= 0; accum--) {
        rc = dlt_op_maxpool_bwd(ft_fast, k, &x.f, &y.f, &dy.f, &dx.f, accum);
        rc = rc ? rc : dlt_op_maxpool_bwd(ft_ref, k, &x.r, &y.r, &dy.r, &dx.r, accum);
        CHECK(rc == 0, "%s: maxpool_bwd runs", name);
        FT_CHECK(&dx, "%s: maxpool_bwd accum=%d", name, accum);
    }
    ft_free(&x), ft_free(&y), ft_free(&dy), ft_free(&dx);
}

static void padc_case(const char *name, int n, int c, int lo, int hi, const int sp[3], uint64_t seed)
{
    ft_pair x, y, dy, dx;
    int rc = ft_new(&x, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, n, c + lo + hi, sp[0], sp[1], sp[2], seed + 1);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, n, c + lo + hi, sp[0], sp[1], sp[2], seed + 2);
    rc = rc ? rc : ft_new(&dx, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed + 3);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    rc = dlt_op_padc_fwd(ft_fast, lo, hi, &x.f, &y.f);
    rc = rc ? rc : dlt_op_padc_fwd(ft_ref, lo, hi, &x.r, &y.r);
    CHECK(rc == 0, "%s: padc_fwd runs", name);
    FT_CHECK(&y, "%s: padc_fwd", name);
    for (int accum = 1; accum >= 0; accum--) {
        rc = dlt_op_padc_bwd(ft_fast, lo, hi, &dy.f, &dx.f, accum);
        rc = rc ? rc : dlt_op_padc_bwd(ft_ref, lo, hi, &dy.r, &dx.r, accum);
        CHECK(rc == 0, "%s: padc_bwd runs", name);
        FT_CHECK(&dx, "%s: padc_bwd accum=%d", name, accum);
    }
    ft_free(&x), ft_free(&y), ft_free(&dy), ft_free(&dx);
}

static void concat_case(const char *name, int n, int ca, int cb, const int sp[3], uint64_t seed)
{
    ft_pair a, b, y, dy, da, db;
    int rc = ft_new(&a, DLT_T_ACT, n, ca, sp[0], sp[1], sp[2], seed);
    rc = rc ? rc : ft_new(&b, DLT_T_ACT, n, cb, sp[0], sp[1], sp[2], seed + 1);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, n, ca + cb, sp[0], sp[1], sp[2], 0);
    rc = rc ? rc : ft_new(&dy, DLT_T_ACT, n, ca + cb, sp[0], sp[1], sp[2], seed + 2);
    rc = rc ? rc : ft_new(&da, DLT_T_ACT, n, ca, sp[0], sp[1], sp[2], seed + 3);
    rc = rc ? rc : ft_new(&db, DLT_T_ACT, n, cb, sp[0], sp[1], sp[2], seed + 4);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    rc = dlt_op_concat_fwd(ft_fast, &a.f, &b.f, &y.f);
    rc = rc ? rc : dlt_op_concat_fwd(ft_ref, &a.r, &b.r, &y.r);
    CHECK(rc == 0, "%s: concat_fwd runs", name);
    FT_CHECK(&y, "%s: concat_fwd", name);
    rc = dlt_op_concat_bwd(ft_fast, &dy.f, &da.f, 1, &db.f, 0);
    rc = rc ? rc : dlt_op_concat_bwd(ft_ref, &dy.r, &da.r, 1, &db.r, 0);
    CHECK(rc == 0, "%s: concat_bwd runs", name);
    FT_CHECK(&da, "%s: concat_bwd da accum=1", name);
    FT_CHECK(&db, "%s: concat_bwd db accum=0", name);
    /* add and copy on the same shapes */
    rc = dlt_op_add_fwd(ft_fast, &da.f, &a.f, &a.f);
    rc = rc ? rc : dlt_op_add_fwd(ft_ref, &da.r, &a.r, &a.r);
    CHECK(rc == 0, "%s: add_fwd runs", name);
    FT_CHECK(&a, "%s: add_fwd", name);
    rc = dlt_op_copy(ft_fast, &a.f, &da.f, 1);
    rc = rc ? rc : dlt_op_copy(ft_ref, &a.r, &da.r, 1);
    FT_CHECK(&da, "%s: copy accum=1", name);
    rc = dlt_op_copy(ft_fast, &b.f, &db.f, 0);
    rc = rc ? rc : dlt_op_copy(ft_ref, &b.r, &db.r, 0);
    CHECK(rc == 0, "%s: copy runs", name);
    FT_CHECK(&db, "%s: copy accum=0", name);
    rc = dlt_op_scale(ft_fast, 0.375f, &db.f);
    rc = rc ? rc : dlt_op_scale(ft_ref, 0.375f, &db.r);
    CHECK(rc == 0, "%s: scale runs", name);
    FT_CHECK(&db, "%s: scale by 0.375", name);
    ft_free(&a), ft_free(&b), ft_free(&y), ft_free(&dy), ft_free(&da), ft_free(&db);
}

static void loss_case(const char *name, int kind, int n, int c, const int sp[3], uint64_t seed)
{
    dlt_loss_desc ld = {kind, 1e-5f, 1, 0};
    ft_pair z, lab, dz, p;
    int rc = ft_new_r(&z, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed, -3.f, 3.f);
    rc = rc ? rc : ft_labels(&lab, n, sp[0], sp[1], sp[2], c, seed + 1);
    rc = rc ? rc : ft_new(&dz, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], seed + 2);
    rc = rc ? rc : ft_new(&p, DLT_T_ACT, n, c, sp[0], sp[1], sp[2], 0);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    double vf = 0, vr = 0;
    rc = dlt_op_loss(ft_fast, &ld, &z.f, &lab.f, &vf, &dz.f);
    rc = rc ? rc : dlt_op_loss(ft_ref, &ld, &z.r, &lab.r, &vr, &dz.r);
    CHECK(rc == 0, "%s: loss runs (%s)", name, rc ? dlt_errmsg() : "ok");
    CHECK(fabs(vf - vr) <= FT_TOL * fabs(vr), "%s: loss value %.8g vs %.8g", name, vf, vr);
    FT_CHECK(&dz, "%s: dlogits", name);
    if (kind == DLT_LOSS_CE) {
        rc = dlt_op_softmax_fwd(ft_fast, &z.f, &p.f);
        rc = rc ? rc : dlt_op_softmax_fwd(ft_ref, &z.r, &p.r);
        CHECK(rc == 0, "%s: softmax runs", name);
        FT_CHECK(&p, "%s: softmax", name);
    }
    ft_free(&z), ft_free(&lab), ft_free(&dz), ft_free(&p);
}

/* Optimiser on a weight that a convolution moved to oneDNN's layout, with
 * a gradient from conv_bwd_weights and fresh (plain, zero) state. */
static void optim_case(const char *name, const dlt_optim_desc *od, uint64_t seed)
{
    dlt_conv_desc cd;
    memset(&cd, 0, sizeof cd);
    cd.k[0] = cd.k[1] = cd.k[2] = 3;
    cd.stride[0] = cd.stride[1] = cd.stride[2] = 1;
    cd.groups = 1;
    const int64_t in[3] = {6, 6, 6};
    int64_t out[3];
    dlt_conv_same(&cd, in, out);
    ft_pair x, w, y, g, m, v;
    int rc = ft_new(&x, DLT_T_ACT, 1, 16, 6, 6, 6, seed);
    rc = rc ? rc : ft_new(&w, DLT_T_WEIGHT, 14, 16, 3, 3, 3, seed + 1);
    rc = rc ? rc : ft_new(&y, DLT_T_ACT, 1, 14, 6, 6, 6, seed + 2);
    rc = rc ? rc : ft_new(&g, DLT_T_WEIGHT, 14, 16, 3, 3, 3, 0);
    rc = rc ? rc : ft_new(&m, DLT_T_WEIGHT, 14, 16, 3, 3, 3, 0);
    rc = rc ? rc : ft_new(&v, DLT_T_WEIGHT, 14, 16, 3, 3, 3, 0);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    rc = dlt_op_conv_fwd(ft_fast, &cd, &x.f, &w.f, NULL, &y.f);
    rc = rc ? rc : dlt_op_conv_bwd_weights(ft_fast, &cd, &x.f, &y.f, &g.f, NULL);
    rc = rc ? rc : dlt_op_conv_fwd(ft_ref, &cd, &x.r, &w.r, NULL, &y.r);
    rc = rc ? rc : dlt_op_conv_bwd_weights(ft_ref, &cd, &x.r, &y.r, &g.r, NULL);
    CHECK(rc == 0, "%s: gradient computed", name);
    for (int t = 1; t <= 3; t++) {
        dlt_optim_desc o = *od;
        o.t = t;
        rc = dlt_op_optim_step(ft_fast, &o, &w.f, &g.f, &m.f, od->kind == DLT_OPTIM_ADAM ? &v.f : NULL);
        rc = rc ? rc : dlt_op_optim_step(ft_ref, &o, &w.r, &g.r, &m.r, od->kind == DLT_OPTIM_ADAM ? &v.r : NULL);
        CHECK(rc == 0, "%s: step %d runs (%s)", name, t, rc ? dlt_errmsg() : "ok");
    }
    FT_CHECK(&w, "%s: weights after 3 steps", name);
    FT_CHECK(&m, "%s: first moment / momentum", name);
    if (od->kind == DLT_OPTIM_ADAM) FT_CHECK(&v, "%s: second moment", name);
    ft_free(&x), ft_free(&w), ft_free(&y), ft_free(&g), ft_free(&m), ft_free(&v);
}

/* An op the fast path declines (here max pooling into a tensor that is not
 * in the activation layout) runs on the reference through the front, says
 * so in the debug log, and computes the same values. */
static void fallback_logged(void)
{
    char path[] = "/tmp/dlt-test-fast-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        SKIP("no temporary file");
        return;
    }
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    int level = dlt_log_level();
    dlt_log_set_level(DLT_LOG_DEBUG);
    /* a fresh backend, so that its once-per-op note is still to come */
    dlt_backend *be;
    test_fast_backend(&be);
    enum { N = 16 * 4 * 4 * 4 };
    float hx[N], hy[N / 8], want[N / 8];
    for (int i = 0; i < N; i++) hx[i] = (float)((i * 37) % 101) - 50.f;
    for (int c = 0; c < 16; c++)
        for (int o = 0; o < 8; o++) {
            const int od = o / 4, oh = o / 2 % 2, ow = o % 2;
            float m = -1e30f;
            for (int a = 0; a < 8; a++) {
                const float v = hx[c * 64 + (2 * od + a / 4) * 16 + (2 * oh + a / 2 % 2) * 4 + 2 * ow + a % 2];
                if (v > m) m = v;
            }
            want[c * 8 + o] = m;
        }
    dlt_tensor x, y;
    dlt_tensor_alloc(be, &x, DLT_T_ACT, 1, 16, 4, 4, 4);
    dlt_tensor_alloc(be, &y, DLT_T_VEC, 1, 16, 2, 2, 2); /* plain, not blocked: the loops decline */
    const int k[3] = {2, 2, 2};
    int rc = dlt_tensor_upload(&x, hx);
    if (!rc) rc = dlt_op_maxpool_fwd(be, k, &x, &y);
    if (!rc) rc = dlt_tensor_download(&y, hy);
    dlt_tensor_release(&x), dlt_tensor_release(&y);
    dlt_backend_free(be);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    dlt_log_set_level(level);
    char buf[4096] = {0};
    lseek(fd, 0, SEEK_SET);
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    unlink(path);
    CHECK(!rc && !memcmp(hy, want, sizeof want), "a declined op computes the reference's values (%s)",
          rc ? dlt_errmsg() : "ok");
    CHECK(got > 0 && strstr(buf, "maxpool_fwd runs on the reference backend"),
          "the fallback names its op in the debug log");
}

/* The fast backend flushes denormals in every computing thread: a
 * denormal times 1 reads as 0 (DAZ), and 1e-30 * 1e-15 comes out 0 (FTZ),
 * not ~1e-45. */
static void denormal_case(void)
{
#if defined(__SSE2__)
    int bad = 0, n = 0;
    volatile float tiny = 1e-40f, a = 1e-30f, b = 1e-15f, one = 1.0f;
#pragma omp parallel num_threads(dlt_threads()) reduction(+ : bad, n)
    {
        n++;
        if (tiny * one != 0.0f || a * b != 0.0f) bad++;
    }
    CHECK(bad == 0, "denormals flushed to zero in all %d computing threads (%d not)", n, bad);
#else
    SKIP("not x86: no FTZ/DAZ");
#endif
}

int main(void)
{
    if (ft_init()) {
        SKIP("no oneDNN fast path in this build (%s)", dlt_errmsg());
        return check_done();
    }
    denormal_case();
    const int sp[3] = {6, 5, 7}, sp8[3] = {8, 8, 8};
    const int acts[4] = {DLT_ACT_LEAKY, DLT_ACT_RELU6, DLT_ACT_RELU, DLT_ACT_NONE};
    const char *an[4] = {"leaky", "relu6", "relu", "none"};
    const int chans[5] = {16, 14, 48, 4, 1};
    char nm[96];
    for (int i = 0; i < 5; i++) {
        snprintf(nm, sizeof nm, "batch norm + %s, C=%d", an[i % 4], chans[i]);
        norm_case(nm, DLT_NORM_BATCH, acts[i % 4], 2, chans[i], i % 2 ? sp : sp8, 200 + i);
    }
    norm_case("batch norm + relu6, C=32, N=1", DLT_NORM_BATCH, DLT_ACT_RELU6, 1, 32, sp8, 210);
    norm_case("instance norm + leaky, C=16", DLT_NORM_INSTANCE, DLT_ACT_LEAKY, 2, 16, sp, 220);
    norm_case("instance norm + relu, C=14", DLT_NORM_INSTANCE, DLT_ACT_RELU, 3, 14, sp8, 230);
    norm_case("instance norm, C=4", DLT_NORM_INSTANCE, DLT_ACT_NONE, 2, 4, sp, 240);
    norm_case("batch norm + leaky, C=8 (one 8-lane block)", DLT_NORM_BATCH, DLT_ACT_LEAKY, 2, 8, sp, 250);
    norm_case("batch norm + relu6, C=24", DLT_NORM_BATCH, DLT_ACT_RELU6, 2, 24, sp8, 260);
    const int acts5[4] = {DLT_ACT_RELU, DLT_ACT_LEAKY, DLT_ACT_RELU6, DLT_ACT_PRELU};
    const char *an5[4] = {"relu", "leaky", "relu6", "prelu"};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            const int cc[3] = {16, 14, 4};
            snprintf(nm, sizeof nm, "act %s C=%d", an5[i], cc[j]);
            act_case(nm, acts5[i], 2, cc[j], sp, 300 + 10 * i + j);
        }
    pool_case("maxpool 2 C=16", 2, 16, sp8, (int[3]){2, 2, 2}, 400);
    pool_case("maxpool 2 C=14", 1, 14, (int[3]){4, 6, 8}, (int[3]){2, 2, 2}, 410);
    pool_case("maxpool 1,2,2 C=48", 1, 48, (int[3]){3, 6, 4}, (int[3]){1, 2, 2}, 420);
    pool_case("maxpool 2 C=4 (plain)", 2, 4, sp8, (int[3]){2, 2, 2}, 430);
    pool_case("maxpool 2 C=8", 2, 8, sp8, (int[3]){2, 2, 2}, 440);
    padc_case("padc 16->32 (8,8)", 2, 16, 8, 8, sp, 500);
    padc_case("padc 32->64 (16,16)", 1, 32, 16, 16, sp, 510);
    padc_case("padc 14->21 (3,4)", 1, 14, 3, 4, sp, 520);
    padc_case("padc 4->16 (6,6)", 2, 4, 6, 6, sp, 530);
    padc_case("padc 1->16 (7,8)", 1, 1, 7, 8, sp, 540);
    padc_case("padc 8->16 (4,4)", 2, 8, 4, 4, sp, 550);
    padc_case("padc 8->16 (0,8)", 2, 8, 0, 8, sp, 560);
    concat_case("concat 16+32", 2, 16, 32, sp, 600);
    concat_case("concat 14+4", 1, 14, 4, sp, 610);
    concat_case("concat 4+16", 2, 4, 16, sp, 620);
    concat_case("concat 8+8", 1, 8, 8, sp, 630);
    concat_case("concat 64+128", 1, 64, 128, (int[3]){2, 3, 2}, 640);
    loss_case("ce C=14", DLT_LOSS_CE, 2, 14, sp, 700);
    loss_case("ce C=4 (plain)", DLT_LOSS_CE, 2, 4, sp, 710);
    loss_case("ce C=20", DLT_LOSS_CE, 1, 20, sp, 720);
    loss_case("balanced ce C=14", DLT_LOSS_BALANCED_CE, 2, 14, sp, 730);
    loss_case("dice C=14", DLT_LOSS_DICE, 2, 14, sp, 740);
    loss_case("dice+ce C=5", DLT_LOSS_DICE_CE, 1, 5, sp, 750);
    loss_case("dice+ce C=14", DLT_LOSS_DICE_CE, 2, 14, sp, 760);
    loss_case("dice+ce C=8", DLT_LOSS_DICE_CE, 2, 8, sp, 770);
    loss_case("ce C=9", DLT_LOSS_CE, 1, 9, sp, 780);
    dlt_optim_desc adam = {DLT_OPTIM_ADAM, 1e-3f, 0.9f, 0.999f, 1e-5f, 0.f, 0.f, 0, 1};
    dlt_optim_desc adamw = {DLT_OPTIM_ADAM, 1e-2f, 0.9f, 0.99f, 1e-5f, 1e-2f, 0.f, 0, 1};
    dlt_optim_desc sgd = {DLT_OPTIM_SGD, 1e-2f, 0.f, 0.f, 0.f, 1e-3f, 0.9f, 0, 1};
    dlt_optim_desc nest = {DLT_OPTIM_SGD, 1e-2f, 0.f, 0.f, 0.f, 0.f, 0.9f, 1, 1};
    optim_case("adam", &adam, 800);
    optim_case("adam + weight decay", &adamw, 810);
    optim_case("sgd momentum + weight decay", &sgd, 820);
    optim_case("sgd nesterov", &nest, 830);
    fallback_logged();
    ft_done();
    return check_done();
}
