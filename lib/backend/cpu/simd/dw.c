/* backend/cpu/simd/dw.c - the depthwise transposed convolution on the fast path
 * (DLTK's fixed trilinear upsampling, kernel 2*stride, one filter per
 * channel), which oneDNN runs only in its slow reference code for 3-D:
 * forward, its adjoint (backward data) and the weight gradient, as gathers
 * over per-axis tap lists on the blocked layout; compiled once per ISA
 * (backend/cpu/fast_kern.h). Geometry: backend/cpu/fast_conv.h. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast_conv.h"



/* Per axis, for every index p of the gathering side, the (index, tap)
 * pairs of the other side that reach it. */
typedef struct taps {
    int64_t len, T;
    int *cnt, *idx, *kk;
} taps;

static void taps_free(taps *t) { free(t->cnt), free(t->idx), free(t->kk); }

/* to_big=1: big index o gets small i with i*s + kk - pl = o; to_big=0: small
 * index i gets big o = i*s + kk - pl. */
static int taps_make(taps *t, int to_big, int64_t big, int64_t small, int k, int s, int pl)
{
    t->len = to_big ? big : small;
    t->T = k;
    t->cnt = calloc((size_t)t->len, sizeof(int));
    t->idx = malloc(sizeof(int) * (size_t)(t->len * k));
    t->kk = malloc(sizeof(int) * (size_t)(t->len * k));
    if (!t->cnt || !t->idx || !t->kk) return dlt_err(DLT_ENOMEM, "cpu: out of memory");
    for (int64_t p = 0; p < t->len; p++)
        for (int kk = 0; kk < k; kk++) {
            int64_t q;
            if (to_big) {
                int64_t j = p + pl - kk;
                if (j < 0 || j % s || j / s >= small) continue;
                q = j / s;
            } else {
                q = p * s + kk - pl;
                if (q < 0 || q >= big) continue;
            }
            t->idx[p * k + t->cnt[p]] = (int)q;
            t->kk[p * k + t->cnt[p]] = kk;
            t->cnt[p]++;
        }
    return 0;
}

/* One channel block as one value: GCC vectors for 16 and 8 lanes (so the
 * sum stays in a register through the data-dependent tap loops, where an
 * array of lanes went through memory), a float for 1; blocks are 32- or
 * 64-byte aligned. */
typedef float dw_v16 __attribute__((vector_size(64)));
typedef float dw_v8 __attribute__((vector_size(32)));
typedef float dw_v1;

/* out[n,c,p] (+)= sum over taps of w[c][kd][kh][kw] * in[n,c,q], per channel
 * block of B lanes; wt is [CB][KD*KH*KW][B]. */
