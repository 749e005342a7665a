/* fastcheck.h - helpers for the fast-path tests: one tensor on both the
 * "cpu" fast backend and the "cpu-ref" oracle, filled with the same random
 * values (never zeros), and the error between the two after an op.
 *
 * Error measure: max |fast - ref| / max |ref| over the tensor (a normwise
 * relative error; an element-wise ratio means nothing where a float sum
 * cancels to near zero). Tolerance 1e-4 in float32. */
#ifndef DLT_FASTCHECK_H
#define DLT_FASTCHECK_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fastbe.h"
#include "backend/backends.h"
#include "dlt/backend.h"

#define FT_TOL 1e-4

static dlt_backend *ft_fast, *ft_ref;

/* 0 when both backends exist; otherwise the test skips. */
static int ft_init(void)
{
    if (test_fast_backend(&ft_fast)) return -1;
    if (dlt_cpu_ref_create(&ft_ref)) return -1;
    return 0;
}

static void ft_done(void)
{
    if (ft_fast) dlt_backend_free(ft_fast);
    if (ft_ref) dlt_backend_free(ft_ref);
}

typedef struct ft_pair {
    dlt_tensor f, r;
    int64_t numel;
    int role;
} ft_pair;

/* Values uniform in [lo, hi) from (seed), avoiding exact zeros. */
static void ft_fill(float *h, int64_t n, uint64_t seed, float lo, float hi)
{
    dlt_rng g;
    dlt_rng_init(&g, seed, 5);
    for (int64_t i = 0; i < n; i++) {
        float v = lo + (hi - lo) * (float)dlt_rng_uniform(&g);
        h[i] = v == 0 ? 1e-3f : v;
    }
}

static int ft_upload(ft_pair *p, const void *h)
{
    int rc = dlt_tensor_upload(&p->f, h);
    return rc ? rc : dlt_tensor_upload(&p->r, h);
}

/* Allocate on both backends; seed 0 leaves them zero, else random in [lo,hi). */
static int ft_new_r(ft_pair *p, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, uint64_t seed,
                    float lo, float hi)
{
    memset(p, 0, sizeof *p);
    p->role = role;
    p->numel = n * c * d * h * w;
    int rc = dlt_tensor_alloc(ft_fast, &p->f, role, n, c, d, h, w);
    if (!rc) rc = dlt_tensor_alloc(ft_ref, &p->r, role, n, c, d, h, w);
    if (rc || !seed) return rc;
    float *buf = malloc(sizeof(float) * (size_t)p->numel);
    ft_fill(buf, p->numel, seed, lo, hi);
    rc = ft_upload(p, buf);
    free(buf);
    return rc;
}
static int ft_new(ft_pair *p, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, uint64_t seed)
{
    return ft_new_r(p, role, n, c, d, h, w, seed, -1.f, 1.f);
}

/* Integer labels in [0, classes). */
__attribute__((unused)) static int ft_labels(ft_pair *p, int64_t n, int64_t d, int64_t h, int64_t w, int classes, uint64_t seed)
{
    int rc = ft_new(p, DLT_T_LABEL, n, 1, d, h, w, 0);
    if (rc) return rc;
    int32_t *l = malloc(sizeof(int32_t) * (size_t)p->numel);
    dlt_rng g;
    dlt_rng_init(&g, seed, 6);
    for (int64_t i = 0; i < p->numel; i++) l[i] = (int32_t)dlt_rng_below(&g, (uint64_t)classes);
    rc = ft_upload(p, l);
    free(l);
    return rc;
}

__attribute__((unused)) static void ft_free(ft_pair *p)
{
    if (p->f.data) dlt_tensor_release(&p->f);
    if (p->r.data) dlt_tensor_release(&p->r);
}

/* Normwise relative error between the two copies (downloaded as plain). */
__attribute__((unused)) static double ft_err(const ft_pair *p)
{
    float *a = malloc(sizeof(float) * (size_t)p->numel), *b = malloc(sizeof(float) * (size_t)p->numel);
    double e = INFINITY;
    if (!dlt_tensor_download(&p->f, a) && !dlt_tensor_download(&p->r, b)) {
        double md = 0, mx = 0;
        for (int64_t i = 0; i < p->numel; i++) {
            double d = fabs((double)a[i] - b[i]);
            if (d > md || isnan(d)) md = d;
            if (fabs(b[i]) > mx) mx = fabs(b[i]);
        }
        e = md / (mx > 1e-30 ? mx : 1e-30);
        if (isnan(md)) e = INFINITY;
    }
    free(a), free(b);
    return e;
}

/* CHECK that the pair agrees within FT_TOL. */
#define FT_CHECK(p, ...)                                                                                            \
    do {                                                                                                            \
        double e_ = ft_err(p);                                                                                      \
        char m_[200];                                                                                               \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                                       \
        CHECK(e_ <= FT_TOL, "%s (rel err %.2g)", m_, e_);                                                           \
    } while (0)

#endif
