/* backend/cuda/nccl.cu - data-parallel gradient averaging on the GPUs: one NCCL
 * communicator per backend over the ranks of a dlt_dist (its unique id
 * broadcast by MPI from rank 0), and every gradient averaged in place
 * (ncclAvg) as one group on the backend's stream, so NCCL fuses them into
 * few transfers. Every rank holds its tensors in the same layout, and an
 * average is elementwise, so the layout does not matter. Without NCCL in
 * the build (DLT_HAVE_NCCL unset) attach says DLT_EUNSUP and the trainer
 * averages through the host. */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/internal.h"
#include "dlt/dist.h"

#ifdef DLT_HAVE_NCCL
#include <nccl.h>

static int nccl_fail(ncclResult_t r, const char *what)
{
    return dlt_err(DLT_EDEVICE, "cuda: NCCL %s: %s", what, ncclGetErrorString(r));
}
#define NCCL_CK(call, what)                                                                                      \
    do {                                                                                                         \
        ncclResult_t r_ = (call);                                                                                \
        if (r_ != ncclSuccess) return nccl_fail(r_, what);                                                       \
    } while (0)

int cuda_dist_attach(dlt_backend *be, dlt_dist *d)
{
    cuda_ctx *x = CTX(be);
    if (x->nccl) return 0;
    const char *e = getenv("DLT_NCCL"); /* 0: through the host (e.g. several ranks on one GPU, which NCCL refuses) */
    if (e && !strcmp(e, "0")) return dlt_err(DLT_EUNSUP, "cuda: DLT_NCCL=0");
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (dlt_dist_rank(d) == 0) NCCL_CK(ncclGetUniqueId(&id), "unique id");
    RET(dlt_dist_bcast(d, &id, sizeof id));
    ncclComm_t comm;
    NCCL_CK(ncclCommInitRank(&comm, dlt_dist_size(d), id, dlt_dist_rank(d)), "communicator");
    x->nccl = comm;
    return 0;
}

int cuda_dist_average(dlt_backend *be, dlt_tensor *const *t, int n)
{
    cuda_ctx *x = CTX(be);
    if (!x->nccl) return dlt_err(DLT_EINVAL, "cuda: dist_average before dist_attach");
    ncclComm_t comm = (ncclComm_t)x->nccl;
    NCCL_CK(ncclGroupStart(), "group start");
    for (int i = 0; i < n; i++) {
        const int64_t m = dlt_tensor_numel(t[i]);
        if (!m) continue;
        ncclResult_t r = ncclAllReduce(t[i]->data, t[i]->data, (size_t)m, ncclFloat, ncclAvg, comm, x->stream);
        if (r != ncclSuccess) {
            ncclGroupEnd();
            return nccl_fail(r, "allreduce");
        }
    }
    NCCL_CK(ncclGroupEnd(), "group end");
    return 0;
}

void cuda_dist_free(dlt_backend *be)
{
    cuda_ctx *x = CTX(be);
    if (x->nccl) ncclCommDestroy((ncclComm_t)x->nccl);
    x->nccl = NULL;
}

#else

int cuda_dist_attach(dlt_backend *be, dlt_dist *d)
{
    (void)be, (void)d;
    return dlt_err(DLT_EUNSUP, "cuda: this build has no NCCL (MPI=0, or nccl.h not found)");
}

int cuda_dist_average(dlt_backend *be, dlt_tensor *const *t, int n)
{
    (void)be, (void)t, (void)n;
    return dlt_err(DLT_EUNSUP, "cuda: this build has no NCCL");
}

void cuda_dist_free(dlt_backend *be) { (void)be; }

#endif
