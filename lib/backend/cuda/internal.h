/* backend/cuda/internal.h - shared state and helpers of the CUDA backend (C++ /
 * CUDA only; included by the .cu files of lib/backend/cuda).
 *
 * Layouts (dlt_tensor.fmt): activations and their gradients are stored
 * channels-last, NDHWC float32 (FMT_NDHWC); labels NDHW int32 (the same
 * bytes as NCDHW with C=1); weights and per-channel vectors stay in the
 * plain PyTorch layout (FMT_PLAIN), so optimiser state, checkpoints and any
 * copy between tensors of the same shape never depend on a private layout.
 * A convolution transposes its weights to cuDNN's KDHWC (channels-last
 * filters) into scratch per call: a few MB per step for DLTK's U-Net.
 *
 * Memory: every tensor comes from one pool of device blocks that are kept on
 * release and reused for the next request of the same size class, so a
 * training loop allocates from the driver only in its first step. Scratch
 * (padded inputs, the cuDNN workspace, bf16 copies, reduction partials) sits
 * in a few growable slots that ops reuse. All work is queued on one stream;
 * nothing is copied between host and device inside an op except a loss
 * value out. */
#ifndef DLT_CUDA_INTERNAL_H
#define DLT_CUDA_INTERNAL_H

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" {
#include "backend/backends.h"
#include "backend/cuda/cuda.h"
#include "backend/cuda/plan.h"
#include "dlt/backend.h"
#include "dlt/core.h"
}

enum { FMT_NONE = 0, FMT_NDHWC = 1, FMT_PLAIN = 2, FMT_LABEL = 3 };

/* Scratch slots: each is one growable device buffer. */
enum { SCR_WS, SCR_IN, SCR_IN2, SCR_W, SCR_OUT, SCR_STAGE, SCR_RED, SCR_N };

struct pool_block {
    void *p;
    int64_t bytes; /* size class */
};

typedef struct cuda_ctx {
    int device;
    char devname[256];
    cudaStream_t stream;
    cudnnHandle_t dnn;
    int prec;          /* DLT_PREC_* for convolutions */
    int find;          /* 1: cudnnFind (timed), 0: cuDNN heuristics */
    int64_t ws_limit;  /* workspace bound, bytes */
    /* pool */
    pool_block *freel;
    int nfree, capfree;
    int64_t held;      /* bytes in blocks handed out or cached */
    int64_t live;      /* bytes handed out */
    int64_t peak_live;
    /* scratch */
    void *scr[SCR_N];
    int64_t scr_bytes[SCR_N];
    /* conv algorithm cache */
    dlt_cuda_algo_cache cache;
    /* loss results: a few doubles on the device, read back once per loss */
    double *h_out; /* pinned host */
    void *nccl;    /* ncclComm_t of a data-parallel run (lib/backend/cuda/nccl.cu), or NULL */
} cuda_ctx;

static inline cuda_ctx *CTX(dlt_backend *be) { return (cuda_ctx *)be->ctx; }

/* Failure of a CUDA runtime call: DLT_EDEVICE (or DLT_ENOMEM) with the
 * call's name and CUDA's text. */
int cuda_fail(cudaError_t e, const char *what);
#define CUDA_CK(call, what)                                                                                      \
    do {                                                                                                         \
        cudaError_t e_ = (call);                                                                                 \
        if (e_ != cudaSuccess) return cuda_fail(e_, what);                                                      \
    } while (0)
#define DNN_CK(call, what)                                                                                       \
    do {                                                                                                         \
        cudnnStatus_t s_ = (call);                                                                               \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                                          \
            return dlt_err(DLT_EDEVICE, "cuda: %s: cuDNN: %s", what, cudnnGetErrorString(s_));                  \
    } while (0)
/* After a kernel launch: launch errors (bad configuration) surface here;
 * faults inside the kernel surface at the next synchronising call. */
#define KCHECK(name) CUDA_CK(cudaGetLastError(), "kernel " name)
#define RET(call)                                                                                                \
    do {                                                                                                         \
        int r_ = (call);                                                                                         \
        if (r_ < 0) return r_;                                                                                   \
    } while (0)

/* A scratch slot of at least `bytes`; grows (synchronously) when needed. */
int cuda_scratch(dlt_backend *be, int slot, int64_t bytes, void **p);

/* Launch geometry for grid-stride loops over n elements. */
static inline int cuda_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b > 132 * 64) b = 132 * 64;
    return b < 1 ? 1 : (int)b;
}

/* Layout check shared by the ops (message names the op); shapes are the
 * front's (lib/backend/front.c). */
int cuda_check_fmt(const char *op, const dlt_tensor *t, int fmt);
static inline int64_t spatial(const dlt_tensor *t) { return t->d * t->h * t->w; }

