/* dlt/dist.h - the processes of a data-parallel run (MPI).
 *
 * `mpirun -np N dlt-train ...` or `srun dlt-train ...` starts N copies; each
 * joins the run here and learns its rank. The training semantics (see
 * dlt-train(1)): rank 0 reads the patch stream and hands each rank --batch
 * records per step, so a step uses N*batch records; every rank runs the
 * same network on its share, the gradients are averaged over the ranks
 * (dlt_trainer_set_dist), and batch norm computes its statistics over all
 * N*batch samples (dlt_dist_reduce given to the backend). With losses that
 * are means over equal shares (ce, dice without only-present) N ranks with
 * batch B then compute what one process with batch N*B computes, to float
 * rounding.
 *
 * A build without MPI (make MPI=0), or a process not started by an MPI
 * launcher, is a world of one and every call below is a no-op. Errors in
 * the collectives end the whole run (MPI's default handler): a rank that
 * dies makes the launcher stop the others. */
#ifndef DLT_DIST_H
#define DLT_DIST_H

#include <stdint.h>

#include "dlt/backend.h"

#ifdef __cplusplus
extern "C" { /* lib/backend/cuda/nccl.cu */
#endif

/* Join the run. Started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMIX_RANK
 * or PMI_RANK in the environment) this initialises MPI; otherwise, or in a
 * build without MPI, it is a world of one (a launcher with more than one
 * process and no MPI in this build is an error: N copies would each train
 * alone and overwrite one another's checkpoint). */
int dlt_dist_init(int *argc, char ***argv, dlt_dist **out);
/* Leave the run normally (MPI_Finalize: every rank must call it) and free. */
void dlt_dist_finish(dlt_dist *d);
/* End every rank of the run now with exit status `code` (after an error
 * that the others cannot know of). Does not return. */
void dlt_dist_abort(dlt_dist *d, int code) __attribute__((noreturn));

int dlt_dist_rank(const dlt_dist *d); /* 0 .. size-1; 0 for NULL */
int dlt_dist_size(const dlt_dist *d); /* 1 for NULL */
/* "MPI (Open MPI 4.1.4)" or "none (built with MPI=0)": for logs. */
const char *dlt_dist_library(void);

/* Collectives: every rank calls them in the same order. In place. */
int dlt_dist_sum(dlt_dist *d, double *v, int64_t n);
int dlt_dist_sum_f32(dlt_dist *d, float *v, int64_t n);
int dlt_dist_max_int(dlt_dist *d, int *v, int n);
int dlt_dist_bcast(dlt_dist *d, void *buf, int64_t bytes);                  /* rank 0's to all */
/* Rank 0's send[r*bytes .. (r+1)*bytes) to rank r's recv (send is read on
 * rank 0 only; there send == recv keeps rank 0's share in place). */
int dlt_dist_scatter(dlt_dist *d, const void *send, void *recv, int64_t bytes);

/* The cross-process sum for synchronised batch norm
 * (dlt_backend_set_reduce), or NULL in a world of one. */
const dlt_reduce *dlt_dist_reduce(dlt_dist *d);

#ifdef __cplusplus
}
#endif

#endif
