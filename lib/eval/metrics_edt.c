/* metrics_edt.c - exact Euclidean distance transform with anisotropic
 * voxels (Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled
 * Functions", 2012), surfaces and surface distances (dlt/metrics.h). */
#include "dlt/core.h"
#include "dlt/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 1-D lower envelope of parabolas: d[p] = min_q ((p-q)s)^2 + f[q], for the
 * q with finite f. v: n indices, z: n+1 boundaries (mm). */
static void edt_line(const double *f, int64_t n, double s, double *d, int64_t *v, double *z)
{
    int64_t k = -1;
    for (int64_t q = 0; q < n; q++) {
        if (!isfinite(f[q])) continue;
        double xq = (double)q * s, hq = f[q] + xq * xq;
        if (k < 0) {
            k = 0;
            v[0] = q;
            z[0] = -INFINITY;
            z[1] = INFINITY;
            continue;
        }
        double sp;
        for (;;) {
            double xv = (double)v[k] * s;
            sp = (hq - (f[v[k]] + xv * xv)) / (2.0 * (xq - xv));
            if (sp > z[k]) break;
            k--; /* z[0] = -inf stops this at k = 0 */
        }
        k++;
        v[k] = q;
        z[k] = sp;
        z[k + 1] = INFINITY;
    }
    if (k < 0) {
        for (int64_t q = 0; q < n; q++) d[q] = INFINITY;
        return;
    }
    k = 0;
    for (int64_t q = 0; q < n; q++) {
        double xq = (double)q * s;
        while (z[k + 1] < xq) k++;
        double dx = xq - (double)v[k] * s;
        d[q] = dx * dx + f[v[k]];
    }
}

/* One pass along `axis` over d2 in place (lines gathered and scattered). */
static int edt_pass(float *d2, const int64_t n[3], int axis, double s)
{
    int64_t len = n[axis];
    int64_t stride = axis == 0 ? 1 : axis == 1 ? n[0] : n[0] * n[1];
    int64_t nlines = n[0] * n[1] * n[2] / len;
    int fail = 0;
#pragma omp parallel
    {
        double *f = malloc(sizeof(double) * (size_t)len), *d = malloc(sizeof(double) * (size_t)len);
        double *z = malloc(sizeof(double) * (size_t)(len + 1));
        int64_t *v = malloc(sizeof(int64_t) * (size_t)len);
        if (!f || !d || !z || !v) {
#pragma omp atomic write
            fail = 1;
        } else {
#pragma omp for schedule(static)
            for (int64_t l = 0; l < nlines; l++) {
                /* line l: its first element */
                int64_t base;
                if (axis == 0) base = l * len;
                else if (axis == 1) base = (l / n[0]) * n[0] * n[1] + l % n[0];
                else base = l;
                float *p = d2 + base;
                for (int64_t q = 0; q < len; q++) f[q] = p[q * stride];
                edt_line(f, len, s, d, v, z);
                for (int64_t q = 0; q < len; q++) p[q * stride] = (float)d[q];
            }
        }
        free(f);
        free(d);
        free(z);
        free(v);
    }
    return fail ? dlt_err(DLT_ENOMEM, "distance transform: out of memory") : 0;
}

int dlt_edt_sq(const uint8_t *feat, const int64_t n[3], const double spacing[3], float *d2)
{
    int64_t nv = n[0] * n[1] * n[2];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nv; i++) d2[i] = feat[i] ? 0.0f : INFINITY;
    for (int a = 0; a < 3; a++) {
        if (n[a] == 1) continue;
        int rc = edt_pass(d2, n, a, spacing[a]);
        if (rc) return rc;
    }
    return 0;
}

void dlt_surface(const uint8_t *m, const int64_t n[3], uint8_t *surf)
{
    int64_t sx = 1, sy = n[0], sz = n[0] * n[1];
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t k = 0; k < n[2]; k++)
        for (int64_t j = 0; j < n[1]; j++)
            for (int64_t i = 0; i < n[0]; i++) {
                int64_t o = k * sz + j * sy + i * sx;
                if (!m[o]) {
                    surf[o] = 0;
                    continue;
                }
                int inner = i > 0 && m[o - sx] && i < n[0] - 1 && m[o + sx] && j > 0 && m[o - sy] && j < n[1] - 1 &&
                            m[o + sy] && k > 0 && m[o - sz] && k < n[2] - 1 && m[o + sz];
                surf[o] = !inner;
            }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double dlt_percentile_sort(double *x, int64_t n, double p)
{
    if (n <= 0) return NAN;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    double pos = p / 100.0 * (double)(n - 1);
    int64_t k = (int64_t)floor(pos);
    if (k >= n - 1) return x[n - 1];
    double frac = pos - (double)k;
    return frac > 0 ? x[k] + frac * (x[k + 1] - x[k]) : x[k];
}

/* Distances from each voxel of surface sa to the nearest of surface sb
 * (via d2 = EDT of sb), appended to out; returns the sum, and adds to
 * *near the count within tol2 (squared mm; 1e-6 relative slack, so that a
 * distance equal to the tolerance counts whatever float rounding did). */
static double collect(const uint8_t *sa, const float *d2, int64_t nv, double tol2, double *out, int64_t *cnt,
                      int64_t *near)
{
    double sum = 0;
    for (int64_t i = 0; i < nv; i++)
        if (sa[i]) {
            double d = sqrt((double)d2[i]);
            out[(*cnt)++] = d;
            sum += d;
            *near += (double)d2[i] <= tol2 * (1 + 1e-6);
        }
    return sum;
}

int dlt_surface_distances(const uint8_t *a, const uint8_t *b, const int64_t n[3], const double spacing[3],
                          double nsd_tol, double *hd95, double *assd, double *nsd)
{
    if (nsd) *nsd = NAN;
    int64_t nv = n[0] * n[1] * n[2];
    uint8_t *sa = dlt_alloc(nv, 1, "surface"), *sb = dlt_alloc(nv, 1, "surface");
    float *d2 = dlt_alloc(nv, sizeof(float), "distance map");
    double *dist = NULL;
    int rc = 0;
    if (!sa || !sb || !d2) {
        rc = DLT_ENOMEM;
        goto done;
    }
    dlt_surface(a, n, sa);
    dlt_surface(b, n, sb);
    int64_t na = 0, nb = 0;
    for (int64_t i = 0; i < nv; i++) {
        na += sa[i];
        nb += sb[i];
    }
    if (na == 0 || nb == 0) {
        *hd95 = *assd = INFINITY;
        if (nsd && nsd_tol > 0) *nsd = 0;
        goto done;
    }
    dist = dlt_alloc(na + nb, sizeof(double), "surface distances");
    if (!dist) {
        rc = DLT_ENOMEM;
        goto done;
    }
    int64_t cnt = 0, near = 0;
    double tol2 = nsd_tol > 0 ? nsd_tol * nsd_tol : -1;
    if ((rc = dlt_edt_sq(sb, n, spacing, d2)) != 0) goto done;
    double sum_ab = collect(sa, d2, nv, tol2, dist, &cnt, &near);
    if ((rc = dlt_edt_sq(sa, n, spacing, d2)) != 0) goto done;
    double sum_ba = collect(sb, d2, nv, tol2, dist, &cnt, &near);
    *assd = 0.5 * (sum_ab / (double)na + sum_ba / (double)nb);
    *hd95 = dlt_percentile_sort(dist, cnt, 95.0);
    if (nsd && nsd_tol > 0) *nsd = (double)near / (double)(na + nb);
done:
    dlt_free(sa);
    dlt_free(sb);
    dlt_free(d2);
    dlt_free(dist);
    return rc;
}
