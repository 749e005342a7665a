/* backend/cpu/fast_geo.c - a convolution's geometry as oneDNN sees it:
 * weight and bias descriptors, the primitive cache key, the operation and
 * primitive descriptors and the argument order (see fast_conv.h). Shared by
 * the f32 ops (fast_conv.c), bf16 (fast_bf16.c) and the depth-sliced weight
 * gradient (fast_fold.c), which all depend on this file and not on each
 * other's internals. */
#include <stdio.h>
#include <string.h>

#include "backend/cpu/fast_conv.h"

/* Weight dims and plain tag as oneDNN sees them for this op. */
void fast_geo_wmd(const cgeo *G, int any, dnnl_data_type_t dt, dnnl_memory_desc_t *md)
{
    const dlt_tensor *w = G->w;
    dnnl_dims_t d;
    int nd;
    /* oneDNN: conv weights {O, I}, deconv weights {O = convt output ch, I = convt input ch} */
    int64_t O = G->tr ? w->c * G->g : w->n, I = G->tr ? w->n : w->c * G->g;
    if (any && G->ipad > 0) I = G->ipad;
    if (G->g == 1) {
        d[0] = O, d[1] = I, d[2] = w->d, d[3] = w->h, d[4] = w->w, nd = 5;
    } else {
        d[0] = G->g, d[1] = O / G->g, d[2] = I / G->g, d[3] = w->d, d[4] = w->h, d[5] = w->w, nd = 6;
    }
    dnnl_format_tag_t tag = any ? dnnl_format_tag_any
                                : G->g == 1 ? (G->tr ? dnnl_iodhw : dnnl_oidhw) : (G->tr ? dnnl_giodhw : dnnl_goidhw);
    memset(md, 0, sizeof *md);
    dnnl_memory_desc_init_by_tag(md, nd, d, dt, tag);
}

void fast_bias_md(int64_t n, dnnl_memory_desc_t *md)
{
    dnnl_dims_t d = {n};
    memset(md, 0, sizeof *md);
    dnnl_memory_desc_init_by_tag(md, 1, d, dnnl_f32, dnnl_a);
}

size_t fast_geo_key(int64_t *k, int kind, const cgeo *G, const dnnl_memory_desc_t *bmd,
                      const dnnl_memory_desc_t *smd)
{
    size_t n = 0;
    k[n++] = 0x636f6e76; /* "conv" */
    k[n++] = kind, k[n++] = G->tr, k[n++] = G->g, k[n++] = G->bias;
    for (int i = 0; i < 3; i++) k[n++] = G->st[i], k[n++] = G->pl[i], k[n++] = G->pr[i];
    k[n++] = G->w->d, k[n++] = G->w->h, k[n++] = G->w->w;
    const dnnl_memory_desc_t *m[2] = {bmd, smd};
    for (int j = 0; j < 2; j++) {
        k[n++] = m[j]->ndims;
        for (int i = 0; i < m[j]->ndims; i++) k[n++] = m[j]->dims[i], k[n++] = m[j]->padded_dims[i];
        k[n++] = m[j]->format_kind;
        if (m[j]->format_kind == dnnl_blocked) {
            const dnnl_blocking_desc_t *b = &m[j]->format_desc.blocking;
            for (int i = 0; i < m[j]->ndims; i++) k[n++] = b->strides[i];
            k[n++] = b->inner_nblks;
            for (int i = 0; i < b->inner_nblks; i++) k[n++] = b->inner_blks[i], k[n++] = b->inner_idxs[i];
        }
    }
    return n * sizeof(int64_t);
}

/* Operation descriptor (conv or deconv) for one propagation kind. */
dnnl_status_t fast_geo_desc(const cgeo *G, int kind, const dnnl_memory_desc_t *bmd, const dnnl_memory_desc_t *smd,
                              const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *bimd, void *desc)
{
    /* deconv: src/diff_src = small, dst/diff_dst = big; conv: src = big, dst = small */
    const dnnl_memory_desc_t *src = G->tr ? smd : bmd, *dst = G->tr ? bmd : smd;
    if (!G->tr) {
        dnnl_convolution_desc_t *d = desc;
        if (kind == K_FWD)
            return dnnl_convolution_forward_desc_init(d, dnnl_forward_training, dnnl_convolution_direct, src, wmd, bimd,
                                                      dst, G->st, G->pl, G->pr);
        if (kind == K_BWD_DATA)
            return dnnl_convolution_backward_data_desc_init(d, dnnl_convolution_direct, src, wmd, dst, G->st, G->pl,
                                                            G->pr);
        return dnnl_convolution_backward_weights_desc_init(d, dnnl_convolution_direct, src, wmd, bimd, dst, G->st,
                                                           G->pl, G->pr);
    }
    dnnl_deconvolution_desc_t *d = desc;
    if (kind == K_FWD)
        return dnnl_deconvolution_forward_desc_init(d, dnnl_forward_training, dnnl_deconvolution_direct, src, wmd, bimd,
                                                    dst, G->st, G->pl, G->pr);
    if (kind == K_BWD_DATA)
        return dnnl_deconvolution_backward_data_desc_init(d, dnnl_deconvolution_direct, src, wmd, dst, G->st, G->pl,
                                                          G->pr);
    return dnnl_deconvolution_backward_weights_desc_init(d, dnnl_deconvolution_direct, src, wmd, bimd, dst, G->st,
                                                         G->pl, G->pr);
}

