/* infer_post.c - after the sliding window: largest connected component per
 * class, and the check of an input's intensities against the model's
 * training data (see dlt/infer.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlt/core.h"
#include "dlt/infer.h"

int dlt_largest_component(uint16_t *label, const int64_t dim[3], int classes, const uint8_t *only,
                          int connectivity)
{
    if (connectivity != 6 && connectivity != 26)
        return dlt_err(DLT_EINVAL, "largest component: connectivity must be 6 or 26, not %d", connectivity);
    int64_t nx = dim[0], ny = dim[1], nz = dim[2], n = nx * ny * nz;
    if (n >= (int64_t)UINT32_MAX) return dlt_err(DLT_EUNSUP, "largest component: volume of %lld voxels too large", (long long)n);
    uint32_t *comp = dlt_calloc(n, sizeof(uint32_t), "component map");
    int64_t cap = 1 << 16, top = 0;
    uint32_t *stack = dlt_alloc(cap, sizeof(uint32_t), "component stack");
    int64_t *best_size = dlt_calloc(65536, sizeof(int64_t), "component sizes");
    uint32_t *best_id = dlt_calloc(65536, sizeof(uint32_t), "component ids");
    int rc = 0;
    if (!comp || !stack || !best_size || !best_id) {
        rc = DLT_ENOMEM;
        goto out;
    }
    uint32_t next = 0;
    for (int64_t v0 = 0; v0 < n; v0++) {
        uint16_t c = label[v0];
        if (c == 0 || comp[v0]) continue;
        uint32_t id = ++next;
        int64_t size = 0;
        comp[v0] = id;
        stack[top++] = (uint32_t)v0;
        while (top) {
            int64_t v = stack[--top];
            size++;
            int64_t x = v % nx, y = (v / nx) % ny, z = v / (nx * ny);
            for (int dz = -1; dz <= 1; dz++)
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int nzero = (dx != 0) + (dy != 0) + (dz != 0);
                        if (nzero == 0 || (connectivity == 6 && nzero != 1)) continue;
                        int64_t xx = x + dx, yy = y + dy, zz = z + dz;
                        if (xx < 0 || yy < 0 || zz < 0 || xx >= nx || yy >= ny || zz >= nz) continue;
                        int64_t u = (zz * ny + yy) * nx + xx;
                        if (comp[u] || label[u] != c) continue;
                        comp[u] = id;
                        if (top == cap) {
                            uint32_t *s2 = dlt_alloc(2 * cap, sizeof(uint32_t), "component stack");
                            if (!s2) {
                                rc = DLT_ENOMEM;
                                goto out;
                            }
                            memcpy(s2, stack, sizeof(uint32_t) * (size_t)cap);
                            dlt_free(stack);
                            stack = s2;
                            cap *= 2;
                        }
                        stack[top++] = (uint32_t)u;
                    }
        }
        if (size > best_size[c]) best_size[c] = size, best_id[c] = id;
    }
    for (int64_t v = 0; v < n; v++) {
        uint16_t c = label[v];
        if (c && c < classes && (!only || only[c]) && comp[v] != best_id[c]) label[v] = 0;
    }
out:
    dlt_free(comp);
    dlt_free(stack);
    dlt_free(best_size);
    dlt_free(best_id);
    return rc;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Strided subsample of the finite values of x[n] (at most ~1M), sorted. */
static float *sample_sorted(const float *x, int64_t n, int64_t *m)
{
    int64_t stride = n / (1 << 20) + 1;
    float *s = dlt_alloc(n / stride + 1, sizeof(float), "intensity sample");
    *m = 0;
    if (!s) return NULL;
    for (int64_t i = 0; i < n; i += stride)
        if (isfinite(x[i])) s[(*m)++] = x[i];
    qsort(s, (size_t)*m, sizeof(float), cmp_float);
    return s;
}

typedef struct chstats {
    double lo, hi, mean, std;
    int ok;
} chstats;

