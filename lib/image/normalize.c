/* normalize.c - intensity normalisation (DLTK's whitening, zero-one,
 * one-one; clipping, percentiles, CT windows) and preprocessing plans: their
 * text form, and their application to volumes and patches (dlt/normalize.h).
 * The geometric steps are in normalize_geom.c. */
#include "dlt/normalize.h"
#include "dlt/core.h"
#include "dlt/io.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- intensity ---- */

int dlt_norm_whiten(float *x, int64_t n, const uint8_t *mask)
{
    double sum = 0;
    int64_t cnt = 0;
#pragma omp parallel for reduction(+ : sum, cnt) schedule(static)
    for (int64_t i = 0; i < n; i++)
        if ((!mask || mask[i]) && isfinite(x[i])) {
            sum += x[i];
            cnt++;
        }
    if (cnt == 0) return dlt_err(DLT_EINVAL, "whiten: no voxel to compute the mean over (empty mask or all zero)");
    double mean = sum / (double)cnt, ss = 0;
    /* Two passes: the variance of CT-sized values in one pass loses digits. */
#pragma omp parallel for reduction(+ : ss) schedule(static)
    for (int64_t i = 0; i < n; i++)
        if ((!mask || mask[i]) && isfinite(x[i])) ss += (x[i] - mean) * (x[i] - mean);
    double sd = sqrt(ss / (double)cnt);
    double inv = sd > 0 ? 1.0 / sd : 0.0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        x[i] = (!mask || mask[i]) ? (float)((x[i] - mean) * inv) : 0.0f;
    return 0;
}

static void finite_minmax(const float *x, int64_t n, double *lo, double *hi)
{
    float mn = INFINITY, mx = -INFINITY;
#pragma omp parallel for reduction(min : mn) reduction(max : mx) schedule(static)
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            if (x[i] < mn) mn = x[i];
            if (x[i] > mx) mx = x[i];
        }
    *lo = mn;
    *hi = mx;
}

void dlt_norm_zero_one(float *x, int64_t n)
{
    double lo, hi;
    finite_minmax(x, n, &lo, &hi);
    double inv = hi > lo ? 1.0 / (hi - lo) : 0.0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = (float)((x[i] - lo) * inv);
}

void dlt_norm_one_one(float *x, int64_t n)
{
    dlt_norm_zero_one(x, n);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * 2.0f - 1.0f;
}

void dlt_norm_clip(float *x, int64_t n, double lo, double hi)
{
    float l = (float)lo, h = (float)hi;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] < l ? l : x[i] > h ? h : x[i];
}

void dlt_norm_ct(float *x, int64_t n, double lo, double hi, int sym)
{
    double a = (sym ? 2.0 : 1.0) / (hi - lo), b = sym ? -1.0 : 0.0;
    float l = (float)lo, h = (float)hi;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] < l ? l : x[i] > h ? h : x[i];
        x[i] = (float)((v - lo) * a + b);
    }
}

/* Hoare quickselect: afterwards a[k] is the k-th smallest of a[lo..hi],
 * smaller ones before it, larger after. */
static void select_k(float *a, int64_t lo, int64_t hi, int64_t k)
{
    while (hi > lo) {
        int64_t mid = lo + (hi - lo) / 2;
        float t;
#define SWAP(p, q) (t = a[p], a[p] = a[q], a[q] = t)
        if (a[mid] < a[lo]) SWAP(mid, lo);
        if (a[hi] < a[lo]) SWAP(hi, lo);
        if (a[hi] < a[mid]) SWAP(hi, mid);
        float pivot = a[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                SWAP(i, j);
                i++;
                j--;
            }
        }
#undef SWAP
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
}