/* memory.cu: the table's memory slots, and the pool's teardown */
int cuda_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w);
void cuda_release(dlt_backend *be, dlt_tensor *t);
int cuda_upload(dlt_backend *be, dlt_tensor *t, const void *host);
int cuda_download(dlt_backend *be, const dlt_tensor *t, void *host);
int cuda_zero(dlt_backend *be, dlt_tensor *t);
int cuda_sync(dlt_backend *be);
void cuda_pool_drop(cuda_ctx *x);

/* ops defined across the .cu files */
int cuda_conv_fwd(dlt_backend *, const dlt_conv_desc *, const dlt_tensor *, const dlt_tensor *, const dlt_tensor *,
                  dlt_tensor *);
int cuda_conv_bwd_data(dlt_backend *, const dlt_conv_desc *, const dlt_tensor *, const dlt_tensor *, dlt_tensor *, int);
int cuda_conv_bwd_weights(dlt_backend *, const dlt_conv_desc *, const dlt_tensor *, const dlt_tensor *, dlt_tensor *,
                          dlt_tensor *);
int cuda_convt_fwd(dlt_backend *, const dlt_conv_desc *, const dlt_tensor *, const dlt_tensor *, const dlt_tensor *,
                   dlt_tensor *);
int cuda_convt_bwd_data(dlt_backend *, const dlt_conv_desc *, const dlt_tensor *, const dlt_tensor *, dlt_tensor *,
                        int);
int cuda_convt_bwd_weights(dlt_backend *, const dlt_conv_desc *, const dlt_tensor *, const dlt_tensor *, dlt_tensor *,
                           dlt_tensor *);
void cuda_conv_cache_free(dlt_backend *be);
int cuda_norm_fwd(dlt_backend *, const dlt_norm_desc *, int, const dlt_tensor *, const dlt_tensor *,
                  const dlt_tensor *, dlt_tensor *, dlt_tensor *, dlt_tensor *, dlt_tensor *, dlt_tensor *);
int cuda_norm_bwd(dlt_backend *, const dlt_norm_desc *, const dlt_tensor *, const dlt_tensor *, const dlt_tensor *,
                  const dlt_tensor *, const dlt_tensor *, const dlt_tensor *, dlt_tensor *, int, dlt_tensor *,
                  dlt_tensor *);
int cuda_act_fwd(dlt_backend *, int, float, const dlt_tensor *, const dlt_tensor *, dlt_tensor *);
int cuda_act_bwd(dlt_backend *, int, float, const dlt_tensor *, const dlt_tensor *, const dlt_tensor *, dlt_tensor *,
                 int, dlt_tensor *);
int cuda_maxpool_fwd(dlt_backend *, const int[3], const dlt_tensor *, dlt_tensor *);
int cuda_maxpool_bwd(dlt_backend *, const int[3], const dlt_tensor *, const dlt_tensor *, const dlt_tensor *,
                     dlt_tensor *, int);
int cuda_padc_fwd(dlt_backend *, int, int, const dlt_tensor *, dlt_tensor *);
int cuda_padc_bwd(dlt_backend *, int, int, const dlt_tensor *, dlt_tensor *, int);
int cuda_concat_fwd(dlt_backend *, const dlt_tensor *, const dlt_tensor *, dlt_tensor *);
int cuda_concat_bwd(dlt_backend *, const dlt_tensor *, dlt_tensor *, int, dlt_tensor *, int);
int cuda_add_fwd(dlt_backend *, const dlt_tensor *, const dlt_tensor *, dlt_tensor *);
int cuda_copy(dlt_backend *, const dlt_tensor *, dlt_tensor *, int);
int cuda_scale(dlt_backend *, float, dlt_tensor *);
int cuda_softmax_fwd(dlt_backend *, const dlt_tensor *, dlt_tensor *);
int cuda_loss(dlt_backend *, const dlt_loss_desc *, const dlt_tensor *, const dlt_tensor *, double *, dlt_tensor *);
int cuda_optim_step(dlt_backend *, const dlt_optim_desc *, dlt_tensor *, const dlt_tensor *, dlt_tensor *,
                    dlt_tensor *);
/* Per-channel sum of an NDHWC tensor [M rows, C] added into acc[C] (plain). */
int cuda_channel_sum_add(dlt_backend *be, const float *x, int64_t rows, int64_t C, float *acc);
/* data parallelism on the GPUs (nccl.cu): dlt_backend's dist_attach and
 * dist_average; cuda_dist_free at destroy */
int cuda_dist_attach(dlt_backend *be, dlt_dist *d);
int cuda_dist_average(dlt_backend *be, dlt_tensor *const *t, int n);
void cuda_dist_free(dlt_backend *be);

#endif
