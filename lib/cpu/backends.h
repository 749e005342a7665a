/* cpu/backends.h - constructors of the concrete backends behind
 * dlt_backend_create() (lib/backend.c). Internal to libdlt. */
#ifndef DLT_CPU_BACKENDS_H
#define DLT_CPU_BACKENDS_H

#include "dlt/backend.h"

/* lib/cpu/ref*.c: plain C11 loops, NCDHW, the oracle. */
int dlt_cpu_ref_create(dlt_backend **be);
/* lib/cpu/fast*.c: oneDNN blocked layouts (only with DLT_HAVE_DNNL);
 * operations it lacks fall back to the reference with a debug log. */
int dlt_cpu_fast_create(dlt_backend **be);
/* lib/cuda: cuDNN + own kernels (only with DLT_HAVE_CUDA); fails with
 * DLT_EDEVICE and a clear message when no usable GPU is present. */
int dlt_cuda_create(dlt_backend **be);

#endif