int dlt_norm_percentiles(const float *x, int64_t n, const double *p, int np, double *out)
{
    for (int q = 0; q < np; q++)
        if (!(p[q] >= 0 && p[q] <= 100)) return dlt_err(DLT_EINVAL, "percentile %g is not in [0,100]", p[q]);
    float *a = dlt_alloc(n > 0 ? n : 1, sizeof(float), "percentile buffer");
    if (!a) return DLT_ENOMEM;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i])) a[m++] = x[i];
    if (m == 0) {
        dlt_free(a);
        return dlt_err(DLT_EINVAL, "percentiles of an image with no finite value");
    }
    /* Ascending order of the requested percentiles lets each selection work
     * on the part right of the previous one. */
    int ord[64];
    int nq = np < 64 ? np : 64;
    for (int q = 0; q < nq; q++) ord[q] = q;
    for (int q = 1; q < nq; q++)
        for (int r = q; r > 0 && p[ord[r]] < p[ord[r - 1]]; r--) {
            int t = ord[r];
            ord[r] = ord[r - 1];
            ord[r - 1] = t;
        }
    int64_t from = 0;
    for (int q = 0; q < nq; q++) {
        double pos = p[ord[q]] / 100.0 * (double)(m - 1);
        int64_t k = (int64_t)floor(pos);
        if (k > m - 1) k = m - 1;
        double frac = pos - (double)k;
        select_k(a, from, m - 1, k);
        double v = a[k];
        if (frac > 0 && k + 1 < m) {
            float nxt = a[k + 1];
            for (int64_t i = k + 2; i < m; i++)
                if (a[i] < nxt) nxt = a[i];
            v += frac * ((double)nxt - v);
        }
        out[ord[q]] = v;
        from = k;
    }
    dlt_free(a);
    return 0;
}

/* ---- plans: text form ---- */

static const char *names[] = {NULL, "whiten", "zero-one", "one-one", "clip", "clip-pct",
                              "ct", "zscore", "spacing", "size", "reorient"};

const char *dlt_norm_step_name(int kind)
{
    return kind >= 1 && kind <= DLT_NORM_REORIENT ? names[kind] : "?";
}

static int parse2(const char *name, const char *arg, double v[2])
{
    int n = 0;
    if (!arg || dlt_parse_doubles(arg, 2, v, &n) != 0 || n != 2 || !isfinite(v[0]) || !isfinite(v[1]))
        return dlt_err(DLT_EINVAL, "%s: expected LO,HI (two numbers), got '%s'", name, arg ? arg : "");
    if (!(v[1] > v[0])) return dlt_err(DLT_EINVAL, "%s: %s: HI must be greater than LO", name, arg);
    return 0;
}

