/* backend/cpu/simd/loss.c - the losses on the fast path, on the activations' own
 * layout (blocked nCdhw16c or nCdhw8c, 14 classes in 16 lanes, or plain;
 * compiled once per ISA, backend/cpu/fast_kern.h):
 * cross-entropy, DLTK's class-balanced cross-entropy, soft Dice and
 * Dice + CE, with the semantics of the reference (ref_kern.h).
 *
 * Pass 1 runs over chunks of voxels (per sample): softmax per voxel, the CE
 * term, and for Dice the per-class sums P = sum p and I = sum p*[y=c] as
 * per-chunk partials in double. CE alone writes dlogits there and then. Dice
 * stores p in dlogits, combines the partials in chunk order (so the result
 * does not depend on the thread count), and pass 2 turns p into the
 * gradient: dz_c = p_c (g_c - sum_k p_k g_k) (+ the CE term), with
 * g_c = dloss/dp_c = A[n,c] - [y=c] B[n,c]. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast.h"
#include "backend/cpu/fast_softmax.h"


#define CHUNK 4096 /* voxels per work item */

/* What both passes read. Per-class arrays have stride CP = max(C, 16), the
 * lanes past C zero. */
typedef struct lparam {
    int64_t C, CP, B, bs, S, cb, nch;
    int ce, bal, dice;
    double M;
    const double *w; /* [CP] CE weight per class: 1, or DLTK's balanced weight */
    const float *A, *Bv; /* [N*CP] Dice gradient terms (pass 2) */
    const float *x;
    const int32_t *lab;
    float *g; /* dlogits or NULL */
} lparam;

/* -log p_y and the gradient factor r of DLTK's balanced CE, which adds
 * FLT_MIN to p_y where p_y < FLT_MIN (ref_kern.h). */
static inline double bal_nl(double nl, double *r)
{
    *r = 1;
    if (nl > 80) {
        const double py = exp(-nl);
        if (py < FLT_MIN) {
            const double q = py + FLT_MIN;
            *r = py / q;
            return -log(q);
        }
    }
    return nl;
}

/* Pass 1 over voxels [s0, s1) of sample n, C <= 16 in 16 lanes (blocks of 8 or 16).
 * part: [0] CE sum, [1..CP] P, [1+CP..1+2CP] I. */
static inline __attribute__((always_inline)) void pass1_blk(const lparam *q, int64_t n, int64_t s0, int64_t s1,
                                                            double *part)
{
    double P[16] = {0}, I[16] = {0}, acc = 0;
    const float invM = (float)(1.0 / q->M);
    for (int64_t s = s0; s < s1; s++) {
        const int64_t o = n * q->cb * q->bs + s * q->B;
        const int32_t y = q->lab[n * q->S + s];
        float z[16], e[16], mx;
        vox_gather16(q->x + o, q->B, q->bs, q->C, z);
        const float sum = vox_softmax16(z, q->C, e, &mx), r = 1.f / sum;
#pragma omp simd
        for (int l = 0; l < 16; l++) e[l] *= r;
        float coef = invM;
        if (q->ce) {
            double f = 1, nl = log((double)sum) + mx - z[y];
            if (q->bal) nl = bal_nl(nl, &f);
            acc += q->w[y] * nl;
            coef = (float)(q->w[y] * f / q->M);
        }
        if (q->dice) {
#pragma omp simd
            for (int l = 0; l < 16; l++) P[l] += e[l];
            I[y] += e[y];
        }
        if (!q->g) continue;
        float g[16];
        if (q->dice) {
#pragma omp simd
            for (int l = 0; l < 16; l++) g[l] = e[l];
        } else {
#pragma omp simd
            for (int l = 0; l < 16; l++) g[l] = coef * (e[l] - (l == y ? 1.f : 0.f));
        }
        vox_scatter16(g, q->B, q->bs, q->C, q->g + o);
    }
    part[0] = acc;
    for (int l = 0; l < 16; l++) part[1 + l] = P[l], part[1 + q->CP + l] = I[l];
}

