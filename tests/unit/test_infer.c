/* test_infer.c - sliding-window inference (dlt/infer.h) on synthetic
 * "networks": window placement; an identity predictor (one-hot of the voxel
 * value) must give back the input exactly under every window, overlap,
 * blending, batch, mirroring and padding; a position-dependent predictor is
 * compared with a plain full-memory reference (every window's weighted
 * probabilities summed into whole-volume arrays); largest connected
 * component with 6 and 26 connectivity; the intensity check. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int nclasses = 4;

/* One-hot of round(x), clamped to the classes. */
static int pred_identity(void *ctx, const float *x, int64_t nb, const int64_t win[3], float *probs)
{
    int64_t wv = win[0] * win[1] * win[2];
    for (int64_t b = 0; b < nb; b++)
        for (int64_t v = 0; v < wv; v++) {
            int c = (int)lrintf(x[b * wv + v]);
            if (c < 0) c = 0;
            if (c >= nclasses) c = nclasses - 1;
            for (int k = 0; k < nclasses; k++) probs[(b * nclasses + k) * wv + v] = k == c ? 1.0f : 0.0f;
        }
    return 0;
}

/* Softmax of a function of the value and of the position in the window, so
 * that overlapping windows disagree and blending matters. */
static void pos_probs(const float *x, const int64_t win[3], int64_t v, float *p)
{
    int64_t i = v % win[0], j = (v / win[0]) % win[1], k = v / (win[0] * win[1]);
    double s = 0, e[16];
    for (int c = 0; c < nclasses; c++) {
        e[c] = exp(0.3 * x[v] * (c + 1) + 0.2 * sin(0.7 * (double)i * (c + 1) + 0.3 * (double)j - 0.5 * (double)k * c));
        s += e[c];
    }
    for (int c = 0; c < nclasses; c++) p[c] = (float)(e[c] / s);
}

/* pred_identity, recording the batch sizes it is called with (ctx: int64_t[3]
 * = calls, smallest nb, largest nb). */
static int pred_count(void *ctx, const float *x, int64_t nb, const int64_t win[3], float *probs)
{
    int64_t *k = ctx;
    k[0]++;
    if (nb < k[1]) k[1] = nb;
    if (nb > k[2]) k[2] = nb;
    return pred_identity(NULL, x, nb, win, probs);
}

static int pred_pos(void *ctx, const float *x, int64_t nb, const int64_t win[3], float *probs)
{
    int64_t wv = win[0] * win[1] * win[2];
    for (int64_t b = 0; b < nb; b++)
        for (int64_t v = 0; v < wv; v++) {
            float p[16];
            pos_probs(x + b * wv, win, v, p);
            for (int c = 0; c < nclasses; c++) probs[(b * nclasses + c) * wv + v] = p[c];
        }
    return 0;
}

static int64_t padi(int64_t i, int64_t n, int pad)
{
    if (i >= 0 && i < n) return i;
    if (pad == DLT_INFER_PAD_EDGE) return i < 0 ? 0 : n - 1;
    if (pad == DLT_INFER_PAD_REFLECT) {
        while (i < 0 || i >= n) {
            if (i < 0) i = -i;
            if (i >= n) i = 2 * (n - 1) - i;
            if (n == 1) return 0;
        }
        return i;
    }
    return -1;
}

/* The reference: every window and mirroring, whole-volume sums, weights
 * computed directly. probs [C][nz][ny][nx]. */
