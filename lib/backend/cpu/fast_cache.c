/* backend/cpu/fast_cache.c - what the fast path keeps between calls: the
 * oneDNN primitives per op and geometry (a small hash table, so a steady
 * state step creates nothing), the reorders between layouts, the
 * temporaries and scratchpad, and the convolution report of dlt-info
 * --backend. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fast.h"

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

/* ------------------------------------------------------------ teardown */

void fast_cache_free(fast_ctx *cx)
{
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
    fast_wino_cache_free(cx);
}
