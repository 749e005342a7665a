/* cpu/fast.c - the "cpu" fast path's table, memory and plumbing: tensor
 * layouts (see cpu/fast.h), upload/download by oneDNN reorders, the
 * primitive cache, temporaries.
 * Without oneDNN (no DLT_HAVE_DNNL) dlt_cpu_fast_create says so and the
 * caller keeps the reference. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/backends.h"
#include "cpu/fast.h"

#ifndef DLT_HAVE_DNNL
int dlt_cpu_fast_create(dlt_backend **be)
{
    *be = NULL;
    return dlt_err(DLT_EUNSUP, "cpu: this build has no oneDNN fast path (libdnnl-dev was not found)");
}
#else

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

/* ------------------------------------------------------------ cache */

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

fast_prim *fast_cache_get(fast_ctx *cx, const void *key, size_t klen)
{
    uint64_t h = fnv(key, klen);
    for (fast_prim *p = cx->bucket[h % FAST_NBUCKET]; p; p = p->next)
        if (p->hash == h && p->klen == klen && !memcmp(p->key, key, klen)) return p;
    return NULL;
}

static void prim_free(fast_prim *p)
{
    for (int i = 0; i < p->nargs; i++)
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
    if (p->scratch) dnnl_memory_destroy(p->scratch);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    free(p->key);
    free(p);
}

fast_prim *fast_cache_put(fast_ctx *cx, const void *key, size_t klen, dnnl_primitive_desc_t pd, int nargs,
                          const int *args, const dnnl_memory_desc_t *const *mds)
{
    fast_prim *p = calloc(1, sizeof *p);
    if (!p || !(p->key = malloc(klen ? klen : 1))) {
        free(p);
        dnnl_primitive_desc_destroy(pd);
        dlt_err(DLT_ENOMEM, "cpu: out of memory for a primitive cache entry");
        return NULL;
    }
    memcpy(p->key, key, klen);
    p->klen = klen;
    p->hash = fnv(key, klen);
    p->pd = pd;
    dnnl_status_t s = dnnl_primitive_create(&p->prim, pd);
    if (s != dnnl_success) {
        fast_dnnl_err(s, "primitive creation");
        prim_free(p);
        return NULL;
    }
    p->nargs = nargs;
    for (int i = 0; i < nargs; i++) {
        p->arg[i] = args[i];
        if ((s = dnnl_memory_create(&p->mem[i], mds[i], cx->eng, DNNL_MEMORY_NONE)) != dnnl_success) {
            fast_dnnl_err(s, "memory object creation");
            prim_free(p);
            return NULL;
        }
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->scratch_size = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (p->scratch_size && (s = dnnl_memory_create(&p->scratch, smd, cx->eng, DNNL_MEMORY_NONE)) != dnnl_success) {
        fast_dnnl_err(s, "scratchpad creation");
        prim_free(p);
        return NULL;
    }
    fast_prim **b = &cx->bucket[p->hash % FAST_NBUCKET];
    p->next = *b;
    *b = p;
    return p;
}

int fast_exec(fast_ctx *cx, fast_prim *p, void *const *ptrs)
{
    dnnl_exec_arg_t a[FAST_MAXARG + 1];
    int na = 0;
    for (int i = 0; i < p->nargs; i++) {
        dnnl_memory_set_data_handle(p->mem[i], ptrs[i]);
        a[na].arg = p->arg[i];
        a[na++].memory = p->mem[i];
    }
    if (p->scratch_size) {
        if (p->scratch_size > cx->scratch_cap) {
            dlt_free(cx->scratch);
            cx->scratch_cap = 0;
            if (!(cx->scratch = dlt_alloc((int64_t)p->scratch_size, 1, "oneDNN scratchpad"))) return DLT_ENOMEM;
            cx->scratch_cap = p->scratch_size;
        }
        dnnl_memory_set_data_handle(p->scratch, cx->scratch);
        a[na].arg = DNNL_ARG_SCRATCHPAD;
        a[na++].memory = p->scratch;
    }
    dnnl_status_t s = dnnl_primitive_execute(p->prim, cx->st, na, a);
    if (s == dnnl_success) s = dnnl_stream_wait(cx->st);
    return s == dnnl_success ? 0 : fast_dnnl_err(s, "primitive execution");
}

/* Reorders are keyed by their two layouts (and accum), compared with
 * dnnl_memory_desc_equal, since a queried descriptor's bytes are not
 * canonical; a network needs a few dozen, so a list will do. */
typedef struct fast_reo {
    struct fast_reo *next;
    dnnl_memory_desc_t s, d;
    int accum;
    fast_prim *p;
} fast_reo;

int fast_reorder(fast_ctx *cx, const dnnl_memory_desc_t *smd, const void *src, const dnnl_memory_desc_t *dmd,
                 void *dst, int accum)
{
    fast_reo *r;
    for (r = cx->reo; r; r = r->next)
        if (r->accum == accum && dnnl_memory_desc_equal(&r->s, smd) && dnnl_memory_desc_equal(&r->d, dmd)) break;
    if (!r) {
        dnnl_primitive_attr_t attr = NULL;
        dnnl_post_ops_t po = NULL;
        dnnl_status_t s = dnnl_primitive_attr_create(&attr);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
        if (s == dnnl_success && accum) {
            s = dnnl_post_ops_create(&po);
            if (s == dnnl_success) s = dnnl_post_ops_append_sum(po, 1.0f);
            if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, po);
        }
        dnnl_primitive_desc_t pd = NULL;
        if (s == dnnl_success) s = dnnl_reorder_primitive_desc_create(&pd, smd, cx->eng, dmd, cx->eng, attr);
        if (po) dnnl_post_ops_destroy(po);
        if (attr) dnnl_primitive_attr_destroy(attr);
        if (s != dnnl_success) return fast_dnnl_err(s, "reorder creation");
        if (!(r = calloc(1, sizeof *r))) {
            dnnl_primitive_desc_destroy(pd);
            return dlt_err(DLT_ENOMEM, "cpu: out of memory");
        }
        const int args[2] = {DNNL_ARG_SRC, DNNL_ARG_DST};
        const dnnl_memory_desc_t *mds[2] = {smd, dmd};
        /* set up like a cached primitive, then kept on the list instead */
        unsigned char key = 0;
        fast_prim *p = fast_cache_put(cx, &key, 0, pd, 2, args, mds);
        if (!p) {
            free(r);
            return DLT_EDEVICE;
        }
        cx->bucket[p->hash % FAST_NBUCKET] = p->next;
        p->next = NULL;
        r->s = *smd, r->d = *dmd, r->accum = accum, r->p = p;
        r->next = cx->reo;
        cx->reo = r;
    }
    void *ptrs[2] = {(void *)src, dst};
    return fast_exec(cx, r->p, ptrs);
}

