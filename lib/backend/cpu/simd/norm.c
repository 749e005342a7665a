/* backend/cpu/simd/norm.c - batch/instance normalisation with the fused activation,
 * and the stand-alone activations, as own OpenMP loops over the blocked
 * layout (B = 8 or 16 channel lanes innermost, so every inner loop is one
 * AVX2 or AVX-512 vector wide); compiled once per ISA (backend/cpu/fast_kern.h).
 *
 * Statistics: the work is cut into items (sample, channel block, spatial
 * chunk); each item sums in double around a per-channel shift (the first
 * value of its group), the items are then combined in a fixed order, so the
 * result does not depend on the thread count. One pass gives mean and
 * variance: with the shift, sum of squares minus square of sum loses nothing
 * that matters in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast.h"


#define INL static inline __attribute__((always_inline))

/* Items: per (n, cb) `nch` chunks of `len` voxels. */
typedef struct items {
    int64_t nch, len, count;
} items;

static items items_make(const fast_lay *l, int nthr)
{
    /* chunks of a fixed size, not a share per thread: the summation order,
     * and so the result, does not depend on the thread count */
    items it;
    (void)nthr;
    it.len = 2048;
    it.nch = (l->s + it.len - 1) / it.len;
    it.count = l->n * l->cb * it.nch;
    return it;
}

static float act_f(int act, float a, float z)
{
    switch (act) {
    case DLT_ACT_RELU: return z > 0 ? z : 0;
    case DLT_ACT_LEAKY: return z > 0 ? z : a * z;
    case DLT_ACT_RELU6: return z < 0 ? 0 : (z > 6 ? 6 : z);
    default: return z;
    }
}

/* y = act(x*sc + sh) per lane, over one item's span; act switched outside
 * the loop so each case vectorises. */
INL void apply_k(int act, float alpha, const float *x, float *y, int64_t nv, const float *sc, const float *sh, const int B)
{
    switch (act) {
    case DLT_ACT_RELU:
        for (int64_t i = 0; i < nv; i++)
#pragma omp simd
            for (int l = 0; l < B; l++) {
                float z = x[i * B + l] * sc[l] + sh[l];
                y[i * B + l] = z > 0 ? z : 0;
            }
        break;
    case DLT_ACT_LEAKY:
        for (int64_t i = 0; i < nv; i++)
#pragma omp simd
            for (int l = 0; l < B; l++) {
                float z = x[i * B + l] * sc[l] + sh[l];
                y[i * B + l] = z > 0 ? z : alpha * z;
            }
        break;
    case DLT_ACT_RELU6:
        for (int64_t i = 0; i < nv; i++)
#pragma omp simd
            for (int l = 0; l < B; l++) {
                float z = x[i * B + l] * sc[l] + sh[l];
                z = z < 0 ? 0 : z;
                y[i * B + l] = z > 6 ? 6 : z;
            }
        break;
    default:
        for (int64_t i = 0; i < nv; i++)
#pragma omp simd
            for (int l = 0; l < B; l++) y[i * B + l] = x[i * B + l] * sc[l] + sh[l];
    }
}

/* Sums run in float over runs of RUN voxels (exact enough around the
 * shift), and in double across runs. */
#define RUN 256

/* s1 += sum(x - k), s2 += sum((x - k)^2) per lane */
INL void sums_k(const float *x, int64_t nv, const float *k, double *s1, double *s2, const int B)
{
    for (int64_t i0 = 0; i0 < nv; i0 += RUN) {
        const int64_t i1 = i0 + RUN < nv ? i0 + RUN : nv;
        float a[16] = {0}, b[16] = {0};
        for (int64_t i = i0; i < i1; i++)
#pragma omp simd
            for (int l = 0; l < B; l++) {
                const float v = x[i * B + l] - k[l];
                a[l] += v;
                b[l] += v * v;
            }
        for (int l = 0; l < B; l++) s1[l] += a[l], s2[l] += b[l];
    }
}