/* The same for any layout and class count; p: C floats of scratch. */
static void pass1_gen(const lparam *q, int64_t n, int64_t s0, int64_t s1, double *part, float *p)
{
    const int64_t C = q->C, B = q->B, bs = q->bs;
    double *P = part + 1, *I = part + 1 + q->CP, acc = 0;
    for (int64_t c = 0; c < 2 * q->CP; c++) P[c] = 0;
    for (int64_t s = s0; s < s1; s++) {
        const int64_t o = n * q->cb * bs + s * B;
        const float *z = q->x + o;
        const int32_t y = q->lab[n * q->S + s];
        float mx;
        double sum;
        vox_softmax(z, C, B, bs, p, &mx, &sum);
        const float r = (float)(1.0 / sum);
        for (int64_t c = 0; c < C; c++) p[c] *= r;
        double coef = 1.0 / q->M;
        if (q->ce) {
            double f = 1, nl = log(sum) + mx - z[(y / B) * bs + y % B];
            if (q->bal) nl = bal_nl(nl, &f);
            acc += q->w[y] * nl;
            coef = q->w[y] * f / q->M;
        }
        if (q->dice) {
            for (int64_t c = 0; c < C; c++) P[c] += p[c];
            I[y] += p[y];
        }
        if (!q->g) continue;
        float *g = q->g + o;
        const float cf = (float)coef;
        for (int64_t c = 0; c < C; c++)
            g[(c / B) * bs + c % B] = q->dice ? p[c] : cf * (p[c] - (c == y ? 1.f : 0.f));
    }
    part[0] = acc;
}

/* Pass 2 (Dice, dlogits hold p): the gradient in place. ce: add the plain
 * CE term (p - [y=c]) / M. */
static inline __attribute__((always_inline)) void pass2_blk(const lparam *q, int64_t n, int64_t s0, int64_t s1)
{
    const float *A = q->A + n * q->CP, *Bv = q->Bv + n * q->CP;
    const float invM = q->ce ? (float)(1.0 / q->M) : 0.f;
    for (int64_t s = s0; s < s1; s++) {
        float *gp = q->g + n * q->cb * q->bs + s * q->B, g[16];
        vox_gather16(gp, q->B, q->bs, q->C, g);
        const int32_t y = q->lab[n * q->S + s];
        float gc[16], dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int l = 0; l < 16; l++) {
            gc[l] = A[l] - (l == y ? Bv[l] : 0.f);
            dot += g[l] * gc[l];
        }
#pragma omp simd
        for (int l = 0; l < 16; l++) g[l] = g[l] * (gc[l] - dot) + invM * (g[l] - (l == y ? 1.f : 0.f));
        vox_scatter16(g, q->B, q->bs, q->C, gp);
    }
}

static void pass2_gen(const lparam *q, int64_t n, int64_t s0, int64_t s1)
{
    const int64_t C = q->C, B = q->B, bs = q->bs;
    const float *A = q->A + n * q->CP, *Bv = q->Bv + n * q->CP;
    const float invM = q->ce ? (float)(1.0 / q->M) : 0.f;
    for (int64_t s = s0; s < s1; s++) {
        float *g = q->g + n * q->cb * bs + s * B;
        const int32_t y = q->lab[n * q->S + s];
        float dot = 0;
        for (int64_t c = 0; c < C; c++) dot += g[(c / B) * bs + c % B] * (A[c] - (c == y ? Bv[c] : 0.f));
        for (int64_t c = 0; c < C; c++) {
            float *gp = g + (c / B) * bs + c % B;
            const float p = *gp, gcv = A[c] - (c == y ? Bv[c] : 0.f);
            *gp = p * (gcv - dot) + invM * (p - (c == y ? 1.f : 0.f));
        }
    }
}

static int run_pass1(fast_ctx *cx, const lparam *q, int64_t items, int64_t plen, double *part)
{
    const int one_block = vox_fits16(q->B, q->C);
    int bad = 0;
#pragma omp parallel num_threads(cx->nthr)
    {
        float *p = one_block ? NULL : malloc(sizeof(float) * (size_t)q->C);
        if (!one_block && !p) bad = 1;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            const int64_t n = it / q->nch, s0 = (it % q->nch) * CHUNK, s1 = s0 + CHUNK < q->S ? s0 + CHUNK : q->S;
            if (one_block)
                pass1_blk(q, n, s0, s1, part + it * plen);
            else if (p)
                pass1_gen(q, n, s0, s1, part + it * plen, p);
        }
        free(p);
    }
    return bad ? dlt_err(DLT_ENOMEM, "cpu: out of memory") : 0;
}

static void run_pass2(fast_ctx *cx, const lparam *q, int64_t items)
{
    const int one_block = vox_fits16(q->B, q->C);
#pragma omp parallel for num_threads(cx->nthr) schedule(static)
    for (int64_t it = 0; it < items; it++) {
        const int64_t n = it / q->nch, s0 = (it % q->nch) * CHUNK, s1 = s0 + CHUNK < q->S ? s0 + CHUNK : q->S;
        if (one_block)
            pass2_blk(q, n, s0, s1);
        else
            pass2_gen(q, n, s0, s1);
    }
}

