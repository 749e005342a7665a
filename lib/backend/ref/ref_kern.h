/* backend/ref/ref_kern.h - bodies of the reference kernels, written once for a
 * scalar type R with names F(x) (see backend/ref/ref.h; included by ref_f.c and
 * ref_d.c). Plain loops, innermost over contiguous x (W), accumulation in
 * double. OpenMP splits only outer loops whose iterations write disjoint
 * outputs, so a result never depends on the thread count. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ref/ref.h"

#define IDX(s, n_, c_, d_, h_, w_) ((((((int64_t)(n_) * (s).c + (c_)) * (s).d + (d_)) * (s).h + (h_)) * (s).w) + (w_))

#ifndef DLT_REF_KERN_HELPERS
#define DLT_REF_KERN_HELPERS
static inline int64_t ref_cdiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static inline int64_t ref_fdiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int64_t ref_max(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t ref_min(int64_t a, int64_t b) { return a < b ? a : b; }
/* Range of output positions o in [0,O) whose input o*s + k - p lies in [0,I). */
static inline void ref_orange(int64_t I, int64_t O, int s, int k, int p, int64_t *lo, int64_t *hi)
{
    *lo = ref_max(0, ref_cdiv(p - k, s));
    *hi = ref_min(O - 1, ref_fdiv(I - 1 + p - k, s)); /* inclusive; empty when hi < lo */
}
static inline double ref_act(int act, double alpha, double slope, double z)
{
    switch (act) {
    case DLT_ACT_RELU: return z > 0 ? z : 0;
    case DLT_ACT_LEAKY: return z > 0 ? z : alpha * z;
    case DLT_ACT_RELU6: return z < 0 ? 0 : (z > 6 ? 6 : z);
    case DLT_ACT_PRELU: return z > 0 ? z : slope * z;
    default: return z;
    }
}
/* Derivative of the activation at pre-activation z (PyTorch's choice at the
 * kinks: relu' (0) = 0, relu6' (0) = relu6' (6) = 0, leaky' (0) = alpha). */
static inline double ref_dact(int act, double alpha, double slope, double z)
{
    switch (act) {
    case DLT_ACT_RELU: return z > 0;
    case DLT_ACT_LEAKY: return z > 0 ? 1 : alpha;
    case DLT_ACT_RELU6: return z > 0 && z < 6;
    case DLT_ACT_PRELU: return z > 0 ? 1 : slope;
    default: return 1;
    }
}
/* The same derivative from the activation's output y = act(z): for every
 * activation the norm fuses (slopes > 0) the sign tests on y and z agree. */
static inline double ref_dact_y(int act, double alpha, double y)
{
    switch (act) {
    case DLT_ACT_RELU: return y > 0;
    case DLT_ACT_LEAKY: return y > 0 ? 1 : alpha;
    case DLT_ACT_RELU6: return y > 0 && y < 6;
    default: return 1;
    }
}
#endif

/* ------------------------------------------------------------------ conv */

void F(dlt_ref_conv_fwd)(const dlt_conv_desc *cd, dlt_shape xs, const R *x, const R *w, const R *b, dlt_shape ys,
                         R *y)
{
    const int g = cd->groups > 0 ? cd->groups : 1;
    const int64_t cig = xs.c / g, cog = ys.c / g;
    const int KD = cd->k[0], KH = cd->k[1], KW = cd->k[2];
#pragma omp parallel
    {
        double *row = malloc(sizeof(double) * (size_t)ys.w);
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < ys.n; n++)
            for (int64_t co = 0; co < ys.c; co++) {
                const int64_t c0 = (co / cog) * cig;
                for (int64_t od = 0; od < ys.d; od++)
                    for (int64_t oh = 0; oh < ys.h; oh++) {
                        for (int64_t i = 0; i < ys.w; i++) row[i] = 0;
                        for (int64_t ci = 0; ci < cig; ci++)
                            for (int a = 0; a < KD; a++) {
                                int64_t id = od * cd->stride[0] + a - cd->pad_lo[0];
                                if (id < 0 || id >= xs.d) continue;
                                for (int bb = 0; bb < KH; bb++) {
                                    int64_t ih = oh * cd->stride[1] + bb - cd->pad_lo[1];
                                    if (ih < 0 || ih >= xs.h) continue;
                                    const R *xr = x + IDX(xs, n, c0 + ci, id, ih, 0);
                                    const R *wk = w + (((co * cig + ci) * KD + a) * KH + bb) * KW;
                                    for (int cc = 0; cc < KW; cc++) {
                                        int64_t lo, hi;
                                        ref_orange(xs.w, ys.w, cd->stride[2], cc, cd->pad_lo[2], &lo, &hi);
                                        const double wv = wk[cc];
                                        const R *xp = xr + cc - cd->pad_lo[2];
                                        const int s = cd->stride[2];
                                        for (int64_t ow = lo; ow <= hi; ow++) row[ow] += wv * xp[ow * s];
                                    }
                                }
                            }
                        R *yr = y + IDX(ys, n, co, od, oh, 0);
                        const double bv = b ? b[co] : 0;
                        for (int64_t i = 0; i < ys.w; i++) yr[i] = (R)(row[i] + bv);
                    }
            }
        free(row);
    }
}