int dlt_norm_plan_add(dlt_norm_plan *p, const char *name, const char *arg)
{
    if (p->n >= DLT_NORM_MAX_STEPS) return dlt_err(DLT_EINVAL, "too many steps (at most %d)", DLT_NORM_MAX_STEPS);
    dlt_norm_step s;
    memset(&s, 0, sizeof s);
    int kind = 0;
    for (int k = 1; k <= DLT_NORM_REORIENT; k++)
        if (strcmp(name, names[k]) == 0) kind = k;
    if (strcmp(name, "ct-sym") == 0) {
        kind = DLT_NORM_CT;
        s.mode = 1;
    }
    if (!kind) return dlt_err(DLT_EINVAL, "unknown preprocessing step '%s'", name);
    s.kind = kind;
    switch (kind) {
    case DLT_NORM_WHITEN:
        if (!arg || !*arg) s.mode = DLT_WHITEN_ALL;
        else if (strcmp(arg, "nonzero") == 0) s.mode = DLT_WHITEN_NONZERO;
        else if (strcmp(arg, "mask") == 0) s.mode = DLT_WHITEN_MASK;
        else return dlt_err(DLT_EINVAL, "whiten: unknown mode '%s' (nonzero or mask)", arg);
        break;
    case DLT_NORM_ZERO_ONE:
    case DLT_NORM_ONE_ONE:
        if (arg && *arg) return dlt_err(DLT_EINVAL, "%s takes no value", name);
        break;
    case DLT_NORM_CLIP:
    case DLT_NORM_CT:
        if (parse2(name, arg, s.a)) return DLT_EINVAL;
        break;
    case DLT_NORM_ZSCORE: {
        int n = 0;
        if (!arg || dlt_parse_doubles(arg, 2, s.a, &n) || n != 2 || !isfinite(s.a[0]) || !(s.a[1] > 0 && isfinite(s.a[1])))
            return dlt_err(DLT_EINVAL, "zscore: expected MEAN,STD with STD > 0, got '%s'", arg ? arg : "");
        break;
    }
    case DLT_NORM_CLIP_PCT:
        if (parse2(name, arg, s.a)) return DLT_EINVAL;
        if (s.a[0] < 0 || s.a[1] > 100)
            return dlt_err(DLT_EINVAL, "%s: %s: percentiles must lie in [0,100]", name, arg);
        break;
    case DLT_NORM_SPACING: {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", arg ? arg : "");
        char *colon = strchr(buf, ':');
        s.mode = DLT_INTERP_LINEAR;
        if (colon) {
            *colon++ = 0;
            if (strcmp(colon, "linear") == 0) s.mode = DLT_INTERP_LINEAR;
            else if (strcmp(colon, "bspline") == 0) s.mode = DLT_INTERP_BSPLINE;
            else if (strcmp(colon, "nearest") == 0) s.mode = DLT_INTERP_NEAREST;
            else return dlt_err(DLT_EINVAL, "spacing: unknown interpolation '%s' (linear, bspline, nearest)", colon);
        }
        int n = 0;
        if (dlt_parse_doubles(buf, 3, s.a, &n) != 0 || (n != 1 && n != 3))
            return dlt_err(DLT_EINVAL, "spacing: expected X,Y,Z in mm (or one value), got '%s'", buf);
        if (n == 1) s.a[1] = s.a[2] = s.a[0];
        for (int i = 0; i < 3; i++)
            if (!(s.a[i] > 0 && s.a[i] < 1e6)) return dlt_err(DLT_EINVAL, "spacing: %s: values must be positive mm", buf);
        break;
    }
    case DLT_NORM_SIZE: {
        int v[3];
        if (!arg || dlt_parse_int3(arg, 1, 1 << 20, v) != 0)
            return dlt_err(DLT_EINVAL, "size: expected X,Y,Z voxels (or one value), got '%s'", arg ? arg : "");
        for (int i = 0; i < 3; i++) s.size[i] = v[i];
        break;
    }
    case DLT_NORM_REORIENT: {
        if (!arg || strlen(arg) != 3) return dlt_err(DLT_EINVAL, "reorient: expected a 3-letter code like RAS, got '%s'", arg ? arg : "");
        double id[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
        int64_t one[3] = {1, 1, 1};
        dlt_reorient r;
        if (dlt_reorient_plan(id, one, arg, &r)) return DLT_EINVAL;
        for (int i = 0; i < 3; i++) s.code[i] = (char)toupper((unsigned char)arg[i]);
        break;
    }
    }
    p->step[p->n++] = s;
    return 0;
}

int dlt_norm_plan_parse(dlt_norm_plan *p, const char *text)
{
    memset(p, 0, sizeof *p);
    if (strncmp(text, "dlt:", 4) == 0) text += 4;
    char *dup = strdup(text), *save = NULL;
    if (!dup) return dlt_err(DLT_ENOMEM, "out of memory");
    int rc = 0;
    for (char *tok = strtok_r(dup, ";", &save); tok && !rc; tok = strtok_r(NULL, ";", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        if (strcmp(tok, "...") == 0) {
            rc = dlt_err(DLT_EINVAL, "preprocessing record was truncated ('...')");
            break;
        }
        char *eq = strchr(tok, '=');
        if (eq) *eq++ = 0;
        rc = dlt_norm_plan_add(p, tok, eq);
    }
    free(dup);
    return rc;
}

int dlt_norm_describe(const dlt_norm_plan *p, char *buf, size_t cap)
{
    size_t len = 0;
    char one[160];
    static const char *interp[] = {"nearest", "linear", "", "bspline"};
    if (cap) buf[0] = 0;
    for (int i = 0; i < p->n; i++) {
        const dlt_norm_step *s = &p->step[i];
        switch (s->kind) {
        case DLT_NORM_WHITEN:
            snprintf(one, sizeof one, "whiten%s", s->mode == DLT_WHITEN_NONZERO ? "=nonzero" : s->mode == DLT_WHITEN_MASK ? "=mask" : "");
            break;
        case DLT_NORM_CLIP:
        case DLT_NORM_CLIP_PCT:
            snprintf(one, sizeof one, "%s=%.6g,%.6g", names[s->kind], s->a[0], s->a[1]);
            break;
        case DLT_NORM_ZSCORE: /* dataset statistics: enough digits to reproduce them */
            snprintf(one, sizeof one, "%s=%.9g,%.9g", names[s->kind], s->a[0], s->a[1]);
            break;
        case DLT_NORM_CT:
            snprintf(one, sizeof one, "%s=%.6g,%.6g", s->mode ? "ct-sym" : "ct", s->a[0], s->a[1]);
            break;
        case DLT_NORM_SPACING:
            snprintf(one, sizeof one, "spacing=%.6g,%.6g,%.6g%s%s", s->a[0], s->a[1], s->a[2],
                     s->mode == DLT_INTERP_LINEAR ? "" : ":", s->mode == DLT_INTERP_LINEAR ? "" : interp[s->mode & 3]);
            break;
        case DLT_NORM_SIZE:
            snprintf(one, sizeof one, "size=%lld,%lld,%lld", (long long)s->size[0], (long long)s->size[1], (long long)s->size[2]);
            break;
        case DLT_NORM_REORIENT:
            snprintf(one, sizeof one, "reorient=%.3s", s->code);
            break;
        default:
            snprintf(one, sizeof one, "%s", names[s->kind]);
        }
        size_t l = strlen(one);
        if (len + (i > 0) + l + 1 <= cap) {
            if (i > 0) buf[len] = ';';
            memcpy(buf + len + (i > 0), one, l + 1);
        }
        len += (i > 0) + l;
    }
    return (int)len;
}

const dlt_norm_step *dlt_norm_plan_whole_volume(const dlt_norm_plan *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->step[i].kind == DLT_NORM_SPACING || p->step[i].kind == DLT_NORM_SIZE || p->step[i].kind == DLT_NORM_REORIENT)
            return &p->step[i];
    return NULL;
}

void dlt_norm_descrip(const char *old, const dlt_norm_plan *p, char *buf, size_t cap)
{
    if (!cap) return;
    int need = dlt_norm_describe(p, NULL, 0);
    char *plan = malloc((size_t)need + 1), *full = NULL;
    if (!plan) {
        buf[0] = 0;
        return;
    }
    dlt_norm_describe(p, plan, (size_t)need + 1);
    int keep = old && strncmp(old, "dlt:", 4) == 0 && old[4];
    if (asprintf(&full, "dlt:%s%s%s", keep ? old + 4 : "", keep && *plan ? ";" : "", plan) < 0) full = NULL;
    free(plan);
    if (!full) {
        buf[0] = 0;
        return;
    }
    size_t len = strlen(full);
    if (len + 1 > cap) {
        /* Cut at the last step boundary that leaves room for ";...". */
        size_t room = cap > 5 ? cap - 5 : 0;
        size_t cut = 4;
        for (size_t i = 4; i < len && i <= room; i++)
            if (full[i] == ';') cut = i;
        if (cut + 5 <= cap) {
            memcpy(full + cut, cut > 4 ? ";..." : "...", cut > 4 ? 5 : 4);
        } else {
            full[cap - 1] = 0;
        }
    }
    snprintf(buf, cap, "%s", full);
    free(full);
}

/* ---- application ---- */

static int apply_intensity(const dlt_norm_step *s, float *x, int64_t n, const uint8_t *mask)
{
    switch (s->kind) {
    case DLT_NORM_WHITEN: {
        if (s->mode == DLT_WHITEN_ALL) return dlt_norm_whiten(x, n, NULL);
        if (s->mode == DLT_WHITEN_MASK) return dlt_norm_whiten(x, n, mask);
        uint8_t *nz = dlt_alloc(n, 1, "nonzero mask");
        if (!nz) return DLT_ENOMEM;
        int64_t cnt = 0;
#pragma omp parallel for reduction(+ : cnt) schedule(static)
        for (int64_t i = 0; i < n; i++) cnt += (nz[i] = x[i] != 0);
        /* An all-zero channel (a patch outside the body) stays all zero. */
        int rc = cnt ? dlt_norm_whiten(x, n, nz) : 0;
        dlt_free(nz);
        return rc;
    }
    case DLT_NORM_ZERO_ONE: dlt_norm_zero_one(x, n); return 0;
    case DLT_NORM_ONE_ONE: dlt_norm_one_one(x, n); return 0;
    case DLT_NORM_CLIP: dlt_norm_clip(x, n, s->a[0], s->a[1]); return 0;
    case DLT_NORM_CT: dlt_norm_ct(x, n, s->a[0], s->a[1], s->mode); return 0;
    case DLT_NORM_ZSCORE: {
        const float m = (float)s->a[0], inv = (float)(1.0 / s->a[1]);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) x[i] = (x[i] - m) * inv;
        return 0;
    }
    case DLT_NORM_CLIP_PCT: {
        double q[2];
        int rc = dlt_norm_percentiles(x, n, s->a, 2, q);
        if (rc) return rc;
        dlt_norm_clip(x, n, q[0], q[1]);
        return 0;
    }
    }
    return dlt_err(DLT_EINVAL, "%s: not an intensity step", dlt_norm_step_name(s->kind));
}

