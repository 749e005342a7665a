/* backend/cpu/fast.c - the "cpu" fast path's memory and life: tensor
 * layouts (see fast.h), upload/download by oneDNN reorders, options,
 * creation and destruction. Its ops table is built per ISA in simd/table.c;
 * primitives, reorders and temporaries are fast_cache.c's. Built only with
 * oneDNN (the Makefile's DNNL switch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "backend/cpu/fast.h"

#include <omp.h>
#if defined(__SSE2__)
#include <pmmintrin.h>
#endif

/* Flush denormals to zero (FTZ) and read them as zero (DAZ) in every
 * thread that computes: once a network saturates (a diverging run, a
 * softmax near 0 or 1) its gradients fill with denormal floats, which x86
 * handles in microcode; a training run at lr 0.003 went 4.8x slower for
 * it (161 s against 33 s for 100 steps, the same losses). TensorFlow does
 * the same by default. Values below 1.2e-38 become 0; nothing this
 * backend computes is checked at that scale. The OpenMP threads persist,
 * so setting them once holds for oneDNN's kernels and ours. */
static void flush_denormals(int nthr)
{
#if defined(__SSE2__)
#pragma omp parallel num_threads(nthr)
    {
        _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
        _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    }
#else
    (void)nthr;
#endif
}

int fast_dnnl_err(dnnl_status_t s, const char *what)
{
    return dlt_err(s == dnnl_out_of_memory ? DLT_ENOMEM : DLT_EDEVICE, "cpu: oneDNN: %s failed (status %d)", what,
                   (int)s);
}

const char *fast_impl_name(dnnl_primitive_desc_t pd)
{
    const char *s = "?";
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success || !s) s = "?";
    return s;
}

/* ------------------------------------------------------------ memory */

void fast_act_md(const dlt_tensor *t, int fmt, dnnl_memory_desc_t *md)
{
    dnnl_dims_t d = {t->n, t->c, t->d, t->h, t->w};
    memset(md, 0, sizeof *md);
    const int blk = FAST_CTX(t->be)->blk;
    dnnl_memory_desc_init_by_tag(md, 5, d, dnnl_f32,
                                 fmt != FF_BLK ? dnnl_ncdhw : blk == 16 ? dnnl_nCdhw16c : dnnl_nCdhw8c);
}

int fast_same_md(const dlt_tensor *a, const dlt_tensor *b)
{
    return dnnl_memory_desc_equal(&FAST_P(a)->md, &FAST_P(b)->md);
}

int fast_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
    const int64_t numel = n * c * d * h * w; /* the front checked the product */
    if (numel > ((int64_t)1 << 40)) return dlt_err(DLT_ENOMEM, "tensor shape overflows");
    fast_tpriv *p = calloc(1, sizeof *p);
    if (!p) return dlt_err(DLT_ENOMEM, "cpu: out of memory");
    t->n = n, t->c = c, t->d = d, t->h = h, t->w = w;
    t->be = be;
    t->priv = p;
    p->role = role;
    if (role == DLT_T_ACT) {
        t->fmt = c >= 2 ? FF_BLK : FF_PLAIN;
        fast_act_md(t, t->fmt, &p->md);
        fast_act_md(t, FF_PLAIN, &p->plain_md);
        p->cap = (int64_t)dnnl_memory_desc_get_size(&p->md);
    } else if (role == DLT_T_WEIGHT) {
        t->fmt = FF_PLAIN;
        dnnl_dims_t dd = {n, c, d, h, w};
        dnnl_memory_desc_init_by_tag(&p->md, 5, dd, dnnl_f32, dnnl_oidhw);
        p->plain_md = p->md;
        /* room for the usual padded blocked weight layouts, so that moving
         * to them keeps t->data in place */
        int64_t blk = ((n + 15) / 16 * 16) * ((c + 15) / 16 * 16) * d * h * w;
        p->cap = 4 * (blk > numel ? blk : numel);
    } else {
        t->fmt = FF_PLAIN;
        dnnl_dims_t dd = {numel};
        dnnl_memory_desc_init_by_tag(&p->md, 1, dd, role == DLT_T_LABEL ? dnnl_s32 : dnnl_f32, dnnl_a);
        p->plain_md = p->md;
        p->cap = 4 * numel;
    }
    t->data = dlt_calloc(p->cap, 1, "tensor");
    if (!t->data) {
        free(p);
        t->priv = NULL;
        return DLT_ENOMEM;
    }
    return 0;
}

void fast_release(dlt_backend *be, dlt_tensor *t)
{
    dlt_free(t->data);
    free(t->priv);
    t->data = NULL;
    t->priv = NULL;
}

int fast_upload(dlt_backend *be, dlt_tensor *t, const void *host)
{
    fast_tpriv *p = FAST_P(t);
    if (dnnl_memory_desc_equal(&p->md, &p->plain_md)) {
        memcpy(t->data, host, (size_t)dlt_tensor_numel(t) * 4);
        return 0;
    }
    return fast_reorder(FAST_CTX(be), &p->plain_md, host, &p->md, t->data, 0);
}

int fast_download(dlt_backend *be, const dlt_tensor *t, void *host)
{
    fast_tpriv *p = FAST_P(t);
    if (dnnl_memory_desc_equal(&p->md, &p->plain_md)) {
        memcpy(host, t->data, (size_t)dlt_tensor_numel(t) * 4);
        return 0;
    }
    return fast_reorder(FAST_CTX(be), &p->md, t->data, &p->plain_md, host, 0);
}

int fast_zero(dlt_backend *be, dlt_tensor *t)
{
    memset(t->data, 0, dnnl_memory_desc_get_size(&FAST_P(t)->md));
    return 0;
}

