/* test_fast_syncbn.c - synchronised batch norm without MPI: two
 * "processes" (two halves of a batch on one backend) exchange their sums
 * through a fake dlt_reduce, and must compute what one process computes on
 * the whole batch: outputs, saved and running statistics, dx, and
 * dgamma/dbeta summed over the two. On cpu-ref and on the fast path (this
 * CPU's ISA; tests/run.sh reruns it capped at the lesser ISAs). Also:
 * dlt_reduce_moments' numerics, that instance norm and inference never
 * call the reduce, and dlt/dist.h in a world of one. */
#include <string.h>

#include "check.h"
#include "dlt/backend.h"
#include "dlt/dist.h"
#include "dlt/philox.h"

enum { N = 4, C = 5, D = 3, H = 6, W = 7, SP = D * H * W, HALF = N / 2 * C * SP, FULL = N * C * SP };

/* The fake reduce: in the recording pass each process keeps a copy of what
 * it would send; in the exchange pass it adds the other's copy. */
typedef struct fake {
    int me, exchange, calls;
    double rec[2][1024];
    int64_t len[2];
} fake;

static int fake_sum(void *ctx, double *v, int64_t n)
{
    fake *f = ctx;
    f->calls++;
    if (n > 1024) return dlt_err(DLT_EINVAL, "fake reduce: %lld values", (long long)n);
    if (!f->exchange) {
        memcpy(f->rec[f->me], v, sizeof(double) * (size_t)n);
        f->len[f->me] = n;
        return 0;
    }
    if (f->len[1 - f->me] != n) return dlt_err(DLT_EINVAL, "fake reduce: lengths differ");
    for (int64_t i = 0; i < n; i++) v[i] += f->rec[1 - f->me][i];
    return 0;
}

static void fill(float *h, int64_t n, uint64_t seed, float lo, float hi)
{
    dlt_rng g;
    dlt_rng_init(&g, seed, 9);
    for (int64_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * (float)dlt_rng_uniform(&g);
}

static double maxrel(const float *a, const float *b, int64_t n)
{
    double m = 0, s = 1e-6;
    for (int64_t i = 0; i < n; i++) s = fabs(b[i]) > s ? fabs(b[i]) : s;
    for (int64_t i = 0; i < n; i++) m = fabs(a[i] - b[i]) > m ? fabs(a[i] - b[i]) : m;
    return m / s;
}

/* One norm layer's tensors for a batch of n. */
typedef struct layer {
    dlt_tensor x, y, dy, dx, g, b, rm, rv, sm, sr, dg, db;
} layer;

static int layer_make(dlt_backend *be, layer *l, int64_t n, const float *x, const float *dy, const float *g,
                      const float *b)
{
    memset(l, 0, sizeof *l);
    float ones[C], zeros[C];
    for (int c = 0; c < C; c++) ones[c] = 1, zeros[c] = 0;
    int rc = 0;
#define A(t, role, nn, cc, dd, hh, ww) if (!rc) rc = dlt_tensor_alloc(be, &l->t, role, nn, cc, dd, hh, ww)
    A(x, DLT_T_ACT, n, C, D, H, W);
    A(y, DLT_T_ACT, n, C, D, H, W);
    A(dy, DLT_T_ACT, n, C, D, H, W);
    A(dx, DLT_T_ACT, n, C, D, H, W);
    A(g, DLT_T_VEC, C, 1, 1, 1, 1);
    A(b, DLT_T_VEC, C, 1, 1, 1, 1);
    A(rm, DLT_T_VEC, C, 1, 1, 1, 1);
    A(rv, DLT_T_VEC, C, 1, 1, 1, 1);
    A(sm, DLT_T_VEC, C, 1, 1, 1, 1);
    A(sr, DLT_T_VEC, C, 1, 1, 1, 1);
    A(dg, DLT_T_VEC, C, 1, 1, 1, 1);
    A(db, DLT_T_VEC, C, 1, 1, 1, 1);
#undef A
    if (!rc) rc = dlt_tensor_upload(&l->x, x);
    if (!rc) rc = dlt_tensor_upload(&l->dy, dy);
    if (!rc) rc = dlt_tensor_upload(&l->g, g);
    if (!rc) rc = dlt_tensor_upload(&l->b, b);
    if (!rc) rc = dlt_tensor_upload(&l->rm, zeros);
    if (!rc) rc = dlt_tensor_upload(&l->rv, ones);
    if (!rc) rc = dlt_tensor_upload(&l->dg, zeros);
    if (!rc) rc = dlt_tensor_upload(&l->db, zeros);
    return rc;
}

static void layer_free(layer *l)
{
    dlt_tensor *t[] = {&l->x, &l->y, &l->dy, &l->dx, &l->g, &l->b, &l->rm, &l->rv, &l->sm, &l->sr, &l->dg, &l->db};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) dlt_tensor_release(t[i]);
}