dnnl_status_t fast_geo_pd(fast_ctx *cx, int kind, const cgeo *G, const dnnl_memory_desc_t *hb,
                          const dnnl_memory_desc_t *hs, const dnnl_memory_desc_t *hw, const dnnl_memory_desc_t *bmd,
                          const dnnl_memory_desc_t *smd, const dnnl_memory_desc_t *wmd, dnnl_primitive_desc_t *pdp)
{
    union {
        dnnl_convolution_desc_t c;
        dnnl_deconvolution_desc_t d;
    } fd, od;
    dnnl_memory_desc_t bimd, *bip = NULL;
    const int64_t cout = G->tr ? G->big->c : G->small->c;
    if (G->bias) fast_bias_md(cout, &bimd), bip = &bimd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_status_t s = dnnl_primitive_attr_create(&attr);
    if (s == dnnl_success) s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success) s = fast_geo_desc(G, K_FWD, hb, hs, hw, bip, &fd);
    if (s == dnnl_success && kind != K_FWD) {
        s = dnnl_primitive_desc_create(&hint, &fd, NULL, cx->eng, NULL);
        if (s == dnnl_success) s = fast_geo_desc(G, kind, bmd, smd, wmd, bip, &od);
        if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &od, attr, cx->eng, hint);
    } else if (s == dnnl_success) {
        s = dnnl_primitive_desc_create(&pd, &fd, attr, cx->eng, NULL);
    }
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (attr) dnnl_primitive_attr_destroy(attr);
    *pdp = s == dnnl_success ? pd : NULL;
    return s;
}

int fast_geo_args(int kind, dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst,
                  const dnnl_memory_desc_t *bias, int *args, const dnnl_memory_desc_t **mds,
                  const dnnl_memory_desc_t **wq)
{
    int n = 0;
    *wq = dnnl_primitive_desc_query_md(pd, kind == K_BWD_WEIGHTS ? dnnl_query_diff_weights_md : dnnl_query_weights_md,
                                       0);
    if (kind == K_FWD) {
        args[n] = DNNL_ARG_SRC, mds[n++] = src;
        args[n] = DNNL_ARG_WEIGHTS, mds[n++] = *wq;
        if (bias) args[n] = DNNL_ARG_BIAS, mds[n++] = bias;
        args[n] = DNNL_ARG_DST, mds[n++] = dst;
    } else if (kind == K_BWD_DATA) {
        args[n] = DNNL_ARG_DIFF_DST, mds[n++] = dst;
        args[n] = DNNL_ARG_WEIGHTS, mds[n++] = *wq;
        args[n] = DNNL_ARG_DIFF_SRC, mds[n++] = src;
    } else {
        args[n] = DNNL_ARG_SRC, mds[n++] = src;
        args[n] = DNNL_ARG_DIFF_DST, mds[n++] = dst;
        args[n] = DNNL_ARG_DIFF_WEIGHTS, mds[n++] = *wq;
        if (bias) args[n] = DNNL_ARG_DIFF_BIAS, mds[n++] = bias;
    }
    return n;
}

/* "conv fwd 16->32 k3x3x3 s1 2x64x64x64" : the op, channels, kernel,
 * stride and the big side's batch and size, for the report and logs. */
void fast_geo_str(const cgeo *G, int kind, char *buf, size_t len)
{
    const dlt_tensor *in = G->tr ? G->small : G->big, *out = G->tr ? G->big : G->small;
    snprintf(buf, len, "%s%s %s %lld->%lld k%lldx%lldx%lld s%lld %lldx%lldx%lldx%lld", G->tr ? "convt" : "conv",
             G->g > 1 ? "(g)" : "", kind == K_FWD ? "fwd" : kind == K_BWD_DATA ? "bwd-data" : "bwd-weights",
             (long long)in->c, (long long)out->c, (long long)G->w->d, (long long)G->w->h, (long long)G->w->w,
             (long long)G->st[2], (long long)G->big->n, (long long)G->big->d, (long long)G->big->h,
             (long long)G->big->w);
}