void *fast_tmp(fast_ctx *cx, int i, size_t bytes)
{
    if (bytes > cx->tmp_cap[i]) {
        dlt_free(cx->tmp[i]);
        cx->tmp_cap[i] = 0;
        if (!(cx->tmp[i] = dlt_alloc((int64_t)bytes, 1, "cpu temporary"))) return NULL;
        cx->tmp_cap[i] = bytes;
    }
    return cx->tmp[i];
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

/* ------------------------------------------------------------ report */

void fast_report(fast_ctx *cx, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    line[n] = 0;
    /* once per line: the depthwise loops report on every call */
    for (const char *r = cx->report; r && (r = strstr(r, line)); r++)
        if ((r == cx->report || r[-1] == '\n') && r[n] == '\n') return;
    if (cx->report_len + (size_t)n + 2 > cx->report_cap) {
        size_t cap = cx->report_cap ? 2 * cx->report_cap : 4096;
        while (cap < cx->report_len + (size_t)n + 2) cap *= 2;
        char *r = realloc(cx->report, cap);
        if (!r) return; /* the report is informational: drop the line */
        cx->report = r, cx->report_cap = cap;
    }
    memcpy(cx->report + cx->report_len, line, (size_t)n);
    cx->report_len += (size_t)n;
    cx->report[cx->report_len++] = '\n';
    cx->report[cx->report_len] = 0;
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
    dlt_log(DLT_LOG_DEBUG, "backend cpu: temporaries %.1f + %.1f + %.1f + %.1f MB, oneDNN scratchpad %.1f MB",
            cx->tmp_cap[0] / 1048576.0, cx->tmp_cap[1] / 1048576.0, cx->tmp_cap[2] / 1048576.0,
            cx->tmp_cap[3] / 1048576.0, cx->scratch_cap / 1048576.0);
    for (int i = 0; i < FAST_NBUCKET; i++)
        for (fast_prim *p = cx->bucket[i], *nx; p; p = nx) {
            nx = p->next;
            prim_free(p);
        }
    for (fast_reo *r = cx->reo, *nx; r; r = nx) {
        nx = r->next;
        prim_free(r->p);
        free(r);
    }
    dlt_free(cx->scratch);
    free(cx->report);
    for (int i = 0; i < 4; i++) dlt_free(cx->tmp[i]);
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

#endif /* DLT_HAVE_DNNL */
