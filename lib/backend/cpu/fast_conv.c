/* backend/cpu/fast_conv.c - convolution and transposed convolution on the fast
 * path: oneDNN convolution/deconvolution primitives on the blocked
 * activations, weights in the layout the primitive picks, and an own kernel
 * for the depthwise transposed convolution (DLTK's fixed trilinear
 * upsampling), which oneDNN runs only in its slow reference code for 3-D
 * (simd/dw.c), and 3x3x3 stride-1 ones by Winograd (fast_wino.c).
 *
 * Geometry: every op is described by the convolution big -> small (for conv
 * x is big and y small; for convt y is big). TF 'same' padding comes
 * resolved in the descriptor; oneDNN wants the exact fit, so the right pad is
 * recomputed as (small-1)*stride + k - big - pad_lo (the rest of pad_hi is
 * never read anyway). Accumulating outputs (dx with accum, dw, db) are
 * computed into a temporary and added. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast_conv.h"

/* The geometry of an op whose shapes the front (lib/backend/front.c) has
 * checked. */
static void geo_init(cgeo *G, int tr, const dlt_conv_desc *c, const dlt_tensor *big, const dlt_tensor *small,
                     const dlt_tensor *w, int bias)
{
    memset(G, 0, sizeof *G);
    G->tr = tr, G->big = big, G->small = small, G->w = w, G->bias = bias;
    G->g = c->groups > 0 ? c->groups : 1;
    const int64_t bs[3] = {big->d, big->h, big->w}, ss[3] = {small->d, small->h, small->w};
    for (int i = 0; i < 3; i++) {
        G->st[i] = c->stride[i];
        G->pl[i] = c->pad_lo[i];
        G->pr[i] = (ss[i] - 1) * c->stride[i] + c->k[i] - bs[i] - c->pad_lo[i];
    }
}

/* A weight tensor that is still plain takes this op's reading of its bytes. */
static int geo_plain_weight(const cgeo *G, const dlt_tensor *w)
{
    fast_tpriv *p = FAST_P(w);
    if (w->fmt != FF_PLAIN) return 0;
    dnnl_memory_desc_t md;
    fast_geo_wmd(G, 0, dnnl_f32, &md);
    if (dnnl_memory_desc_get_size(&md) != dnnl_memory_desc_get_size(&p->md))
        return dlt_err(DLT_ESHAPE, "cpu: weight tensor size does not match its use");
    p->md = p->plain_md = md;
    return 0;
}

/* The layout pd reads on the big (big=1) or small side of the geometry:
 * conv big = src, deconv big = dst; backward kinds read the diff ones. */