INL float dact_y(int act, float alpha, float y)
{
    return act == DLT_ACT_RELU    ? (y > 0 ? 1.f : 0.f)
           : act == DLT_ACT_LEAKY ? (y > 0 ? 1.f : alpha)
           : act == DLT_ACT_RELU6 ? (y > 0 && y < 6 ? 1.f : 0.f)
                                  : 1.f;
}

/* dz = dy * act'(y); s1 += dz, s2 += dz * (x - mean) per lane (times rstd later) */
INL void bsums_k(const int act, float alpha, const float *x, const float *y, const float *dy, int64_t nv, const float *mu,
               double *s1, double *s2, const int B)
{
    for (int64_t i0 = 0; i0 < nv; i0 += RUN) {
        const int64_t i1 = i0 + RUN < nv ? i0 + RUN : nv;
        float a[16] = {0}, b[16] = {0};
        for (int64_t i = i0; i < i1; i++)
#pragma omp simd
            for (int l = 0; l < B; l++) {
                const float dz = dy[i * B + l] * dact_y(act, alpha, y[i * B + l]);
                a[l] += dz;
                b[l] += dz * (x[i * B + l] - mu[l]);
            }
        for (int l = 0; l < B; l++) s1[l] += a[l], s2[l] += b[l];
    }
}

/* dx (+)= A*dz + Bc*x + Cc per lane */
INL void bapply_k(const int act, float alpha, const float *x, const float *y, const float *dy, float *dx, int64_t nv,
                const float *A, const float *Bc, const float *Cc, int accum, const int B)
{
    if (accum)
        for (int64_t i = 0; i < nv; i++)
#pragma omp simd
            for (int l = 0; l < B; l++)
                dx[i * B + l] +=
                    A[l] * (dy[i * B + l] * dact_y(act, alpha, y[i * B + l])) + Bc[l] * x[i * B + l] + Cc[l];
    else
        for (int64_t i = 0; i < nv; i++)
#pragma omp simd
            for (int l = 0; l < B; l++)
                dx[i * B + l] =
                    A[l] * (dy[i * B + l] * dact_y(act, alpha, y[i * B + l])) + Bc[l] * x[i * B + l] + Cc[l];
}

/* The lane loops above on GCC vectors of 8 or 16 lanes: GCC vectorised
 * the loops on AVX-512 but left them scalar on AVX2 (2-4x slower). Same
 * arithmetic in the same order; the activations by masks. The loops
 * above stay for plain (1-lane) tensors. */
