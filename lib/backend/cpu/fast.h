/* backend/cpu/fast.h - internals of the "cpu" fast path (lib/backend/cpu/fast*.c and
 * lib/backend/cpu/simd/), shared by its files only.
 *
 * One layout from the first layer to the last, the one oneDNN's kernels
 * read on this CPU: activations (role ACT) with 2 or more channels live in
 * oneDNN's blocked nCdhw<B>c, B = fast_ctx.blk channel lanes (16 on
 * AVX-512, 8 on AVX2: backend/cpu/fast_isa.c asks oneDNN), the channel count padded
 * up to a multiple of B with zeros (14 classes use 16 lanes, 2 of them
 * always zero); 1-channel tensors (the usual input) stay plain NCDHW, which
 * is what oneDNN's first-layer kernels read. A convolution whose blocked
 * input has fewer channels than its lanes tells oneDNN the padded count
 * (fast_conv.c geo_prim). Every kernel of this backend keeps the padded
 * lanes at zero, so whole-buffer elementwise loops (add, copy, optimiser)
 * need no masks. A layout is seen as blocks of b channels (b = B, or 1 when
 * plain): element (n, c, s) of a tensor with spatial size S is at
 * ((n*CB + c/b)*S + s)*b + c%b, CB = ceil(C/b).
 *
 * Weights start plain ([O, I/g, KD, KH, KW]) and move, once, to the layout
 * their first convolution primitive asks for (format_tag any); gradients
 * and optimiser state follow their parameter's layout, so the elementwise
 * optimiser step works on any layout. download/upload always see plain.
 *
 * Primitives (and their memory objects) are cached per shape in a small
 * hash table keyed by the op and its geometry, so a steady-state step
 * creates nothing. A case the own loops do not take (an operand in an
 * opaque layout) returns DLT_EUNSUP before writing, and the front
 * (lib/backend/front.c) runs it on the reference backend. A convolution
 * whose oneDNN kernels do not read our layout runs oneDNN's kernel on the
 * layouts it picks, operands copied (FAST_PRIM_RELAYOUT), or, for 3-D
 * weight gradients, as 2-D kernels over depth slices (fast_fold.c); only
 * where oneDNN has nothing but reference code does it run on our reference
 * loops (said at verbose level, naming the geometry). fast_report keeps a
 * line per convolution for dlt-info --backend.
 *
 * 3x3x3 convolutions of stride 1 between blocked activations, forward,
 * backward data and weights, run on our own Winograd loops instead (fast_wino.c,
 * simd/wino.c) where they have enough tiles: F(4,3) or F(2,3) by size, the
 * weight gradient F(2,3).
 *
 * Own loops (norms, activations, pooling, channel ops, softmax, losses,
 * optimiser, the depthwise upsampling, Winograd) are in lib/backend/cpu/simd, compiled once
 * per ISA; fast_ctx.k is the copy this CPU runs (backend/cpu/fast_kern.h).
 *
 * Option precision=bf16 (fast_bf16.c): convolutions of 16 or more channels
 * in and out read bf16 on channels-last copies (oneDNN's AMX kernels read
 * no other layout) and write f32 back into the layouts above. On a CPU
 * without bf16 kernels the option is taken as fp32, with one warning. */
#ifndef DLT_CPU_FAST_H
#define DLT_CPU_FAST_H

#include <dnnl.h>
#include <stddef.h>
#include <stdint.h>

#include "dlt/backend.h"
#include "backend/cpu/fast_kern.h"

enum { FF_PLAIN = 0, FF_BLK = 1, FF_OPAQUE = 2 };

/* Backend-private part of a tensor (dlt_tensor.priv). */
typedef struct fast_tpriv {
    dnnl_memory_desc_t md;       /* layout of t->data now */
    dnnl_memory_desc_t plain_md; /* what download/upload mean (weights: oidhw, iodhw, goidhw...) */
    int64_t cap;                 /* bytes allocated at t->data */
    int role;
} fast_tpriv;

