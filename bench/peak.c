/* peak.c - this machine's fp32 peak: independent FMA chains in registers
 * on every thread (DLT_THREADS or all cores), in the vectors the
 * "cpu" backend uses here (AVX-512, AVX2+FMA or SSE2 multiply-adds: the
 * CPU's widest unless DLT_CPU_ISA or ONEDNN_MAX_CPU_ISA caps it). Prints one
 * line "peak isa=... threads=N gflop_per_s=G"; bench/engine.sh takes it as
 * 100% when it gives "% of peak". */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlt/backend.h"

#define CHAINS 12
#define ITERS 20000000L

__attribute__((target("avx512f"))) static float run512(long n)
{
    __m512 a[CHAINS], b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(a[i]);
    return s;
}

__attribute__((target("avx2,fma"))) static float run256(long n)
{
    __m256 a[CHAINS], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    float s[8], t = 0;
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(s, a[i]);
        for (int l = 0; l < 8; l++) t += s[l];
    }
    return t;
}

static float run128(long n)
{
    __m128 a[CHAINS], b = _mm_set1_ps(0.999999f), c = _mm_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm_set1_ps((float)i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) a[i] = _mm_add_ps(_mm_mul_ps(a[i], b), c);
    float s[4], t = 0;
    for (int i = 0; i < CHAINS; i++) {
        _mm_storeu_ps(s, a[i]);
        for (int l = 0; l < 4; l++) t += s[l];
    }
    return t;
}

/* The lanes of the loops the "cpu" backend runs here, its ISA as capped by
 * DLT_CPU_ISA or ONEDNN_MAX_CPU_ISA (the library decides, so that a capped
 * benchmark's "% of peak" is against the peak of the code it runs); 0
 * where the backend cannot say (built without oneDNN), -1 where it cannot
 * be made (an unknown DLT_CPU_ISA, say). */
static int backend_lanes(void)
{
    dlt_backend *be;
    if (dlt_backend_create("cpu", &be)) return -1;
    const char *isa = dlt_backend_info(be, "isa");
    const int w = !isa ? 0 : !strncmp(isa, "avx512", 6) ? 16 : !strncmp(isa, "avx2", 4) ? 8 : 4;
    dlt_backend_free(be);
    return w;
}

int main(void)
{
    __builtin_cpu_init();
    const char *e = getenv("DLT_THREADS");
    int nthr = e ? atoi(e) : omp_get_num_procs();
    if (nthr < 1) nthr = 1;
    int w = backend_lanes();
    if (w < 0) {
        fprintf(stderr, "peak: %s\n", dlt_errmsg());
        return 1;
    }
    if (!w) w = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8 : 4;
    const double flop_per = 2.0 * w; /* per chain step: a multiply and an add per lane */
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(nthr)
        {
            float s = w == 16 ? run512(ITERS) : w == 8 ? run256(ITERS) : run128(ITERS);
#pragma omp atomic
            sink += s;
        }
        double g = flop_per * CHAINS * ITERS * nthr / (omp_get_wtime() - t0) / 1e9;
        if (g > best) best = g;
    }
    printf("peak\tisa=%s\tthreads=%d\tgflop_per_s=%.1f\n", w == 16 ? "avx512" : w == 8 ? "avx2" : "sse2", nthr, best);
    return sink == 12345.f; /* keeps the sums alive */
}
