/* backend/cpu/simd/ops.c - the rest of the table on the fast path: max pooling,
 * channel padding and concatenation, add/copy, softmax and the optimiser
 * step, as own OpenMP loops over the blocked layout (the losses are in
 * simd/loss.c); compiled once per ISA (backend/cpu/fast_kern.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast.h"
#include "backend/cpu/fast_softmax.h"


#define INL static inline __attribute__((always_inline))

/* The loops read this backend's blocked or plain activations; an operand in
 * another (opaque) layout declines with DLT_EUNSUP and the front runs the
 * op on the reference backend. Shapes were checked by the front. */
static int is_act(const dlt_tensor *t) { return t->fmt == FF_BLK || t->fmt == FF_PLAIN; }
#define DECLINE(op) dlt_err(DLT_EUNSUP, "%s: an operand in another layout", op)

/* ------------------------------------------------------------ pooling */

INL void pool_fwd_k(const int k[3], const float *x, float *y, int64_t H, int64_t W, int64_t OH, int64_t OW,
                    int64_t od, const int B)
{
    for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
            float best[16];
            const float *p0 = x + ((od * k[0] * H + oh * k[1]) * W + ow * k[2]) * B;
            for (int l = 0; l < B; l++) best[l] = p0[l];
            for (int a = 0; a < k[0]; a++)
                for (int b = 0; b < k[1]; b++)
                    for (int c = 0; c < k[2]; c++) {
                        const float *p = x + (((od * k[0] + a) * H + oh * k[1] + b) * W + ow * k[2] + c) * B;
#pragma omp simd
                        for (int l = 0; l < B; l++) best[l] = p[l] > best[l] ? p[l] : best[l];
                    }
            for (int l = 0; l < B; l++) y[((od * OH + oh) * OW + ow) * B + l] = best[l];
        }
}

INL void pool_bwd_k(const int k[3], const float *x, const float *dy, float *dx, int64_t H, int64_t W, int64_t OH,
                    int64_t OW, int64_t od, const int B)
{
    for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
            float best[16];
            int64_t at[16];
            const int64_t o0 = ((od * k[0] * H + oh * k[1]) * W + ow * k[2]) * B;
            for (int l = 0; l < B; l++) best[l] = x[o0 + l], at[l] = o0 + l;
            for (int a = 0; a < k[0]; a++)
                for (int b = 0; b < k[1]; b++)
                    for (int c = 0; c < k[2]; c++) {
                        const int64_t o = (((od * k[0] + a) * H + oh * k[1] + b) * W + ow * k[2] + c) * B;
                        for (int l = 0; l < B; l++)
                            if (x[o + l] > best[l]) best[l] = x[o + l], at[l] = o + l;
                    }
            const float *g = dy + ((od * OH + oh) * OW + ow) * B;
            for (int l = 0; l < B; l++) dx[at[l]] += g[l];
        }
}

int FAST_K(fast_maxpool_fwd)(dlt_backend *be, const int k[3], const dlt_tensor *x, dlt_tensor *y)
{
    fast_ctx *cx = FAST_CTX(be);
    if (!is_act(x) || x->fmt != y->fmt) return DECLINE("maxpool_fwd");
    const fast_lay l = fast_lay_of(x), m = fast_lay_of(y);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for collapse(2) num_threads(cx->nthr) schedule(static)
    for (int64_t ncb = 0; ncb < l.n * l.cb; ncb++)
        for (int64_t od = 0; od < y->d; od++) {
            const float *xp = xd + ncb * l.s * l.b;
            float *yp = yd + ncb * m.s * m.b;
            FAST_BSWITCH(l.b, pool_fwd_k(k, xp, yp, x->h, x->w, y->h, y->w, od, B_));
        }
    return 0;
}

