/* normalize_geom.c - resampling (nearest, linear, cubic B-spline), DLTK's
 * crop-or-pad and axis reorientation, on arrays and on volumes
 * (dlt/normalize.h).
 *
 * Resampling on a grid aligned with the input's axes is separable, so it runs
 * as three 1-D passes with precomputed taps: O(voxels * taps) and each pass
 * streams rows, which keeps a 512x512x300 volume to a second or two. */
#include "dlt/core.h"
#include "dlt/normalize.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* ---- 1-D taps ---- */

static int64_t mirror(int64_t k, int64_t n)
{
    if (n == 1) return 0;
    int64_t period = 2 * n - 2;
    k = k < 0 ? -k : k;
    k %= period;
    return k >= n ? period - k : k;
}

/* For each output i: K input indices and weights (K = 1, 2 or 4). */
static int make_taps(int64_t n, int64_t m, double scale, double shift, int interp, int64_t **pidx, float **pw)
{
    int K = interp == DLT_INTERP_BSPLINE ? 4 : interp == DLT_INTERP_LINEAR ? 2 : 1;
    int64_t *idx = dlt_alloc(m * K, sizeof *idx, "resampling taps");
    float *w = dlt_alloc(m * K, sizeof *w, "resampling weights");
    if (!idx || !w) {
        dlt_free(idx);
        dlt_free(w);
        return DLT_ENOMEM;
    }
    for (int64_t i = 0; i < m; i++) {
        double x = shift + scale * (double)i;
        int64_t *ix = idx + i * K;
        float *wx = w + i * K;
        if (K == 1) {
            int64_t k = (int64_t)floor(x + 0.5);
            ix[0] = k < 0 ? 0 : k > n - 1 ? n - 1 : k;
            wx[0] = 1;
        } else if (K == 2) {
            if (x < 0) x = 0;
            if (x > (double)(n - 1)) x = (double)(n - 1);
            int64_t k = (int64_t)floor(x);
            double t = x - (double)k;
            ix[0] = k;
            ix[1] = k + 1 < n ? k + 1 : k;
            wx[0] = (float)(1 - t);
            wx[1] = (float)t;
        } else {
            double f = floor(x), t = x - f;
            int64_t k = (int64_t)f - 1;
            double t2 = t * t, t3 = t2 * t, u = 1 - t;
            wx[0] = (float)(u * u * u / 6);
            wx[1] = (float)((4 - 6 * t2 + 3 * t3) / 6);
            wx[2] = (float)((1 + 3 * t + 3 * t2 - 3 * t3) / 6);
            wx[3] = (float)(t3 / 6);
            for (int j = 0; j < 4; j++) ix[j] = mirror(k + j, n);
        }
    }
    *pidx = idx;
    *pw = w;
    return K;
}

/* Cubic B-spline prefilter (Unser 1993; Thevenaz's causal/anticausal
 * recursion with mirror boundaries) along n rows of L contiguous values,
 * row r at c + r*S; every column is filtered independently. */
static void prefilter_rows(float *c, int64_t n, int64_t S, int64_t L)
{
    if (n < 2) return;
    const double z = sqrt(3.0) - 2.0, lambda = 6.0;
    const int64_t horizon = (int64_t)ceil(log(1e-7) / log(fabs(z)));
    for (int64_t t = 0; t < L; t++) {
        double sum;
        if (horizon < n) {
            double zn = z;
            sum = lambda * c[t];
            for (int64_t k = 1; k < horizon; k++, zn *= z) sum += zn * lambda * c[k * S + t];
        } else {
            double zn = z, iz = 1.0 / z, z2n = pow(z, (double)(n - 1));
            sum = lambda * (c[t] + z2n * c[(n - 1) * S + t]);
            z2n *= z2n * iz;
            for (int64_t k = 1; k <= n - 2; k++) {
                sum += (zn + z2n) * lambda * c[k * S + t];
                zn *= z;
                z2n *= iz;
            }
            sum /= 1.0 - zn * zn;
        }
        /* causal */
        double prev = sum;
        c[t] = (float)sum;
        for (int64_t k = 1; k < n; k++) {
            prev = lambda * c[k * S + t] + z * prev;
            c[k * S + t] = (float)prev;
        }
        /* anticausal */
        double last = (z / (z * z - 1.0)) * (z * (double)c[(n - 2) * S + t] + prev);
        c[(n - 1) * S + t] = (float)last;
        for (int64_t k = n - 2; k >= 0; k--) {
            last = z * (last - (double)c[k * S + t]);
            c[k * S + t] = (float)last;
        }
    }
}

