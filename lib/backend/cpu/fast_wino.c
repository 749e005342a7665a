/* backend/cpu/fast_wino.c - which convolutions run by Winograd on the fast
 * path (the loops: simd/wino.c), with which tile, and their weights,
 * transformed on every call (weights change every training step).
 *
 * Taken for 3x3x3 convolutions of stride 1 and padding 1 (output the size
 * of the input) between blocked activations, forward and backward data
 * (the adjoint of such a convolution is one too: weights flipped and in
 * and out exchanged) and the weight gradient, in fp32. Forward and
 * backward data by F(4x4x4, 3x3x3) where the volume has many 4^3 tiles
 * (216 products per 64 outputs: 8x fewer than direct; fp32 error about
 * 2e-5 relative, F(2,3)'s about 1e-6), else by F(2x2x2, 3x3x3) (64 per 8:
 * 3.4x fewer); the weight gradient by F(2,3). DLT_WINOGRAD in the
 * environment: 0 turns it off (oneDNN's direct kernels then run
 * everything), 2 or 4 takes only that tile wherever Winograd runs. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast_conv.h"

/* F(4,3) from this many tiles of 4x4x4 outputs (see fast_wino_worth) */
#define WINO4_MIN_TILES 512

/* Tiles of m x m x m outputs over the op's big side. */
static int64_t wino_tiles(const dlt_tensor *t, int m)
{
    return t->n * ((t->d + m - 1) / m) * ((t->h + m - 1) / m) * ((t->w + m - 1) / m);
}

int fast_wino_worth(const fast_ctx *cx, const cgeo *G)
{
    if (!cx->wino || G->tr || G->g != 1 || (cx->blk != 8 && cx->blk != 16)) return 0;
    if (G->w->d != 3 || G->w->h != 3 || G->w->w != 3) return 0;
    for (int i = 0; i < 3; i++)
        if (G->st[i] != 1 || G->pl[i] != 1 || G->pr[i] != 1) return 0;
    if (G->big->fmt != FF_BLK || G->small->fmt != FF_BLK) return 0;
    /* Few tiles (8^3 of one sample: 64) leave a thread idle and the weight
     * transform unpaid for; oneDNN's direct kernel is faster there. */
    if (wino_tiles(G->big, 2) < 256) return 0;
    if (cx->wino == 2 || cx->wino == 4) return cx->wino;
    /* F(4,3) where its tiles are many and mostly inside: fewer tiles cut
     * at the volume's edge (a 16^3 volume: 64 tiles, 56 of them at an
     * edge, computing zeros) */
    return wino_tiles(G->big, 4) >= WINO4_MIN_TILES ? 4 : 2;
}

/* G g G^T on each axis: the 3x3x3 kernel g as the n x n x n u, n = m + 2
 * (F(2,3): points 0, 1, -1, infinity; F(4,3): also 2, -2). */
static void wtrans(int m, const float *g, float *u)
{
    static const float G2[4][3] = {{1, 0, 0}, {.5f, .5f, .5f}, {.5f, -.5f, .5f}, {0, 0, 1}};
    static const float G4[6][3] = {{1 / 4.f, 0, 0},          {-1 / 6.f, -1 / 6.f, -1 / 6.f},
                                   {-1 / 6.f, 1 / 6.f, -1 / 6.f}, {1 / 24.f, 1 / 12.f, 1 / 6.f},
                                   {1 / 24.f, -1 / 12.f, 1 / 6.f}, {0, 0, 1}};
    const int n = m + 2;
    const float(*Gm)[3] = m == 4 ? G4 : G2;
    float t1[3][3][6], t2[3][6][6];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int c = 0; c < n; c++)
                t1[i][j][c] = Gm[c][0] * g[(i * 3 + j) * 3] + Gm[c][1] * g[(i * 3 + j) * 3 + 1] +
                              Gm[c][2] * g[(i * 3 + j) * 3 + 2];
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < n; b++)
            for (int c = 0; c < n; c++)
                t2[i][b][c] = Gm[b][0] * t1[i][0][c] + Gm[b][1] * t1[i][1][c] + Gm[b][2] * t1[i][2][c];
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            for (int c = 0; c < n; c++)
                u[(a * n + b) * n + c] = Gm[a][0] * t2[0][b][c] + Gm[a][1] * t2[1][b][c] + Gm[a][2] * t2[2][b][c];
}

