/* backend/cpu/fast_isa.c - what the fast path runs on this CPU: the ISA level of
 * its own loops (which lib/backend/cpu/simd copy, see backend/cpu/fast_kern.h) and the
 * channel block width of its activations (8 or 16 lanes), both decided
 * once per process.
 *
 * ISA: the best the CPU has (cpuid), capped by DLT_CPU_ISA (avx512, avx2,
 * sse2: caps oneDNN as well) and by oneDNN's own ONEDNN_MAX_CPU_ISA, so
 * either variable moves our loops and oneDNN's kernels together.
 *
 * Block width: whatever oneDNN's convolution kernels read, asked by
 * creating a 3^3 convolution with every layout left to oneDNN (format_tag
 * any): 16 on AVX-512 (and AMX), 8 on AVX2. A layout its kernels do not
 * read would send every convolution to its reference code. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/cpu/fast.h"

static const char *const isa_name[FAST_ISA_N] = {"generic", "sse2", "avx2", "avx512"};

static const fast_kern *kern_of(int isa)
{
    switch (isa) {
#ifdef FAST_HAVE_avx512
    case FAST_ISA_AVX512: return &fast_kern_avx512;
#endif
#ifdef FAST_HAVE_avx2
    case FAST_ISA_AVX2: return &fast_kern_avx2;
#endif
#ifdef FAST_HAVE_sse2
    case FAST_ISA_SSE2: return &fast_kern_sse2;
#endif
#ifdef FAST_HAVE_generic
    case FAST_ISA_GENERIC: return &fast_kern_generic;
#endif
    default: return NULL;
    }
}

static int cpu_level(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return FAST_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FAST_ISA_AVX2;
    return FAST_ISA_SSE2; /* the x86-64 baseline */
#else
    return FAST_ISA_GENERIC;
#endif
}

/* DLT_CPU_ISA: our names, or oneDNN's spelling of the same levels. */
static int parse_level(const char *s)
{
    static const struct { const char *name; int level; } t[] = {
        {"avx512", FAST_ISA_AVX512}, {"avx512_core", FAST_ISA_AVX512}, {"avx512_core_amx", FAST_ISA_AVX512},
        {"avx2", FAST_ISA_AVX2},     {"sse2", FAST_ISA_SSE2},          {"sse41", FAST_ISA_SSE2},
        {"generic", FAST_ISA_GENERIC},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcasecmp(s, t[i].name)) return t[i].level;
    return -1;
}

static int dnnl_level(dnnl_cpu_isa_t isa)
{
    if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core) return FAST_ISA_AVX512;
    if ((isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2) return FAST_ISA_AVX2;
    return FAST_ISA_SSE2;
}

dnnl_primitive_desc_t fast_probe_conv(dnnl_engine_t eng, dnnl_data_type_t in_dt, dnnl_data_type_t out_dt,
                                      dnnl_format_tag_t act_tag)
{
    dnnl_dims_t xd = {2, 32, 8, 8, 8}, wd = {32, 32, 3, 3, 3}, st = {1, 1, 1}, pad = {1, 1, 1};
    dnnl_memory_desc_t x, w, y;
    dnnl_memory_desc_init_by_tag(&x, 5, xd, in_dt, act_tag);
    dnnl_memory_desc_init_by_tag(&w, 5, wd, in_dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&y, 5, xd, out_dt, act_tag);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &x, &w, NULL, &y, st,
                                           pad, pad) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL) != dnnl_success)
        return NULL;
    return pd;
}

/* The channel block oneDNN's forward 3^3 kernels read (0 if not blocked). */
static int probe_block(void)
{
    dnnl_engine_t eng = NULL;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return 0;
    dnnl_primitive_desc_t pd = fast_probe_conv(eng, dnnl_f32, dnnl_f32, dnnl_format_tag_any);
    int blk = 0;
    if (pd) {
        const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        if (m && m->format_kind == dnnl_blocked && m->format_desc.blocking.inner_nblks == 1 &&
            m->format_desc.blocking.inner_idxs[0] == 1)
            blk = (int)m->format_desc.blocking.inner_blks[0];
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_engine_destroy(eng);
    return blk;
}

static struct {
    int rc, level, blk;
    char err[160];
} pick;
static pthread_once_t pick_once = PTHREAD_ONCE_INIT;

static void pick_run(void)
{
    int level = cpu_level();
    const char *cap = getenv("DLT_CPU_ISA");
    if (cap && *cap) {
        int c = parse_level(cap);
        if (c < 0) {
            pick.rc = DLT_EINVAL;
            snprintf(pick.err, sizeof pick.err, "DLT_CPU_ISA=%s: unknown ISA (expected avx512, avx2 or sse2)", cap);
            return;
        }
        if (c < level) level = c;
        /* oneDNN takes the same cap; this must precede its first primitive */
        dnnl_cpu_isa_t d = level >= FAST_ISA_AVX512 ? dnnl_cpu_isa_all
                           : level == FAST_ISA_AVX2 ? dnnl_cpu_isa_avx2
                                                    : dnnl_cpu_isa_sse41;
        dnnl_set_max_cpu_isa(d); /* fails harmlessly where oneDNN already ran */
    }
    const int dl = dnnl_level(dnnl_get_effective_cpu_isa());
    if (dl < level) level = dl;
    while (level > 0 && !kern_of(level)) level--;
    pick.level = level;
    int blk = probe_block();
    if (blk != 8 && blk != 16) blk = level >= FAST_ISA_AVX512 ? 16 : 8;
    pick.blk = blk;
}

int fast_isa_pick(fast_ctx *cx)
{
    pthread_once(&pick_once, pick_run);
    if (pick.rc) return dlt_err(pick.rc, "cpu: %s", pick.err);
    cx->isa = pick.level;
    cx->blk = pick.blk;
    cx->k = kern_of(pick.level);
    if (!cx->k) return dlt_err(DLT_EUNSUP, "cpu: this build has no loops for the ISA of this CPU");
    return 0;
}

const char *fast_isa_name(int level) { return level >= 0 && level < FAST_ISA_N ? isa_name[level] : "?"; }

/* oneDNN's effective ISA in its own spelling (as ONEDNN_MAX_CPU_ISA takes it). */
const char *fast_dnnl_isa_name(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "SSE41";
    case dnnl_cpu_isa_avx: return "AVX";
    case dnnl_cpu_isa_avx2: return "AVX2";
    case dnnl_cpu_isa_avx2_vnni: return "AVX2_VNNI";
    case dnnl_cpu_isa_avx512_mic: return "AVX512_MIC";
    case dnnl_cpu_isa_avx512_mic_4ops: return "AVX512_MIC_4OPS";
    case dnnl_cpu_isa_avx512_core: return "AVX512_CORE";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX512_CORE_VNNI";
    case dnnl_cpu_isa_avx512_core_bf16: return "AVX512_CORE_BF16";
    case dnnl_cpu_isa_avx512_core_amx: return "AVX512_CORE_AMX";
    default: return "ALL";
    }
}

