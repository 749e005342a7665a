/* refcheck.h - helpers for the reference-kernel tests: random double
 * tensors, inner products and central finite differences in float64. */
#ifndef DLT_REFCHECK_H
#define DLT_REFCHECK_H

#include <stdlib.h>

#include "backend/ref/ref.h"
#include "dlt/core.h"

static double *rc_rand(int64_t n, uint64_t seed)
{
    double *p = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    dlt_rng r;
    dlt_rng_init(&r, seed, 99);
    /* float-representable, so the float backend sees exactly the same inputs */
    for (int64_t i = 0; i < n; i++) p[i] = (float)(2 * dlt_rng_uniform(&r) - 1);
    return p;
}

static double rc_dot(int64_t n, const double *a, const double *b)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Largest relative error between an analytic gradient g[n] and the central
 * difference (f(v+h) - f(v-h)) / 2h of the scalar f, perturbing each of v[n]
 * in turn (every element when n is small, else a stride through them). */
typedef double (*rc_scalar_fn)(void *ctx);
static double rc_fd_check(rc_scalar_fn f, void *ctx, double *v, int64_t n, const double *g, double h)
{
    double worst = 0;
    int64_t step = n > 200 ? n / 150 : 1;
    for (int64_t i = 0; i < n; i += step) {
        double keep = v[i];
        v[i] = keep + h;
        double fp = f(ctx);
        v[i] = keep - h;
        double fm = f(ctx);
        v[i] = keep;
        double fd = (fp - fm) / (2 * h);
        double m = fabs(fd) > fabs(g[i]) ? fabs(fd) : fabs(g[i]);
        double e = fabs(fd - g[i]) / (m > 1e-3 ? m : 1e-3);
        if (e > worst) worst = e;
    }
    return worst;
}

#endif