int FAST_K(fast_maxpool_bwd)(dlt_backend *be, const int k[3], const dlt_tensor *x, const dlt_tensor *y,
                     const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    fast_ctx *cx = FAST_CTX(be);
    if (!is_act(x) || x->fmt != dy->fmt || x->fmt != dx->fmt) return DECLINE("maxpool_bwd");
    const fast_lay l = fast_lay_of(x), m = fast_lay_of(dy);
    if (!accum) memset(dx->data, 0, (size_t)fast_lay_size(&l) * 4);
    const float *xd = x->data, *gd = dy->data;
    float *dxd = dx->data;
#pragma omp parallel for collapse(2) num_threads(cx->nthr) schedule(static)
    for (int64_t ncb = 0; ncb < l.n * l.cb; ncb++)
        for (int64_t od = 0; od < dy->d; od++) {
            const int64_t xo = ncb * l.s * l.b, yo = ncb * m.s * m.b;
            FAST_BSWITCH(l.b, pool_bwd_k(k, xd + xo, gd + yo, dxd + xo, x->h, x->w, dy->h, dy->w, od, B_));
        }
    return 0;
}

/* ------------------------------------------------------------ channel ops */

void FAST_K(fast_vcopy)(fast_ctx *cx, int64_t n, const float *src, float *dst, int accum)
{
    if (!accum) {
        if (src != dst) memcpy(dst, src, (size_t)n * 4);
        return;
    }
#pragma omp parallel for simd num_threads(cx->nthr) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

/* Channels [c0, c0+nc) of src to [d0, d0+nc) of dst, (+)=, for every n and
 * voxel; layouts may differ. Whole blocks move as runs. */
static void chcopy(fast_ctx *cx, const dlt_tensor *src, int64_t c0, dlt_tensor *dst, int64_t d0, int64_t nc, int accum)
{
    const fast_lay a = fast_lay_of(src), b = fast_lay_of(dst);
    const float *sd = src->data;
    float *dd = dst->data;
    if (a.b == b.b && c0 % a.b == 0 && d0 % b.b == 0 && (nc % a.b == 0 || c0 + nc == a.c) &&
        (nc % a.b == 0 || d0 + nc == b.c)) {
        /* block-aligned: whole blocks (a partial last block is padding on both sides) */
        const int64_t nb = (nc + a.b - 1) / a.b, run = a.s * a.b;
        for (int64_t n = 0; n < a.n; n++)
            for (int64_t j = 0; j < nb; j++)
                fast_vcopy(cx, run, sd + (n * a.cb + c0 / a.b + j) * run, dd + (n * b.cb + d0 / b.b + j) * run, accum);
        return;
    }
#pragma omp parallel for collapse(2) num_threads(cx->nthr) schedule(static)
    for (int64_t n = 0; n < a.n; n++)
        for (int64_t s = 0; s < a.s; s++)
            for (int64_t c = 0; c < nc; c++) {
                const float v = sd[fast_off(&a, n, c0 + c, s)];
                float *q = dd + fast_off(&b, n, d0 + c, s);
                *q = accum ? *q + v : v;
            }
}

int FAST_K(fast_padc_fwd)(dlt_backend *be, int lo, int hi, const dlt_tensor *x, dlt_tensor *y)
{
    if (!is_act(x) || !is_act(y)) return DECLINE("padc_fwd");
    const fast_lay l = fast_lay_of(y);
    memset(y->data, 0, (size_t)fast_lay_size(&l) * 4);
    chcopy(FAST_CTX(be), x, 0, y, lo, x->c, 0);
    return 0;
}

int FAST_K(fast_padc_bwd)(dlt_backend *be, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    if (!is_act(dx) || !is_act(dy)) return DECLINE("padc_bwd");
    chcopy(FAST_CTX(be), dy, lo, dx, 0, dx->c, accum);
    return 0;
}

int FAST_K(fast_concat_fwd)(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    if (!is_act(a) || !is_act(b) || !is_act(y)) return DECLINE("concat_fwd");
    chcopy(FAST_CTX(be), a, 0, y, 0, a->c, 0);
    chcopy(FAST_CTX(be), b, 0, y, a->c, b->c, 0);
    return 0;
}

int FAST_K(fast_concat_bwd)(dlt_backend *be, const dlt_tensor *dy, dlt_tensor *da, int accum_a, dlt_tensor *db, int accum_b)
{
    if (!is_act(dy) || !is_act(da) || !is_act(db)) return DECLINE("concat_bwd");
    chcopy(FAST_CTX(be), dy, 0, da, 0, da->c, accum_a);
    chcopy(FAST_CTX(be), dy, da->c, db, 0, db->c, accum_b);
    return 0;
}

int FAST_K(fast_add_fwd)(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    fast_ctx *cx = FAST_CTX(be);
    if (!fast_same_md(a, b) || !fast_same_md(a, y)) {
        /* y = a, then y += b through layout-changing copies */
        int rc = FAST_K(fast_copy)(be, a, y, 0);
        return rc ? rc : FAST_K(fast_copy)(be, b, y, 1);
    }
    const int64_t n = (int64_t)(dnnl_memory_desc_get_size(&FAST_P(a)->md) / 4);
    const float *ad = a->data, *bd = b->data;
    float *yd = y->data;
#pragma omp parallel for simd num_threads(cx->nthr) schedule(static)
    for (int64_t i = 0; i < n; i++) yd[i] = ad[i] + bd[i];
    return 0;
}

int FAST_K(fast_copy)(dlt_backend *be, const dlt_tensor *src, dlt_tensor *dst, int accum)
{
    fast_ctx *cx = FAST_CTX(be);
    if (fast_same_md(src, dst)) {
        fast_vcopy(cx, (int64_t)(dnnl_memory_desc_get_size(&FAST_P(src)->md) / 4), src->data, dst->data, accum);
        return 0;
    }
    /* different layouts: through the plain bytes (every reading of a
     * tensor's plain layout is the same NCDHW / [O, I, k] order) */
    fast_tpriv *ps = FAST_P(src), *pd = FAST_P(dst);
    const int64_t numel = dlt_tensor_numel(src);
    const void *plain = src->data;
    if (src->fmt != FF_PLAIN) {
        void *t = fast_tmp(cx, 2, (size_t)numel * 4);
        if (!t) return DLT_ENOMEM;
        int rc = fast_reorder(cx, &ps->md, src->data, &ps->plain_md, t, 0);
        if (rc) return rc;
        plain = t;
    }
    if (dst->fmt == FF_PLAIN) {
        fast_vcopy(cx, numel, plain, dst->data, accum);
        return 0;
    }
    return fast_reorder(cx, &pd->plain_md, plain, &pd->md, dst->data, accum);
}

/* x *= alpha over the whole buffer, padded lanes included (zeros stay
 * zeros), in whatever layout x has. */
int FAST_K(fast_scale)(dlt_backend *be, float alpha, dlt_tensor *x)
{
    fast_ctx *cx = FAST_CTX(be);
    const int64_t n = (int64_t)(dnnl_memory_desc_get_size(&FAST_P(x)->md) / 4);
    float *d = x->data;
#pragma omp parallel for simd num_threads(cx->nthr) schedule(static)
    for (int64_t i = 0; i < n; i++) d[i] *= alpha;
    return 0;
}

/* ------------------------------------------------------------ softmax */

int FAST_K(fast_softmax_fwd)(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y)
{
    fast_ctx *cx = FAST_CTX(be);
    if (x->fmt != y->fmt || !is_act(x)) return DECLINE("softmax_fwd");
    const fast_lay l = fast_lay_of(x);
    const int64_t bs = l.s * l.b;
    const float *xd = x->data;
    float *yd = y->data;
    if (vox_fits16(l.b, l.c)) {
#pragma omp parallel for collapse(2) num_threads(cx->nthr) schedule(static)
        for (int64_t n = 0; n < l.n; n++)
            for (int64_t s = 0; s < l.s; s++) {
                const int64_t o = n * l.cb * bs + s * l.b;
                float z[16], e[16], mx;
                vox_gather16(xd + o, l.b, bs, l.c, z);
                const float r = 1.f / vox_softmax16(z, l.c, e, &mx);
#pragma omp simd
                for (int q = 0; q < 16; q++) e[q] *= r;
                vox_scatter16(e, l.b, bs, l.c, yd + o);
            }
        return 0;
    }
    int bad = 0;
#pragma omp parallel num_threads(cx->nthr)
    {
        float *p = malloc(sizeof(float) * (size_t)l.c);
        if (!p) bad = 1;
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < l.n; n++)
            for (int64_t s = 0; s < l.s; s++) {
                if (!p) continue;
                const int64_t o = n * l.cb * bs + s * l.b;
                float mx;
                double sum;
                vox_softmax(xd + o, l.c, l.b, bs, p, &mx, &sum);
                const float r = (float)(1.0 / sum);
                for (int64_t c = 0; c < l.c; c++) yd[o + (c / l.b) * bs + c % l.b] = p[c] * r;
            }
        free(p);
    }
    return bad ? dlt_err(DLT_ENOMEM, "cpu: out of memory") : 0;
}

