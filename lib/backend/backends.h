/* backend/backends.h - the constructors behind dlt_backend_create()
 * (backend/registry.c). Internal to libdlt: a new backend is one
 * constructor here, one row in the registry, and its constant ops table
 * (dlt/backend.h); the Makefile decides whether it is built. */
#ifndef DLT_BACKEND_BACKENDS_H
#define DLT_BACKEND_BACKENDS_H

#include "dlt/backend.h"

/* backend/ref: plain C11 loops, NCDHW, the oracle; its table is also the
 * generic fallback of every other backend (backend/front.c). Always built. */
int dlt_cpu_ref_create(dlt_backend **be);
extern const dlt_backend_ops dlt_cpu_ref_ops;
/* backend/cpu: oneDNN blocked layouts and own SIMD loops; built with
 * oneDNN only (DLT_HAVE_DNNL). DLT_EUNSUP on a CPU it has no loops for. */
int dlt_cpu_fast_create(dlt_backend **be);
/* backend/cuda: cuDNN + own kernels; built with CUDA only (DLT_HAVE_CUDA);
 * fails with DLT_EDEVICE and a clear message when no usable GPU is
 * present. */
int dlt_cuda_create(dlt_backend **be);

#endif