void F(dlt_ref_conv_bwd_data)(const dlt_conv_desc *cd, dlt_shape dys, const R *dy, const R *w, dlt_shape dxs, R *dx,
                              int accum)
{
    const int g = cd->groups > 0 ? cd->groups : 1;
    const int64_t cig = dxs.c / g, cog = dys.c / g;
    const int KD = cd->k[0], KH = cd->k[1], KW = cd->k[2];
#pragma omp parallel
    {
        double *row = malloc(sizeof(double) * (size_t)dxs.w);
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < dxs.n; n++)
            for (int64_t ci = 0; ci < dxs.c; ci++) {
                const int64_t grp = ci / cig, cil = ci - grp * cig;
                for (int64_t id = 0; id < dxs.d; id++)
                    for (int64_t ih = 0; ih < dxs.h; ih++) {
                        for (int64_t i = 0; i < dxs.w; i++) row[i] = 0;
                        for (int64_t co = grp * cog; co < (grp + 1) * cog; co++)
                            for (int a = 0; a < KD; a++) {
                                int64_t t = id + cd->pad_lo[0] - a;
                                if (t < 0 || t % cd->stride[0]) continue;
                                int64_t od = t / cd->stride[0];
                                if (od >= dys.d) continue;
                                for (int bb = 0; bb < KH; bb++) {
                                    int64_t u = ih + cd->pad_lo[1] - bb;
                                    if (u < 0 || u % cd->stride[1]) continue;
                                    int64_t oh = u / cd->stride[1];
                                    if (oh >= dys.h) continue;
                                    const R *dyr = dy + IDX(dys, n, co, od, oh, 0);
                                    const R *wk = w + (((co * cig + cil) * KD + a) * KH + bb) * KW;
                                    for (int cc = 0; cc < KW; cc++) {
                                        int64_t lo, hi;
                                        ref_orange(dxs.w, dys.w, cd->stride[2], cc, cd->pad_lo[2], &lo, &hi);
                                        const double wv = wk[cc];
                                        const int s = cd->stride[2];
                                        double *rp = row + cc - cd->pad_lo[2];
                                        for (int64_t ow = lo; ow <= hi; ow++) rp[ow * s] += wv * dyr[ow];
                                    }
                                }
                            }
                        R *xr = dx + IDX(dxs, n, ci, id, ih, 0);
                        for (int64_t i = 0; i < dxs.w; i++) xr[i] = (R)(accum ? xr[i] + row[i] : row[i]);
                    }
            }
        free(row);
    }
}