/* ------------------------------------------------------------ optimiser */

int FAST_K(fast_optim_step)(dlt_backend *be, const dlt_optim_desc *od, dlt_tensor *p, const dlt_tensor *g, dlt_tensor *m,
                    dlt_tensor *v)
{
    fast_ctx *cx = FAST_CTX(be);
    /* gradient and state take the parameter's layout (once), so the step is
     * one loop over the buffer, padding included (zeros stay zeros) */
    const dnnl_memory_desc_t *md = &FAST_P(p)->md;
    dlt_tensor *st[3] = {(dlt_tensor *)g, m, v};
    for (int i = 0; i < 3; i++) {
        if (!st[i] || fast_same_md(st[i], p)) continue;
        if (st[i]->fmt == FF_PLAIN && p->fmt == FF_OPAQUE) {
            /* a plain twin: read its bytes as the parameter's plain reading */
            fast_tpriv *q = FAST_P(st[i]);
            if (dnnl_memory_desc_get_size(&q->md) != dnnl_memory_desc_get_size(&FAST_P(p)->plain_md))
                return dlt_err(DLT_ESHAPE, "optim_step: state size differs");
            q->md = q->plain_md = FAST_P(p)->plain_md;
        }
        int rc = fast_migrate(cx, st[i], md);
        if (rc) return rc;
    }
    const int64_t n = (int64_t)(dnnl_memory_desc_get_size(md) / 4);
    float *restrict pd = p->data, *restrict md_ = m ? m->data : NULL, *restrict vd = v ? v->data : NULL;
    const float *restrict gd = g->data;
    if (od->kind == DLT_OPTIM_ADAM) {
        const double t = (double)od->t;
        const double bc1 = 1 - pow(od->beta1, t), bc2 = 1 - pow(od->beta2, t);
        const float b1 = od->beta1, b2 = od->beta2, step = (float)(od->lr / bc1), isb = (float)(1 / sqrt(bc2));
        const float wd = od->weight_decay, eps = od->eps;
#pragma omp parallel for simd num_threads(cx->nthr) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            const float gi = gd[i] + wd * pd[i];
            const float mi = b1 * md_[i] + (1 - b1) * gi, vi = b2 * vd[i] + (1 - b2) * gi * gi;
            md_[i] = mi;
            vd[i] = vi;
            pd[i] -= step * mi / (sqrtf(vi) * isb + eps);
        }
    } else {
        const float mu = od->momentum, wd = od->weight_decay, lr = od->lr;
        const int nest = od->nesterov, mom = mu != 0 && md_;
#pragma omp parallel for simd num_threads(cx->nthr) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float gi = gd[i] + wd * pd[i];
            if (mom) {
                const float b = mu * md_[i] + gi;
                md_[i] = b;
                gi = nest ? gi + mu * b : b;
            }
            pd[i] -= lr * gi;
        }
    }
    return 0;
}