/* U[pos][cob][ci][B] of the op's CO x CI kernels (P points; padded lanes
 * zero) from the plain weights w[O][I][3][3][3]; the adjoint (bwd) reads
 * w[ci][co] flipped. One B-lane row of U at a time, so every store fills
 * a line. */
static void wino_weights(int nthr, int m, const float *w, int64_t CO, int64_t CI, int B, int bwd, float *U)
{
    const int64_t COB = (CO + B - 1) / B, CIP = (CI + B - 1) / B * B;
    const int P = (m + 2) * (m + 2) * (m + 2);
#pragma omp parallel for collapse(2) num_threads(nthr) schedule(static)
    for (int64_t cob = 0; cob < COB; cob++)
        for (int64_t ci = 0; ci < CIP; ci++) {
            float u[16][216];
            for (int l = 0; l < B; l++) {
                const int64_t co = cob * B + l;
                float g[27];
                if (co >= CO || ci >= CI) memset(g, 0, sizeof g);
                else if (bwd)
                    for (int k = 0; k < 27; k++) g[k] = w[(ci * CO + co) * 27 + 26 - k];
                else
                    memcpy(g, w + (co * CI + ci) * 27, sizeof g);
                wtrans(m, g, u[l]);
            }
            for (int p = 0; p < P; p++)
                for (int l = 0; l < B; l++) U[((p * COB + cob) * CIP + ci) * B + l] = u[l][p];
        }
}

/* Transformed weights kept between calls with the same weights (in
 * inference, every window: F(4,3)'s transform took 4% of a sliding
 * window). Found by the weights' address, direction, tile and shape, and
 * used only where the plain weights are byte for byte those U came from
 * (kept beside it), so changed weights, or another tensor at a freed
 * address, never meet a stale U. U is kept from the second call with
 * unchanged weights on; a training step changes them every time, so it
 * keeps only the copy, and drops a U it had. */
typedef struct wino_cached {
    struct wino_cached *next;
    const void *data;
    int bwd, m;
    int64_t CO, CI, ubytes;
    float *plain; /* the last call's plain weights, CO x CI x 27 */
    float *U;     /* their transform, or NULL */
} wino_cached;

/* bytes of plain copies and transforms held at most (beyond: not kept) */
#define WINO_CACHE_MAX ((int64_t)512 << 20)

static wino_cached *wino_cache_entry(fast_ctx *cx, const void *data, int bwd, int m, int64_t CO, int64_t CI)
{
    for (wino_cached *e = cx->wcache; e; e = e->next)
        if (e->data == data && e->bwd == bwd && e->m == m && e->CO == CO && e->CI == CI) return e;
    const int64_t bytes = CO * CI * 27 * 4;
    if (cx->wcache_bytes + bytes > WINO_CACHE_MAX) return NULL;
    wino_cached *e = calloc(1, sizeof *e);
    if (!e || !(e->plain = dlt_alloc(bytes, 1, "cpu: Winograd weights"))) {
        free(e);
        return NULL; /* not kept: computed every call, as without the cache */
    }
    e->data = data, e->bwd = bwd, e->m = m, e->CO = CO, e->CI = CI;
    memset(e->plain, 0xff, (size_t)bytes); /* NaNs: equal to no weights */
    e->next = cx->wcache, cx->wcache = e;
    cx->wcache_bytes += bytes;
    return e;
}

void fast_wino_cache_free(fast_ctx *cx)
{
    for (wino_cached *e = cx->wcache, *nx; e; e = nx) {
        nx = e->next;
        dlt_free(e->plain), dlt_free(e->U), free(e);
    }
    cx->wcache = NULL, cx->wcache_bytes = 0;
}

/* The transformed weights of plain wp for this call: the kept ones where
 * wp is unchanged, else computed (into the cache on the second call with
 * the same weights, else into a temporary). */