void F(dlt_ref_conv_bwd_weights)(const dlt_conv_desc *cd, dlt_shape xs, const R *x, dlt_shape dys, const R *dy,
                                 R *dw, R *db)
{
    const int g = cd->groups > 0 ? cd->groups : 1;
    const int64_t cig = xs.c / g, cog = dys.c / g;
    const int KD = cd->k[0], KH = cd->k[1], KW = cd->k[2];
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t co = 0; co < dys.c; co++)
        for (int64_t ci = 0; ci < cig; ci++) {
            const int64_t c0 = (co / cog) * cig;
            for (int a = 0; a < KD; a++)
                for (int bb = 0; bb < KH; bb++)
                    for (int cc = 0; cc < KW; cc++) {
                        double acc = 0;
                        int64_t lo, hi;
                        ref_orange(xs.w, dys.w, cd->stride[2], cc, cd->pad_lo[2], &lo, &hi);
                        const int s = cd->stride[2];
                        for (int64_t n = 0; n < dys.n; n++)
                            for (int64_t od = 0; od < dys.d; od++) {
                                int64_t id = od * cd->stride[0] + a - cd->pad_lo[0];
                                if (id < 0 || id >= xs.d) continue;
                                for (int64_t oh = 0; oh < dys.h; oh++) {
                                    int64_t ih = oh * cd->stride[1] + bb - cd->pad_lo[1];
                                    if (ih < 0 || ih >= xs.h) continue;
                                    const R *dyr = dy + IDX(dys, n, co, od, oh, 0);
                                    const R *xp = x + IDX(xs, n, c0 + ci, id, ih, 0) + cc - cd->pad_lo[2];
                                    for (int64_t ow = lo; ow <= hi; ow++) acc += (double)dyr[ow] * xp[ow * s];
                                }
                            }
                        R *wp = dw + (((co * cig + ci) * KD + a) * KH + bb) * KW + cc;
                        *wp = (R)(*wp + acc);
                    }
        }
    if (db) F(dlt_ref_bias_grad)(dys, dy, db);
}

void F(dlt_ref_bias_add)(dlt_shape ys, R *y, const R *b)
{
    const int64_t sp = ys.d * ys.h * ys.w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < ys.n; n++)
        for (int64_t c = 0; c < ys.c; c++) {
            R *p = y + (n * ys.c + c) * sp;
            for (int64_t i = 0; i < sp; i++) p[i] += b[c];
        }
}

void F(dlt_ref_bias_grad)(dlt_shape dys, const R *dy, R *db)
{
    const int64_t sp = dys.d * dys.h * dys.w;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < dys.c; c++) {
        double acc = 0;
        for (int64_t n = 0; n < dys.n; n++) {
            const R *p = dy + (n * dys.c + c) * sp;
            for (int64_t i = 0; i < sp; i++) acc += p[i];
        }
        db[c] = (R)(db[c] + acc);
    }
}

/* ------------------------------------------------------------------ norm */

/* Statistics groups: batch norm = one group per channel over (N, spatial);
 * instance norm = one group per (n, c) over spatial. Group g of channel c
 * covers samples [n0, n1). Training-mode batch norm with a reduce `red`
 * (dlt/backend.h) combines each channel's moments over all processes
 * between the sums and their use (synchronised batch norm). Returns 0 or
 * the reduce's error (DLT_ENOMEM for its scratch). */
#define REF_GROUP(gi, c, n0, n1)                                                                                   \
    const int64_t c = inst ? (gi) % xs.c : (gi);                                                                   \
    const int64_t n0 = inst ? (gi) / xs.c : 0, n1 = inst ? n0 + 1 : xs.n