static chstats channel_stats(const float *x, int64_t n)
{
    chstats st = {0};
    int64_t m;
    float *s = sample_sorted(x, n, &m);
    if (!s || m == 0) {
        dlt_free(s);
        return st;
    }
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < m; i++) sum += s[i];
    st.mean = sum / (double)m;
    for (int64_t i = 0; i < m; i++) sq += (s[i] - st.mean) * (s[i] - st.mean);
    st.std = sqrt(sq / (double)m);
    st.lo = s[(int64_t)(0.005 * (double)(m - 1))];
    st.hi = s[(int64_t)(0.995 * (double)(m - 1) + 0.5)];
    st.ok = 1;
    dlt_free(s);
    return st;
}

void dlt_intensity_stats(const float *x, int64_t n, int channels, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int c = 0; c < channels && k < cap; c++) {
        chstats s = channel_stats(x + (int64_t)c * n, n);
        k += (size_t)snprintf(buf + k, cap - k, "%s%.6g,%.6g,%.6g,%.6g", c ? ";" : "", s.lo, s.hi, s.mean, s.std);
    }
}

/* The range the last intensity step of a plan maps into: 1 and lo/hi set
 * (whiten: mean 0, std 1 -> "about [-5,5]"), 0 when none is known. */
static int plan_range(const char *plan, double *lo, double *hi, char *what, size_t cap)
{
    int known = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", plan);
    char *p = buf;
    if (strncmp(p, "dlt:", 4) == 0) p += 4;
    for (char *save = NULL, *tok = strtok_r(p, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(tok, '=');
        char *arg = eq ? eq + 1 : NULL;
        if (eq) *eq = 0;
        double a = 0, b = 0;
        if (!strcmp(tok, "ct") || !strcmp(tok, "zero-one"))
            *lo = 0, *hi = 1, known = 1;
        else if (!strcmp(tok, "ct-sym") || !strcmp(tok, "one-one"))
            *lo = -1, *hi = 1, known = 1;
        else if (!strcmp(tok, "whiten"))
            *lo = -5, *hi = 5, known = 1;
        else if (!strcmp(tok, "clip") && arg && sscanf(arg, "%lf,%lf", &a, &b) == 2)
            *lo = a, *hi = b, known = 1;
        else if (!strcmp(tok, "zscore") && arg && sscanf(arg, "%lf,%lf", &a, &b) == 2 && b > 0) {
            /* after a clip: the clip's range standardised; else the bulk of a z-score */
            if (known) *lo = (*lo - a) / b, *hi = (*hi - a) / b;
            else *lo = -5, *hi = 5, known = 1;
        }
        else
            continue;
        snprintf(what, cap, "%s%s%s", tok, arg ? "=" : "", arg ? arg : "");
    }
    return known;
}

int dlt_infer_intensity_check(const float *img, int64_t nvox, int channels, const char *preprocessing,
                              const char *stats, char *msg, size_t cap)
{
    double plo = 0, phi = 0;
    char what[128] = "";
    int have_plan = preprocessing && *preprocessing && plan_range(preprocessing, &plo, &phi, what, sizeof what);
    const char *sp = stats && *stats ? stats : NULL;
    if (!have_plan && !sp) return 0;
    for (int c = 0; c < channels; c++) {
        chstats s = channel_stats(img + (int64_t)c * nvox, nvox);
        if (!s.ok) continue;
        double lo, hi;
        char src[160];
        if (have_plan) {
            lo = plo, hi = phi;
            snprintf(src, sizeof src, "the model's preprocessing %s gives [%g, %g]", what, lo, hi);
        } else {
            double a, b, m, d;
            int got = sscanf(sp, "%lf,%lf,%lf,%lf", &a, &b, &m, &d);
            if (got != 4) return 0;
            lo = a, hi = b;
            snprintf(src, sizeof src, "the training patches had [%g, %g] (0.5th-99.5th percentile)", lo, hi);
        }
        /* Far off: the input's bulk reaches beyond the expected range by
         * more than its width, or spans over 4 times it. Loose on purpose:
         * augmentation and balanced sampling shift patch statistics. */
        double w = hi - lo;
        if (w <= 0) w = 1;
        double tol = w, span = 4;
        if (!have_plan) {
            /* patch statistics come from a few (class-balanced) patches: far
             * looser, scaled by the magnitude of the values too */
            double mag = fmax(fabs(lo), fabs(hi));
            tol = 2 * fmax(w, mag), span = 5;
        }
        if (s.lo < lo - tol || s.hi > hi + tol || (s.hi - s.lo) > span * tol) {
            snprintf(msg, cap,
                     "channel %d: intensities [%g, %g] (0.5th-99.5th percentile) are far from what the model was "
                     "trained on: %s; was the input preprocessed the same way (dlt-normalize)?",
                     c, s.lo, s.hi, src);
            return 1;
        }
        if (!have_plan && sp) {
            sp = strchr(sp, ';');
            if (!sp) break;
            sp++;
        }
    }
    return 0;
}

#include "dlt/net.h"
#include "dlt/normalize.h"

int dlt_infer_to_grid(const float *probs, int classes, const int64_t m[3], const int64_t n[3],
                      const double spacing[3], const double target[3], uint16_t *label, float *probs_out)
{
    int64_t mm[3], nv = n[0] * n[1] * n[2], mv = m[0] * m[1] * m[2];
    double scale[3], shift[3], iscale[3], ishift[3];
    dlt_resample_grid(n, spacing, target, mm, scale, shift);
    for (int a = 0; a < 3; a++) {
        if (mm[a] != m[a])
            return dlt_err(DLT_ESHAPE, "back to the original grid: %lldx%lldx%lld is not the resampled grid %lldx%lldx%lld",
                           (long long)m[0], (long long)m[1], (long long)m[2], (long long)mm[0], (long long)mm[1],
                           (long long)mm[2]);
        /* original index j sits at resampled index (j - shift) / scale */
        iscale[a] = 1.0 / scale[a];
        ishift[a] = -shift[a] / scale[a];
    }
    float *best = dlt_alloc(nv, sizeof(float), "best probability");
    float *plane = probs_out ? NULL : dlt_alloc(nv, sizeof(float), "probability plane");
    int rc = best && (probs_out || plane) ? 0 : DLT_ENOMEM;
    for (int c = 0; c < classes && !rc; c++) {
        float *q = probs_out ? probs_out + (int64_t)c * nv : plane;
        if ((rc = dlt_resample_f32(probs + (int64_t)c * mv, m, q, n, iscale, ishift, DLT_INTERP_LINEAR))) break;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nv; i++)
            if (c == 0 || q[i] > best[i]) best[i] = q[i], label[i] = (uint16_t)c;
    }
    dlt_free(best);
    dlt_free(plane);
    return rc;
}

