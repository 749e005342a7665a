/* peak.c - this machine's fp32 peak: independent FMA chains in registers
 * on every thread (DLT_THREADS or all cores), in the widest vectors the
 * CPU has (AVX-512, else AVX2+FMA, else SSE2 multiply-adds; DLT_CPU_ISA=avx2
 * or sse2 takes that width instead). Prints one
 * line "peak isa=... threads=N gflop_per_s=G"; bench/engine.sh takes it as
 * 100% when it gives "% of peak". */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    __builtin_cpu_init();
    const char *e = getenv("DLT_THREADS");
    int nthr = e ? atoi(e) : omp_get_num_procs();
    if (nthr < 1) nthr = 1;
    int w = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8 : 4;
    /* DLT_CPU_ISA caps it as it caps our loops, so that a capped benchmark's
     * "% of peak" is against the peak of the code it runs */
    const char *isa = getenv("DLT_CPU_ISA");
    if (isa && !strcmp(isa, "avx2") && w > 8) w = 8;
    if (isa && !strcmp(isa, "sse2")) w = 4;
    const double flop_per = w == 4 ? 2.0 * 4 : 2.0 * w; /* per chain step: FMA = 2 flops per lane */
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