int fast_migrate(fast_ctx *cx, dlt_tensor *t, const dnnl_memory_desc_t *md)
{
    fast_tpriv *p = FAST_P(t);
    if (dnnl_memory_desc_equal(&p->md, md)) return 0;
    size_t need = dnnl_memory_desc_get_size(md), have = dnnl_memory_desc_get_size(&p->md);
    void *tmp = fast_tmp(cx, 2, need > have ? need : have);
    if (!tmp) return DLT_ENOMEM;
    int rc = fast_reorder(cx, &p->md, t->data, md, tmp, 0);
    if (rc) return rc;
    if ((int64_t)need > p->cap) {
        void *nd = dlt_calloc((int64_t)need, 1, "tensor");
        if (!nd) return DLT_ENOMEM;
        dlt_free(t->data);
        t->data = nd;
        p->cap = (int64_t)need;
    }
    memcpy(t->data, tmp, need);
    p->md = *md;
    t->fmt = dnnl_memory_desc_equal(md, &p->plain_md) ? FF_PLAIN : FF_OPAQUE;
    return 0;
}

/* ------------------------------------------------------------ the table */

/* "precision": "fp32" (default) or "bf16" (convolutions in bfloat16 with f32
 * sums, for CPUs with AMX or AVX512-BF16; see fast_conv.c). */
int fast_set_option(dlt_backend *be, const char *key, const char *value)
{
    if (strcmp(key, "precision")) return dlt_err(DLT_EINVAL, "cpu: unknown option '%s'", key);
    if (strcmp(value, "fp32") && strcmp(value, "bf16"))
        return dlt_err(DLT_EINVAL, "cpu: precision must be fp32 or bf16, not '%s'", value);
    fast_ctx *cx = FAST_CTX(be);
    cx->bf16 = !strcmp(value, "bf16");
    if (cx->bf16 && !fast_bf16_available(cx)) {
        cx->bf16 = 0;
        if (!cx->bf16_warned)
            dlt_warn("backend cpu: this CPU has no bf16 convolution kernels (oneDNN %s; they need AVX512-BF16 or "
                     "AMX): computing in fp32",
                     fast_dnnl_isa_name());
        cx->bf16_warned = 1;
    } else if (cx->bf16 && !cx->bf16_warned &&
               (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_amx) != dnnl_cpu_isa_avx512_core_amx) {
        /* Without AMX oneDNN's bf16 convolutions are direct ones at twice
         * the fp32 rate, while fp32 takes our Winograd convolutions (3.4-8x
         * fewer multiplications): on AMD Zen 4 a training step took 1.2x and
         * a sliding window 1.27x the fp32 time (bench/RESULTS.md). */
        dlt_warn("backend cpu: this CPU has bf16 instructions but no AMX (oneDNN %s): bf16 convolutions are "
                 "slower than fp32 ones here",
                 fast_dnnl_isa_name());
        cx->bf16_warned = 1;
    }
    return 0;
}

/* "isa": the loops' ISA, oneDNN's and the block width; "precision": what
 * the convolutions compute in; "convolutions": one line per convolution
 * primitive made so far (geometry and implementation). */
const char *fast_get_info(dlt_backend *be, const char *key)
{
    fast_ctx *cx = FAST_CTX(be);
    if (!strcmp(key, "precision")) return cx->bf16 ? "bf16" : "fp32";
    if (!strcmp(key, "isa")) {
        static __thread char buf[96];
        snprintf(buf, sizeof buf, "%s (oneDNN %s), %d-channel blocks", fast_isa_name(cx->isa), fast_dnnl_isa_name(),
                 cx->blk);
        return buf;
    }
    if (!strcmp(key, "convolutions")) return cx->report ? cx->report : "";
    return NULL;
}

void fast_destroy(dlt_backend *be)
{
    fast_ctx *cx = be->ctx;
    if (!cx) return;
    fast_cache_free(cx);
    if (cx->st) dnnl_stream_destroy(cx->st);
    if (cx->eng) dnnl_engine_destroy(cx->eng);
    free(cx);
    be->ctx = NULL;
}

/* The ops table is the one of this CPU's ISA (simd/table.c): the loops
 * differ per ISA, memory and convolutions are shared. */
int dlt_cpu_fast_create(dlt_backend **out)
{
    *out = NULL;
    fast_ctx *cx = calloc(1, sizeof *cx);
    if (!cx) return dlt_err(DLT_ENOMEM, "cpu backend: out of memory");
    int rc = fast_isa_pick(cx);
    dlt_backend *be = rc ? NULL : dlt_backend_new(cx->k->ops, cx);
    if (!be) {
        free(cx);
        return rc ? rc : DLT_ENOMEM;
    }
    dlt_log(DLT_LOG_DEBUG, "backend cpu: loops %s, oneDNN %s, %d-channel blocks", fast_isa_name(cx->isa),
            fast_dnnl_isa_name(), cx->blk);
    const char *wg = getenv("DLT_WINOGRAD");
    cx->wino = !wg || !*wg ? 1 : !strcmp(wg, "0") ? 0 : !strcmp(wg, "2") ? 2 : !strcmp(wg, "4") ? 4 : 1;
    cx->nthr = dlt_threads();
    if (cx->nthr < 1) cx->nthr = 1;
    omp_set_num_threads(cx->nthr); /* oneDNN's OpenMP runtime takes its thread count from here */
    flush_denormals(cx->nthr);
    dnnl_status_t s = dnnl_engine_create(&cx->eng, dnnl_cpu, 0);
    if (s == dnnl_success) s = dnnl_stream_create(&cx->st, cx->eng, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        rc = fast_dnnl_err(s, "engine creation");
        dlt_backend_free(be);
        return rc;
    }
    *out = be;
    return 0;
}