static const float *wino_U(fast_ctx *cx, const dlt_tensor *w, const float *wp, int bwd, int m, int64_t CO, int64_t CI)
{
    const int B = cx->blk, P = (m + 2) * (m + 2) * (m + 2);
    const int64_t CIB = (CI + B - 1) / B, COB = (CO + B - 1) / B, ubytes = (int64_t)P * COB * CIB * B * B * 4;
    const size_t wbytes = (size_t)(CO * CI * 27) * 4;
    wino_cached *e = wino_cache_entry(cx, w->data, bwd, m, CO, CI);
    if (e && !memcmp(e->plain, wp, wbytes)) {
        if (e->U) return e->U;
        if (cx->wcache_bytes + ubytes <= WINO_CACHE_MAX && (e->U = dlt_alloc(ubytes, 1, "cpu: Winograd weights"))) {
            cx->wcache_bytes += ubytes, e->ubytes = ubytes;
            wino_weights(cx->nthr, m, wp, CO, CI, B, bwd, e->U);
            return e->U;
        }
    } else if (e) {
        memcpy(e->plain, wp, wbytes);
        dlt_free(e->U);
        e->U = NULL, cx->wcache_bytes -= e->ubytes, e->ubytes = 0;
    }
    float *U = fast_tmp(cx, 3, (size_t)ubytes);
    if (U) wino_weights(cx->nthr, m, wp, CO, CI, B, bwd, U);
    return U;
}

/* The report line of this geometry, once. */
static void wino_note(fast_ctx *cx, const cgeo *G, int kind, int m)
{
    char gs[160];
    fast_geo_str(G, kind, gs, sizeof gs);
    strcat(gs, "\t");
    if (cx->report && strstr(cx->report, gs)) return;
    fast_report(cx, "%sdlt Winograd F(%d,3) (%s)", gs, m, cx->k->isa);
}

int fast_wino_conv(fast_ctx *cx, int kind, const cgeo *G, const dlt_tensor *in, const dlt_tensor *w,
                   const dlt_tensor *b, dlt_tensor *out, int accum)
{
    const int B = cx->blk, bwd = kind == K_BWD_DATA, m = fast_wino_worth(cx, G);
    const int64_t CI = in->c, CO = out->c, CIB = (CI + B - 1) / B, COB = (CO + B - 1) / B;
    wino_note(cx, G, kind, m);
    /* the plain weights: w itself, or a copy out of the layout a oneDNN primitive gave it */
    const float *wp = w->data;
    const fast_tpriv *pw = FAST_P(w);
    if (!dnnl_memory_desc_equal(&pw->md, &pw->plain_md)) {
        float *t = fast_tmp(cx, 1, dnnl_memory_desc_get_size(&pw->plain_md));
        if (!t) return DLT_ENOMEM;
        int rc = fast_reorder(cx, &pw->md, w->data, &pw->plain_md, t, 0);
        if (rc) return rc;
        wp = t;
    }
    const float *U = wino_U(cx, w, wp, bwd, m, CO, CI);
    float *bias = NULL;
    if (!U) return DLT_ENOMEM;
    if (b) {
        if (!(bias = fast_tmp(cx, 0, (size_t)(COB * B) * 4))) return DLT_ENOMEM;
        memset(bias, 0, (size_t)(COB * B) * 4);
        memcpy(bias, b->data, (size_t)CO * 4);
    }
    return cx->k->wino_run(cx, m, in->n, CIB, COB, in->d, in->h, in->w, in->data, U, bias, out->data, accum);
}

int fast_wino_bwd_weights(fast_ctx *cx, const cgeo *G, const dlt_tensor *x, const dlt_tensor *dy, dlt_tensor *dw,
                          dlt_tensor *db)
{
    wino_note(cx, G, K_BWD_WEIGHTS, 2);
    /* the loops add to plain weights: dw itself, or a zeroed plain copy
     * added to dw's layout after */
    const fast_tpriv *pw = FAST_P(dw);
    const int plain = dnnl_memory_desc_equal(&pw->md, &pw->plain_md);
    const size_t bytes = dnnl_memory_desc_get_size(&pw->plain_md);
    float *o = dw->data;
    if (!plain) {
        if (!(o = fast_tmp(cx, 1, bytes))) return DLT_ENOMEM;
        memset(o, 0, bytes);
    }
    int rc = cx->k->wino_bw_run(cx, x->n, x->c, dy->c, x->d, x->h, x->w, x->data, dy->data, o,
                                db ? db->data : NULL);
    if (rc || plain) return rc;
    return fast_reorder(cx, &pw->plain_md, o, &pw->md, dw->data, 1);
}