static int is_intensity(int kind) { return kind >= DLT_NORM_WHITEN && kind <= DLT_NORM_ZSCORE; }

int dlt_norm_apply_volume(const dlt_norm_plan *p, dlt_volume *v, const dlt_volume *mask)
{
    int need_mask = 0;
    for (int i = 0; i < p->n; i++) {
        const dlt_norm_step *s = &p->step[i];
        if (v->label && is_intensity(s->kind))
            return dlt_err(DLT_EINVAL, "%s: an intensity step cannot be applied to a label volume", dlt_norm_step_name(s->kind));
        if (s->kind == DLT_NORM_WHITEN && s->mode == DLT_WHITEN_MASK) need_mask = 1;
    }
    if (need_mask && !mask) return dlt_err(DLT_EINVAL, "whiten=mask: no mask given");
    dlt_volume m;
    memset(&m, 0, sizeof m);
    int rc = 0;
    if (need_mask) {
        if (!mask->label) return dlt_err(DLT_EINVAL, "mask: not read as a label volume");
        if ((rc = dlt_volume_same_grid(mask, v, 1e-3)) != 0) return dlt_err_prefix(rc, "mask and image");
        if ((rc = dlt_volume_like(&m, mask, 1, 1)) != 0) return rc;
        memcpy(m.label, mask->label, (size_t)(mask->nx * mask->ny * mask->nz) * sizeof(uint16_t));
    }
    uint8_t *mbuf = NULL;
    for (int i = 0; i < p->n && !rc; i++) {
        const dlt_norm_step *s = &p->step[i];
        int64_t nvox = v->nx * v->ny * v->nz;
        if (is_intensity(s->kind)) {
            if (s->kind == DLT_NORM_WHITEN && s->mode == DLT_WHITEN_MASK) {
                dlt_free(mbuf);
                mbuf = dlt_alloc(nvox, 1, "mask");
                if (!mbuf) { rc = DLT_ENOMEM; break; }
                for (int64_t k = 0; k < nvox; k++) mbuf[k] = m.label[k] != 0;
            }
            for (int64_t c = 0; c < v->nc && !rc; c++) {
                rc = apply_intensity(s, v->data + c * nvox, nvox, mbuf);
                if (rc && v->nc > 1) dlt_err_prefix(rc, "channel %lld", (long long)c);
            }
            continue;
        }
        if (s->kind == DLT_NORM_SPACING) {
            rc = dlt_volume_resample(v, s->a, v->label ? DLT_INTERP_NEAREST : s->mode);
            if (!rc && need_mask) rc = dlt_volume_resample(&m, s->a, DLT_INTERP_NEAREST);
        } else if (s->kind == DLT_NORM_SIZE) {
            rc = dlt_volume_crop_pad(v, s->size);
            if (!rc && need_mask) rc = dlt_volume_crop_pad(&m, s->size);
        } else if (s->kind == DLT_NORM_REORIENT) {
            rc = dlt_volume_reorient(v, s->code);
            if (!rc && need_mask) rc = dlt_volume_reorient(&m, s->code);
        }
    }
    dlt_free(mbuf);
    if (need_mask) dlt_volume_free(&m);
    return rc;
}

int dlt_norm_apply_patch(const dlt_norm_plan *p, dlt_patch *pt)
{
    for (int i = 0; i < p->n; i++) {
        const dlt_norm_step *s = &p->step[i];
        if (!is_intensity(s->kind))
            return dlt_err(DLT_EUNSUP, "%s: needs the whole volume; it cannot be applied to a patch stream (normalise the volumes before sampling)",
                           dlt_norm_step_name(s->kind));
        if (s->kind == DLT_NORM_WHITEN && s->mode == DLT_WHITEN_MASK)
            return dlt_err(DLT_EUNSUP, "whiten with a mask cannot be applied to a patch stream");
    }
    int64_t nvox = (int64_t)pt->size[0] * pt->size[1] * pt->size[2];
    for (int i = 0; i < p->n; i++)
        for (uint32_t c = 0; c < pt->channels; c++) {
            int rc = apply_intensity(&p->step[i], pt->image + c * nvox, nvox, NULL);
            if (rc) return dlt_err_prefix(rc, "patch %s channel %u", pt->id, c);
        }
    return 0;
}