#define DW_GATHER(NAME, BB)                                                                                         \
    static int NAME(int nthr, const taps *td, const taps *th, const taps *tw, int KH, int KW, int64_t N,           \
                     int64_t CB, const float *in, int64_t ID, int64_t IH, int64_t IW, const float *wt, float *out,  \
                     int accum, const float *bias)                                                                  \
    {                                                                                                               \
        const int64_t OD = td->len, OH = th->len, OW = tw->len, KV = (int64_t)td->T * KH * KW;                      \
        int bad = 0;                                                                                                \
        _Pragma("omp parallel num_threads(nthr)")                                                                   \
        {                                                                                                           \
            dw_v##BB *row = dlt_alloc(OW, sizeof(dw_v##BB), "cpu: upsampling row");                                 \
            if (!row) bad = 1;                                                                                      \
            _Pragma("omp for collapse(3) schedule(static)")                                                         \
            for (int64_t n = 0; n < N; n++)                                                                         \
                for (int64_t cb = 0; cb < CB; cb++)                                                                 \
                    for (int64_t od = 0; od < OD; od++) {                                                           \
                        if (!row) continue;                                                                         \
                        const float *ib = in + (n * CB + cb) * ID * IH * IW * BB;                                   \
                        float *ob = out + (n * CB + cb) * OD * OH * OW * BB;                                        \
                        const float *wb = wt + cb * KV * BB;                                                        \
                        const dw_v##BB b0 = bias ? *(const dw_v##BB *)(bias + cb * BB) : (dw_v##BB){0};             \
                        for (int64_t oh = 0; oh < OH; oh++) {                                                       \
                            for (int64_t ow = 0; ow < OW; ow++) row[ow] = b0;                                       \
                            /* the taps of depth and height outside, so each output's sum                           \
                             * runs in the same order as tap by tap */                                              \
                            for (int a = 0; a < td->cnt[od]; a++) {                                                 \
                                const int64_t id = td->idx[od * td->T + a], ka = td->kk[od * td->T + a];            \
                                for (int b = 0; b < th->cnt[oh]; b++) {                                             \
                                    const int64_t ih = th->idx[oh * th->T + b], kb = th->kk[oh * th->T + b];        \
                                    const float *xr = ib + (id * IH + ih) * IW * BB;                                \
                                    const float *wr = wb + (ka * KH + kb) * KW * BB;                                \
                                    for (int64_t ow = 0; ow < OW; ow++) {                                           \
                                        dw_v##BB acc = row[ow];                                                     \
                                        for (int cc = 0; cc < tw->cnt[ow]; cc++) {                                  \
                                            const int64_t iw = tw->idx[ow * tw->T + cc], kc = tw->kk[ow * tw->T + cc]; \
                                            acc += *(const dw_v##BB *)(wr + kc * BB) * *(const dw_v##BB *)(xr + iw * BB); \
                                        }                                                                           \
                                        row[ow] = acc;                                                              \
                                    }                                                                               \
                                }                                                                                   \
                            }                                                                                       \
                            dw_v##BB *yp = (dw_v##BB *)(ob + (od * OH + oh) * OW * BB);                             \
                            if (accum)                                                                              \
                                for (int64_t ow = 0; ow < OW; ow++) yp[ow] += row[ow];                              \
                            else                                                                                    \
                                for (int64_t ow = 0; ow < OW; ow++) yp[ow] = row[ow];                               \
                        }                                                                                           \
                    }                                                                                               \
            dlt_free(row);                                                                                          \
        }                                                                                                           \
        return bad ? DLT_ENOMEM : 0;                                                                                \
    }
DW_GATHER(dw_gather16, 16)
DW_GATHER(dw_gather8, 8)
DW_GATHER(dw_gather1, 1)

/* The plain weights [C, 1, k] of a depthwise convt as [CB][k][B] (zero lanes past C). */
static float *dw_weights(fast_ctx *cx, const dlt_tensor *w, int64_t B, int64_t C)
{
    const int64_t KV = w->d * w->h * w->w, CB = (C + B - 1) / B;
    float *wt = fast_tmp(cx, 1, (size_t)(CB * KV * B) * 4);
    if (!wt) return NULL;
    const float *ws = w->data;
    for (int64_t cb = 0; cb < CB; cb++)
        for (int64_t k = 0; k < KV; k++)
            for (int64_t l = 0; l < B; l++) {
                int64_t c = cb * B + l;
                wt[(cb * KV + k) * B + l] = c < C ? ws[c * KV + k] : 0.f;
            }
    return wt;
}

/* Depthwise convt forward (to_big=1: y big from x small) or its adjoint
 * (to_big=0: dx small from dy big). */
int FAST_K(fast_dw_run)(fast_ctx *cx, const dlt_conv_desc *c, const cgeo *G, int to_big, const dlt_tensor *in,
                  dlt_tensor *out, int accum, const dlt_tensor *bias)
{
    const fast_lay l = fast_lay_of(out);
    taps t[3];
    memset(t, 0, sizeof t);
    const int64_t bs[3] = {G->big->d, G->big->h, G->big->w}, ss[3] = {G->small->d, G->small->h, G->small->w};
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) rc = taps_make(&t[i], to_big, bs[i], ss[i], c->k[i], c->stride[i], c->pad_lo[i]);
    float *wt = rc ? NULL : dw_weights(cx, G->w, l.b, l.c);
    float *bv = NULL;
    if (!rc && !wt) rc = DLT_ENOMEM;
    if (!rc && bias) {
        if (!(bv = dlt_calloc(l.cb * l.b, sizeof(float), "cpu: bias"))) rc = DLT_ENOMEM; /* 64-byte aligned */
        else memcpy(bv, bias->data, (size_t)l.c * 4);
    }
    if (!rc) {
        if (l.b == 16)
            rc = dw_gather16(cx->nthr, &t[0], &t[1], &t[2], c->k[1], c->k[2], l.n, l.cb, in->data, in->d, in->h, in->w, wt,
                        out->data, accum, bv);
        else if (l.b == 8)
            rc = dw_gather8(cx->nthr, &t[0], &t[1], &t[2], c->k[1], c->k[2], l.n, l.cb, in->data, in->d, in->h, in->w, wt,
                       out->data, accum, bv);
        else
            rc = dw_gather1(cx->nthr, &t[0], &t[1], &t[2], c->k[1], c->k[2], l.n, l.cb, in->data, in->d, in->h, in->w, wt,
                       out->data, accum, bv);
    }
    dlt_free(bv);
    for (int i = 0; i < 3; i++) taps_free(&t[i]);
    return rc;
}

