/* backend/cpu/fast_bf16.c - the fast path's precision=bf16 (fast.c
 * fast_set_option; fast_conv.c calls in here first): convolutions read bfloat16 and
 * sum in f32. oneDNN's AMX kernels (Sapphire Rapids and later) run them
 * 5-10x faster than its f32 kernels, but only on channels-last (ndhwc)
 * data, so every call converts: the op's bf16 operands ours -> ndhwc bf16
 * on the way in (about 1 ms for 48 channels at 64^3, against 25 ms saved),
 * its f32 result ndhwc -> ours on the way out (accumulating where asked),
 * and the weights f32 -> bf16 each call (they are small, and a training
 * step changes them). Weights, gradients and optimiser state stay f32: this
 * is mixed precision, not a bf16 model. Where oneDNN has no kernel or only its
 * reference code for a geometry (a CPU without AVX512-BF16 or AMX), that op
 * stays f32 (said once).
 *
 * Data types by kind, for the op's input side (conv x, convt x small) and
 * output side (conv y, convt y big): forward in bf16 -> out f32; backward
 * data out bf16 -> in f32; backward weights in bf16, out bf16 -> dw f32. */
#include <string.h>

#include "backend/cpu/fast_conv.h"

enum { BF16_NONE = 1 }; /* fast_prim.flags: no bf16 kernel for this geometry */

static void nd_md(const dlt_tensor *t, dnnl_data_type_t dt, dnnl_memory_desc_t *md)
{
    dnnl_dims_t d = {t->n, t->c, t->d, t->h, t->w};
    memset(md, 0, sizeof *md);
    dnnl_memory_desc_init_by_tag(md, 5, d, dt, dnnl_ndhwc);
}

/* The cached bf16 primitive of (kind, geometry); flags BF16_NONE where
 * oneDNN offers only its reference code; NULL on errors. in/out: the op's
 * input and output side tensors. */
static fast_prim *bf16_prim(fast_ctx *cx, int kind, const cgeo *G, const dlt_tensor *in, const dlt_tensor *out,
                            int *unimpl)
{
    *unimpl = 0;
    dnnl_memory_desc_t in16, in32, out16, out32, w16, w32, bimd, *bip = NULL;
    nd_md(in, dnnl_bf16, &in16), nd_md(in, dnnl_f32, &in32);
    nd_md(out, dnnl_bf16, &out16), nd_md(out, dnnl_f32, &out32);
    fast_geo_wmd(G, 1, dnnl_bf16, &w16), fast_geo_wmd(G, 1, dnnl_f32, &w32);
    if (G->bias) fast_bias_md(out->c, &bimd), bip = &bimd;
    /* the op's (in, out) layouts, and the same as (big, small) */
    const dnnl_memory_desc_t *mi = kind == K_BWD_DATA ? &in32 : &in16, *mo = kind == K_FWD ? &out32 : &out16;
    const dnnl_memory_desc_t *bmd = G->tr ? mo : mi, *smd = G->tr ? mi : mo;
    int64_t key[96];
    size_t klen = fast_geo_key(key, 16 + kind, G, bmd, smd);
    fast_prim *p = fast_cache_get(cx, key, klen);
    if (p) return p;
    /* the forward (in bf16 -> out f32) describes, or hints, every kind */
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = fast_geo_pd(cx, kind, G, G->tr ? &out32 : &in16, G->tr ? &in16 : &out32, &w16, bmd, smd,
                                  kind == K_BWD_WEIGHTS ? &w32 : &w16, &pd);
    if (s == dnnl_unimplemented) { /* no bf16 kernel at all for this geometry: fp32 */
        *unimpl = 1;
        return NULL;
    }
    if (s != dnnl_success) {
        fast_dnnl_err(s, "bf16 convolution primitive");
        return NULL;
    }
    const int none = !strncmp(fast_impl_name(pd), "ref", 3);
    const dnnl_memory_desc_t *wq, *mds[4];
    int args[4];
    int n = fast_geo_args(kind, pd, mi, mo, bip, args, mds, &wq);
    dnnl_memory_desc_t wcopy = *wq;
    dlt_log(DLT_LOG_DEBUG, "backend cpu: bf16 %s%s %s", G->tr ? "deconvolution" : "convolution",
            kind == K_FWD ? "" : kind == K_BWD_DATA ? " backward data" : " backward weights", fast_impl_name(pd));
    if (none && !cx->bf16_warned) {
        cx->bf16_warned = 1;
        dlt_warn("backend cpu: this CPU has no bf16 kernel for some convolutions (oneDNN needs AVX512-BF16 or "
                 "AMX); those stay fp32");
    }
    if ((p = fast_cache_put(cx, key, klen, pd, n, args, mds))) p->wmd = wcopy, p->flags = none ? BF16_NONE : 0;
    return p;
}

/* t converted to ndhwc bf16 in temporary i. */
static void *bf16_in(fast_ctx *cx, int i, const dlt_tensor *t, int *rc)
{
    dnnl_memory_desc_t md;
    nd_md(t, dnnl_bf16, &md);
    void *buf = fast_tmp(cx, i, dnnl_memory_desc_get_size(&md));
    if (!buf) *rc = DLT_ENOMEM;
    else *rc = fast_reorder(cx, &FAST_P(t)->md, t->data, &md, buf, 0);
    return *rc ? NULL : buf;
}