static const dnnl_memory_desc_t *pd_side(dnnl_primitive_desc_t pd, int kind, int tr, int big)
{
    const int src_side = tr ? !big : big;
    dnnl_query_t q = src_side ? (kind == K_BWD_DATA ? dnnl_query_diff_src_md : dnnl_query_src_md)
                              : (kind == K_FWD ? dnnl_query_dst_md : dnnl_query_diff_dst_md);
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

/* t's data in layout md: t->data itself when it has that layout, else a
 * copy in temporary i. NULL (rc set) on errors. */
static void *relay_in(fast_ctx *cx, int i, const dlt_tensor *t, const dnnl_memory_desc_t *md, int *rc)
{
    *rc = 0;
    if (dnnl_memory_desc_equal(&FAST_P(t)->md, md)) return t->data;
    void *buf = fast_tmp(cx, i, dnnl_memory_desc_get_size(md));
    if (!buf) *rc = DLT_ENOMEM;
    else *rc = fast_reorder(cx, &FAST_P(t)->md, t->data, md, buf, 0);
    return *rc ? NULL : buf;
}

/* A primitive descriptor for (kind, geometry, activation layouts), weights
 * 'any', all f32; the forward with the same layouts hints a backward. */
static dnnl_status_t geo_pd(fast_ctx *cx, int kind, const cgeo *G, const dnnl_memory_desc_t *bmd,
                            const dnnl_memory_desc_t *smd, dnnl_primitive_desc_t *pdp)
{
    dnnl_memory_desc_t wany;
    fast_geo_wmd(G, 1, dnnl_f32, &wany);
    return fast_geo_pd(cx, kind, G, bmd, smd, &wany, bmd, smd, &wany, pdp);
}

/* The cached primitive for (kind, geometry, activation layouts), made on
 * first use: weights 'any', so oneDNN picks its layout (in p->wmd). Where
 * oneDNN offers only its reference code, flags FAST_PRIM_REF: the caller
 * runs our reference loops instead (faster than oneDNN's ref:any), said
 * once at verbose level, naming the geometry. */
static fast_prim *geo_prim(fast_ctx *cx, int kind, const cgeo *G, const dnnl_memory_desc_t *bmd,
                           const dnnl_memory_desc_t *smd)
{
    int64_t key[96];
    size_t klen = fast_geo_key(key, kind, G, bmd, smd);
    fast_prim *p = fast_cache_get(cx, key, klen);
    if (p) return p;
    dnnl_memory_desc_t bimd, *bip = NULL;
    if (G->bias) fast_bias_md(G->tr ? G->big->c : G->small->c, &bimd), bip = &bimd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = geo_pd(cx, kind, G, bmd, smd, &pd);
    /* oneDNN's jit kernels refuse a blocked input whose channels are not a
     * multiple of 16 (8 filters: its reference code, ~1000x slower). The
     * padded lanes are zero, so the same bytes read as 16*ceil(C/16)
     * channels, with the weights' extra input channels zero (reorders into
     * padded layouts zero them; their gradients come out zero): the same op. */
    cgeo P = *G;
    dnnl_memory_desc_t pin;
    const dnnl_memory_desc_t *in = G->tr ? smd : bmd;
    if (s == dnnl_success && G->g == 1 && !strncmp(fast_impl_name(pd), "ref", 3) && in->format_kind == dnnl_blocked &&
        in->ndims == 5 && in->padded_dims[1] > in->dims[1]) {
        pin = *in;
        pin.dims[1] = pin.padded_dims[1];
        P.ipad = pin.dims[1];
        dnnl_primitive_desc_t pd2 = NULL;
        if (geo_pd(cx, kind, &P, G->tr ? bmd : &pin, G->tr ? &pin : smd, &pd2) == dnnl_success) {
            if (strncmp(fast_impl_name(pd2), "ref", 3)) {
                dnnl_primitive_desc_destroy(pd);
                pd = pd2;
                if (G->tr) smd = &pin;
                else bmd = &pin;
                G = &P;
            } else {
                dnnl_primitive_desc_destroy(pd2);
            }
        }
    }
    /* No kernel reads our blocked layout for this op (oneDNN 2.6 on AVX2:
     * 3-D backward weights, strided backward data): let oneDNN pick the
     * activation layouts too (its gemm kernels read plain ones); the op
     * then moves its operands there and back, memory-bound copies that cost
     * far less than reference code. */
    int relayout = 0;
    dnnl_memory_desc_t rb, rs;
    if (s == dnnl_success && G->ipad == 0 && !strncmp(fast_impl_name(pd), "ref", 3)) {
        dnnl_memory_desc_t ab, as;
        dnnl_dims_t db_ = {G->big->n, G->big->c, G->big->d, G->big->h, G->big->w},
                    ds_ = {G->small->n, G->small->c, G->small->d, G->small->h, G->small->w};
        /* channels-last first: oneDNN 2.6's gemm kernels run 1.2-1.6x faster
         * on it than on the plain layout 'any' gives them (AVX2, 64^3) */
        dnnl_memory_desc_init_by_tag(&ab, 5, db_, dnnl_f32, dnnl_ndhwc);
        dnnl_memory_desc_init_by_tag(&as, 5, ds_, dnnl_f32, dnnl_ndhwc);
        dnnl_primitive_desc_t pd2 = NULL;
        if (geo_pd(cx, kind, G, &ab, &as, &pd2) != dnnl_success || !strncmp(fast_impl_name(pd2), "ref", 3)) {
            if (pd2) dnnl_primitive_desc_destroy(pd2);
            pd2 = NULL;
            dnnl_memory_desc_init_by_tag(&ab, 5, db_, dnnl_f32, dnnl_format_tag_any);
            dnnl_memory_desc_init_by_tag(&as, 5, ds_, dnnl_f32, dnnl_format_tag_any);
            if (geo_pd(cx, kind, G, &ab, &as, &pd2) != dnnl_success) pd2 = NULL;
        }
        if (pd2 && strncmp(fast_impl_name(pd2), "ref", 3)) {
            dnnl_primitive_desc_destroy(pd);
            pd = pd2;
            rb = *pd_side(pd, kind, G->tr, 1), rs = *pd_side(pd, kind, G->tr, 0);
            bmd = &rb, smd = &rs;
            relayout = 1;
        } else if (pd2) {
            dnnl_primitive_desc_destroy(pd2);
        }
    }
    if (s != dnnl_success) {
        fast_dnnl_err(s, "convolution primitive");
        return NULL;
    }
    const dnnl_memory_desc_t *wq, *mds[4];
    int args[4];
    int n = fast_geo_args(kind, pd, G->tr ? smd : bmd, G->tr ? bmd : smd, bip, args, mds, &wq);
    dnnl_memory_desc_t wcopy = *wq;
    if (G->ipad > 0) wcopy.dims[1] = G->tr ? G->w->n : G->w->c; /* same bytes, the weight's true dims */
    char gs[128];
    fast_geo_str(G, kind, gs, sizeof gs);
    const int ref = !strncmp(fast_impl_name(pd), "ref", 3);
    if (ref) {
        dlt_log(DLT_LOG_VERBOSE, "backend cpu: %s: oneDNN has only its reference code (%s) here; using dlt's reference loops",
                gs, fast_impl_name(pd));
        fast_report(cx, "%s\tdlt reference loops (oneDNN: %s)", gs, fast_impl_name(pd));
    } else {
        dlt_log(DLT_LOG_DEBUG, "backend cpu: %s %s%s", gs, fast_impl_name(pd), relayout ? " (own layouts)" : "");
        /* a relayout backward-weights op is reported by the path that runs it (the fold may) */
        if (!(relayout && kind == K_BWD_WEIGHTS))
            fast_report(cx, "%s\toneDNN %s%s", gs, fast_impl_name(pd), relayout ? " (on its own layouts, copied)" : "");
    }
    p = fast_cache_put(cx, key, klen, pd, n, args, mds);
    if (p) p->wmd = wcopy, p->flags = ref ? FAST_PRIM_REF : relayout ? FAST_PRIM_RELAYOUT : 0;
    if (p && relayout) p->rb = rb, p->rs = rs;
    return p;
}

/* ------------------------------------------------------------ depthwise transposed */

/* The report line of a relayout backward-weights primitive, once: the
 * fold (how) or oneDNN's kernel on its own layouts (how == NULL). */
static void bwd_weights_note(fast_ctx *cx, fast_prim *p, const cgeo *G, const char *how)
{
    if (p->flags & FAST_PRIM_NOTED) return;
    p->flags |= FAST_PRIM_NOTED;
    char gs[128];
    fast_geo_str(G, K_BWD_WEIGHTS, gs, sizeof gs);
    if (how) fast_report(cx, "%s\t%s", gs, how);
    else fast_report(cx, "%s\toneDNN %s (on its own layouts, copied)", gs, fast_impl_name(p->pd));
}

/* The depthwise transposed convolution runs on our own loops (simd/dw.c). */
static void dw_note(fast_ctx *cx, const cgeo *G, int kind)
{
    char gs[128];
    fast_geo_str(G, kind, gs, sizeof gs);
    fast_report(cx, "%s\tdlt depthwise loops (%s)", gs, cx->k->isa);
}

static int is_dw_convt(const cgeo *G)
{
    return G->tr && G->g > 1 && G->g == G->big->c && G->g == G->small->c && G->big->fmt == G->small->fmt &&
           G->big->fmt != FF_OPAQUE && G->w->fmt == FF_PLAIN;
}

/* ------------------------------------------------------------ declining */

/* Where oneDNN offers only its reference code for a geometry (or no
 * primitive at all), the op declines and the front runs it on our
 * reference loops, which are faster than oneDNN's reference code. */
static int decline(const char *op, const fast_prim *p)
{
    if (p) return dlt_err(DLT_EUNSUP, "%s: oneDNN has only reference code for this geometry", op);
    char why[200];
    snprintf(why, sizeof why, "%s", dlt_errmsg());
    return dlt_err(DLT_EUNSUP, "%s: no oneDNN primitive (%s)", op, why);
}

/* ------------------------------------------------------------ the ops */

static int do_fwd(dlt_backend *be, int tr, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                  const dlt_tensor *b, dlt_tensor *y)
{
    fast_ctx *cx = FAST_CTX(be);
    const char *op = tr ? "convt_fwd" : "conv_fwd";
    cgeo G;
    int rc;
    if (tr) geo_init(&G, 1, c, y, x, w, b != NULL);
    else geo_init(&G, 0, c, x, y, w, b != NULL);
    if (is_dw_convt(&G)) {
        dw_note(cx, &G, K_FWD);
        return cx->k->dw_run(cx, c, &G, 1, x, y, 0, b);
    }
    if ((rc = geo_plain_weight(&G, w))) return rc;
    if (cx->bf16 && fast_bf16_worth(&G)) {
        int done;
        if ((rc = fast_bf16_run(cx, K_FWD, &G, x, w, b, y, 0, &done)) || done) return rc;
    }
    if (fast_wino_worth(cx, &G)) return fast_wino_conv(cx, K_FWD, &G, x, w, b, y, 0);
    fast_prim *p = geo_prim(cx, K_FWD, &G, &FAST_P(G.big)->md, &FAST_P(G.small)->md);
    if (!p || (p->flags & FAST_PRIM_REF)) return decline(op, p);
    if ((rc = fast_migrate(cx, (dlt_tensor *)w, &p->wmd))) return rc;
    const int rel = p->flags & FAST_PRIM_RELAYOUT;
    const dnnl_memory_desc_t *ymd = rel ? (tr ? &p->rb : &p->rs) : NULL;
    void *xin = rel ? relay_in(cx, 0, x, tr ? &p->rs : &p->rb, &rc) : x->data;
    void *yout = rel ? fast_tmp(cx, 3, dnnl_memory_desc_get_size(ymd)) : y->data;
    if (!xin) return rc;
    if (!yout) return DLT_ENOMEM;
    void *ptrs[4];
    int n = 0;
    ptrs[n++] = xin;
    ptrs[n++] = w->data;
    if (b) ptrs[n++] = b->data;
    ptrs[n++] = yout;
    if ((rc = fast_exec(cx, p, ptrs)) || !rel) return rc;
    return fast_reorder(cx, ymd, yout, &FAST_P(y)->md, y->data, 0);
}

static int do_bwd_data(dlt_backend *be, int tr, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                       dlt_tensor *dx, int accum)
{
    fast_ctx *cx = FAST_CTX(be);
    const char *op = tr ? "convt_bwd_data" : "conv_bwd_data";
    cgeo G;
    int rc;
    if (tr) geo_init(&G, 1, c, dy, dx, w, 0);
    else geo_init(&G, 0, c, dx, dy, w, 0);
    if (is_dw_convt(&G)) {
        dw_note(cx, &G, K_BWD_DATA);
        return cx->k->dw_run(cx, c, &G, 0, dy, dx, accum, NULL);
    }
    if ((rc = geo_plain_weight(&G, w))) return rc;
    if (cx->bf16 && fast_bf16_worth(&G)) {
        int done;
        if ((rc = fast_bf16_run(cx, K_BWD_DATA, &G, dy, w, NULL, dx, accum, &done)) || done) return rc;
    }
    if (fast_wino_worth(cx, &G)) return fast_wino_conv(cx, K_BWD_DATA, &G, dy, w, NULL, dx, accum);
    /* dx: oneDNN's backward-data kernels want it blocked (a plain diff_src
     * of one channel falls to its reference code) */
    dnnl_memory_desc_t dxmd;
    fast_act_md(dx, FF_BLK, &dxmd);
    const int direct = !accum && dx->fmt == FF_BLK;
    const dnnl_memory_desc_t *bmd = tr ? &FAST_P(dy)->md : &dxmd, *smd = tr ? &dxmd : &FAST_P(dy)->md;
    fast_prim *p = geo_prim(cx, K_BWD_DATA, &G, bmd, smd);
    if (!p || (p->flags & FAST_PRIM_REF)) return decline(op, p);
    const void *wp = w->data;
    if (!dnnl_memory_desc_equal(&FAST_P(w)->md, &p->wmd)) {
        void *t = fast_tmp(cx, 1, dnnl_memory_desc_get_size(&p->wmd));
        if (!t) return DLT_ENOMEM;
        if ((rc = fast_reorder(cx, &FAST_P(w)->md, w->data, &p->wmd, t, 0))) return rc;
        wp = t;
    }
    if (p->flags & FAST_PRIM_RELAYOUT) {
        const dnnl_memory_desc_t *omd = tr ? &p->rs : &p->rb;
        void *din = relay_in(cx, 3, dy, tr ? &p->rb : &p->rs, &rc), *o = fast_tmp(cx, 0, dnnl_memory_desc_get_size(omd));
        if (!din) return rc;
        if (!o) return DLT_ENOMEM;
        void *ptrs[3] = {din, (void *)wp, o};
        if ((rc = fast_exec(cx, p, ptrs))) return rc;
        return fast_reorder(cx, omd, o, &FAST_P(dx)->md, dx->data, accum);
    }
    void *out = dx->data;
    if (!direct && !(out = fast_tmp(cx, 0, dnnl_memory_desc_get_size(&dxmd)))) return DLT_ENOMEM;
    void *ptrs[3] = {dy->data, (void *)wp, out};
    if ((rc = fast_exec(cx, p, ptrs))) return rc;
    if (direct) return 0;
    if (dx->fmt == FF_BLK) {
        fast_lay l = fast_lay_of(dx);
        fast_vcopy(cx, fast_lay_size(&l), out, dx->data, accum);
        return 0;
    }
    return fast_reorder(cx, &dxmd, out, &FAST_P(dx)->md, dx->data, accum);
}

static int do_bwd_weights(dlt_backend *be, int tr, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                          dlt_tensor *dw, dlt_tensor *db)
{
    fast_ctx *cx = FAST_CTX(be);
    const char *op = tr ? "convt_bwd_weights" : "conv_bwd_weights";
    cgeo G;
    int rc;
    if (tr) geo_init(&G, 1, c, dy, x, dw, db != NULL);
    else geo_init(&G, 0, c, x, dy, dw, db != NULL);
    if (is_dw_convt(&G)) {
        dw_note(cx, &G, K_BWD_WEIGHTS);
        return cx->k->dw_bwd_weights(cx, c, &G, x, dy, dw, db);
    }
    if ((rc = geo_plain_weight(&G, dw))) return rc;
    if (cx->bf16 && fast_bf16_worth(&G)) {
        int done;
        if ((rc = fast_bf16_run(cx, K_BWD_WEIGHTS, &G, x, dy, db, dw, 1, &done)) || done) return rc;
    }
    if (fast_wino_worth(cx, &G)) return fast_wino_bwd_weights(cx, &G, x, dy, dw, db);
    fast_prim *p = geo_prim(cx, K_BWD_WEIGHTS, &G, &FAST_P(G.big)->md, &FAST_P(G.small)->md);
    if (p && (p->flags & (FAST_PRIM_REF | FAST_PRIM_RELAYOUT)) && fast_fold_worth(&G)) {
        int done;
        if ((rc = fast_fold_bwd_weights(cx, &G, x, dy, dw, &done)) || done) {
            if (!rc) bwd_weights_note(cx, p, &G, "oneDNN 2-D kernels over depth slices (fast_fold.c)");
            return rc;
        }
    }
    if (p && (p->flags & FAST_PRIM_RELAYOUT)) bwd_weights_note(cx, p, &G, NULL);
    if (!p || (p->flags & FAST_PRIM_REF)) return decline(op, p);
    size_t wbytes = dnnl_memory_desc_get_size(&p->wmd);
    float *tw = fast_tmp(cx, 1, wbytes), *tb = NULL;
    if (!tw) return DLT_ENOMEM;
    if (db && !(tb = fast_tmp(cx, 2, (size_t)dy->c * 4))) return DLT_ENOMEM;
    const void *xin = x->data, *din = dy->data;
    if (p->flags & FAST_PRIM_RELAYOUT) {
        if (!(xin = relay_in(cx, 0, x, tr ? &p->rs : &p->rb, &rc))) return rc;
        if (!(din = relay_in(cx, 3, dy, tr ? &p->rb : &p->rs, &rc))) return rc;
    }
    void *ptrs[4] = {(void *)xin, (void *)din, tw, tb};
    if ((rc = fast_exec(cx, p, ptrs))) return rc;
    /* dw keeps its parameter's layout (the optimiser moves it there): the
     * weights of a convolution run by Winograd stay plain, and moving dw to
     * this primitive's layout would have it moved back every step */
    if (dnnl_memory_desc_equal(&FAST_P(dw)->md, &p->wmd)) fast_vcopy(cx, (int64_t)(wbytes / 4), tw, dw->data, 1);
    else if ((rc = fast_reorder(cx, &p->wmd, tw, &FAST_P(dw)->md, dw->data, 1))) return rc;
    if (db) fast_vcopy(cx, dy->c, tb, db->data, 1);
    return 0;
}

int fast_conv_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                  const dlt_tensor *b, dlt_tensor *y)
{
    return do_fwd(be, 0, c, x, w, b, y);
}

int fast_conv_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                       dlt_tensor *dx, int accum)
{
    return do_bwd_data(be, 0, c, dy, w, dx, accum);
}

int fast_conv_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                          dlt_tensor *dw, dlt_tensor *db)
{
    return do_bwd_weights(be, 0, c, x, dy, dw, db);
}

int fast_convt_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                   const dlt_tensor *b, dlt_tensor *y)
{
    return do_fwd(be, 1, c, x, w, b, y);
}

int fast_convt_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                        dlt_tensor *dx, int accum)
{
    return do_bwd_data(be, 1, c, dy, w, dx, accum);
}

int fast_convt_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                           dlt_tensor *dw, dlt_tensor *db)
{
    return do_bwd_weights(be, 1, c, x, dy, dw, db);
}