#define NORM_LANES(W)                                                                                                  \
    typedef float vf##W __attribute__((vector_size(W * 4)));                                                           \
    typedef int vi##W __attribute__((vector_size(W * 4)));                                                             \
    INL vf##W ld##W(const float *p) { return *(const vf##W *)p; }                                                      \
    INL vf##W sel##W(vi##W m, vf##W a, vf##W b) { return (vf##W)(((vi##W)a & m) | ((vi##W)b & ~m)); }                 \
    INL void apply##W(const int act, float alpha, const float *x, float *y, int64_t nv, const float *sc,             \
                      const float *sh)                                                                                 \
    {                                                                                                                  \
        vf##W a, b;                                                                                                    \
        const vf##W zero = {0};                                                                                        \
        memcpy(&a, sc, sizeof a), memcpy(&b, sh, sizeof b);                                                            \
        for (int64_t i = 0; i < nv; i++) {                                                                             \
            vf##W z = ld##W(x + i * W) * a + b;                                                                        \
            switch (act) {                                                                                             \
            case DLT_ACT_RELU: z = sel##W(z > zero, z, zero); break;                                                   \
            case DLT_ACT_LEAKY: z = sel##W(z > zero, z, alpha * z); break;                                             \
            case DLT_ACT_RELU6: z = sel##W(z < zero, zero, z), z = sel##W(z > zero + 6.f, zero + 6.f, z); break;      \
            default: break;                                                                                            \
            }                                                                                                          \
            *(vf##W *)(y + i * W) = z;                                                                                 \
        }                                                                                                              \
    }                                                                                                                  \
    INL void sums##W(const float *x, int64_t nv, const float *k, double *s1, double *s2)                              \
    {                                                                                                                  \
        vf##W kv;                                                                                                      \
        memcpy(&kv, k, sizeof kv);                                                                                     \
        for (int64_t i0 = 0; i0 < nv; i0 += RUN) {                                                                     \
            const int64_t i1 = i0 + RUN < nv ? i0 + RUN : nv;                                                          \
            vf##W a = {0}, b = {0};                                                                                    \
            for (int64_t i = i0; i < i1; i++) {                                                                        \
                const vf##W v = ld##W(x + i * W) - kv;                                                                 \
                a += v;                                                                                                \
                b += v * v;                                                                                            \
            }                                                                                                          \
            for (int l = 0; l < W; l++) s1[l] += a[l], s2[l] += b[l];                                                  \
        }                                                                                                              \
    }                                                                                                                  \
    INL vf##W dz##W(const int act, float alpha, vf##W dy, vf##W y)                                                     \
    {                                                                                                                  \
        const vf##W zero = {0};                                                                                        \
        vi##W m;                                                                                                       \
        switch (act) {                                                                                                 \
        case DLT_ACT_RELU: m = y > zero; return (vf##W)((vi##W)dy & m);                                                \
        case DLT_ACT_LEAKY: m = y > zero; return (vf##W)(((vi##W)dy & m) | ((vi##W)(dy * alpha) & ~m));                \
        case DLT_ACT_RELU6: m = (y > zero) & (y < zero + 6.f); return (vf##W)((vi##W)dy & m);                          \
        default: return dy;                                                                                            \
        }                                                                                                              \
    }                                                                                                                  \
    INL void bsums##W(const int act, float alpha, const float *x, const float *y, const float *dy, int64_t nv,        \
                      const float *mu, double *s1, double *s2)                                                         \
    {                                                                                                                  \
        vf##W mv;                                                                                                      \
        memcpy(&mv, mu, sizeof mv);                                                                                    \
        for (int64_t i0 = 0; i0 < nv; i0 += RUN) {                                                                     \
            const int64_t i1 = i0 + RUN < nv ? i0 + RUN : nv;                                                          \
            vf##W a = {0}, b = {0};                                                                                    \
            for (int64_t i = i0; i < i1; i++) {                                                                        \
                const vf##W d = dz##W(act, alpha, ld##W(dy + i * W), ld##W(y + i * W));                                \
                a += d;                                                                                                \
                b += d * (ld##W(x + i * W) - mv);                                                                      \
            }                                                                                                          \
            for (int l = 0; l < W; l++) s1[l] += a[l], s2[l] += b[l];                                                  \
        }                                                                                                              \
    }                                                                                                                  \
    INL void bapply##W(const int act, float alpha, const float *x, const float *y, const float *dy, float *dx,       \
                       int64_t nv, const float *A, const float *Bc, const float *Cc, int accum)                        \
    {                                                                                                                  \
        vf##W av, bv, cv;                                                                                              \
        memcpy(&av, A, sizeof av), memcpy(&bv, Bc, sizeof bv), memcpy(&cv, Cc, sizeof cv);                             \
        for (int64_t i = 0; i < nv; i++) {                                                                             \
            const vf##W d = dz##W(act, alpha, ld##W(dy + i * W), ld##W(y + i * W));                                    \
            const vf##W v = av * d + bv * ld##W(x + i * W) + cv;                                                       \
            *(vf##W *)(dx + i * W) = accum ? ld##W(dx + i * W) + v : v;                                                \
        }                                                                                                              \
    }
NORM_LANES(8)
NORM_LANES(16)

/* act switched outside the loops (as apply does), then the lanes */
#define ACT_SWITCH(act, f, ...)                                                                                        \
    switch (act) {                                                                                                     \
    case DLT_ACT_RELU: f(DLT_ACT_RELU, __VA_ARGS__); break;                                                            \
    case DLT_ACT_LEAKY: f(DLT_ACT_LEAKY, __VA_ARGS__); break;                                                          \
    case DLT_ACT_RELU6: f(DLT_ACT_RELU6, __VA_ARGS__); break;                                                          \
    default: f(DLT_ACT_NONE, __VA_ARGS__);                                                                             \
    }

INL void apply(int act, float alpha, const float *x, float *y, int64_t nv, const float *sc, const float *sh, const int B)
{
    if (B == 16) ACT_SWITCH(act, apply16, alpha, x, y, nv, sc, sh)
    else if (B == 8) ACT_SWITCH(act, apply8, alpha, x, y, nv, sc, sh)
    else apply_k(act, alpha, x, y, nv, sc, sh, B);
}

INL void sums(const float *x, int64_t nv, const float *k, double *s1, double *s2, const int B)
{
    if (B == 16) sums16(x, nv, k, s1, s2);
    else if (B == 8) sums8(x, nv, k, s1, s2);
    else sums_k(x, nv, k, s1, s2, B);
}

INL void bsums(int act, float alpha, const float *x, const float *y, const float *dy, int64_t nv, const float *mu,
               double *s1, double *s2, const int B)
{
    if (B == 16) ACT_SWITCH(act, bsums16, alpha, x, y, dy, nv, mu, s1, s2)
    else if (B == 8) ACT_SWITCH(act, bsums8, alpha, x, y, dy, nv, mu, s1, s2)
    else bsums_k(act, alpha, x, y, dy, nv, mu, s1, s2, B);
}

INL void bapply(int act, float alpha, const float *x, const float *y, const float *dy, float *dx, int64_t nv,
                const float *A, const float *Bc, const float *Cc, int accum, const int B)
{
    if (B == 16) ACT_SWITCH(act, bapply16, alpha, x, y, dy, dx, nv, A, Bc, Cc, accum)
    else if (B == 8) ACT_SWITCH(act, bapply8, alpha, x, y, dy, dx, nv, A, Bc, Cc, accum)
    else bapply_k(act, alpha, x, y, dy, dx, nv, A, Bc, Cc, accum, B);
}

static const float *vec(const dlt_tensor *t) { return t ? (const float *)t->data : NULL; }

/* The loops read activations in this backend's blocked or plain layout,
 * all operands alike; anything else goes to the reference (the front's
 * fallback). */
static int layout_ok(const dlt_tensor *x, const dlt_tensor *y)
{
    return x->fmt != FF_OPAQUE && x->fmt == y->fmt;
}

int FAST_K(fast_norm_fwd)(dlt_backend *be, const dlt_norm_desc *nd, int training, const dlt_tensor *x,
                  const dlt_tensor *gamma, const dlt_tensor *beta, dlt_tensor *rm, dlt_tensor *rv, dlt_tensor *sm,
                  dlt_tensor *sr, dlt_tensor *y)
{
    fast_ctx *cx = FAST_CTX(be);
    const int inst = nd->kind == DLT_NORM_INSTANCE;
    if (!layout_ok(x, y)) return dlt_err(DLT_EUNSUP, "norm_fwd: operands in another layout");
    int rc;
    const fast_lay l = fast_lay_of(x);
    const int64_t B = l.b, NG = inst ? l.n : 1; /* statistic groups per channel */
    const int stats = training || inst;
    /* per (group, channel) scale and shift, padded to whole blocks */
    float *sc = calloc((size_t)(NG * l.cb * B * 2), sizeof(float)), *sh = sc ? sc + NG * l.cb * B : NULL;
    if (!sc) return dlt_err(DLT_ENOMEM, "cpu: out of memory");
    const float *xd = x->data;
    const float *ga = nd->affine ? vec(gamma) : NULL, *bt = nd->affine ? vec(beta) : NULL;
    const items it = items_make(&l, cx->nthr);
    if (stats) {
        double *part = calloc((size_t)(it.count * 2 * B), sizeof(double));
        float *kshift = malloc(sizeof(float) * (size_t)(l.n * l.cb * B));
        if (!part || !kshift) {
            free(part), free(kshift), free(sc);
            return dlt_err(DLT_ENOMEM, "cpu: out of memory");
        }
        for (int64_t n = 0; n < l.n; n++)
            for (int64_t cb = 0; cb < l.cb; cb++)
                for (int64_t q = 0; q < B; q++) /* shift: the group's first value */
                    kshift[(n * l.cb + cb) * B + q] = xd[((inst ? n : 0) * l.cb + cb) * l.s * B + q];
#pragma omp parallel for num_threads(cx->nthr) schedule(static)
        for (int64_t i = 0; i < it.count; i++) {
            const int64_t ncb = i / it.nch, j = i % it.nch, s0 = j * it.len;
            const int64_t s1 = s0 + it.len < l.s ? s0 + it.len : l.s;
            if (s1 <= s0) continue;
            const float *xp = xd + (ncb * l.s + s0) * B;
            FAST_BSWITCH(B, sums(xp, s1 - s0, kshift + ncb * B, part + i * 2 * B, part + i * 2 * B + B, B_));
        }
        float *smd = sm ? sm->data : NULL, *srd = sr ? sr->data : NULL;
        float *rmd = rm ? rm->data : NULL, *rvd = rv ? rv->data : NULL;
        /* per (group, channel): count, mean, variance */
        const int64_t ng = NG * l.c;
        double *cnt = malloc(sizeof(double) * (size_t)(3 * ng)), *mu = cnt ? cnt + ng : NULL, *va = mu ? mu + ng : NULL;
        if (!cnt) {
            free(part), free(kshift), free(sc);
            return dlt_err(DLT_ENOMEM, "cpu: out of memory");
        }
        for (int64_t g = 0; g < NG; g++)
            for (int64_t c = 0; c < l.c; c++) {
                const int64_t cb = c / B, q = c % B, gi = g * l.c + c;
                double s1 = 0, s2 = 0;
                for (int64_t n = inst ? g : 0; n < (inst ? g + 1 : l.n); n++)
                    for (int64_t j = 0; j < it.nch; j++) {
                        const double *pp = part + ((n * l.cb + cb) * it.nch + j) * 2 * B;
                        s1 += pp[q], s2 += pp[B + q];
                    }
                const double k = kshift[(g * l.cb + cb) * B + q]; /* batch norm: g = 0, sample 0's shift */
                const double M = (double)(inst ? l.s : l.n * l.s), m1 = s1 / M;
                double var = s2 / M - m1 * m1;
                cnt[gi] = M, mu[gi] = k + m1, va[gi] = var < 0 ? 0 : var;
            }
        free(part), free(kshift);
        if (!inst && training && be->reduce.sum) { /* synchronised batch norm */
            for (int64_t c = 0; c < l.c; c++) va[c] *= cnt[c];
            if ((rc = dlt_reduce_moments(&be->reduce, l.c, cnt, mu, va))) {
                free(cnt), free(sc);
                return rc;
            }
            for (int64_t c = 0; c < l.c; c++) va[c] /= cnt[c];
        }
        for (int64_t g = 0; g < NG; g++)
            for (int64_t c = 0; c < l.c; c++) {
                const int64_t cb = c / B, q = c % B, gi = g * l.c + c;
                const double M = cnt[gi], var = va[gi], mean = mu[gi], rstd = 1.0 / sqrt(var + (double)nd->eps);
                if (smd) smd[gi] = (float)mean;
                if (srd) srd[gi] = (float)rstd;
                if (!inst && training && rmd && rvd) {
                    const double mo = nd->momentum, unb = M > 1 ? var * M / (M - 1) : var;
                    rmd[c] = (float)(mo * rmd[c] + (1 - mo) * mean);
                    rvd[c] = (float)(mo * rvd[c] + (1 - mo) * unb);
                }
                const double a = (ga ? ga[c] : 1.0) * rstd;
                sc[(g * l.cb + cb) * B + q] = (float)a;
                sh[(g * l.cb + cb) * B + q] = (float)((bt ? bt[c] : 0.0) - mean * a);
            }
        free(cnt);
    } else {
        const float *rmd = rm->data, *rvd = rv->data;
        for (int64_t c = 0; c < l.c; c++) {
            const double rstd = 1.0 / sqrt((double)rvd[c] + (double)nd->eps), a = (ga ? ga[c] : 1.0) * rstd;
            sc[c] = (float)a;
            sh[c] = (float)((bt ? bt[c] : 0.0) - rmd[c] * a);
        }
    }
    float *yd = y->data;
#pragma omp parallel for num_threads(cx->nthr) schedule(static)
    for (int64_t i = 0; i < it.count; i++) {
        const int64_t ncb = i / it.nch, j = i % it.nch, s0 = j * it.len;
        const int64_t s1 = s0 + it.len < l.s ? s0 + it.len : l.s;
        if (s1 <= s0) continue;
        const int64_t n = ncb / l.cb, cb = ncb % l.cb, g = inst ? n : 0;
        const float *a = sc + (g * l.cb + cb) * B, *b = sh + (g * l.cb + cb) * B;
        const int64_t o = (ncb * l.s + s0) * B;
        FAST_BSWITCH(B, apply(nd->act, nd->alpha, xd + o, yd + o, s1 - s0, a, b, B_));
    }
    free(sc);
    return 0;
}

int FAST_K(fast_norm_bwd)(dlt_backend *be, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                  const dlt_tensor *dy, const dlt_tensor *gamma, const dlt_tensor *sm, const dlt_tensor *sr,
                  dlt_tensor *dx, int accum, dlt_tensor *dgamma, dlt_tensor *dbeta)
{
    fast_ctx *cx = FAST_CTX(be);
    const int inst = nd->kind == DLT_NORM_INSTANCE;
    if (!layout_ok(x, y) || !layout_ok(x, dy) || !layout_ok(x, dx))
        return dlt_err(DLT_EUNSUP, "norm_bwd: operands in another layout");
    int rc;
    const fast_lay l = fast_lay_of(x);
    const int64_t B = l.b, NG = inst ? l.n : 1;
    const items it = items_make(&l, cx->nthr);
    double *part = calloc((size_t)(it.count * 2 * B), sizeof(double));
    float *mu = calloc((size_t)(NG * l.cb * B * 4), sizeof(float));
    if (!part || !mu) {
        free(part), free(mu);
        return dlt_err(DLT_ENOMEM, "cpu: out of memory");
    }
    float *A = mu + NG * l.cb * B, *Bc = A + NG * l.cb * B, *Cc = Bc + NG * l.cb * B;
    const float *smd = sm->data, *srd = sr->data, *ga = nd->affine ? vec(gamma) : NULL;
    for (int64_t g = 0; g < NG; g++)
        for (int64_t c = 0; c < l.c; c++) mu[(g * l.cb + c / B) * B + c % B] = smd[inst ? g * l.c + c : c];
    const float *xd = x->data, *yd = y->data, *gd = dy->data;
#pragma omp parallel for num_threads(cx->nthr) schedule(static)
    for (int64_t i = 0; i < it.count; i++) {
        const int64_t ncb = i / it.nch, j = i % it.nch, s0 = j * it.len;
        const int64_t s1 = s0 + it.len < l.s ? s0 + it.len : l.s;
        if (s1 <= s0) continue;
        const int64_t n = ncb / l.cb, cb = ncb % l.cb, g = inst ? n : 0;
        const int64_t o = (ncb * l.s + s0) * B;
        const float *m = mu + (g * l.cb + cb) * B;
        FAST_BSWITCH(B, bsums(nd->act, nd->alpha, xd + o, yd + o, gd + o, s1 - s0, m, part + i * 2 * B, part + i * 2 * B + B, B_));
    }
    float *dgd = dgamma && nd->affine ? dgamma->data : NULL, *dbd = dbeta && nd->affine ? dbeta->data : NULL;
    /* [0] the count, then per (group, channel) sum dz and sum dz*(x-mean)
     * (over all processes with a reduce), then this process's own sums,
     * which make its dgamma and dbeta (averaged over the processes by the
     * trainer) */
    const int64_t ng = NG * l.c;
    double *v = malloc(sizeof(double) * (size_t)(1 + 4 * ng)), *S1 = v ? v + 1 : NULL, *S2 = S1 ? S1 + ng : NULL;
    double *own = S2 ? S2 + ng : NULL;
    if (!v) {
        free(part), free(mu);
        return dlt_err(DLT_ENOMEM, "cpu: out of memory");
    }
    v[0] = (double)(inst ? l.s : l.n * l.s);
    for (int64_t c = 0; c < l.c; c++)
        for (int64_t g = 0; g < NG; g++) {
            const int64_t cb = c / B, q = c % B;
            double s1 = 0, s2 = 0;
            for (int64_t n = inst ? g : 0; n < (inst ? g + 1 : l.n); n++)
                for (int64_t j = 0; j < it.nch; j++) {
                    const double *pp = part + ((n * l.cb + cb) * it.nch + j) * 2 * B;
                    s1 += pp[q], s2 += pp[B + q];
                }
            S1[g * l.c + c] = own[g * l.c + c] = s1, S2[g * l.c + c] = own[ng + g * l.c + c] = s2;
        }
    free(part);
    if (!inst && (rc = dlt_reduce_sum(&be->reduce, v, 1 + 2 * ng))) { /* synchronised batch norm */
        free(v), free(mu);
        return dlt_err_prefix(rc, "batch norm backward: synchronising sums");
    }
    const double M = v[0];
    for (int64_t c = 0; c < l.c; c++) {
        const int64_t cb = c / B, q = c % B;
        double dgs = 0, dbs = 0;
        for (int64_t g = 0; g < NG; g++) {
            const int64_t gi = inst ? g * l.c + c : c;
            const double rstd = srd[gi], mean = smd[gi], gam = ga ? ga[c] : 1.0;
            const double sdz = S1[g * l.c + c], sdzx = S2[g * l.c + c] * rstd; /* sum dz, sum dz*xhat */
            dgs += own[ng + g * l.c + c] * rstd, dbs += own[g * l.c + c];
            /* dx = gam*rstd*(dz - sdz/M - (x-mean)*rstd*sdzx/M) */
            const int64_t k = (g * l.cb + cb) * B + q;
            A[k] = (float)(gam * rstd);
            Bc[k] = (float)(-gam * rstd * rstd * sdzx / M);
            Cc[k] = (float)(gam * rstd * (-sdz / M + mean * rstd * sdzx / M));
        }
        if (dgd) dgd[c] += (float)dgs;
        if (dbd) dbd[c] += (float)dbs;
    }
    free(v);
    float *dxd = dx->data;
#pragma omp parallel for num_threads(cx->nthr) schedule(static)
    for (int64_t i = 0; i < it.count; i++) {
        const int64_t ncb = i / it.nch, j = i % it.nch, s0 = j * it.len;
        const int64_t s1 = s0 + it.len < l.s ? s0 + it.len : l.s;
        if (s1 <= s0) continue;
        const int64_t n = ncb / l.cb, cb = ncb % l.cb, g = inst ? n : 0;
        const int64_t o = (ncb * l.s + s0) * B, k = (g * l.cb + cb) * B;
        FAST_BSWITCH(B, bapply(nd->act, nd->alpha, xd + o, yd + o, gd + o, dxd + o, s1 - s0, A + k, Bc + k, Cc + k, accum, B_));
    }
    free(mu);
    return 0;
}

/* ------------------------------------------------------------ activations */

int FAST_K(fast_act_fwd)(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x, dlt_tensor *y)
{
    fast_ctx *cx = FAST_CTX(be);
    if (!layout_ok(x, y)) return dlt_err(DLT_EUNSUP, "act_fwd: operands in another layout");
    const fast_lay l = fast_lay_of(x);
    const float *xd = x->data;
    float *yd = y->data;
    if (act != DLT_ACT_PRELU) {
        const int64_t n = fast_lay_size(&l);
#pragma omp parallel for num_threads(cx->nthr) schedule(static)
        for (int64_t i = 0; i < n; i++) yd[i] = act_f(act, alpha, xd[i]);
        return 0;
    }
    const float *sl = slope->data;
#pragma omp parallel for collapse(2) num_threads(cx->nthr) schedule(static)
    for (int64_t ncb = 0; ncb < l.n * l.cb; ncb++)
        for (int64_t s = 0; s < l.s; s++)
            for (int64_t q = 0; q < l.b; q++) {
                const int64_t c = (ncb % l.cb) * l.b + q, o = (ncb * l.s + s) * l.b + q;
                const float a = c < l.c ? sl[c] : 0.f;
                yd[o] = xd[o] > 0 ? xd[o] : a * xd[o];
            }
    return 0;
}

int FAST_K(fast_act_bwd)(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                 const dlt_tensor *dy, dlt_tensor *dx, int accum, dlt_tensor *dslope)
{
    fast_ctx *cx = FAST_CTX(be);
    if (!layout_ok(x, dy) || !layout_ok(x, dx)) return dlt_err(DLT_EUNSUP, "act_bwd: operands in another layout");
    const fast_lay l = fast_lay_of(x);
    const float *xd = x->data, *gd = dy->data;
    float *dxd = dx->data;
    if (act != DLT_ACT_PRELU) {
        const int64_t n = fast_lay_size(&l);
#pragma omp parallel for num_threads(cx->nthr) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            const float z = xd[i];
            const float d = act == DLT_ACT_RELU    ? (z > 0 ? 1.f : 0.f)
                            : act == DLT_ACT_LEAKY ? (z > 0 ? 1.f : alpha)
                            : act == DLT_ACT_RELU6 ? (z > 0 && z < 6 ? 1.f : 0.f)
                                                   : 1.f;
            dxd[i] = accum ? dxd[i] + gd[i] * d : gd[i] * d;
        }
        return 0;
    }
    /* PReLU: per (n, cb) partial slope gradients, combined in order */
    const float *sl = slope->data;
    double *part = calloc((size_t)(l.n * l.cb * l.b), sizeof(double));
    if (!part) return dlt_err(DLT_ENOMEM, "cpu: out of memory");
#pragma omp parallel for num_threads(cx->nthr) schedule(static)
    for (int64_t ncb = 0; ncb < l.n * l.cb; ncb++)
        for (int64_t s = 0; s < l.s; s++)
            for (int64_t q = 0; q < l.b; q++) {
                const int64_t c = (ncb % l.cb) * l.b + q, o = (ncb * l.s + s) * l.b + q;
                const float a = c < l.c ? sl[c] : 0.f, z = xd[o];
                const float v = z > 0 ? gd[o] : a * gd[o];
                if (!(z > 0)) part[ncb * l.b + q] += (double)gd[o] * z;
                dxd[o] = accum ? dxd[o] + v : v;
            }
    if (dslope) {
        float *ds = dslope->data;
        for (int64_t c = 0; c < l.c; c++) {
            double s = 0;
            for (int64_t n = 0; n < l.n; n++) s += part[(n * l.cb + c / l.b) * l.b + c % l.b];
            ds[c] += (float)s;
        }
    }
    free(part);
    return 0;
}

