/* test_fast_loss.c - the fast path's losses (fast_loss.c) against the
 * reference backend: cross-entropy, balanced CE, Dice and Dice+CE (with and
 * without background, only-present or not) on random logits and labels;
 * classes 2, 3 and 5 (plain layout), 14 (one padded 16-lane block) and 20
 * (two blocks); batch 1 and 3; classes absent from a sample or from the
 * whole batch; no class present at all (Dice 1, zero gradient); logits
 * spread wide enough for DLTK's FLT_MIN guard in balanced CE. Loss value and
 * dlogits within 1e-4 (relative, normwise); the value alone (dlogits NULL);
 * the same bits from 1 thread as from 2; and none of them takes the
 * reference fallback (no debug log line). */
#include <stdio.h>
#include <unistd.h>

#include "fastcheck.h"

/* Labels of [n,1,sp]: uniform over the classes, except that class `skip`
 * (if >= 0) never occurs, sample 0 never holds class 1 (when C > 2), and
 * `only` >= 0 makes every label that class. */
static int mk_labels(ft_pair *p, int n, const int sp[3], int C, int skip, int only, uint64_t seed)
{
    int rc = ft_new(p, DLT_T_LABEL, n, 1, sp[0], sp[1], sp[2], 0);
    if (rc) return rc;
    int32_t *l = malloc(sizeof(int32_t) * (size_t)p->numel);
    const int64_t S = p->numel / n;
    dlt_rng g;
    dlt_rng_init(&g, seed, 6);
    for (int64_t i = 0; i < p->numel; i++) {
        int32_t v;
        do v = (int32_t)dlt_rng_below(&g, (uint64_t)C);
        while (v == skip || (C > 2 && i < S && v == 1));
        l[i] = only >= 0 ? only : v;
    }
    rc = ft_upload(p, l);
    free(l);
    return rc;
}

static const char *kname(int k)
{
    static const char *const nm[] = {"?", "ce", "balanced-ce", "dice", "dice+ce"};
    return nm[k];
}

typedef struct lcase {
    int kind, n, c, bg, present;
    int skip, only;   /* see mk_labels */
    float spread;     /* logits uniform in [-spread, spread) */
} lcase;

static void run_case(const lcase *k, const int sp[3], uint64_t seed)
{
    char name[160];
    snprintf(name, sizeof name, "%s N=%d C=%d bg=%d present=%d%s%s sp=%dx%dx%d", kname(k->kind), k->n, k->c, k->bg,
             k->present, k->skip >= 0 ? " (a class absent)" : "", k->only >= 0 ? " (one class only)" : "", sp[0],
             sp[1], sp[2]);
    dlt_loss_desc ld = {k->kind, 1e-5f, k->bg, k->present};
    ft_pair z, lab, dz;
    int rc = ft_new_r(&z, DLT_T_ACT, k->n, k->c, sp[0], sp[1], sp[2], seed, -k->spread, k->spread);
    rc = rc ? rc : mk_labels(&lab, k->n, sp, k->c, k->skip, k->only, seed + 1);
    rc = rc ? rc : ft_new(&dz, DLT_T_ACT, k->n, k->c, sp[0], sp[1], sp[2], seed + 2);
    CHECK(rc == 0, "%s: tensors allocated", name);
    if (rc) return;
    double vf = 0, vr = 0, v0 = 0;
    rc = dlt_op_loss(ft_fast, &ld, &z.f, &lab.f, &vf, &dz.f);
    rc = rc ? rc : dlt_op_loss(ft_ref, &ld, &z.r, &lab.r, &vr, &dz.r);
    CHECK(rc == 0, "%s: loss runs (%s)", name, rc ? dlt_errmsg() : "ok");
    CHECK(fabs(vf - vr) <= FT_TOL * fabs(vr), "%s: loss value %.8g vs %.8g", name, vf, vr);
    FT_CHECK(&dz, "%s: dlogits", name);
    rc = dlt_op_loss(ft_fast, &ld, &z.f, &lab.f, &v0, NULL);
    CHECK(rc == 0 && v0 == vf, "%s: value without dlogits is the same", name);
    ft_free(&z), ft_free(&lab), ft_free(&dz);
}