int F(dlt_ref_norm_fwd)(const dlt_norm_desc *nd, int training, dlt_shape xs, const R *x, const R *gamma,
                        const R *beta, R *rmean, R *rvar, R *smean, R *srstd, R *y, const dlt_reduce *red)
{
    const int inst = nd->kind == DLT_NORM_INSTANCE;
    const int64_t sp = xs.d * xs.h * xs.w;
    const int64_t ngroups = inst ? xs.n * xs.c : xs.c;
    const int stats = training || inst;
    /* per group: count, mean, sum of squared deviations; then mean, rstd */
    double *cnt = malloc(sizeof(double) * (size_t)(4 * ngroups)), *mu = cnt + ngroups, *q2 = mu + ngroups,
           *rs = q2 + ngroups;
    if (!cnt) return dlt_err(DLT_ENOMEM, "norm_fwd: out of memory");
#pragma omp parallel for schedule(static)
    for (int64_t gi = 0; gi < ngroups; gi++) {
        REF_GROUP(gi, c, n0, n1);
        if (!stats) {
            mu[gi] = rmean[c], q2[gi] = rvar[c], cnt[gi] = 1;
            continue;
        }
        double s = 0, q = 0;
        for (int64_t n = n0; n < n1; n++) {
            const R *p = x + (n * xs.c + c) * sp;
            for (int64_t i = 0; i < sp; i++) s += p[i];
        }
        const double M = (double)((n1 - n0) * sp), mean = s / M;
        for (int64_t n = n0; n < n1; n++) {
            const R *p = x + (n * xs.c + c) * sp;
            for (int64_t i = 0; i < sp; i++) q += (p[i] - mean) * (p[i] - mean);
        }
        cnt[gi] = M, mu[gi] = mean, q2[gi] = q;
    }
    if (training && !inst) {
        int rc = dlt_reduce_moments(red, ngroups, cnt, mu, q2);
        if (rc) {
            free(cnt);
            return rc;
        }
    }
    for (int64_t gi = 0; gi < ngroups; gi++) {
        const int64_t c = inst ? gi % xs.c : gi;
        const double M = cnt[gi], var = stats ? q2[gi] / M : q2[gi];
        rs[gi] = 1.0 / sqrt(var + (double)nd->eps);
        if (!stats) continue;
        if (smean) smean[gi] = (R)mu[gi];
        if (srstd) srstd[gi] = (R)rs[gi];
        if (!inst && training && rmean && rvar) {
            double m = nd->momentum, unb = M > 1 ? var * M / (M - 1) : var;
            rmean[c] = (R)(m * rmean[c] + (1 - m) * mu[gi]);
            rvar[c] = (R)(m * rvar[c] + (1 - m) * unb);
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t gi = 0; gi < ngroups; gi++) {
        REF_GROUP(gi, c, n0, n1);
        const double mean = mu[gi], rstd = rs[gi];
        const double ga = nd->affine && gamma ? gamma[c] : 1, be = nd->affine && beta ? beta[c] : 0;
        for (int64_t n = n0; n < n1; n++) {
            const R *p = x + (n * xs.c + c) * sp;
            R *q = y + (n * xs.c + c) * sp;
            for (int64_t i = 0; i < sp; i++)
                q[i] = (R)ref_act(nd->act, nd->alpha, 0, ga * ((p[i] - mean) * rstd) + be);
        }
    }
    free(cnt);
    return 0;
}

/* Backward of training-mode normalisation with the fused activation:
 * dz = dy * act'(z) (read off y), then the usual batch-norm adjoint
 * dx = gamma*rstd*(dz - mean(dz) - xhat*mean(dz*xhat)). Instance norm sums
 * dgamma/dbeta over samples inside one thread (per channel), so the order
 * is fixed. Batch norm with a reduce takes sum(dz), sum(dz*xhat) and the
 * count over all processes (each process's dy is then the gradient of its
 * own share of the loss; see dlt/dist.h). */
int F(dlt_ref_norm_bwd)(const dlt_norm_desc *nd, dlt_shape xs, const R *x, const R *y, const R *dy,
                        const R *gamma, const R *smean, const R *srstd, R *dx, int accum, R *dgamma, R *dbeta,
                        const dlt_reduce *red)
{
    const int inst = nd->kind == DLT_NORM_INSTANCE;
    const int64_t sp = xs.d * xs.h * xs.w;
    const int64_t ngroups = inst ? xs.n * xs.c : xs.c;
    /* [0] the count; then sum dz, sum dz*xhat per group (summed over the
     * processes with a reduce); then this process's own sums, which make
     * its dgamma and dbeta (the trainer averages those over the processes) */
    double *v = malloc(sizeof(double) * (size_t)(1 + 4 * ngroups)), *sdz = v + 1, *sdzx = sdz + ngroups;
    double *own = sdzx + ngroups;
    if (!v) return dlt_err(DLT_ENOMEM, "norm_bwd: out of memory");
    v[0] = (double)((inst ? 1 : xs.n) * sp);
#pragma omp parallel for schedule(static)
    for (int64_t gi = 0; gi < ngroups; gi++) {
        REF_GROUP(gi, c, n0, n1);
        const double mean = smean[gi], rstd = srstd[gi];
        double a = 0, b = 0;
        for (int64_t n = n0; n < n1; n++) {
            const int64_t o = (n * xs.c + c) * sp;
            for (int64_t i = 0; i < sp; i++) {
                double dz = dy[o + i] * ref_dact_y(nd->act, nd->alpha, y[o + i]);
                a += dz;
                b += dz * ((x[o + i] - mean) * rstd);
            }
        }
        sdz[gi] = own[gi] = a, sdzx[gi] = own[ngroups + gi] = b;
    }
    if (!inst) {
        int rc = dlt_reduce_sum(red, v, 1 + 2 * ngroups);
        if (rc) {
            free(v);
            return dlt_err_prefix(rc, "batch norm backward: synchronising sums");
        }
    }
    const double M = v[0];
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < xs.c; c++) {
        double dg = 0, dbt = 0;
        const int64_t ng = inst ? xs.n : 1;
        for (int64_t k = 0; k < ng; k++) {
            const int64_t gi = inst ? k * xs.c + c : c;
            const int64_t n0 = inst ? k : 0, n1 = inst ? k + 1 : xs.n;
            const double mean = smean[gi], rstd = srstd[gi];
            const double ga = nd->affine && gamma ? gamma[c] : 1;
            dg += own[ngroups + gi];
            dbt += own[gi];
            for (int64_t n = n0; n < n1; n++) {
                const int64_t o = (n * xs.c + c) * sp;
                for (int64_t i = 0; i < sp; i++) {
                    double dz = dy[o + i] * ref_dact_y(nd->act, nd->alpha, y[o + i]);
                    double xh = (x[o + i] - mean) * rstd;
                    double val = ga * rstd * (dz - sdz[gi] / M - xh * sdzx[gi] / M);
                    dx[o + i] = (R)(accum ? dx[o + i] + val : val);
                }
            }
        }
        if (nd->affine && dgamma) dgamma[c] = (R)(dgamma[c] + dg);
        if (nd->affine && dbeta) dbeta[c] = (R)(dbeta[c] + dbt);
    }
    free(v);
    return 0;
}
#undef REF_GROUP