/* Prefilter a [d2][d1][d0] array along `axis`. */
static void prefilter_axis(float *a, const int64_t d[3], int axis)
{
    if (axis == 0) {
#pragma omp parallel for schedule(static)
        for (int64_t l = 0; l < d[1] * d[2]; l++) prefilter_rows(a + l * d[0], d[0], 1, 1);
    } else if (axis == 1) {
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < d[2]; k++) prefilter_rows(a + k * d[0] * d[1], d[1], d[0], d[0]);
    } else {
        int64_t plane = d[0] * d[1], chunk = 256;
#pragma omp parallel for schedule(static)
        for (int64_t t0 = 0; t0 < plane; t0 += chunk)
            prefilter_rows(a + t0, d[2], plane, plane - t0 < chunk ? plane - t0 : chunk);
    }
}

/* One pass: in [d2][d1][d0] -> out with d[axis] replaced by mo. */
static void pass_axis(const float *in, const int64_t d[3], int axis, float *out, int64_t mo, int K,
                      const int64_t *idx, const float *w)
{
    if (axis == 0) {
#pragma omp parallel for schedule(static)
        for (int64_t l = 0; l < d[1] * d[2]; l++) {
            const float *src = in + l * d[0];
            float *dst = out + l * mo;
            for (int64_t i = 0; i < mo; i++) {
                float s = 0;
                for (int k = 0; k < K; k++) s += w[i * K + k] * src[idx[i * K + k]];
                dst[i] = s;
            }
        }
        return;
    }
    /* Rows (axis 1) or planes (axis 2) are combined whole. */
    int64_t row = axis == 1 ? d[0] : d[0] * d[1];
    int64_t outer = axis == 1 ? d[2] : 1;
    int64_t nin = d[axis];
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < mo; j++) {
            float *dst = out + (o * mo + j) * row;
            const float *base = in + o * nin * row;
            const float *s0 = base + idx[j * K] * row;
            float w0 = w[j * K];
            for (int64_t t = 0; t < row; t++) dst[t] = w0 * s0[t];
            for (int k = 1; k < K; k++) {
                const float *sk = base + idx[j * K + k] * row;
                float wk = w[j * K + k];
                for (int64_t t = 0; t < row; t++) dst[t] += wk * sk[t];
            }
        }
}

int dlt_resample_f32(const float *in, const int64_t n[3], float *out, const int64_t m[3],
                     const double scale[3], const double shift[3], int interp)
{
    int64_t d[3] = {n[0], n[1], n[2]};
    float *cur = NULL; /* owned intermediate, or NULL while reading `in` */
    int rc = 0;
    for (int a = 0; a < 3 && !rc; a++) {
        if (m[a] == n[a] && scale[a] == 1.0 && shift[a] == 0.0) continue; /* identity axis */
        int64_t *idx = NULL;
        float *w = NULL;
        int K = make_taps(n[a], m[a], scale[a], shift[a], interp, &idx, &w);
        if (K < 0) { rc = K; break; }
        const float *src = cur ? cur : in;
        float *coef = NULL;
        if (interp == DLT_INTERP_BSPLINE) {
            if (cur) coef = cur;
            else {
                coef = dlt_alloc(d[0] * d[1] * d[2], sizeof(float), "spline coefficients");
                if (!coef) { rc = DLT_ENOMEM; dlt_free(idx); dlt_free(w); break; }
                memcpy(coef, in, (size_t)(d[0] * d[1] * d[2]) * sizeof(float));
            }
            prefilter_axis(coef, d, a);
            src = coef;
        }
        int64_t nd[3] = {d[0], d[1], d[2]};
        nd[a] = m[a];
        float *next = dlt_alloc(nd[0] * nd[1] * nd[2], sizeof(float), "resampled volume");
        if (!next) rc = DLT_ENOMEM;
        else pass_axis(src, d, a, next, m[a], K, idx, w);
        if (coef && coef != cur) dlt_free(coef);
        dlt_free(cur);
        cur = next;
        memcpy(d, nd, sizeof d);
        dlt_free(idx);
        dlt_free(w);
    }
    if (!rc) memcpy(out, cur ? cur : in, (size_t)(m[0] * m[1] * m[2]) * sizeof(float));
    dlt_free(cur);
    return rc;
}