/* A cached primitive with its memory objects (data handles set per call). */
#define FAST_MAXARG 6
typedef struct fast_prim {
    struct fast_prim *next;
    uint64_t hash;
    size_t klen;
    unsigned char *key;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    int nargs;
    int arg[FAST_MAXARG];
    dnnl_memory_t mem[FAST_MAXARG];
    dnnl_memory_t scratch;
    size_t scratch_size;
    dnnl_memory_desc_t wmd; /* the weights (or diff weights) layout this primitive wants */
    dnnl_memory_desc_t tmd; /* a temporary's layout, where the op needs one */
    dnnl_memory_desc_t rb, rs; /* FAST_PRIM_RELAYOUT: the big and small sides' layouts it reads */
    int flags; /* FAST_PRIM_REF; fast_bf16.c has its own */
} fast_prim;
/* FAST_PRIM_REF: oneDNN has only its reference code for this op;
 * FAST_PRIM_RELAYOUT: it has a kernel only for other activation layouts
 * (rb, rs), so the op moves its operands there and back. */
enum { FAST_PRIM_REF = 0x100, FAST_PRIM_RELAYOUT = 0x200, FAST_PRIM_NOTED = 0x400 /* in the report */ };

#define FAST_NBUCKET 256
typedef struct fast_ctx {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    int nthr;
    fast_prim *bucket[FAST_NBUCKET];
    void *scratch; /* oneDNN scratchpads (one at a time: calls are sequential) */
    size_t scratch_cap;
    void *tmp[4]; /* temporaries for accumulation and layout changes */
    size_t tmp_cap[4];
    struct fast_reo *reo;     /* cached reorders (fast.c) */
    int bf16;                 /* option precision=bf16: convolutions in bf16 (fast_conv.c) */
    int bf16_warned;
    int bf16_avail;           /* fast_bf16_available: 0 not asked yet, 1 yes, -1 no */
    int wino;                 /* 3x3x3 stride-1 convolutions by Winograd (fast_wino.c): 1 F(2,3) or F(4,3)
                                 by size; DLT_WINOGRAD=0 off, =2 or =4 only that one */
    int blk;                  /* channel lanes of FF_BLK activations: 8 or 16 (fast_isa.c) */
    int isa;                  /* FAST_ISA_* of the loops in k */
    const fast_kern *k;       /* this CPU's copy of the own loops (lib/backend/cpu/simd) */
    struct wino_cached *wcache; /* transformed Winograd weights kept between calls (fast_wino.c) */
    int64_t wcache_bytes;
    char *report;             /* one line per convolution primitive made: geometry, implementation */
    size_t report_len, report_cap;
} fast_ctx;

#define FAST_CTX(be) ((fast_ctx *)(be)->ctx)
#define FAST_P(t) ((fast_tpriv *)(t)->priv)

/* Block view of an activation tensor (see the header comment). */
typedef struct fast_lay {
    int64_t n, c, cb, s, b; /* batch, channels, channel blocks, spatial size, block (fast_ctx.blk or 1) */
} fast_lay;

static inline fast_lay fast_lay_of(const dlt_tensor *t)
{
    fast_lay l;
    l.b = t->fmt == FF_BLK ? FAST_CTX(t->be)->blk : 1;
    l.n = t->n, l.c = t->c, l.s = t->d * t->h * t->w;
    l.cb = (t->c + l.b - 1) / l.b;
    return l;
}
static inline int64_t fast_off(const fast_lay *l, int64_t n, int64_t c, int64_t s)
{
    return ((n * l->cb + c / l->b) * l->s + s) * l->b + c % l->b;
}
/* Floats in the buffer (padding included). */
static inline int64_t fast_lay_size(const fast_lay *l) { return l->n * l->cb * l->s * l->b; }

/* Run the body once per block width the kernels are specialised for (B a
 * compile-time constant in each copy, so the lane loops vectorise). */
#define FAST_BSWITCH(b, ...)                                                                                          \
    do {                                                                                                             \
        if ((b) == 16) {                                                                                             \
            enum { B_ = 16 };                                                                                        \
            __VA_ARGS__;                                                                                             \
        } else if ((b) == 8) {                                                                                       \
            enum { B_ = 8 };                                                                                         \
            __VA_ARGS__;                                                                                             \
        } else {                                                                                                     \
            enum { B_ = 1 };                                                                                         \
            __VA_ARGS__;                                                                                             \
        }                                                                                                            \
    } while (0)

