/* bench_util.h - what the benchmark programs share: the median of a few
 * timings. */
#ifndef DLT_BENCH_UTIL_H
#define DLT_BENCH_UTIL_H

#include <stdlib.h>

static int bench_cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the median of v[0..n) (sorts v) */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
