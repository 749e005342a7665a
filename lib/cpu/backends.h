/* cpu/backends.h - constructors of the concrete backends behind
 * dlt_backend_create() (lib/backend.c). Internal to libdlt. */
#ifndef DLT_CPU_BACKENDS_H
#define DLT_CPU_BACKENDS_H

#include "dlt/backend.h"

/* lib/cpu/ref*.c: plain C11 loops, NCDHW, the oracle; its table is also
 * the generic fallback of every other backend (lib/backend_front.c). */
int dlt_cpu_ref_create(dlt_backend **be);
extern const dlt_backend_ops dlt_cpu_ref_ops;
/* lib/cpu/fast*.c: oneDNN blocked layouts (only with DLT_HAVE_DNNL). */
int dlt_cpu_fast_create(dlt_backend **be);
/* lib/cuda: cuDNN + own kernels (only with DLT_HAVE_CUDA); fails with
 * DLT_EDEVICE and a clear message when no usable GPU is present. */
int dlt_cuda_create(dlt_backend **be);

#endif
