/* backend/cuda/plan.h - the host-side planning of the CUDA backend, in plain C so
 * that it is unit-tested on machines without a GPU (tests/unit/
 * test_cuda_host.c): convolution geometry (cuDNN pads symmetrically only, so
 * TF 'same' with even kernels becomes symmetric padding plus an explicitly
 * zero-padded copy of the input), channels-last descriptor strides,
 * algorithm choice under a workspace bound, the per-shape algorithm cache,
 * allocation pool size classes, precision names and error texts.
 * Internal to libdlt. */
#ifndef DLT_CUDA_PLAN_H
#define DLT_CUDA_PLAN_H

#include <stdint.h>

#include "dlt/backend.h"

/* Precision of the convolutions (everything else is always fp32). */
enum { DLT_PREC_FP32 = 0, DLT_PREC_TF32 = 1, DLT_PREC_BF16 = 2 };
/* "fp32" | "tf32" | "bf16" -> DLT_PREC_*, or -1. */
int dlt_cuda_parse_precision(const char *s);
const char *dlt_cuda_precision_name(int prec);

/* A forward convolution seen by cuDNN: input X [n, cin, in] (for a
 * transposed conv: the large side), output Y [n, cout, out], weights
 * [cout, cin/groups, k]. Arrays D,H,W. */
typedef struct dlt_cuda_convplan {
    int64_t n, cin, cout, groups;
    int64_t in[3], out[3];
    int k[3], stride[3];
    int sym[3];                   /* symmetric padding given to cuDNN: min(lo, hi) */
    int extra_lo[3], extra_hi[3]; /* zeros materialised before/after: lo-sym, hi-sym */
    int64_t pin[3];               /* spatial size of the (padded) input cuDNN sees */
    int explicit_pad;             /* 1 when any extra_* is non-zero */
    int64_t pad_elems;            /* n*pin*cin when explicit_pad, else 0 */
} dlt_cuda_convplan;

/* Check shapes against the descriptor and fill *p. `in`/`out` are the
 * spatial sizes of the conv's input and output (D,H,W). Fails with
 * DLT_ESHAPE (output size not (in+lo+hi-k)/stride+1, channels not divisible
 * by groups) or DLT_EINVAL (non-positive kernel/stride, negative pad). */
int dlt_cuda_conv_plan(const dlt_conv_desc *c, int64_t n, int64_t cin, const int64_t in[3], int64_t cout,
                       const int64_t out[3], dlt_cuda_convplan *p);

/* cuDNN descriptor of a channels-last (NDHWC) tensor given in NCDHW order:
 * dims {n,c,d,h,w}, strides {d*h*w*c, 1, h*w*c, w*c, c}. Fails with
 * DLT_EUNSUP when a size or stride does not fit cuDNN's int. */
int dlt_cuda_ndhwc_desc(int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, int dims[5], int strides[5]);

/* One algorithm candidate as cuDNN reports it (fields copied from its perf
 * struct, so this stays plain C). */
typedef struct dlt_cuda_algo_cand {
    int algo;
    int status;      /* 0 = CUDNN_STATUS_SUCCESS */
    float time_ms;   /* < 0 when unknown (heuristics) */
    int64_t memory;  /* workspace bytes */
    int math_type;   /* cudnnMathType_t value */
} dlt_cuda_algo_cand;
/* Index of the candidate to use: the first (cuDNN sorts them best first)
 * that succeeded, fits ws_limit bytes, and, when need_math >= 0, has that
 * math type (fp32 insists on FMA math so results stay bit-comparable with
 * the CPU to 1e-4). Falls back to any successful fitting one when none has
 * the math type and allow_other_math is set. -1 when none fits. */
int dlt_cuda_pick_algo(const dlt_cuda_algo_cand *c, int n, int64_t ws_limit, int need_math, int allow_other_math);

/* Workspace bound in bytes: env DLT_CUDA_WORKSPACE_MB, else 1024 MiB. */
int64_t dlt_cuda_ws_limit(void);

/* Per-shape cache of chosen algorithms. The key is everything that decides
 * cuDNN's descriptors and the algorithm; `payload` is the CUDA side's entry
 * (descriptors, algorithm, workspace size), owned by the caller. */
enum { DLT_CONV_OP_FWD = 0, DLT_CONV_OP_BWD_DATA = 1, DLT_CONV_OP_BWD_FILTER = 2 };
typedef struct dlt_cuda_conv_key {
    int32_t op, prec;
    int64_t n, cin, cout, groups;
    int64_t pin[3], out[3];
    int32_t k[3], stride[3], sym[3];
} dlt_cuda_conv_key;
void dlt_cuda_conv_key_make(dlt_cuda_conv_key *key, int op, int prec, const dlt_cuda_convplan *p);
typedef struct dlt_cuda_algo_cache {
    dlt_cuda_conv_key *keys;
    void **payload;
    int n, cap;
} dlt_cuda_algo_cache;
/* Index of key, or -1. */
int dlt_cuda_cache_find(const dlt_cuda_algo_cache *c, const dlt_cuda_conv_key *key);
/* Append (the caller checked it is absent); returns the index or DLT_ENOMEM. */
int dlt_cuda_cache_add(dlt_cuda_algo_cache *c, const dlt_cuda_conv_key *key, void *payload);
/* Frees the arrays (not the payloads: the caller frees those first). */
void dlt_cuda_cache_free(dlt_cuda_algo_cache *c);

/* Size class of the allocation pool: blocks are reused only for requests of
 * the same class, so a training loop that allocates the same shapes every
 * step reuses the same blocks. Up to 1 MiB: multiples of 512 bytes; above:
 * multiples of 2 MiB. Never less than 512. */
int64_t dlt_cuda_pool_class(int64_t bytes);

/* "activation [2,16,64,64,64]" etc. into buf: names an allocation for the
 * out-of-memory message. */
const char *dlt_cuda_alloc_name(char *buf, int size, int role, int64_t n, int64_t c, int64_t d, int64_t h,
                                int64_t w);
/* The out-of-memory message (sets dlt_errmsg, returns DLT_ENOMEM):
 * "cuda: out of GPU memory allocating WHAT (X MiB; dlt holds Y MiB, the device
 * has Z MiB free of T MiB): use a smaller --batch or inference window". */
int dlt_cuda_oom(const char *what, int64_t bytes, int64_t held, int64_t dev_free, int64_t dev_total);

#endif