static int fwd(dlt_backend *be, const dlt_norm_desc *nd, layer *l)
{
    return dlt_op_norm_fwd(be, nd, 1, &l->x, &l->g, &l->b, &l->rm, &l->rv, &l->sm, &l->sr, &l->y);
}

static int bwd(dlt_backend *be, const dlt_norm_desc *nd, layer *l)
{
    return dlt_op_norm_bwd(be, nd, &l->x, &l->y, &l->dy, &l->g, &l->sm, &l->sr, &l->dx, 0, &l->dg, &l->db);
}

/* Reset what a recording pass changed: running stats, dgamma, dbeta. */
static int reset(dlt_backend *be, layer *l)
{
    float ones[C], zeros[C];
    for (int c = 0; c < C; c++) ones[c] = 1, zeros[c] = 0;
    int rc = dlt_tensor_upload(&l->rm, zeros);
    if (!rc) rc = dlt_tensor_upload(&l->rv, ones);
    if (!rc) rc = dlt_tensor_upload(&l->dg, zeros);
    if (!rc) rc = dlt_tensor_upload(&l->db, zeros);
    return rc;
}

static void one_backend(const char *name, float shift)
{
    dlt_backend *be;
    char lab[64];
    snprintf(lab, sizeof lab, "%s, mean %g", name, shift);
    if (dlt_backend_create(name, &be)) {
        SKIP("%s: %s", lab, dlt_errmsg());
        return;
    }
    static float x[FULL], dy[FULL];
    float g[C], b[C];
    fill(x, FULL, 1, shift - 2, shift + 3); /* an offset mean: the moments must combine exactly enough */
    fill(dy, FULL, 2, -1, 1);
    fill(g, C, 3, 0.5f, 1.5f);
    fill(b, C, 4, -0.5f, 0.5f);
    dlt_norm_desc nd = {.kind = DLT_NORM_BATCH, .eps = 1e-3f, .momentum = 0.9f, .affine = 1, .act = DLT_ACT_LEAKY,
                        .alpha = 0.1f};
    layer full, half[2];
    int rc = layer_make(be, &full, N, x, dy, g, b);
    for (int p = 0; p < 2 && !rc; p++) rc = layer_make(be, &half[p], N / 2, x + p * HALF, dy + p * HALF, g, b);
    if (!rc) rc = fwd(be, &nd, &full);
    if (!rc) rc = bwd(be, &nd, &full);
    fake f = {0};
    dlt_reduce red = {fake_sum, &f};
    dlt_backend_set_reduce(be, &red);
    /* forward: record both, then exchange; backward likewise */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        f.exchange = pass;
        for (int p = 0; p < 2 && !rc; p++) {
            f.me = p;
            if (pass) rc = reset(be, &half[p]);
            if (!rc) rc = fwd(be, &nd, &half[p]);
        }
    }
    for (int pass = 0; pass < 2 && !rc; pass++) {
        f.exchange = pass;
        for (int p = 0; p < 2 && !rc; p++) {
            f.me = p;
            if (pass) {
                float zeros[C] = {0};
                rc = dlt_tensor_upload(&half[p].dg, zeros);
                if (!rc) rc = dlt_tensor_upload(&half[p].db, zeros);
            }
            if (!rc) rc = bwd(be, &nd, &half[p]);
        }
    }
    CHECK(rc == 0, "%s: forward and backward of two halves with a fake reduce run (%s)", lab, rc ? dlt_errmsg() : "ok");
    CHECK(f.calls == 8, "%s: batch norm calls the reduce once per forward and per backward (%d calls)", lab, f.calls);
    static float a[FULL], e[FULL];
    float va[C], vb[C], vf[C];
    /* y and dx: each half equals its half of the whole batch's */
    double ey = 0, edx = 0;
    for (int p = 0; p < 2 && !rc; p++) {
        dlt_tensor_download(&half[p].y, a + p * HALF);
        dlt_tensor_download(&half[p].dx, e + p * HALF);
    }
    static float fy[FULL], fdx[FULL];
    dlt_tensor_download(&full.y, fy);
    dlt_tensor_download(&full.dx, fdx);
    ey = maxrel(a, fy, FULL), edx = maxrel(e, fdx, FULL);
    CHECK(ey < 1e-5, "%s: y of the two halves = y of the whole batch (rel err %.2g)", lab, ey);
    CHECK(edx < 1e-4, "%s: dx of the two halves = dx of the whole batch (rel err %.2g)", lab, edx);
    /* saved and running statistics: every half has the whole batch's */
    const char *what[] = {"saved mean", "saved rstd", "running mean", "running var"};
    for (int k = 0; k < 4; k++) {
        double err = 0;
        for (int p = 0; p < 2; p++) {
            layer *l = &half[p];
            dlt_tensor *th = k == 0 ? &l->sm : k == 1 ? &l->sr : k == 2 ? &l->rm : &l->rv;
            dlt_tensor *tf = k == 0 ? &full.sm : k == 1 ? &full.sr : k == 2 ? &full.rm : &full.rv;
            dlt_tensor_download(th, va);
            dlt_tensor_download(tf, vf);
            double r = maxrel(va, vf, C);
            err = r > err ? r : err;
        }
        CHECK(err < 1e-5, "%s: %s of each half = the whole batch's (rel err %.2g)", lab, what[k], err);
    }
    /* dgamma, dbeta: each half's own share; their sum is the whole batch's */
    for (int k = 0; k < 2; k++) {
        float s[C];
        dlt_tensor_download(k ? &half[0].db : &half[0].dg, va);
        dlt_tensor_download(k ? &half[1].db : &half[1].dg, vb);
        dlt_tensor_download(k ? &full.db : &full.dg, vf);
        for (int c = 0; c < C; c++) s[c] = va[c] + vb[c];
        double r = maxrel(s, vf, C), r0 = maxrel(va, vf, C);
        CHECK(r < 1e-4, "%s: %s of the halves sum to the whole batch's (rel err %.2g)", lab, k ? "dbeta" : "dgamma", r);
        CHECK(r0 > 1e-3, "%s: %s of one half is its own share, not the total (rel diff %.2g)", lab,
              k ? "dbeta" : "dgamma", r0);
    }
    /* instance norm and inference never reduce */
    f.calls = 0, f.exchange = 0;
    dlt_norm_desc in = nd;
    in.kind = DLT_NORM_INSTANCE;
    rc = dlt_op_norm_fwd(be, &in, 1, &full.x, &full.g, &full.b, NULL, NULL, NULL, NULL, &full.y);
    dlt_tensor ism = {0}, isr = {0};
    if (!rc) rc = dlt_tensor_alloc(be, &ism, DLT_T_VEC, N * C, 1, 1, 1, 1);
    if (!rc) rc = dlt_tensor_alloc(be, &isr, DLT_T_VEC, N * C, 1, 1, 1, 1);
    if (!rc) rc = dlt_op_norm_fwd(be, &in, 1, &full.x, &full.g, &full.b, NULL, NULL, &ism, &isr, &full.y);
    if (!rc) rc = dlt_op_norm_bwd(be, &in, &full.x, &full.y, &full.dy, &full.g, &ism, &isr, &full.dx, 0, &full.dg, &full.db);
    if (!rc) rc = dlt_op_norm_fwd(be, &nd, 0, &full.x, &full.g, &full.b, &full.rm, &full.rv, NULL, NULL, &full.y);
    CHECK(rc == 0 && f.calls == 0, "%s: instance norm and inference-mode batch norm do not reduce (%d calls, %s)", lab,
          f.calls, rc ? dlt_errmsg() : "ok");
    dlt_tensor_release(&ism), dlt_tensor_release(&isr);
    dlt_backend_set_reduce(be, NULL);
    layer_free(&full), layer_free(&half[0]), layer_free(&half[1]);
    dlt_backend_free(be);
}