/* ---- fast.c: the memory and option slots of the ops table, layouts, cache ---- */
int fast_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w);
void fast_release(dlt_backend *be, dlt_tensor *t);
int fast_upload(dlt_backend *be, dlt_tensor *t, const void *host);
int fast_download(dlt_backend *be, const dlt_tensor *t, void *host);
int fast_zero(dlt_backend *be, dlt_tensor *t);
int fast_set_option(dlt_backend *be, const char *key, const char *value);
const char *fast_get_info(dlt_backend *be, const char *key);
void fast_destroy(dlt_backend *be);
int fast_dnnl_err(dnnl_status_t s, const char *what);
/* Move a tensor's data to layout `md` (plain_md says what it holds when it is plain). */
int fast_migrate(fast_ctx *cx, dlt_tensor *t, const dnnl_memory_desc_t *md);
/* The oneDNN md of an activation tensor in its layout, or in a forced one. */
void fast_act_md(const dlt_tensor *t, int fmt, dnnl_memory_desc_t *md);
int fast_same_md(const dlt_tensor *a, const dlt_tensor *b);
const char *fast_impl_name(dnnl_primitive_desc_t pd);

/* ---- fast_cache.c: primitives, reorders, temporaries, the report ---- */
/* Look up a cached primitive by key bytes; NULL if absent. */
fast_prim *fast_cache_get(fast_ctx *cx, const void *key, size_t klen);
/* Make a cache entry owning pd: creates the primitive and memory objects
 * for the nargs (arg, md) pairs, sizes the scratchpad. Takes pd on success
 * and failure. */
fast_prim *fast_cache_put(fast_ctx *cx, const void *key, size_t klen, dnnl_primitive_desc_t pd, int nargs,
                          const int *args, const dnnl_memory_desc_t *const *mds);
/* Run a cached primitive on the given data pointers (in its args order). */
int fast_exec(fast_ctx *cx, fast_prim *p, void *const *ptrs);
/* dst (+)= src between two layouts of one logical tensor (cached reorder). */
int fast_reorder(fast_ctx *cx, const dnnl_memory_desc_t *smd, const void *src, const dnnl_memory_desc_t *dmd,
                 void *dst, int accum);
/* Temporary i (0..3) of at least `bytes`, 64-byte aligned, valid until the next call asking for it. */
void *fast_tmp(fast_ctx *cx, int i, size_t bytes);
/* dst[i] (+)= src[i] over n floats, threaded (this CPU's copy). */
static inline void fast_vcopy(fast_ctx *cx, int64_t n, const float *src, float *dst, int accum)
{
    cx->k->vcopy(cx, n, src, dst, accum);
}
/* Append one line to the backend's convolution report (printf-style). */
void fast_report(fast_ctx *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Everything above, freed (fast_destroy). */
void fast_cache_free(fast_ctx *cx);
void fast_wino_cache_free(fast_ctx *cx); /* fast_wino.c */

/* ---- fast_bf16.c ---- */
/* Whether oneDNN has bf16 convolution kernels (not its reference code) on
 * this CPU; asked once per backend. */
int fast_bf16_available(fast_ctx *cx);

/* ---- fast_isa.c ---- */
/* Decide (once per process) and set cx->isa, cx->blk, cx->k. */
int fast_isa_pick(fast_ctx *cx);
const char *fast_isa_name(int level);
/* A forward 3^3 convolution (2x32x8^3, 32 filters) with activations in
 * act_tag and these data types, weights 'any': what oneDNN offers for it
 * (NULL if nothing); the caller destroys it. */
dnnl_primitive_desc_t fast_probe_conv(dnnl_engine_t eng, dnnl_data_type_t in_dt, dnnl_data_type_t out_dt,
                                      dnnl_format_tag_t act_tag);
const char *fast_dnnl_isa_name(void);

/* ---- fast_conv.c ---- */
int fast_conv_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                  const dlt_tensor *b, dlt_tensor *y);
int fast_conv_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                       dlt_tensor *dx, int accum);
int fast_conv_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                          dlt_tensor *dw, dlt_tensor *db);
int fast_convt_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                   const dlt_tensor *b, dlt_tensor *y);
int fast_convt_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                        dlt_tensor *dx, int accum);
int fast_convt_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                           dlt_tensor *dw, dlt_tensor *db);

#endif