static void reference(const dlt_infer_config *c, const float *img, const int64_t dim[3], float *probs)
{
    int64_t nv = dim[0] * dim[1] * dim[2];
    const int64_t *w = c->window;
    int64_t wv = w[0] * w[1] * w[2];
    double *acc = calloc((size_t)(nv * nclasses), sizeof(double)), *wsum = calloc((size_t)nv, sizeof(double));
    float *xw = malloc(sizeof(float) * (size_t)wv), *pw = malloc(sizeof(float) * (size_t)(wv * nclasses));
    int64_t st[3][256], ns[3];
    for (int a = 0; a < 3; a++) ns[a] = dlt_infer_starts(dim[a], w[a], c->overlap, st[a]);
    for (int64_t a = 0; a < ns[2]; a++)
        for (int64_t b = 0; b < ns[1]; b++)
            for (int64_t d = 0; d < ns[0]; d++)
                for (int fm = 0; fm < 8; fm++) {
                    if (fm & ~c->flips) continue;
                    int64_t o[3] = {st[0][d], st[1][b], st[2][a]};
                    for (int64_t k = 0; k < w[2]; k++)
                        for (int64_t j = 0; j < w[1]; j++)
                            for (int64_t i = 0; i < w[0]; i++) {
                                int64_t ii = fm & 1 ? w[0] - 1 - i : i, jj = fm & 2 ? w[1] - 1 - j : j,
                                        kk = fm & 4 ? w[2] - 1 - k : k;
                                int64_t x = padi(o[0] + ii, dim[0], c->pad), y = padi(o[1] + jj, dim[1], c->pad),
                                        z = padi(o[2] + kk, dim[2], c->pad);
                                xw[(k * w[1] + j) * w[0] + i] =
                                    (x < 0 || y < 0 || z < 0) ? 0 : img[(z * dim[1] + y) * dim[0] + x];
                            }
                    pred_pos(NULL, xw, 1, w, pw);
                    for (int64_t k = 0; k < w[2]; k++)
                        for (int64_t j = 0; j < w[1]; j++)
                            for (int64_t i = 0; i < w[0]; i++) {
                                int64_t x = o[0] + i, y = o[1] + j, z = o[2] + k;
                                if (x < 0 || y < 0 || z < 0 || x >= dim[0] || y >= dim[1] || z >= dim[2]) continue;
                                double g = 1;
                                if (c->blend == DLT_BLEND_GAUSSIAN) {
                                    int64_t q[3] = {i, j, k};
                                    for (int ax = 0; ax < 3; ax++) {
                                        double s = c->sigma_frac * (double)w[ax], m = 0.5 * (double)(w[ax] - 1);
                                        double e = exp(-0.5 * ((double)q[ax] - m) * ((double)q[ax] - m) / (s * s));
                                        g *= e < 1e-6 ? 1e-6 : e;
                                    }
                                }
                                int64_t ii = fm & 1 ? w[0] - 1 - i : i, jj = fm & 2 ? w[1] - 1 - j : j,
                                        kk = fm & 4 ? w[2] - 1 - k : k;
                                int64_t v = (z * dim[1] + y) * dim[0] + x, u = (kk * w[1] + jj) * w[0] + ii;
                                for (int cl = 0; cl < nclasses; cl++) acc[cl * nv + v] += g * pw[cl * wv + u];
                                wsum[v] += g;
                            }
                }
    for (int cl = 0; cl < nclasses; cl++)
        for (int64_t v = 0; v < nv; v++) probs[cl * nv + v] = (float)(acc[cl * nv + v] / wsum[v]);
    free(acc), free(wsum), free(xw), free(pw);
}

static float *make_image(const int64_t dim[3], uint32_t seed)
{
    int64_t nv = dim[0] * dim[1] * dim[2];
    float *img = malloc(sizeof(float) * (size_t)nv);
    for (int64_t v = 0; v < nv; v++) img[v] = (float)(int)(dlt_rng_uniform_at(seed, 0, (uint64_t)v) * nclasses);
    return img;
}

typedef struct { int64_t dim[3], win[3]; double overlap; int blend, batch, flips, pad; } tcase;