/* Moments of two sets with a large common offset combine to the two-pass
 * moments of their union. */
static void moments(void)
{
    enum { NA = 1000, NB = 3000 };
    static double xa[NA], xb[NB];
    dlt_rng g;
    dlt_rng_init(&g, 11, 1);
    for (int i = 0; i < NA; i++) xa[i] = 1e4 + dlt_rng_uniform(&g);
    for (int i = 0; i < NB; i++) xb[i] = 1e4 + 0.5 + 2 * dlt_rng_uniform(&g);
    double cnt[2] = {NA, NB}, mean[2] = {0, 0}, m2[2] = {0, 0};
    for (int i = 0; i < NA; i++) mean[0] += xa[i] / NA;
    for (int i = 0; i < NB; i++) mean[1] += xb[i] / NB;
    for (int i = 0; i < NA; i++) m2[0] += (xa[i] - mean[0]) * (xa[i] - mean[0]);
    for (int i = 0; i < NB; i++) m2[1] += (xb[i] - mean[1]) * (xb[i] - mean[1]);
    double mu = 0, q = 0;
    for (int i = 0; i < NA; i++) mu += xa[i];
    for (int i = 0; i < NB; i++) mu += xb[i];
    mu /= NA + NB;
    for (int i = 0; i < NA; i++) q += (xa[i] - mu) * (xa[i] - mu);
    for (int i = 0; i < NB; i++) q += (xb[i] - mu) * (xb[i] - mu);
    /* process 0 holds group 0 = set a, process 1 set b: a 1-group reduce */
    fake f = {0};
    dlt_reduce red = {fake_sum, &f};
    double c0 = cnt[0], m0 = mean[0], q0 = m2[0], c1 = cnt[1], m1 = mean[1], q1 = m2[1];
    f.me = 0, dlt_reduce_moments(&red, 1, &c0, &m0, &q0);
    f.me = 1, dlt_reduce_moments(&red, 1, &c1, &m1, &q1);
    c0 = cnt[0], m0 = mean[0], q0 = m2[0];
    f.exchange = 1, f.me = 0;
    int rc = dlt_reduce_moments(&red, 1, &c0, &m0, &q0);
    CHECK(rc == 0 && c0 == NA + NB, "dlt_reduce_moments: counts add (%g)", c0);
    CHECK(fabs(m0 - mu) < 1e-9 * mu, "dlt_reduce_moments: mean of the union (%.12g vs %.12g)", m0, mu);
    CHECK(fabs(q0 - q) < 1e-6 * q, "dlt_reduce_moments: squared deviations of the union despite a mean of 1e4 "
                                   "(rel err %.2g)", fabs(q0 - q) / q);
    CHECK(dlt_reduce_moments(NULL, 1, &c0, &m0, &q0) == 0 && c0 == NA + NB, "dlt_reduce_moments without a reduce: no-op");
}