int dlt_resample_u16(const uint16_t *in, const int64_t n[3], uint16_t *out, const int64_t m[3],
                     const double scale[3], const double shift[3])
{
    int64_t *ix[3] = {NULL, NULL, NULL};
    float *w[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int a = 0; a < 3; a++)
        if (make_taps(n[a], m[a], scale[a], shift[a], DLT_INTERP_NEAREST, &ix[a], &w[a]) < 0) rc = DLT_ENOMEM;
    if (!rc) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int64_t k = 0; k < m[2]; k++)
            for (int64_t j = 0; j < m[1]; j++) {
                const uint16_t *src = in + (ix[2][k] * n[1] + ix[1][j]) * n[0];
                uint16_t *dst = out + (k * m[1] + j) * m[0];
                for (int64_t i = 0; i < m[0]; i++) dst[i] = src[ix[0][i]];
            }
    }
    for (int a = 0; a < 3; a++) {
        dlt_free(ix[a]);
        dlt_free(w[a]);
    }
    return rc;
}

void dlt_resample_grid(const int64_t n[3], const double spacing[3], const double target[3], int64_t m[3],
                       double scale[3], double shift[3])
{
    for (int a = 0; a < 3; a++) {
        double extent = (double)n[a] * spacing[a];
        int64_t mm = (int64_t)floor(extent / target[a] + 0.5);
        m[a] = mm < 1 ? 1 : mm;
        scale[a] = target[a] / spacing[a];
        /* Same centre: (n-1)/2 in the old index equals (m-1)/2 in the new. */
        shift[a] = 0.5 * (double)(n[a] - 1) - scale[a] * 0.5 * (double)(m[a] - 1);
        if (m[a] == n[a] && fabs(scale[a] - 1.0) < 1e-9) {
            scale[a] = 1.0;
            shift[a] = 0.0;
        }
    }
}

/* ---- crop or pad ---- */

void dlt_crop_pad_offsets(const int64_t n[3], const int64_t t[3], int64_t off[3])
{
    for (int a = 0; a < 3; a++) off[a] = n[a] >= t[a] ? (n[a] - t[a]) / 2 : -((t[a] - n[a]) / 2);
}

#define CROP_PAD(T)                                                                                  \
    do {                                                                                             \
        _Pragma("omp parallel for collapse(2) schedule(static)") for (int64_t k = 0; k < m[2]; k++)  \
            for (int64_t j = 0; j < m[1]; j++) {                                                     \
                T *dst = out + (k * m[1] + j) * m[0];                                                \
                int64_t sk = k + off[2], sj = j + off[1];                                            \
                if (sk < 0 || sk >= n[2] || sj < 0 || sj >= n[1]) {                                  \
                    for (int64_t i = 0; i < m[0]; i++) dst[i] = pad;                                 \
                    continue;                                                                        \
                }                                                                                    \
                const T *src = in + (sk * n[1] + sj) * n[0];                                         \
                for (int64_t i = 0; i < m[0]; i++) {                                                 \
                    int64_t si = i + off[0];                                                         \
                    dst[i] = si >= 0 && si < n[0] ? src[si] : pad;                                   \
                }                                                                                    \
            }                                                                                        \
    } while (0)

void dlt_crop_pad_f32(const float *in, const int64_t n[3], float *out, const int64_t m[3],
                      const int64_t off[3], float pad)
{
    CROP_PAD(float);
}

void dlt_crop_pad_u16(const uint16_t *in, const int64_t n[3], uint16_t *out, const int64_t m[3],
                      const int64_t off[3], uint16_t pad)
{
    CROP_PAD(uint16_t);
}

/* ---- reorientation ---- */