/* ------------------------------------------------------------------ act */

void F(dlt_ref_act_fwd)(int act, float alpha, const R *slope, dlt_shape xs, const R *x, R *y)
{
    const int64_t sp = xs.d * xs.h * xs.w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < xs.n; n++)
        for (int64_t c = 0; c < xs.c; c++) {
            const int64_t o = (n * xs.c + c) * sp;
            const double sl = slope ? slope[c] : 0;
            for (int64_t i = 0; i < sp; i++) y[o + i] = (R)ref_act(act, alpha, sl, x[o + i]);
        }
}

void F(dlt_ref_act_bwd)(int act, float alpha, const R *slope, dlt_shape xs, const R *x, const R *dy, R *dx,
                        int accum, R *dslope)
{
    const int64_t sp = xs.d * xs.h * xs.w;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < xs.c; c++) {
        const double sl = slope ? slope[c] : 0;
        double ds = 0;
        for (int64_t n = 0; n < xs.n; n++) {
            const int64_t o = (n * xs.c + c) * sp;
            for (int64_t i = 0; i < sp; i++) {
                double v = dy[o + i] * ref_dact(act, alpha, sl, x[o + i]);
                if (act == DLT_ACT_PRELU && !(x[o + i] > 0)) ds += (double)dy[o + i] * x[o + i];
                dx[o + i] = (R)(accum ? dx[o + i] + v : v);
            }
        }
        if (act == DLT_ACT_PRELU && dslope) dslope[c] = (R)(dslope[c] + ds);
    }
}

/* ------------------------------------------------------------------ pool */

/* Window (od,oh,ow) of kernel = stride = k; the first maximum in d,h,w order
 * wins (as PyTorch), and backward sends the gradient there. */
static inline int64_t F(ref_argmax)(const int k[3], dlt_shape xs, const R *xp, int64_t od, int64_t oh, int64_t ow)
{
    int64_t best = -1;
    R bv = 0;
    for (int a = 0; a < k[0]; a++)
        for (int b = 0; b < k[1]; b++)
            for (int cc = 0; cc < k[2]; cc++) {
                int64_t o = ((od * k[0] + a) * xs.h + oh * k[1] + b) * xs.w + ow * k[2] + cc;
                if (best < 0 || xp[o] > bv || isnan(xp[o])) {
                    best = o;
                    bv = xp[o];
                    if (isnan(bv)) return best;
                }
            }
    return best;
}

void F(dlt_ref_maxpool_fwd)(const int k[3], dlt_shape xs, const R *x, R *y)
{
    const int64_t OD = xs.d / k[0], OH = xs.h / k[1], OW = xs.w / k[2], sp = xs.d * xs.h * xs.w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < xs.n; n++)
        for (int64_t c = 0; c < xs.c; c++) {
            const R *xp = x + (n * xs.c + c) * sp;
            R *yp = y + (n * xs.c + c) * OD * OH * OW;
            for (int64_t od = 0; od < OD; od++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++)
                        yp[(od * OH + oh) * OW + ow] = xp[F(ref_argmax)(k, xs, xp, od, oh, ow)];
        }
}