int dlt_infer_predict_net(void *net, const float *x, int64_t nb, const int64_t win[3], float *probs)
{
    return dlt_net_predict((dlt_net *)net, x, nb, win[2], win[1], win[0], probs);
}

int dlt_infer_predict_ensemble(void *ctx, const float *x, int64_t nb, const int64_t win[3], float *probs)
{
    dlt_infer_ensemble *e = ctx;
    if (e->n < 1) return dlt_err(DLT_EINVAL, "ensemble of no model");
    int64_t len = nb * dlt_net_get_config(e->nets[0])->classes * win[0] * win[1] * win[2];
    int rc = dlt_net_predict(e->nets[0], x, nb, win[2], win[1], win[0], probs);
    if (rc || e->n == 1) return rc;
    if (e->tmp_len < len) {
        dlt_free(e->tmp);
        e->tmp_len = 0;
        if (!(e->tmp = dlt_alloc(len, sizeof(float), "ensemble probabilities"))) return DLT_ENOMEM;
        e->tmp_len = len;
    }
    for (int k = 1; k < e->n; k++) {
        if ((rc = dlt_net_predict(e->nets[k], x, nb, win[2], win[1], win[0], e->tmp)) != 0) return rc;
        const float *t = e->tmp;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < len; i++) probs[i] += t[i];
    }
    const float inv = 1.0f / (float)e->n;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < len; i++) probs[i] *= inv;
    return 0;
}

void dlt_infer_ensemble_free(dlt_infer_ensemble *e)
{
    dlt_free(e->tmp);
    e->tmp = NULL;
    e->tmp_len = 0;
}
