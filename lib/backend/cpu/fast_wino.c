/* backend/cpu/fast_wino.c - which convolutions run by Winograd's F(2x2x2,
 * 3x3x3) on the fast path (the loops: simd/wino.c), and their weights,
 * transformed on every call (weights change every training step; the
 * transform costs 64 * in * out floats, well under 1% of the convolution).
 *
 * Taken for 3x3x3 convolutions of stride 1 and padding 1 (output the size
 * of the input) between blocked activations, forward and backward data
 * (the adjoint of such a convolution is one too: weights flipped and in
 * and out exchanged), in fp32. The weight gradient stays with oneDNN.
 * DLT_WINOGRAD=0 in the environment turns it off (oneDNN's direct kernels
 * then run everything, as before it existed). */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast_conv.h"

int fast_wino_worth(const fast_ctx *cx, const cgeo *G)
{
    if (!cx->wino || G->tr || G->g != 1 || (cx->blk != 8 && cx->blk != 16)) return 0;
    if (G->w->d != 3 || G->w->h != 3 || G->w->w != 3) return 0;
    for (int i = 0; i < 3; i++)
        if (G->st[i] != 1 || G->pl[i] != 1 || G->pr[i] != 1) return 0;
    /* Few tiles (8^3 of one sample: 64) leave a thread idle and the weight
     * transform unpaid for; oneDNN's direct kernel is faster there. */
    const dlt_tensor *t = G->big;
    if (t->n * ((t->d + 1) / 2) * ((t->h + 1) / 2) * ((t->w + 1) / 2) < 256) return 0;
    return G->big->fmt == FF_BLK && G->small->fmt == FF_BLK;
}

/* G g G^T on each axis: the 3x3x3 kernel g as the 4x4x4 u. */
static void wtrans(const float *g, float *u)
{
    static const float Gm[4][3] = {{1, 0, 0}, {.5f, .5f, .5f}, {.5f, -.5f, .5f}, {0, 0, 1}};
    float t1[3][3][4], t2[3][4][4];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int c = 0; c < 4; c++)
                t1[i][j][c] = Gm[c][0] * g[(i * 3 + j) * 3] + Gm[c][1] * g[(i * 3 + j) * 3 + 1] +
                              Gm[c][2] * g[(i * 3 + j) * 3 + 2];
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                t2[i][b][c] = Gm[b][0] * t1[i][0][c] + Gm[b][1] * t1[i][1][c] + Gm[b][2] * t1[i][2][c];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                u[(a * 4 + b) * 4 + c] = Gm[a][0] * t2[0][b][c] + Gm[a][1] * t2[1][b][c] + Gm[a][2] * t2[2][b][c];
}

/* U[pos][cob][ci][B] of the op's CO x CI kernels (padded lanes zero) from
 * the plain weights w[O][I][3][3][3]; the adjoint (bwd) reads w[ci][co]
 * flipped. One B-lane row of U at a time, so every store fills a line. */
static void wino_weights(int nthr, const float *w, int64_t CO, int64_t CI, int B, int bwd, float *U)
{
    const int64_t COB = (CO + B - 1) / B, CIP = (CI + B - 1) / B * B;
#pragma omp parallel for collapse(2) num_threads(nthr) schedule(static)
    for (int64_t cob = 0; cob < COB; cob++)
        for (int64_t ci = 0; ci < CIP; ci++) {
            float u[16][64];
            for (int l = 0; l < B; l++) {
                const int64_t co = cob * B + l;
                float g[27];
                if (co >= CO || ci >= CI) memset(g, 0, sizeof g);
                else if (bwd)
                    for (int k = 0; k < 27; k++) g[k] = w[(ci * CO + co) * 27 + 26 - k];
                else
                    memcpy(g, w + (co * CI + ci) * 27, sizeof g);
                wtrans(g, u[l]);
            }
            for (int p = 0; p < 64; p++)
                for (int l = 0; l < B; l++) U[((p * COB + cob) * CIP + ci) * B + l] = u[l][p];
        }
}

/* The report line of this geometry, once. */
static void wino_note(fast_ctx *cx, const cgeo *G, int kind)
{
    char gs[160];
    fast_geo_str(G, kind, gs, sizeof gs);
    strcat(gs, "\t");
    if (cx->report && strstr(cx->report, gs)) return;
    fast_report(cx, "%sdlt Winograd F(2,3) (%s)", gs, cx->k->isa);
}

int fast_wino_conv(fast_ctx *cx, int kind, const cgeo *G, const dlt_tensor *in, const dlt_tensor *w,
                   const dlt_tensor *b, dlt_tensor *out, int accum)
{
    const int B = cx->blk, bwd = kind == K_BWD_DATA;
    const int64_t CI = in->c, CO = out->c, CIB = (CI + B - 1) / B, COB = (CO + B - 1) / B;
    wino_note(cx, G, kind);
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
    float *U = fast_tmp(cx, 3, (size_t)(64 * COB * CIB) * B * B * 4), *bias = NULL;
    if (!U) return DLT_ENOMEM;
    wino_weights(cx->nthr, wp, CO, CI, B, bwd, U);
    if (b) {
        if (!(bias = fast_tmp(cx, 0, (size_t)(COB * B) * 4))) return DLT_ENOMEM;
        memset(bias, 0, (size_t)(COB * B) * 4);
        memcpy(bias, b->data, (size_t)CO * 4);
    }
    return cx->k->wino_run(cx, in->n, CIB, COB, in->d, in->h, in->w, in->data, U, bias, out->data, accum);
}

int fast_wino_bwd_weights(fast_ctx *cx, const cgeo *G, const dlt_tensor *x, const dlt_tensor *dy, dlt_tensor *dw,
                          dlt_tensor *db)
{
    wino_note(cx, G, K_BWD_WEIGHTS);
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