void F(dlt_ref_maxpool_bwd)(const int k[3], dlt_shape xs, const R *x, const R *dy, R *dx, int accum)
{
    const int64_t OD = xs.d / k[0], OH = xs.h / k[1], OW = xs.w / k[2], sp = xs.d * xs.h * xs.w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < xs.n; n++)
        for (int64_t c = 0; c < xs.c; c++) {
            const R *xp = x + (n * xs.c + c) * sp;
            const R *dyp = dy + (n * xs.c + c) * OD * OH * OW;
            R *dxp = dx + (n * xs.c + c) * sp;
            if (!accum)
                for (int64_t i = 0; i < sp; i++) dxp[i] = 0;
            for (int64_t od = 0; od < OD; od++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++)
                        dxp[F(ref_argmax)(k, xs, xp, od, oh, ow)] += dyp[(od * OH + oh) * OW + ow];
        }
}

/* ------------------------------------------------------------------ channel ops */

void F(dlt_ref_padc_fwd)(int lo, int hi, dlt_shape xs, const R *x, R *y)
{
    const int64_t sp = xs.d * xs.h * xs.w, cy = xs.c + lo + hi;
    for (int64_t n = 0; n < xs.n; n++) {
        R *yp = y + n * cy * sp;
        memset(yp, 0, sizeof(R) * (size_t)(lo * sp));
        memcpy(yp + lo * sp, x + n * xs.c * sp, sizeof(R) * (size_t)(xs.c * sp));
        memset(yp + (lo + xs.c) * sp, 0, sizeof(R) * (size_t)(hi * sp));
    }
}

void F(dlt_ref_padc_bwd)(int lo, int hi, dlt_shape dxs, const R *dy, R *dx, int accum)
{
    const int64_t sp = dxs.d * dxs.h * dxs.w, cy = dxs.c + lo + hi;
    for (int64_t n = 0; n < dxs.n; n++) F(dlt_ref_copy)(dxs.c * sp, dy + (n * cy + lo) * sp, dx + n * dxs.c * sp, accum);
}

void F(dlt_ref_concat_fwd)(dlt_shape as, const R *a, dlt_shape bs, const R *b, R *y)
{
    const int64_t sp = as.d * as.h * as.w;
    for (int64_t n = 0; n < as.n; n++) {
        R *yp = y + n * (as.c + bs.c) * sp;
        memcpy(yp, a + n * as.c * sp, sizeof(R) * (size_t)(as.c * sp));
        memcpy(yp + as.c * sp, b + n * bs.c * sp, sizeof(R) * (size_t)(bs.c * sp));
    }
}

void F(dlt_ref_concat_bwd)(dlt_shape as, dlt_shape bs, const R *dy, R *da, int accum_a, R *db, int accum_b)
{
    const int64_t sp = as.d * as.h * as.w;
    for (int64_t n = 0; n < as.n; n++) {
        const R *yp = dy + n * (as.c + bs.c) * sp;
        if (da) F(dlt_ref_copy)(as.c * sp, yp, da + n * as.c * sp, accum_a);
        if (db) F(dlt_ref_copy)(bs.c * sp, yp + as.c * sp, db + n * bs.c * sp, accum_b);
    }
}