int FAST_K(fast_loss)(dlt_backend *be, const dlt_loss_desc *ld, const dlt_tensor *logits, const dlt_tensor *labels,
              double *value, dlt_tensor *dlogits)
{
    fast_ctx *cx = FAST_CTX(be);
    const int kind = ld->kind;
    if (logits->fmt == FF_OPAQUE || (dlogits && dlogits->fmt != logits->fmt))
        return dlt_err(DLT_EUNSUP, "loss: logits in an opaque layout");
    const fast_lay l = fast_lay_of(logits);
    const int64_t N = l.n, C = l.c, S = l.s, CP = C > 16 ? C : 16;
    const int32_t *lab = labels->data;
    /* label counts per sample and class (checks the labels too) */
    int64_t *cnt = calloc((size_t)(N * C), sizeof(int64_t));
    if (!cnt) return dlt_err(DLT_ENOMEM, "cpu: out of memory");
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < S; i++) {
            const int32_t v = lab[n * S + i];
            if (v < 0 || v >= C) {
                free(cnt);
                return dlt_err(DLT_EINVAL, "label %d at voxel %lld of sample %lld is outside the %lld classes", v,
                               (long long)i, (long long)n, (long long)C);
            }
            cnt[n * C + v]++;
        }
    lparam q = {.C = C, .CP = CP, .B = l.b, .bs = S * l.b, .S = S, .cb = l.cb, .nch = (S + CHUNK - 1) / CHUNK,
                .ce = kind != DLT_LOSS_DICE, .bal = kind == DLT_LOSS_BALANCED_CE,
                .dice = kind == DLT_LOSS_DICE || kind == DLT_LOSS_DICE_CE, .M = (double)(N * S),
                .x = logits->data, .lab = lab, .g = dlogits ? dlogits->data : NULL};
    const int64_t items = N * q.nch, plen = 1 + 2 * CP;
    double *w = calloc((size_t)CP, sizeof(double)), *part = calloc((size_t)(items * plen), sizeof(double));
    float *A = calloc((size_t)(N * CP), sizeof(float)), *Bv = calloc((size_t)(N * CP), sizeof(float));
    int rc = 0;
    if (!w || !part || !A || !Bv) {
        rc = dlt_err(DLT_ENOMEM, "cpu: out of memory");
        goto out;
    }
    /* DLTK's balanced weights (M/C) / (count_c + 1e-8) over the batch */
    for (int64_t c = 0; c < C; c++) {
        double tot = 0;
        for (int64_t n = 0; n < N; n++) tot += (double)cnt[n * C + c];
        w[c] = q.bal ? (q.M / (double)C) / (tot + 1e-8) : 1.0;
    }
    q.w = w, q.A = A, q.Bv = Bv;
    rc = run_pass1(cx, &q, items, plen, part);
    if (rc) goto out;
    double lossv = 0;
    if (q.ce) {
        double tot = 0;
        for (int64_t it = 0; it < items; it++) tot += part[it * plen];
        lossv += tot / q.M;
    }
    if (q.dice) {
        const double sm = ld->smooth;
        const int64_t c0 = ld->include_bg ? 0 : 1;
        int64_t K = 0;
        double dsum = 0;
        /* per (n, c): P, I combined in chunk order into A (P) and Bv (I) as doubles first */
        double *P = calloc((size_t)(N * C * 2), sizeof(double));
        if (!P) {
            rc = dlt_err(DLT_ENOMEM, "cpu: out of memory");
            goto out;
        }
        double *I = P + N * C;
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < q.nch; j++) {
                const double *pp = part + (n * q.nch + j) * plen;
                for (int64_t c = 0; c < C; c++) P[n * C + c] += pp[1 + c], I[n * C + c] += pp[1 + CP + c];
            }
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = c0; c < C; c++) {
                if (ld->only_present && cnt[n * C + c] == 0) continue;
                K++;
                dsum += (2 * I[n * C + c] + sm) / ((double)cnt[n * C + c] + P[n * C + c] + sm);
            }
        if (K > 0) {
            lossv += 1 - dsum / (double)K;
            /* g_c = -(2 [y=c] - D) / den / K = A - [y=c] B */
            for (int64_t n = 0; n < N; n++)
                for (int64_t c = c0; c < C; c++) {
                    if (ld->only_present && cnt[n * C + c] == 0) continue;
                    const double den = (double)cnt[n * C + c] + P[n * C + c] + sm, D = (2 * I[n * C + c] + sm) / den;
                    A[n * CP + c] = (float)(D / den / (double)K);
                    Bv[n * CP + c] = (float)(2.0 / den / (double)K);
                }
        } else {
            lossv += 1;
        }
        free(P);
        if (q.g) run_pass2(cx, &q, items);
    }
    *value = lossv;
out:
    free(cnt), free(w), free(part), free(A), free(Bv);
    return rc;
}

