/* backend/cpu/fast_fold.c - the weight gradient of a 3-D convolution as a sum of
 * 2-D ones, where oneDNN has a 2-D kernel for our blocked layout but no
 * 3-D one (oneDNN 2.6 on AVX2: its jit:avx2 backward-weights kernel reads
 * nChw8c at 106-122 GFLOP/s on two Zen 3 cores, while the 3-D op falls to
 * its gemm code at 27-68).
 *
 * With depth stride 1, dW[:, :, kd] = sum over n and output depth od of the
 * 2-D weight gradient of the slices x[n, :, od + kd - pad] and dy[n, :, od].
 * Both tensors are copied once into [N][D][CB][H][W][B] (the 2-D nChwBc
 * layout with batch N*D: whole H*W*B runs, memory-bound), then for every
 * (n, kd) one 2-D primitive runs on the contiguous run of depth slices that
 * tap reaches (batch = that many slices; at most KD+1 distinct shapes, all
 * cached), its result added into a plain [O][I][KD][KH][KW] sum, which is
 * finally added into dW in its own layout. No bias (the networks have
 * none); other geometries keep the 3-D path. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast_conv.h"

/* [N][CB][D][HWB] -> [N][D][CB][HWB], threaded over the runs. */
static void to_depth_major(fast_ctx *cx, const float *src, float *dst, int64_t N, int64_t CB, int64_t D, int64_t run)
{
#pragma omp parallel for collapse(3) num_threads(cx->nthr) schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t cb = 0; cb < CB; cb++)
            for (int64_t d = 0; d < D; d++)
                memcpy(dst + ((n * D + d) * CB + cb) * run, src + ((n * CB + cb) * D + d) * run, (size_t)run * 4);
}

static void md2d(const dlt_tensor *t, int64_t nb, int blk, dnnl_memory_desc_t *md)
{
    dnnl_dims_t d = {nb, t->c, t->h, t->w};
    memset(md, 0, sizeof *md);
    dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, blk == 16 ? dnnl_nChw16c : dnnl_nChw8c);
}

/* The cached 2-D backward-weights primitive for a batch of nb slices;
 * flags FAST_PRIM_REF where oneDNN has only reference code for it. */
static fast_prim *fold_prim(fast_ctx *cx, const cgeo *G, int64_t nb)
{
    const dlt_tensor *x = G->big, *y = G->small, *w = G->w;
    int64_t key[24];
    size_t n = 0;
    key[n++] = 0x666f6c64; /* "fold" */
    key[n++] = nb, key[n++] = x->c, key[n++] = y->c, key[n++] = x->h, key[n++] = x->w, key[n++] = y->h;
    key[n++] = y->w, key[n++] = w->h, key[n++] = w->w, key[n++] = cx->blk;
    for (int i = 1; i < 3; i++) key[n++] = G->st[i], key[n++] = G->pl[i], key[n++] = G->pr[i];
    fast_prim *p = fast_cache_get(cx, key, n * sizeof key[0]);
    if (p) return p;
    dnnl_memory_desc_t xm, ym, wm;
    md2d(x, nb, cx->blk, &xm), md2d(y, nb, cx->blk, &ym);
    dnnl_dims_t wd = {y->c, x->c, w->h, w->w}, st = {G->st[1], G->st[2]}, pl = {G->pl[1], G->pl[2]},
                pr = {G->pr[1], G->pr[2]};
    dnnl_memory_desc_init_by_tag(&wm, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_convolution_desc_t fd, bd;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t s = dnnl_primitive_attr_create(&attr);
    if (s == dnnl_success) s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success)
        s = dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &xm, &wm, NULL,
                                               &ym, st, pl, pr);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&hint, &fd, NULL, cx->eng, NULL);
    if (s == dnnl_success)
        s = dnnl_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &xm, &wm, NULL, &ym, st, pl, pr);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &bd, attr, cx->eng, hint);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) {
        fast_dnnl_err(s, "2-D convolution primitive");
        return NULL;
    }
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    const int args[3] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS};
    const dnnl_memory_desc_t *mds[3] = {&xm, &ym, wq};
    const int ref = !strncmp(fast_impl_name(pd), "ref", 3);
    dnnl_memory_desc_t wcopy = *wq;
    if ((p = fast_cache_put(cx, key, n * sizeof key[0], pd, 3, args, mds)))
        p->wmd = wcopy, p->flags = ref ? FAST_PRIM_REF : 0;
    return p;
}