void F(dlt_ref_add_fwd)(int64_t n, const R *a, const R *b, R *y)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void F(dlt_ref_copy)(int64_t n, const R *src, R *dst, int accum)
{
    if (!accum) {
        if (dst != src) memmove(dst, src, sizeof(R) * (size_t)n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

void F(dlt_ref_softmax_fwd)(dlt_shape xs, const R *x, R *y)
{
    const int64_t sp = xs.d * xs.h * xs.w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < xs.n; n++)
        for (int64_t i = 0; i < sp; i++) {
            const R *p = x + n * xs.c * sp + i;
            R *q = y + n * xs.c * sp + i;
            double mx = -INFINITY, s = 0;
            for (int64_t c = 0; c < xs.c; c++) mx = p[c * sp] > mx ? p[c * sp] : mx;
            for (int64_t c = 0; c < xs.c; c++) s += exp(p[c * sp] - mx);
            for (int64_t c = 0; c < xs.c; c++) q[c * sp] = (R)(exp(p[c * sp] - mx) / s);
        }
}

/* ------------------------------------------------------------------ losses */

/* DLTK semantics (dltk/core/losses.py):
 * - CE: mean over the N*D*H*W voxels of -log softmax(z)[label].
 * - BALANCED_CE (sparse_balanced_crossentropy): w_c = (M/C) / (count_c + 1e-8)
 *   from the batch's labels (M = N*D*H*W), loss = mean_v w_{y_v} * -log q_v,
 *   where q = p_y, raised by FLT_MIN where p_y < FLT_MIN (DLTK's epsilon).
 * - DICE (dice_loss): per sample n and class c, D = (2 I + s) / (L + P + s)
 *   with I = sum p*y, L = sum y, P = sum p over the sample's voxels; loss =
 *   1 - mean of D over the (n,c) kept: all classes, or without class 0
 *   (include_bg=0); only_present keeps the (n,c) with L > 0 (if none are,
 *   the loss is 1 with zero gradient, where TF would give NaN).
 * - DICE_CE: DICE + CE. */
int F(dlt_ref_loss)(const dlt_loss_desc *ld, dlt_shape xs, const R *logits, const int32_t *labels, double *value,
                    R *dlogits)
{
    const int64_t C = xs.c, sp = xs.d * xs.h * xs.w, M = xs.n * sp;
    for (int64_t n = 0; n < xs.n; n++)
        for (int64_t i = 0; i < sp; i++) {
            int32_t l = labels[n * sp + i];
            if (l < 0 || l >= C)
                return dlt_err(DLT_EINVAL, "label %d at voxel %lld of sample %lld is outside the %lld classes", l,
                               (long long)i, (long long)n, (long long)C);
        }
    double *p = malloc(sizeof(double) * (size_t)(M * C)), *gp = calloc((size_t)(M * C), sizeof(double));
    double *cnt = calloc((size_t)C, sizeof(double));
    if (!p || !gp || !cnt) {
        free(p), free(gp), free(cnt);
        return dlt_err(DLT_ENOMEM, "loss: out of memory for %lld voxels", (long long)M);
    }
    /* p[(n*C + c)*sp + i]: softmax in double */
    double ce = 0, lossv = 0;
    for (int64_t n = 0; n < xs.n; n++)
        for (int64_t i = 0; i < sp; i++) {
            const R *z = logits + n * C * sp + i;
            double mx = -INFINITY, s = 0;
            for (int64_t c = 0; c < C; c++) mx = z[c * sp] > mx ? z[c * sp] : mx;
            for (int64_t c = 0; c < C; c++) s += exp(z[c * sp] - mx);
            for (int64_t c = 0; c < C; c++) p[(n * C + c) * sp + i] = exp(z[c * sp] - mx) / s;
            cnt[labels[n * sp + i]] += 1;
            (void)ce;
        }
    /* gz: gradient with respect to the logits, accumulated per term. */
    int kind = ld->kind;
    if (kind == DLT_LOSS_CE || kind == DLT_LOSS_DICE_CE || kind == DLT_LOSS_BALANCED_CE) {
        double acc = 0;
        for (int64_t n = 0; n < xs.n; n++)
            for (int64_t i = 0; i < sp; i++) {
                const int32_t l = labels[n * sp + i];
                const R *z = logits + n * C * sp + i;
                double py = p[(n * C + l) * sp + i], wv = 1, r = 1, nl;
                if (kind == DLT_LOSS_BALANCED_CE) {
                    wv = ((double)M / (double)C) / (cnt[l] + 1e-8);
                    if (py < FLT_MIN) {
                        double q = py + FLT_MIN;
                        nl = -log(q);
                        r = py / q;
                    } else {
                        double mx = -INFINITY, s = 0;
                        for (int64_t c = 0; c < C; c++) mx = z[c * sp] > mx ? z[c * sp] : mx;
                        for (int64_t c = 0; c < C; c++) s += exp(z[c * sp] - mx);
                        nl = log(s) + mx - z[l * sp];
                    }
                } else {
                    double mx = -INFINITY, s = 0;
                    for (int64_t c = 0; c < C; c++) mx = z[c * sp] > mx ? z[c * sp] : mx;
                    for (int64_t c = 0; c < C; c++) s += exp(z[c * sp] - mx);
                    nl = log(s) + mx - z[l * sp];
                }
                acc += wv * nl;
                for (int64_t c = 0; c < C; c++)
                    gp[(n * C + c) * sp + i] += wv * r * (p[(n * C + c) * sp + i] - (c == l)) / (double)M;
            }
        lossv += acc / (double)M;
    }
    if (kind == DLT_LOSS_DICE || kind == DLT_LOSS_DICE_CE) {
        const double sm = ld->smooth;
        const int64_t c0 = ld->include_bg ? 0 : 1;
        double *I = calloc((size_t)(xs.n * C), sizeof(double)), *L = calloc((size_t)(xs.n * C), sizeof(double));
        double *P = calloc((size_t)(xs.n * C), sizeof(double));
        if (!I || !L || !P) {
            free(I), free(L), free(P), free(p), free(gp), free(cnt);
            return dlt_err(DLT_ENOMEM, "loss: out of memory");
        }
        for (int64_t n = 0; n < xs.n; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < sp; i++) {
                    double pv = p[(n * C + c) * sp + i], yv = labels[n * sp + i] == c;
                    I[n * C + c] += pv * yv;
                    L[n * C + c] += yv;
                    P[n * C + c] += pv;
                }
        int64_t K = 0;
        double dsum = 0;
        for (int64_t n = 0; n < xs.n; n++)
            for (int64_t c = c0; c < C; c++) {
                if (ld->only_present && L[n * C + c] == 0) continue;
                K++;
                dsum += (2 * I[n * C + c] + sm) / (L[n * C + c] + P[n * C + c] + sm);
            }
        if (K > 0) {
            lossv += 1 - dsum / (double)K;
            /* dloss/dp, then through the softmax: dz_j = p_j (g_j - sum_c p_c g_c). */
            double *g = malloc(sizeof(double) * (size_t)C);
            for (int64_t n = 0; n < xs.n; n++)
                for (int64_t i = 0; i < sp; i++) {
                    double dot = 0;
                    for (int64_t c = 0; c < C; c++) {
                        g[c] = 0;
                        if (c < c0 || (ld->only_present && L[n * C + c] == 0)) continue;
                        double den = L[n * C + c] + P[n * C + c] + sm;
                        double D = (2 * I[n * C + c] + sm) / den;
                        g[c] = -(2.0 * (labels[n * sp + i] == c) - D) / den / (double)K;
                        dot += p[(n * C + c) * sp + i] * g[c];
                    }
                    for (int64_t c = 0; c < C; c++) {
                        double pv = p[(n * C + c) * sp + i];
                        gp[(n * C + c) * sp + i] += pv * (g[c] - dot);
                    }
                }
            free(g);
        } else {
            lossv += 1;
        }
        free(I), free(L), free(P);
    }
    for (int64_t j = 0; j < M * C; j++) dlogits[j] = (R)gp[j];
    *value = lossv;
    free(p), free(gp), free(cnt);
    return 0;
}

/* ------------------------------------------------------------------ optimiser */

/* Adam exactly as torch.optim.Adam (L2 weight decay added to the gradient,
 * bias corrections 1-beta^t, eps added to sqrt(v)/sqrt(1-beta2^t)); SGD as
 * torch.optim.SGD with dampening 0 (m is the momentum buffer; it starts at
 * zero, which equals PyTorch's first-step copy). Per-element double. */
void F(dlt_ref_optim_step)(const dlt_optim_desc *od, int64_t n, R *p, const R *g, R *m, R *v)
{
    if (od->kind == DLT_OPTIM_ADAM) {
        const double b1 = od->beta1, b2 = od->beta2, t = (double)od->t;
        const double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        const double step = od->lr / bc1, sbc2 = sqrt(bc2);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double gi = (double)g[i] + (double)od->weight_decay * p[i];
            double mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
            m[i] = (R)mi;
            v[i] = (R)vi;
            p[i] = (R)(p[i] - step * mi / (sqrt(vi) / sbc2 + od->eps));
        }
    } else {
        const double mu = od->momentum;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double gi = (double)g[i] + (double)od->weight_decay * p[i];
            if (mu != 0 && m) {
                double b = mu * m[i] + gi;
                m[i] = (R)b;
                gi = od->nesterov ? gi + mu * b : b;
            }
            p[i] = (R)(p[i] - od->lr * gi);
        }
    }
}

#undef IDX