/* The weights in the primitive's bf16 layout, in temporary 1. */
static void *bf16_weights(fast_ctx *cx, const fast_prim *p, const dlt_tensor *w, int *rc)
{
    void *buf = fast_tmp(cx, 1, dnnl_memory_desc_get_size(&p->wmd));
    if (!buf) *rc = DLT_ENOMEM;
    else *rc = fast_reorder(cx, &FAST_P(w)->md, w->data, &p->wmd, buf, 0);
    return *rc ? NULL : buf;
}

/* Whether a geometry runs in bf16: convolutions with fewer than 16 input
 * or output channels (the 1-channel stem, a 14-class 1x1 head) are bound by
 * memory, not arithmetic, and converting their operands costs more than
 * the AMX kernels save (stem 1->16 at 64^3, batch 4: 18 ms in bf16, 5 ms in
 * f32), so they stay f32. */
int fast_bf16_worth(const cgeo *G)
{
    const dlt_tensor *in = G->tr ? G->small : G->big, *out = G->tr ? G->big : G->small;
    return in->c >= 16 && out->c >= 16;
}

/* t's buffer already is the ndhwc f32 layout (its channels in one block,
 * or one channel plain), so a result can be written there directly. */
static int is_ndhwc_f32(const dlt_tensor *t)
{
    return (t->fmt == FF_BLK && t->c == FAST_CTX(t->be)->blk) || (t->fmt == FF_PLAIN && t->c == 1);
}

int fast_bf16_available(fast_ctx *cx)
{
    if (cx->bf16_avail) return cx->bf16_avail > 0;
    dnnl_primitive_desc_t pd = fast_probe_conv(cx->eng, dnnl_bf16, dnnl_f32, dnnl_ndhwc);
    const int ok = pd && strncmp(fast_impl_name(pd), "ref", 3) != 0;
    if (pd) dnnl_primitive_desc_destroy(pd);
    cx->bf16_avail = ok ? 1 : -1;
    return ok;
}

/* One op in bf16. Forward: a = x, b = w, c = bias, t = y. Backward data:
 * a = dy, b = w, t = dx (accum). Backward weights: a = x, b = dy, t = dw,
 * c = db (both accumulate). *done = 0, nothing written, where this geometry
 * has no bf16 kernel. */
int fast_bf16_run(fast_ctx *cx, int kind, const cgeo *G, const dlt_tensor *a, const dlt_tensor *b,
                    const dlt_tensor *c, dlt_tensor *t, int accum, int *done)
{
    *done = 0;
    const dlt_tensor *in = kind == K_FWD || kind == K_BWD_WEIGHTS ? a : t;
    const dlt_tensor *out = kind == K_FWD ? t : kind == K_BWD_DATA ? a : b;
    int unimpl;
    fast_prim *p = bf16_prim(cx, kind, G, in, out, &unimpl);
    if (!p) return unimpl ? 0 : DLT_EDEVICE;
    if (p->flags & BF16_NONE) return 0;
    int rc = 0;
    void *ptrs[4], *res;
    dnnl_memory_desc_t rmd; /* the f32 result's layout */
    int n = 0;
    if (kind == K_BWD_WEIGHTS) {
        void *x16 = bf16_in(cx, 0, a, &rc), *dy16 = x16 ? bf16_in(cx, 2, b, &rc) : NULL;
        if (!dy16) return rc;
        rmd = p->wmd;
        if (!(res = fast_tmp(cx, 1, dnnl_memory_desc_get_size(&rmd)))) return DLT_ENOMEM;
        float *db = c ? fast_tmp(cx, 3, (size_t)dlt_tensor_numel(c) * 4) : NULL;
        if (c && !db) return DLT_ENOMEM;
        ptrs[n++] = x16, ptrs[n++] = dy16, ptrs[n++] = res;
        if (c) ptrs[n++] = db;
        if ((rc = fast_exec(cx, p, ptrs))) return rc;
        *done = 1;
        if (c) fast_vcopy(cx, dlt_tensor_numel(c), db, c->data, 1);
        return fast_reorder(cx, &rmd, res, &FAST_P(t)->md, t->data, 1);
    }
    void *a16 = bf16_in(cx, 0, a, &rc), *w16 = a16 ? bf16_weights(cx, p, b, &rc) : NULL;
    if (!w16) return rc;
    nd_md(t, dnnl_f32, &rmd);
    const int direct = !accum && is_ndhwc_f32(t);
    if (!(res = direct ? t->data : fast_tmp(cx, 2, dnnl_memory_desc_get_size(&rmd)))) return DLT_ENOMEM;
    ptrs[n++] = a16, ptrs[n++] = w16;
    if (c) ptrs[n++] = c->data;
    ptrs[n++] = res;
    if ((rc = fast_exec(cx, p, ptrs))) return rc;
    *done = 1;
    return direct ? 0 : fast_reorder(cx, &rmd, res, &FAST_P(t)->md, t->data, accum);
}