/* world[i], sign[i]: the RAS world axis voxel axis i points along most. */
static void axis_assign(const double A[4][4], int world[3], int sign[3])
{
    double c[3][3];
    for (int i = 0; i < 3; i++) {
        double nrm = sqrt(A[0][i] * A[0][i] + A[1][i] * A[1][i] + A[2][i] * A[2][i]);
        if (nrm == 0) nrm = 1;
        for (int w = 0; w < 3; w++) c[w][i] = A[w][i] / nrm;
    }
    int used_w[3] = {0, 0, 0}, used_i[3] = {0, 0, 0};
    for (int round = 0; round < 3; round++) {
        int bw = -1, bi = -1;
        double best = -1;
        for (int i = 0; i < 3; i++)
            for (int w = 0; w < 3; w++)
                if (!used_i[i] && !used_w[w] && fabs(c[w][i]) > best) {
                    best = fabs(c[w][i]);
                    bw = w;
                    bi = i;
                }
        used_i[bi] = used_w[bw] = 1;
        world[bi] = bw;
        sign[bi] = c[bw][bi] < 0 ? -1 : 1;
    }
}

void dlt_affine_orientation(const double affine[4][4], char code[4])
{
    int world[3], sign[3];
    axis_assign(affine, world, sign);
    for (int i = 0; i < 3; i++) code[i] = (sign[i] > 0 ? "RAS" : "LPI")[world[i]];
    code[3] = 0;
}

int dlt_reorient_plan(const double affine[4][4], const int64_t n[3], const char *code, dlt_reorient *r)
{
    int tw[3], ts[3], seen[3] = {0, 0, 0};
    if (!code || strlen(code) != 3) return dlt_err(DLT_EINVAL, "orientation code must have 3 letters, got '%s'", code ? code : "");
    for (int j = 0; j < 3; j++) {
        /* toupper, not c & ~0x20: that maps ' ' to NUL, which strchr finds
         * (the fuzzer's "reorient= AS") */
        int c = toupper((unsigned char)code[j]);
        const char *p = c ? strchr("RASLPI", c) : NULL;
        if (!p) return dlt_err(DLT_EINVAL, "orientation code '%s': '%c' is not one of R L A P S I", code, code[j]);
        int k = (int)(p - "RASLPI");
        tw[j] = k % 3;
        ts[j] = k < 3 ? 1 : -1;
        if (seen[tw[j]]++) return dlt_err(DLT_EINVAL, "orientation code '%s' names the same axis twice", code);
    }
    int world[3], sign[3];
    axis_assign(affine, world, sign);
    memset(r, 0, sizeof *r);
    for (int j = 0; j < 3; j++) {
        int i = 0;
        while (world[i] != tw[j]) i++;
        r->perm[j] = i;
        r->flip[j] = sign[i] != ts[j];
        r->m[j] = n[i];
    }
    for (int row = 0; row < 4; row++) {
        double t = affine[row][3];
        for (int j = 0; j < 3; j++) {
            double col = affine[row][r->perm[j]];
            r->affine[row][j] = (r->flip[j] ? -col : col) + 0.0; /* never -0 */
            if (r->flip[j]) t += (double)(n[r->perm[j]] - 1) * col;
        }
        r->affine[row][3] = t;
    }
    return 0;
}

#define REORIENT(T)                                                                   \
    do {                                                                              \
        int64_t st[3] = {1, n[0], n[0] * n[1]}, s[3], base = 0;                       \
        for (int j = 0; j < 3; j++) {                                                 \
            int64_t sti = st[r->perm[j]];                                             \
            s[j] = r->flip[j] ? -sti : sti;                                           \
            if (r->flip[j]) base += (n[r->perm[j]] - 1) * sti;                        \
        }                                                                             \
        const int64_t *m = r->m;                                                      \
        _Pragma("omp parallel for collapse(2) schedule(static)") for (int64_t k = 0; k < m[2]; k++) \
            for (int64_t j = 0; j < m[1]; j++) {                                      \
                const T *src = in + base + k * s[2] + j * s[1];                       \
                T *dst = out + (k * m[1] + j) * m[0];                                 \
                for (int64_t i = 0; i < m[0]; i++) dst[i] = src[i * s[0]];            \
            }                                                                         \
    } while (0)

void dlt_reorient_f32(const float *in, const int64_t n[3], float *out, const dlt_reorient *r) { REORIENT(float); }
void dlt_reorient_u16(const uint16_t *in, const int64_t n[3], uint16_t *out, const dlt_reorient *r) { REORIENT(uint16_t); }

/* ---- on volumes ---- */