static void world_of_one(void)
{
    unsetenv("OMPI_COMM_WORLD_SIZE"), unsetenv("PMIX_RANK"), unsetenv("PMI_RANK"), unsetenv("PMI_SIZE");
    unsetenv("PMIX_SIZE");
    dlt_dist *d = NULL;
    int rc = dlt_dist_init(NULL, NULL, &d);
    CHECK(rc == 0 && dlt_dist_rank(d) == 0 && dlt_dist_size(d) == 1, "dist: without a launcher, rank 0 of 1");
    double v[3] = {1, 2, 3};
    int m[2] = {4, -1};
    float s[4] = {1, 2, 3, 4}, r[4] = {0};
    CHECK(!dlt_dist_sum(d, v, 3) && v[0] == 1 && v[2] == 3 && !dlt_dist_max_int(d, m, 2) && m[0] == 4,
          "dist: sums and maxima of one process are its own values");
    CHECK(!dlt_dist_scatter(d, s, r, sizeof s) && !memcmp(s, r, sizeof s), "dist: a scatter to one rank copies");
    CHECK(dlt_dist_reduce(d) == NULL, "dist: no batch-norm reduce in a world of one");
    CHECK(dlt_dist_library() && *dlt_dist_library(), "dist: library named (%s)", dlt_dist_library());
    dlt_dist_finish(d);
}

int main(void)
{
    one_backend("cpu-ref", 0);
    one_backend("cpu-ref", 100);
    one_backend("cpu", 0);
    one_backend("cpu", 100);
    moments();
    world_of_one();
    return check_done();
}
