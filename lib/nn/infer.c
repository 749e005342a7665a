/* infer.c - sliding-window inference with slab-wise accumulation (see
 * dlt/infer.h). Windows are visited z-start major, so once every window at
 * one z start is accumulated the slices before the next z start are final:
 * they are turned into labels (and normalised probabilities) and their ring
 * slots cleared for the windows to come. */
#include "dlt/infer.h"

#include <math.h>
#include <string.h>

#include "dlt/core.h"

void dlt_infer_config_default(dlt_infer_config *c)
{
    memset(c, 0, sizeof *c);
    c->overlap = 0.5;
    c->blend = DLT_BLEND_MEAN;
    c->sigma_frac = 0.125;
    c->batch = 1;
    c->pad = DLT_INFER_PAD_ZERO;
}

int64_t dlt_infer_starts(int64_t n, int64_t p, double overlap, int64_t *starts)
{
    if (n <= p) {
        if (starts) starts[0] = -((p - n) / 2);
        return 1;
    }
    int64_t s = (int64_t)floor((double)p * (1.0 - overlap));
    if (s < 1) s = 1;
    int64_t k = 0, last = 0;
    for (int64_t a = 0; a + p <= n; a += s) {
        if (starts) starts[k] = a;
        last = a;
        k++;
    }
    if (last + p < n) {
        if (starts) starts[k] = n - p;
        k++;
    }
    return k;
}

static int nflips(int flips)
{
    int k = 1;
    for (int b = 0; b < 3; b++)
        if (flips & (1 << b)) k *= 2;
    return k;
}

/* The i-th subset of the axes in `flips` (i in 0..nflips-1), as a bit mask. */
static int flip_subset(int flips, int i)
{
    int m = 0, j = 0;
    for (int b = 0; b < 3; b++)
        if (flips & (1 << b)) {
            if (i & (1 << j)) m |= 1 << b;
            j++;
        }
    return m;
}

int64_t dlt_infer_count(const dlt_infer_config *c, const int64_t dim[3])
{
    int64_t k = nflips(c->flips);
    for (int a = 0; a < 3; a++) k *= dlt_infer_starts(dim[a], c->window[a], c->overlap, NULL);
    return k;
}

int64_t dlt_infer_work_bytes(const dlt_infer_config *c, const int64_t dim[3])
{
    int64_t ring = dim[2] < c->window[2] ? dim[2] : c->window[2];
    int64_t wv = c->window[0] * c->window[1] * c->window[2];
    return 4 * ((int64_t)c->classes * ring * dim[1] * dim[0] + (int64_t)c->batch * (c->channels + c->classes) * wv);
}

/* Map a coordinate outside [0,n) into it according to the pad mode; -1 = zero. */
static int64_t pad_index(int64_t i, int64_t n, int pad)
{
    if (i >= 0 && i < n) return i;
    if (pad == DLT_INFER_PAD_EDGE) return i < 0 ? 0 : n - 1;
    if (pad == DLT_INFER_PAD_REFLECT) {
        if (n == 1) return 0;
        int64_t period = 2 * (n - 1);
        int64_t j = i % period;
        if (j < 0) j += period;
        return j < n ? j : period - j;
    }
    return -1;
}

typedef struct run {
    const dlt_infer_config *c;
    const float *img;
    int64_t nx, ny, nz, R; /* R: ring slices */
    int64_t wx, wy, wz;
    float *acc;            /* [classes][R][ny][nx] */
    float *gx, *gy, *gz;   /* blend weights per window axis */
    float *sx, *sy, *sz;   /* per-voxel sums of the weights over the starts (normalisers) */
    uint16_t *label;
    float *probs;
    int64_t zdone;         /* first slice not yet emitted */
} run;

static void blend_weights(float *g, int64_t p, int blend, double frac)
{
    double sigma = frac * (double)p, mid = 0.5 * (double)(p - 1);
    for (int64_t i = 0; i < p; i++) {
        if (blend == DLT_BLEND_GAUSSIAN && sigma > 0) {
            double d = ((double)i - mid) / sigma;
            g[i] = (float)exp(-0.5 * d * d);
            if (g[i] < 1e-6f) g[i] = 1e-6f; /* never 0: every covered voxel gets a say */
        } else {
            g[i] = 1.0f;
        }
    }
}

static void axis_sums(float *s, int64_t n, const int64_t *st, int64_t ns, const float *g, int64_t p)
{
    for (int64_t i = 0; i < n; i++) s[i] = 0;
    for (int64_t k = 0; k < ns; k++)
        for (int64_t i = 0; i < p; i++) {
            int64_t v = st[k] + i;
            if (v >= 0 && v < n) s[v] += g[i];
        }
}

