/* backend/cuda/cuda.h - what the CUDA backend offers beyond the operation table of
 * dlt/backend.h (C callable; only built with DLT_HAVE_CUDA). The
 * constructor itself, dlt_cuda_create, is declared in backend/backends.h. */
#ifndef DLT_CUDA_H
#define DLT_CUDA_H

#include <stdint.h>

#include "dlt/backend.h"

/* Fill host[0..n) with dlt_rng_uniform_at(seed, stream, i) and normal[0..n)
 * with dlt_rng_normal_at(...), computed on the GPU from the same
 * dlt/philox.h source; for the GPU test (tests/gpu/ops_vs_ref.c). */
int dlt_cuda_philox_fill(dlt_backend *be, uint64_t seed, uint64_t stream, int64_t n, float *uniform, float *normal);

/* Memory figures of the pool, bytes: held (handed out + cached) and the
 * peak handed out. */
void dlt_cuda_mem_stats(dlt_backend *be, int64_t *held, int64_t *peak_live);

#endif