/* Install new data with new dims and affine: set_geometry reallocates, so the
 * result is built aside first and copied in. Takes ownership of `buf`. */
static int install(dlt_volume *v, void *buf, const int64_t m[3], const double affine[4][4])
{
    int64_t nc = v->label ? 1 : v->nc;
    int rc = dlt_volume_set_geometry(v, m[0], m[1], m[2], affine);
    if (!rc) {
        size_t bytes = (size_t)(m[0] * m[1] * m[2] * nc) * (v->label ? sizeof(uint16_t) : sizeof(float));
        memcpy(v->label ? (void *)v->label : (void *)v->data, buf, bytes);
    }
    dlt_free(buf);
    return rc;
}

static void *alloc_like(const dlt_volume *v, const int64_t m[3])
{
    int64_t nc = v->label ? 1 : v->nc;
    int64_t n = dlt_mul_checked(dlt_mul_checked(dlt_mul_checked(m[0], m[1]), m[2]), nc);
    if (n < 0) {
        dlt_err(DLT_ENOMEM, "output volume size overflows");
        return NULL;
    }
    return dlt_alloc(n, v->label ? sizeof(uint16_t) : sizeof(float), "output volume");
}

int dlt_volume_resample(dlt_volume *v, const double spacing[3], int interp)
{
    int64_t n[3] = {v->nx, v->ny, v->nz}, m[3];
    double scale[3], shift[3];
    dlt_resample_grid(n, v->spacing, spacing, m, scale, shift);
    void *buf = alloc_like(v, m);
    if (!buf) return DLT_ENOMEM;
    int rc = 0;
    if (v->label) rc = dlt_resample_u16(v->label, n, buf, m, scale, shift);
    else
        for (int64_t c = 0; c < v->nc && !rc; c++)
            rc = dlt_resample_f32(v->data + c * n[0] * n[1] * n[2], n, (float *)buf + c * m[0] * m[1] * m[2], m, scale,
                                  shift, interp);
    if (rc) {
        dlt_free(buf);
        return rc;
    }
    double A[4][4];
    for (int row = 0; row < 4; row++) {
        double t = v->affine[row][3];
        for (int a = 0; a < 3; a++) {
            A[row][a] = v->affine[row][a] * scale[a];
            t += v->affine[row][a] * shift[a];
        }
        A[row][3] = t;
    }
    return install(v, buf, m, A); /* spacing follows from the new affine */
}

int dlt_volume_crop_pad(dlt_volume *v, const int64_t size[3])
{
    int64_t n[3] = {v->nx, v->ny, v->nz}, m[3] = {size[0], size[1], size[2]}, off[3];
    dlt_crop_pad_offsets(n, m, off);
    void *buf = alloc_like(v, m);
    if (!buf) return DLT_ENOMEM;
    if (v->label) dlt_crop_pad_u16(v->label, n, buf, m, off, 0);
    else
        for (int64_t c = 0; c < v->nc; c++)
            dlt_crop_pad_f32(v->data + c * n[0] * n[1] * n[2], n, (float *)buf + c * m[0] * m[1] * m[2], m, off, 0.0f);
    double A[4][4];
    memcpy(A, v->affine, sizeof A);
    for (int row = 0; row < 3; row++)
        for (int a = 0; a < 3; a++) A[row][3] += v->affine[row][a] * (double)off[a];
    return install(v, buf, m, A);
}

int dlt_volume_reorient(dlt_volume *v, const char *code)
{
    int64_t n[3] = {v->nx, v->ny, v->nz};
    dlt_reorient r;
    int rc = dlt_reorient_plan(v->affine, n, code, &r);
    if (rc) return rc;
    if (r.perm[0] == 0 && r.perm[1] == 1 && r.perm[2] == 2 && !r.flip[0] && !r.flip[1] && !r.flip[2])
        return 0; /* already so: keep the header bit-exact */
    void *buf = alloc_like(v, r.m);
    if (!buf) return DLT_ENOMEM;
    if (v->label) dlt_reorient_u16(v->label, n, buf, &r);
    else
        for (int64_t c = 0; c < v->nc; c++)
            dlt_reorient_f32(v->data + c * n[0] * n[1] * n[2], n, (float *)buf + c * r.m[0] * r.m[1] * r.m[2], &r);
    return install(v, buf, r.m, r.affine);
}