/* Copy window (x0,y0,z0) mirrored by `fm` into dst [channels][wz][wy][wx]. */
static void extract(const run *r, int64_t x0, int64_t y0, int64_t z0, int fm, float *dst)
{
    const dlt_infer_config *c = r->c;
    int64_t wv = r->wx * r->wy * r->wz, nv = r->nx * r->ny * r->nz;
#pragma omp parallel for collapse(2) schedule(static)
    for (int ch = 0; ch < c->channels; ch++)
        for (int64_t k = 0; k < r->wz; k++) {
            int64_t kk = (fm & 4) ? r->wz - 1 - k : k;
            int64_t z = pad_index(z0 + kk, r->nz, c->pad);
            for (int64_t j = 0; j < r->wy; j++) {
                int64_t jj = (fm & 2) ? r->wy - 1 - j : j;
                int64_t y = pad_index(y0 + jj, r->ny, c->pad);
                float *d = dst + ch * wv + (k * r->wy + j) * r->wx;
                if (z < 0 || y < 0) {
                    memset(d, 0, sizeof(float) * (size_t)r->wx);
                    continue;
                }
                const float *src = r->img + ch * nv + (z * r->ny + y) * r->nx;
                for (int64_t i = 0; i < r->wx; i++) {
                    int64_t ii = (fm & 1) ? r->wx - 1 - i : i;
                    int64_t x = pad_index(x0 + ii, r->nx, c->pad);
                    d[i] = x < 0 ? 0.0f : src[x];
                }
            }
        }
}

/* acc += weights * probs of window (x0,y0,z0) predicted mirrored by fm. */
static void accumulate(run *r, int64_t x0, int64_t y0, int64_t z0, int fm, const float *p)
{
    const dlt_infer_config *c = r->c;
    int64_t wv = r->wx * r->wy * r->wz, rs = r->R * r->ny * r->nx;
    int64_t i0 = x0 < 0 ? -x0 : 0, i1 = x0 + r->wx > r->nx ? r->nx - x0 : r->wx;
#pragma omp parallel for collapse(2) schedule(static)
    for (int cl = 0; cl < c->classes; cl++)
        for (int64_t k = 0; k < r->wz; k++) {
            int64_t z = z0 + k;
            if (z < 0 || z >= r->nz) continue;
            int64_t kk = (fm & 4) ? r->wz - 1 - k : k;
            for (int64_t j = 0; j < r->wy; j++) {
                int64_t y = y0 + j;
                if (y < 0 || y >= r->ny) continue;
                int64_t jj = (fm & 2) ? r->wy - 1 - j : j;
                float gzy = r->gz[k] * r->gy[j];
                const float *src = p + cl * wv + (kk * r->wy + jj) * r->wx;
                float *a = r->acc + cl * rs + ((z % r->R) * r->ny + y) * r->nx;
                if (fm & 1)
                    for (int64_t i = i0; i < i1; i++) a[x0 + i] += gzy * r->gx[i] * src[r->wx - 1 - i];
                else
                    for (int64_t i = i0; i < i1; i++) a[x0 + i] += gzy * r->gx[i] * src[i];
            }
        }
}

/* Slices [zdone, zend) are final: labels, probabilities, clear their slots. */
static void emit(run *r, int64_t zend, int nf)
{
    const dlt_infer_config *c = r->c;
    int64_t ns = r->ny * r->nx, rs = r->R * ns, nv = ns * r->nz;
    for (int64_t z = r->zdone; z < zend; z++) {
        float *slot = r->acc + (z % r->R) * ns;
#pragma omp parallel for schedule(static)
        for (int64_t y = 0; y < r->ny; y++)
            for (int64_t x = 0; x < r->nx; x++) {
                int64_t v = y * r->nx + x;
                if (r->label) {
                    int best = 0;
                    float bv = slot[v];
                    for (int cl = 1; cl < c->classes; cl++)
                        if (slot[cl * rs + v] > bv) bv = slot[cl * rs + v], best = cl;
                    r->label[z * ns + v] = (uint16_t)best;
                }
                if (r->probs) {
                    float inv = 1.0f / (r->sx[x] * r->sy[y] * r->sz[z] * (float)nf);
                    for (int cl = 0; cl < c->classes; cl++) r->probs[cl * nv + z * ns + v] = slot[cl * rs + v] * inv;
                }
                for (int cl = 0; cl < c->classes; cl++) slot[cl * rs + v] = 0;
            }
    }
    if (zend > r->zdone) r->zdone = zend;
}