int main(void)
{
    dlt_log_init("test_infer");
    /* ---- placement ---- */
    int64_t s[16];
    int64_t k = dlt_infer_starts(128, 64, 0.5, s);
    CHECK(k == 3 && s[0] == 0 && s[1] == 32 && s[2] == 64, "starts 128/64/0.5 = 0,32,64 (the peer's)");
    k = dlt_infer_starts(100, 64, 0.5, s);
    CHECK(k == 3 && s[0] == 0 && s[1] == 32 && s[2] == 36, "starts 100/64/0.5 = 0,32,36 (last flush with the end)");
    k = dlt_infer_starts(50, 64, 0.5, s);
    CHECK(k == 1 && s[0] == -7, "volume smaller than the window: one centred window at -7");
    k = dlt_infer_starts(128, 64, 0.0, s);
    CHECK(k == 2 && s[0] == 0 && s[1] == 64, "no overlap: 0,64");
    k = dlt_infer_starts(64, 64, 0.9, s);
    CHECK(k == 1 && s[0] == 0, "window equal to the volume: one window");
    k = dlt_infer_starts(10, 4, 0.99, s);
    CHECK(k == 7 && s[6] == 6, "overlap near 1: step 1");

    tcase cases[] = {
        {{13, 9, 11}, {4, 4, 4}, 0.5, DLT_BLEND_MEAN, 1, 0, 0},
        {{13, 9, 11}, {4, 4, 4}, 0.5, DLT_BLEND_GAUSSIAN, 3, 7, 0},
        {{7, 12, 5}, {8, 4, 8}, 0.25, DLT_BLEND_MEAN, 2, 5, DLT_INFER_PAD_EDGE},
        {{6, 5, 3}, {8, 8, 8}, 0.5, DLT_BLEND_GAUSSIAN, 4, 3, DLT_INFER_PAD_REFLECT},
        {{17, 6, 9}, {5, 6, 2}, 0.0, DLT_BLEND_MEAN, 5, 6, 0},
        {{9, 9, 20}, {4, 3, 6}, 0.7, DLT_BLEND_GAUSSIAN, 2, 1, DLT_INFER_PAD_EDGE},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        tcase *tc = &cases[t];
        int64_t nv = tc->dim[0] * tc->dim[1] * tc->dim[2];
        float *img = make_image(tc->dim, (uint32_t)t + 1);
        dlt_infer_config c;
        dlt_infer_config_default(&c);
        memcpy(c.window, tc->win, sizeof c.window);
        c.overlap = tc->overlap, c.blend = tc->blend, c.batch = tc->batch, c.flips = tc->flips, c.pad = tc->pad;
        c.channels = 1, c.classes = nclasses;
        c.predict = pred_identity;
        uint16_t *lab = calloc((size_t)nv, 2);
        float *probs = malloc(sizeof(float) * (size_t)(nv * nclasses));
        int rc = dlt_infer_volume(&c, img, tc->dim, lab, probs);
        int64_t bad = 0;
        double perr = 0;
        for (int64_t v = 0; v < nv; v++) {
            if (lab[v] != (uint16_t)img[v]) bad++;
            for (int cl = 0; cl < nclasses; cl++)
                perr = fmax(perr, fabs(probs[cl * nv + v] - (cl == (int)img[v] ? 1.0 : 0.0)));
        }
        CHECK(rc == 0 && bad == 0 && perr < 1e-5,
              "case %zu (%lldx%lldx%lld, window %lldx%lldx%lld, overlap %g, %s, batch %d, flips %d, pad %d): "
              "identity predictor gives the input back (%lld wrong labels, prob err %.2g)",
              t, (long long)tc->dim[0], (long long)tc->dim[1], (long long)tc->dim[2], (long long)tc->win[0],
              (long long)tc->win[1], (long long)tc->win[2], tc->overlap, tc->blend ? "gaussian" : "mean", tc->batch,
              tc->flips, tc->pad, (long long)bad, perr);

        c.predict = pred_pos;
        float *ref = malloc(sizeof(float) * (size_t)(nv * nclasses));
        reference(&c, img, tc->dim, ref);
        rc = dlt_infer_volume(&c, img, tc->dim, lab, probs);
        double err = 0;
        int64_t lbad = 0;
        for (int64_t v = 0; v < nv; v++) {
            int best = 0;
            for (int cl = 0; cl < nclasses; cl++) {
                err = fmax(err, fabs(probs[cl * nv + v] - ref[cl * nv + v]));
                if (ref[cl * nv + v] > ref[best * nv + v]) best = cl;
            }
            /* labels may differ only on near-ties */
            if (lab[v] != best && ref[lab[v] * nv + v] < ref[best * nv + v] - 1e-5) lbad++;
        }
        CHECK(rc == 0 && err < 2e-5 && lbad == 0,
              "case %zu: position-dependent predictor matches the full-memory reference (max err %.2g, %lld labels off)",
              t, err, (long long)lbad);
        /* labels alone (no probs) are the same */
        uint16_t *lab2 = calloc((size_t)nv, 2);
        rc = dlt_infer_volume(&c, img, tc->dim, lab2, NULL);
        CHECK(rc == 0 && memcmp(lab, lab2, (size_t)nv * 2) == 0, "case %zu: labels without probabilities identical", t);
        free(lab2), free(ref), free(img), free(lab), free(probs);
    }

    /* windows counted, memory bounded by the window's depth, not the volume's */
    {
        dlt_infer_config c;
        dlt_infer_config_default(&c);
        c.window[0] = c.window[1] = c.window[2] = 64;
        c.channels = 1, c.classes = 14, c.batch = 4, c.flips = 7;
        int64_t d1[3] = {128, 128, 128}, d2[3] = {512, 512, 300};
        CHECK(dlt_infer_count(&c, d1) == 27 * 8, "128^3 with 64^3 windows, overlap 0.5, 8 mirrorings: 216 windows");
        int64_t b = dlt_infer_work_bytes(&c, d2);
        CHECK(b < (int64_t)1100 << 20 && b > (int64_t)900 << 20,
              "512x512x300, 14 classes: accumulator %.0f MiB (64 slices, not 300)", (double)b / (1 << 20));
    }

    /* a short last batch is padded: every call has the full batch size
     * (one plan, one set of primitives), the labels are those of batch 1;
     * a single short batch (fewer windows than the batch) is not padded */
    {
        dlt_infer_config c;
        dlt_infer_config_default(&c);
        c.window[0] = c.window[1] = c.window[2] = 4;
        c.channels = 1, c.classes = nclasses, c.predict = pred_count;
        int64_t d[3] = {8, 8, 8}, nv = 512;
        float img[512];
        for (int64_t v = 0; v < nv; v++) img[v] = (float)((v * 7) % 5);
        uint16_t l1[512], l4[512];
        int64_t k1[3] = {0, 99, 0}, k4[3] = {0, 99, 0}, kw[3] = {0, 99, 0};
        c.predict_ctx = k1, c.batch = 1;
        int rc = dlt_infer_volume(&c, img, d, l1, NULL);
        c.predict_ctx = k4, c.batch = 4;
        rc = rc ? rc : dlt_infer_volume(&c, img, d, l4, NULL);
        CHECK(rc == 0 && k1[0] == 27 && k4[0] == 7 && k4[1] == 4 && k4[2] == 4 && !memcmp(l1, l4, sizeof l1),
              "27 windows, batch 4: 7 calls all of 4 windows (%lld calls, nb %lld..%lld), labels as batch 1",
              (long long)k4[0], (long long)k4[1], (long long)k4[2]);
        c.window[0] = c.window[1] = c.window[2] = 8, c.predict_ctx = kw;
        rc = dlt_infer_volume(&c, img, d, l4, NULL);
        CHECK(rc == 0 && kw[0] == 1 && kw[1] == 1 && kw[2] == 1, "one window, batch 4: one call of 1 window (nb %lld)",
              (long long)kw[2]);
    }

    /* bad configurations */
    {
        dlt_infer_config c;
        dlt_infer_config_default(&c);
        c.window[0] = c.window[1] = c.window[2] = 4;
        c.channels = 1, c.classes = 2, c.predict = pred_identity;
        int64_t d[3] = {4, 4, 4};
        float img[64] = {0};
        uint16_t lab[64];
        c.overlap = 1.0;
        CHECK(dlt_infer_volume(&c, img, d, lab, NULL) == DLT_EINVAL && strstr(dlt_errmsg(), "overlap"),
              "overlap 1 refused: %s", dlt_errmsg());
        c.overlap = 0.5, c.batch = 0;
        CHECK(dlt_infer_volume(&c, img, d, lab, NULL) == DLT_EINVAL, "batch 0 refused");
    }

    /* ---- largest connected component ---- */
    {
        int64_t d[3] = {8, 6, 5};
        uint16_t lab[240] = {0};
#define AT(x, y, z) lab[((z) * 6 + (y)) * 8 + (x)]
        for (int x = 0; x < 3; x++) AT(x, 0, 0) = 1;  /* class 1: 3 voxels */
        for (int x = 0; x < 5; x++) AT(x, 3, 3) = 1;  /* class 1: 5 voxels */
        AT(7, 5, 4) = 2;                              /* class 2: 1 voxel ... */
        AT(6, 4, 3) = 2;                              /* ... and a diagonal neighbour */
        AT(0, 5, 0) = 2;
        AT(1, 5, 0) = 2;                              /* class 2: 2 voxels by faces */
        uint16_t l6[240], l26[240];
        memcpy(l6, lab, sizeof lab);
        memcpy(l26, lab, sizeof lab);
        int rc6 = dlt_largest_component(l6, d, 3, NULL, 6), rc26 = dlt_largest_component(l26, d, 3, NULL, 26);
        int n1 = 0, n2_6 = 0, n2_26 = 0;
        for (int v = 0; v < 240; v++) n1 += l6[v] == 1, n2_6 += l6[v] == 2, n2_26 += l26[v] == 2;
        CHECK(rc6 == 0 && n1 == 5 && l6[0] == 0 && l6[(3 * 6 + 3) * 8] == 1,
              "6-connectivity: class 1 keeps the 5-voxel run, drops the 3-voxel one");
        CHECK(n2_6 == 2 && l6[(0 * 6 + 5) * 8 + 0] == 2 && l6[(4 * 6 + 5) * 8 + 7] == 0,
              "6-connectivity: the diagonal pair is two components; the face pair (first met) wins the tie");
        CHECK(rc26 == 0 && n2_26 == 2, "26-connectivity: both pairs are size 2");
        CHECK(dlt_largest_component(l6, d, 3, NULL, 8) == DLT_EINVAL, "connectivity 8 refused");
        /* only class 2: class 1 keeps both runs */
        const uint8_t only2[3] = {0, 0, 1};
        memcpy(l6, lab, sizeof lab);
        dlt_largest_component(l6, d, 3, only2, 6);
        n1 = 0, n2_6 = 0;
        for (int v = 0; v < 240; v++) n1 += l6[v] == 1, n2_6 += l6[v] == 2;
        CHECK(n1 == 8 && n2_6 == 2, "only class 2: class 1 untouched (%d voxels), class 2 reduced (%d)", n1, n2_6);
#undef AT
    }

    /* ---- intensity check ---- */
    {
        int64_t n = 4096;
        float *hu = malloc(sizeof(float) * (size_t)n), *unit = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            hu[i] = -1000.0f + 1800.0f * dlt_rng_uniform_at(5, 0, (uint64_t)i);
            unit[i] = dlt_rng_uniform_at(5, 0, (uint64_t)i);
        }
        char msg[512] = "";
        CHECK(dlt_infer_intensity_check(hu, n, 1, "ct=-1000,800;spacing=2,2,2", NULL, msg, sizeof msg) == 1 &&
                  strstr(msg, "ct=-1000,800"),
              "raw HU against a ct-window model warns: %s", msg);
        CHECK(dlt_infer_intensity_check(unit, n, 1, "ct=-1000,800", NULL, msg, sizeof msg) == 0,
              "[0,1] input against a ct-window model: quiet");
        char st[256];
        dlt_intensity_stats(unit, n, 1, st, sizeof st);
        double lo, hi, m, sd;
        CHECK(sscanf(st, "%lf,%lf,%lf,%lf", &lo, &hi, &m, &sd) == 4 && lo < 0.01 && hi > 0.99 && fabs(m - 0.5) < 0.02,
              "intensity stats of U(0,1): %s", st);
        CHECK(dlt_infer_intensity_check(hu, n, 1, NULL, st, msg, sizeof msg) == 1,
              "raw HU against recorded patch statistics warns");
        CHECK(dlt_infer_intensity_check(unit, n, 1, "", st, msg, sizeof msg) == 0, "same statistics: quiet");
        CHECK(dlt_infer_intensity_check(hu, n, 1, NULL, NULL, msg, sizeof msg) == 0, "nothing recorded: quiet");
        free(hu), free(unit);
    }
    return check_done();
}