int fast_fold_worth(const cgeo *G)
{
    return !G->tr && G->g == 1 && !G->bias && G->ipad == 0 && G->st[0] == 1 && G->big->fmt == FF_BLK &&
           G->small->fmt == FF_BLK;
}

int fast_fold_bwd_weights(fast_ctx *cx, const cgeo *G, const dlt_tensor *x, const dlt_tensor *dy, dlt_tensor *dw,
                          int *done)
{
    *done = 0;
    const int64_t N = x->n, D = x->d, OD = dy->d, KD = G->w->d, pl = G->pl[0];
    /* every batch size a tap needs must have a kernel, or the 3-D path runs */
    for (int64_t kd = 0; kd < KD; kd++) {
        const int64_t o0 = pl - kd > 0 ? pl - kd : 0, o1 = OD < D + pl - kd ? OD : D + pl - kd;
        if (o1 <= o0) continue;
        fast_prim *p = fold_prim(cx, G, o1 - o0);
        if (!p) return DLT_EDEVICE;
        if (p->flags & FAST_PRIM_REF) return 0;
    }
    const fast_lay lx = fast_lay_of(x), ly = fast_lay_of(dy);
    const int64_t runx = x->h * x->w * lx.b, runy = dy->h * dy->w * ly.b;
    float *xt = fast_tmp(cx, 0, (size_t)fast_lay_size(&lx) * 4), *yt = fast_tmp(cx, 3, (size_t)fast_lay_size(&ly) * 4);
    const int64_t O = G->w->n, I = G->w->c, KHW = G->w->h * G->w->w;
    float *acc = fast_tmp(cx, 2, (size_t)(O * I * KD * KHW) * 4);
    if (!xt || !yt || !acc) return DLT_ENOMEM;
    to_depth_major(cx, x->data, xt, N, lx.cb, D, runx);
    to_depth_major(cx, dy->data, yt, N, ly.cb, OD, runy);
    memset(acc, 0, (size_t)(O * I * KD * KHW) * 4);
    /* one kd slice of the plain [O][I][KD][KH][KW] sum, as a 4-D [O][I][KH][KW] view */
    dnnl_memory_desc_t slice;
    dnnl_dims_t sd = {O, I, G->w->h, G->w->w}, ss = {I * KD * KHW, KD * KHW, G->w->w, 1};
    dnnl_memory_desc_init_by_strides(&slice, 4, sd, dnnl_f32, ss);
    int rc = 0;
    for (int64_t n = 0; n < N && !rc; n++)
        for (int64_t kd = 0; kd < KD && !rc; kd++) {
            const int64_t o0 = pl - kd > 0 ? pl - kd : 0, o1 = OD < D + pl - kd ? OD : D + pl - kd;
            if (o1 <= o0) continue;
            fast_prim *p = fold_prim(cx, G, o1 - o0);
            float *tw = fast_tmp(cx, 1, dnnl_memory_desc_get_size(&p->wmd));
            if (!tw) return DLT_ENOMEM;
            void *ptrs[3] = {xt + (n * D + o0 + kd - pl) * lx.cb * runx, yt + (n * OD + o0) * ly.cb * runy, tw};
            rc = fast_exec(cx, p, ptrs);
            if (!rc) rc = fast_reorder(cx, &p->wmd, tw, &slice, acc + kd * KHW, 1);
        }
    if (rc) return rc;
    dnnl_memory_desc_t plain;
    fast_geo_wmd(G, 0, dnnl_f32, &plain);
    *done = 1;
    return fast_reorder(cx, &plain, acc, &FAST_P(dw)->md, dw->data, 1);
}