int dlt_infer_volume(const dlt_infer_config *c, const float *img, const int64_t dim[3], uint16_t *label,
                     float *probs)
{
    for (int a = 0; a < 3; a++) {
        if (c->window[a] < 1) return dlt_err(DLT_EINVAL, "infer: window must be at least 1 voxel per axis");
        if (dim[a] < 1) return dlt_err(DLT_EINVAL, "infer: empty volume");
    }
    if (!(c->overlap >= 0 && c->overlap < 1)) return dlt_err(DLT_EINVAL, "infer: overlap %g not in [0,1)", c->overlap);
    if (c->batch < 1) return dlt_err(DLT_EINVAL, "infer: batch must be at least 1");
    if (c->channels < 1 || c->classes < 1) return dlt_err(DLT_EINVAL, "infer: channels and classes must be >= 1");
    if (!c->predict) return dlt_err(DLT_EINVAL, "infer: no predict function");
    if (c->flips < 0 || c->flips > 7) return dlt_err(DLT_EINVAL, "infer: flips must be a mask of x=1,y=2,z=4");

    run r = {0};
    r.c = c;
    r.img = img;
    r.nx = dim[0], r.ny = dim[1], r.nz = dim[2];
    r.wx = c->window[0], r.wy = c->window[1], r.wz = c->window[2];
    r.R = r.nz < r.wz ? r.nz : r.wz;
    r.label = label;
    r.probs = probs;
    int64_t ns[3], *st[3] = {0};
    int rc = DLT_ENOMEM;
    int64_t wv = r.wx * r.wy * r.wz;
    float *xb = NULL, *pb = NULL;
    int64_t *items = NULL;
    for (int a = 0; a < 3; a++) {
        ns[a] = dlt_infer_starts(dim[a], c->window[a], c->overlap, NULL);
        if (!(st[a] = dlt_alloc(ns[a], sizeof(int64_t), "window starts"))) goto out;
        dlt_infer_starts(dim[a], c->window[a], c->overlap, st[a]);
    }
    r.gx = dlt_alloc(r.wx, sizeof(float), "blend weights");
    r.gy = dlt_alloc(r.wy, sizeof(float), "blend weights");
    r.gz = dlt_alloc(r.wz, sizeof(float), "blend weights");
    r.sx = dlt_alloc(r.nx, sizeof(float), "blend sums");
    r.sy = dlt_alloc(r.ny, sizeof(float), "blend sums");
    r.sz = dlt_alloc(r.nz, sizeof(float), "blend sums");
    r.acc = dlt_calloc(dlt_mul_checked(dlt_mul_checked(c->classes, r.R), r.ny * r.nx), sizeof(float),
                       "inference accumulator");
    xb = dlt_alloc(dlt_mul_checked((int64_t)c->batch * c->channels, wv), sizeof(float), "window batch");
    pb = dlt_alloc(dlt_mul_checked((int64_t)c->batch * c->classes, wv), sizeof(float), "window probabilities");
    items = dlt_alloc((int64_t)c->batch * 4, sizeof(int64_t), "window batch");
    if (!r.gx || !r.gy || !r.gz || !r.sx || !r.sy || !r.sz || !r.acc || !xb || !pb || !items) goto out;
    blend_weights(r.gx, r.wx, c->blend, c->sigma_frac);
    blend_weights(r.gy, r.wy, c->blend, c->sigma_frac);
    blend_weights(r.gz, r.wz, c->blend, c->sigma_frac);
    axis_sums(r.sx, r.nx, st[0], ns[0], r.gx, r.wx);
    axis_sums(r.sy, r.ny, st[1], ns[1], r.gy, r.wy);
    axis_sums(r.sz, r.nz, st[2], ns[2], r.gz, r.wz);

    int nf = nflips(c->flips);
    int64_t total = ns[0] * ns[1] * ns[2] * nf, done = 0, nb = 0;
    const int64_t win[3] = {r.wx, r.wy, r.wz};
    rc = 0;
    /* Items in order z, y, x, flip; a batch is predicted when full, and
     * accumulated in order, emitting finished slices whenever z moves on. */
    for (int64_t it = 0; it <= total && rc == 0; it++) {
        if (it < total) {
            int64_t q = it;
            int f = (int)(q % nf);
            q /= nf;
            int64_t ix = q % ns[0];
            q /= ns[0];
            int64_t iy = q % ns[1], iz = q / ns[1];
            int64_t *m = items + 4 * nb;
            m[0] = st[0][ix], m[1] = st[1][iy], m[2] = st[2][iz], m[3] = flip_subset(c->flips, f);
            extract(&r, m[0], m[1], m[2], (int)m[3], xb + nb * c->channels * wv);
            nb++;
        }
        if (nb == c->batch || (it == total && nb > 0)) {
            /* A short last batch after full ones is padded with zero windows
             * (results unused): a new batch size would make the executor
             * plan anew and oneDNN create new primitives (JIT), which costs
             * more than the extra windows. */
            int64_t np = nb;
            if (nb < c->batch && done > 0) {
                memset(xb + nb * c->channels * wv, 0, sizeof(float) * (size_t)((c->batch - nb) * c->channels * wv));
                np = c->batch;
            }
            rc = c->predict(c->predict_ctx, xb, np, win, pb);
            if (rc) break;
            for (int64_t b = 0; b < nb; b++) {
                const int64_t *m = items + 4 * b;
                emit(&r, m[2] < 0 ? 0 : m[2], nf);
                accumulate(&r, m[0], m[1], m[2], (int)m[3], pb + b * c->classes * wv);
            }
            done += nb;
            nb = 0;
            if (c->progress) c->progress(c->progress_ctx, done, total);
        }
    }
    if (rc == 0) emit(&r, r.nz, nf);
out:
    for (int a = 0; a < 3; a++) dlt_free(st[a]);
    dlt_free(r.gx), dlt_free(r.gy), dlt_free(r.gz);
    dlt_free(r.sx), dlt_free(r.sy), dlt_free(r.sz);
    dlt_free(r.acc);
    dlt_free(xb), dlt_free(pb), dlt_free(items);
    return rc;
}