/* dw[c][k] += sum x[small] * dy[big] over the pairs of the forward taps;
 * db[c] += sum dy. Double accumulators per channel block. */
int FAST_K(fast_dw_bwd_weights)(fast_ctx *cx, const dlt_conv_desc *c, const cgeo *G, const dlt_tensor *x,
                          const dlt_tensor *dy, dlt_tensor *dw, dlt_tensor *db)
{
    const fast_lay l = fast_lay_of(dy);
    const int64_t B = l.b, KD = c->k[0], KH = c->k[1], KW = c->k[2], KV = KD * KH * KW;
    taps t[3];
    memset(t, 0, sizeof t);
    const int64_t bs[3] = {G->big->d, G->big->h, G->big->w}, ss[3] = {G->small->d, G->small->h, G->small->w};
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) rc = taps_make(&t[i], 1, bs[i], ss[i], c->k[i], c->stride[i], c->pad_lo[i]);
    if (rc) goto done;
    const float *xs = x->data, *gs = dy->data;
    float *wd = dw->data, *bd = db ? db->data : NULL;
    const int64_t OD = dy->d, OH = dy->h, OW = dy->w, ID = x->d, IH = x->h, IW = x->w;
#pragma omp parallel for num_threads(cx->nthr) schedule(dynamic)
    for (int64_t cb = 0; cb < l.cb; cb++) {
        double *acc = calloc((size_t)((KV + 1) * B), sizeof(double));
        if (!acc) continue;
        for (int64_t n = 0; n < l.n; n++) {
            const float *ib = xs + (n * l.cb + cb) * ID * IH * IW * B, *ob = gs + (n * l.cb + cb) * OD * OH * OW * B;
            for (int64_t od = 0; od < OD; od++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++) {
                        const float *gp = ob + ((od * OH + oh) * OW + ow) * B;
                        for (int64_t q = 0; q < B; q++) acc[KV * B + q] += gp[q];
                        for (int a = 0; a < t[0].cnt[od]; a++)
                            for (int b = 0; b < t[1].cnt[oh]; b++)
                                for (int e = 0; e < t[2].cnt[ow]; e++) {
                                    const int64_t id = t[0].idx[od * t[0].T + a], ih = t[1].idx[oh * t[1].T + b],
                                                  iw = t[2].idx[ow * t[2].T + e];
                                    const int64_t k = (t[0].kk[od * t[0].T + a] * KH + t[1].kk[oh * t[1].T + b]) * KW +
                                                      t[2].kk[ow * t[2].T + e];
                                    const float *xp = ib + ((id * IH + ih) * IW + iw) * B;
                                    for (int64_t q = 0; q < B; q++) acc[k * B + q] += (double)gp[q] * xp[q];
                                }
                    }
        }
        for (int64_t q = 0; q < B; q++) {
            const int64_t ch = cb * B + q;
            if (ch >= l.c) continue;
            for (int64_t k = 0; k < KV; k++) wd[ch * KV + k] += (float)acc[k * B + q];
            if (bd) bd[ch] += (float)acc[KV * B + q];
        }
        free(acc);
    }
done:
    for (int i = 0; i < 3; i++) taps_free(&t[i]);
    return rc;
}

