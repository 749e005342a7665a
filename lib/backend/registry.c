/* backend/registry.c - the devices --device names and their constructors,
 * TF 'same' padding, and the cross-process sums of synchronised batch norm
 * (see dlt/backend.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "dlt/backend.h"

void dlt_conv_same(dlt_conv_desc *c, const int64_t in[3], int64_t out[3])
{
    for (int i = 0; i < 3; i++) {
        int64_t s = c->stride[i] > 0 ? c->stride[i] : 1;
        out[i] = (in[i] + s - 1) / s;
        int64_t total = (out[i] - 1) * s + c->k[i] - in[i];
        if (total < 0) total = 0;
        c->pad_lo[i] = (int)(total / 2);
        c->pad_hi[i] = (int)(total - total / 2);
    }
}

/* "cpu" is the oneDNN fast path (lib/backend/cpu), built where the
 * Makefile found oneDNN (DLT_HAVE_DNNL); without it, or on a CPU it has no
 * loops for, the reference loops run instead, which compute the same
 * results more slowly; the debug log says which one runs. */
static int create_cpu(dlt_backend **be)
{
#ifdef DLT_HAVE_DNNL
    int rc = dlt_cpu_fast_create(be);
    if (rc != DLT_EUNSUP) return rc;
    dlt_log(DLT_LOG_DEBUG, "backend cpu: %s; using the reference loops (cpu-ref)", dlt_errmsg());
#else
    dlt_log(DLT_LOG_DEBUG, "backend cpu: this build has no oneDNN fast path (make DNNL=0, or no libdnnl-dev); "
                           "using the reference loops (cpu-ref)");
#endif
    return dlt_cpu_ref_create(be);
}

/* lib/backend/cuda is built, and defines the constructor, whenever the
 * Makefile found nvcc and cuDNN (DLT_HAVE_CUDA). */
static int create_cuda(dlt_backend **be)
{
#ifdef DLT_HAVE_CUDA
    return dlt_cuda_create(be);
#else
    (void)be;
    return dlt_err(DLT_EUNSUP, "cuda: this build has no CUDA backend (nvcc and cuDNN were not found at build time)");
#endif
}

static int create_auto(dlt_backend **be)
{
#ifdef DLT_HAVE_CUDA
    if (create_cuda(be) == 0) return 0;
    dlt_warn("device auto: no usable GPU (%s); using the cpu", dlt_errmsg());
#else
    dlt_log(DLT_LOG_VERBOSE, "device auto: this build has no CUDA backend; using the cpu");
#endif
    return create_cpu(be);
}

/* The registry: what --device names, in the order help and errors list
 * them. A new backend is a row here and its constructor. */
static const dlt_device devices[] = {
    {"cpu", "the fast path: oneDNN's convolutions and dlt's own SIMD loops", create_cpu},
    {"cpu-ref", "plain C loops with double sums: the oracle the others are tested against", dlt_cpu_ref_create},
    {"cuda", "an NVIDIA GPU through cuDNN", create_cuda},
    {"auto", "cuda where a GPU is usable, else cpu", create_auto},
};
enum { NDEVICES = sizeof devices / sizeof devices[0] };

int dlt_device_count(void) { return NDEVICES; }
const dlt_device *dlt_device_at(int i) { return i >= 0 && i < NDEVICES ? &devices[i] : NULL; }

const char *dlt_device_names(void)
{
    static char buf[256];
    if (!buf[0]) {
        size_t k = 0;
        for (int i = 0; i < NDEVICES; i++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i == 0 ? "" : i == NDEVICES - 1 ? " or " : ", ",
                                  devices[i].name);
    }
    return buf;
}

int dlt_backend_create(const char *name, dlt_backend **be)
{
    *be = NULL;
    if (!name) name = "cpu";
    for (int i = 0; i < NDEVICES; i++)
        if (!strcmp(name, devices[i].name)) return devices[i].create(be);
    return dlt_err(DLT_EINVAL, "%s: unknown device (expected %s)", name, dlt_device_names());
}

int dlt_reduce_sum(const dlt_reduce *r, double *v, int64_t n)
{
    if (!r || !r->sum || n <= 0) return 0;
    return r->sum(r->ctx, v, n);
}

int dlt_reduce_moments(const dlt_reduce *r, int64_t ng, double *count, double *mean, double *m2)
{
    if (!r || !r->sum || ng <= 0) return 0;
    double *v = malloc(sizeof(double) * (size_t)(3 * ng));
    if (!v) return dlt_err(DLT_ENOMEM, "batch norm: out of memory");
    for (int64_t g = 0; g < ng; g++) {
        v[g] = count[g];
        v[ng + g] = count[g] * mean[g];
        v[2 * ng + g] = m2[g] + count[g] * mean[g] * mean[g];
    }
    int rc = r->sum(r->ctx, v, 3 * ng);
    for (int64_t g = 0; !rc && g < ng; g++) {
        const double n = v[g], mu = n > 0 ? v[ng + g] / n : 0, q = v[2 * ng + g] - n * mu * mu;
        count[g] = n, mean[g] = mu, m2[g] = q > 0 ? q : 0;
    }
    free(v);
    return rc ? dlt_err_prefix(rc, "batch norm: synchronising statistics") : 0;
}