/* The same bits from a one-thread backend as from the default one. */
static void thread_independent(void)
{
    const int sp[3] = {16, 16, 20};
    dlt_backend *one;
    setenv("DLT_THREADS", "1", 1);
    int rc = test_fast_backend(&one);
    unsetenv("DLT_THREADS");
    if (rc) {
        SKIP("no one-thread backend");
        return;
    }
    for (int kind = DLT_LOSS_CE; kind <= DLT_LOSS_DICE_CE; kind++) {
        dlt_tensor z[2], l[2], g[2];
        dlt_backend *bb[2] = {ft_fast, one};
        float *hz = malloc(sizeof(float) * 3 * 14 * 5120);
        int32_t *hl = malloc(sizeof(int32_t) * 3 * 5120);
        float *hg[2] = {malloc(sizeof(float) * 3 * 14 * 5120), malloc(sizeof(float) * 3 * 14 * 5120)};
        ft_fill(hz, 3 * 14 * 5120, 900 + kind, -2.f, 2.f);
        for (int i = 0; i < 3 * 5120; i++) hl[i] = (int32_t)((i * 7 + i / 13) % 14);
        double v[2] = {0, 0};
        rc = 0;
        for (int b = 0; b < 2; b++) {
            dlt_backend *be = bb[b];
            rc = rc ? rc : dlt_tensor_alloc(be, &z[b], DLT_T_ACT, 3, 14, sp[0], sp[1], sp[2]);
            rc = rc ? rc : dlt_tensor_alloc(be, &l[b], DLT_T_LABEL, 3, 1, sp[0], sp[1], sp[2]);
            rc = rc ? rc : dlt_tensor_alloc(be, &g[b], DLT_T_ACT, 3, 14, sp[0], sp[1], sp[2]);
            rc = rc ? rc : dlt_tensor_upload(&z[b], hz);
            rc = rc ? rc : dlt_tensor_upload(&l[b], hl);
            dlt_loss_desc ld = {kind, 1e-5f, 1, 0};
            rc = rc ? rc : dlt_op_loss(be, &ld, &z[b], &l[b], &v[b], &g[b]);
            rc = rc ? rc : dlt_tensor_download(&g[b], hg[b]);
        }
        CHECK(rc == 0 && v[0] == v[1] && !memcmp(hg[0], hg[1], sizeof(float) * 3 * 14 * 5120),
              "%s: 1 thread gives the same bits as %d", kname(kind), dlt_threads());
        for (int b = 0; b < 2; b++) dlt_tensor_release(&z[b]), dlt_tensor_release(&l[b]), dlt_tensor_release(&g[b]);
        free(hz), free(hl), free(hg[0]), free(hg[1]);
    }
    dlt_backend_free(one);
}

int main(void)
{
    if (ft_init()) {
        SKIP("no oneDNN fast path in this build (%s)", dlt_errmsg());
        return check_done();
    }
    /* stderr to a file at debug level, to see whether any loss fell back */
    char path[] = "/tmp/dlt-test-fast-loss-XXXXXX";
    int fd = mkstemp(path), saved = -1, level = dlt_log_level();
    if (fd >= 0) {
        fflush(stderr);
        saved = dup(2);
        dup2(fd, 2);
        dlt_log_set_level(DLT_LOG_DEBUG);
    }
    const int sp[3] = {6, 5, 7}, big[3] = {20, 18, 24};
    const int cls[5] = {2, 3, 5, 14, 20};
    uint64_t seed = 100;
    for (int ci = 0; ci < 5; ci++)
        for (int kind = DLT_LOSS_CE; kind <= DLT_LOSS_DICE_CE; kind++) {
            const int dice = kind == DLT_LOSS_DICE || kind == DLT_LOSS_DICE_CE;
            for (int opt = 0; opt < (dice ? 4 : 1); opt++)
                for (int n = 1; n <= 3; n += 2) {
                    /* dice options: bg x present; class C-1 absent from the batch for N=3 */
                    lcase k = {kind, n, cls[ci], dice ? !(opt & 1) : 1, dice ? (opt >> 1) : 0,
                               n == 3 ? cls[ci] - 1 : -1, -1, 3.f};
                    run_case(&k, sp, seed += 10);
                }
        }
    /* several chunks per sample, the default network's class count */
    for (int kind = DLT_LOSS_CE; kind <= DLT_LOSS_DICE_CE; kind++) {
        lcase k = {kind, 2, 14, 1, 0, -1, -1, 4.f};
        run_case(&k, big, seed += 10);
        lcase k2 = {kind, 3, 3, 0, 1, 2, -1, 4.f};
        run_case(&k2, big, seed += 10);
    }
    /* no foreground class present anywhere: only-present Dice without
     * background keeps no pair (loss 1, zero gradient) */
    for (int kind = DLT_LOSS_DICE; kind <= DLT_LOSS_DICE_CE; kind++) {
        lcase k = {kind, 3, 14, 0, 1, -1, 0, 3.f};
        run_case(&k, sp, seed += 10);
        lcase k2 = {kind, 1, 3, 0, 1, -1, 0, 3.f};
        run_case(&k2, sp, seed += 10);
    }
    /* logits 200 apart: p_y under FLT_MIN, DLTK's guard in balanced CE */
    for (int ci = 1; ci < 5; ci += 2) {
        lcase k = {DLT_LOSS_BALANCED_CE, 2, cls[ci], 1, 0, -1, -1, 100.f};
        run_case(&k, sp, seed += 10);
    }
    thread_independent();
    char buf[8192] = {0};
    ssize_t got = 0;
    if (fd >= 0) {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        dlt_log_set_level(level);
        lseek(fd, 0, SEEK_SET);
        got = read(fd, buf, sizeof buf - 1);
        close(fd);
        unlink(path);
        if (got > 0) fputs(buf, stderr);
        CHECK(!strstr(buf, "loss runs on the reference backend"), "no loss fell back to the reference");
    } else {
        SKIP("no temporary file for the log");
    }
    ft_done();
    return check_done();
}
