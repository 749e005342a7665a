/* dlt/backend.h - the operation table of the engine.
 *
 * Every backend (the cpu-ref oracle, the oneDNN fast path "cpu", cuda)
 * fills one constant table of operations (dlt_backend_ops). The engine
 * (lib/nn/net*.c, lib/nn/train.c) calls only the front functions below
 * (dlt_op_*, dlt_tensor_*), which check the arguments once for every
 * backend and run an operation a backend lacks on the reference. So a
 * network runs unchanged on any backend, and the tests run every operation
 * on two backends and compare.
 *
 * Shapes: activations are 5-D, logically NCDHW, with W the fastest spatial
 * axis. Volumes are stored x-fastest (NIfTI order), so W = x, H = y, D = z:
 * a patch of X,Y,Z voxels is a tensor [N, C, Z, Y, X]. Weights of a
 * convolution are [Cout, Cin/groups, KD, KH, KW]; of a transposed
 * convolution [Cin, Cout/groups, KD, KH, KW] (as PyTorch, so model files
 * load into the peer unchanged).
 *
 * Memory: a dlt_tensor's storage belongs to the backend and may use a
 * private layout (oneDNN blocked nCdhw16c, CUDA NDHWC...). Only
 * upload/download see the plain NCDHW float32 layout. All tensors passed to
 * one call come from the same backend.
 *
 * Gradients: backward calls take `accum`: 0 overwrites the gradient output,
 * 1 adds to it (a tensor read by several ops receives the sum). Parameter
 * gradients are always accumulated (the executor zeroes them per step).
 *
 * Every call returns 0 or a negative DLT_E* code with dlt_errmsg() set. */
#ifndef DLT_BACKEND_H
#define DLT_BACKEND_H

#include <stdint.h>
#include <string.h>

#include "dlt/core.h"

typedef struct dlt_backend dlt_backend;
typedef struct dlt_dist dlt_dist; /* dlt/dist.h */

/* A sum across the processes of a data-parallel run (lib/core/dist.c under
 * MPI): sum(ctx, v, n) replaces v[0..n) by its sum over all processes, and
 * every process gets the same result. A backend with a reduce set (see
 * dlt_backend_set_reduce) computes training-mode batch-norm statistics, and
 * their backward sums, over the global batch (synchronised batch norm); sum
 * NULL: this process's batch alone. */
typedef struct dlt_reduce {
    int (*sum)(void *ctx, double *v, int64_t n);
    void *ctx;
} dlt_reduce;

typedef struct dlt_tensor {
    int64_t n, c, d, h, w; /* logical NCDHW shape; a parameter vector is [c,1,1,1,1] etc. */
    void *data;            /* backend-owned storage */
    int fmt;               /* backend-private layout tag */
    void *priv;            /* backend-private extra (e.g. a oneDNN memory object) */
    dlt_backend *be;       /* owner */
} dlt_tensor;

static inline int64_t dlt_tensor_numel(const dlt_tensor *t) { return t->n * t->c * t->d * t->h * t->w; }

/* What a tensor is for, so a backend can pick a layout: activations and
 * their gradients (ACT), convolution weights (WEIGHT, shape [O,I,KD,KH,KW]),
 * per-channel vectors (VEC: BN gamma/beta/running stats, biases), labels
 * (LABEL: int32 class ids, shape [N,1,D,H,W]). */
enum { DLT_T_ACT = 0, DLT_T_WEIGHT = 1, DLT_T_VEC = 2, DLT_T_LABEL = 3 };

/* 3-D convolution. TensorFlow 'same' semantics when same=1: output size
 * ceil(in/stride); total padding max((out-1)*stride + k - in, 0), of which
 * floor(total/2) before and the rest after (so even kernels such as 4^3
 * stride 2 pad 1 before, 1 after on an even input). same=0: explicit pad_lo
 * and pad_hi. Transposed convolution is the exact adjoint of the convolution
 * with the same descriptor (its output size is the forward input size,
 * given by out[] for the transposed case: TF conv3d_transpose 'same' gives
 * in*stride). Arrays are ordered D,H,W. */
typedef struct dlt_conv_desc {
    int k[3], stride[3];
    int pad_lo[3], pad_hi[3]; /* resolved by dlt_conv_resolve */
    int groups;               /* 1, or Cin for depthwise */
    int bias;                 /* 1: a bias vector of Cout (Cout of the op's output) */
} dlt_conv_desc;

/* Fill pad_lo/pad_hi for TF 'same' given the input spatial size; returns
 * the output size in out[3]. For a transposed conv pass the *output*
 * (large) size as `in` and get the small size back, then use it reversed. */
void dlt_conv_same(dlt_conv_desc *c, const int64_t in[3], int64_t out[3]);

enum { DLT_ACT_NONE = 0, DLT_ACT_RELU, DLT_ACT_LEAKY, DLT_ACT_RELU6, DLT_ACT_PRELU };

/* Normalisation + (optional) activation, fused because every pre-activation
 * residual unit does norm then act. Batch norm: statistics over N,D,H,W per
 * channel; in training mode uses the batch mean and biased variance and
 * updates running_mean/var with  r = momentum*r + (1-momentum)*batch  (TF
 * sense: momentum 0.99), running variance unbiased (as PyTorch). Instance
 * norm: statistics over D,H,W per sample and channel, no running stats. */
enum { DLT_NORM_BATCH = 1, DLT_NORM_INSTANCE = 2 };
typedef struct dlt_norm_desc {
    int kind;
    float eps, momentum;
    int affine;      /* gamma/beta present (always for DLTK's BN) */
    int act;         /* DLT_ACT_* applied after the norm */
    float alpha;     /* leaky slope */
} dlt_norm_desc;

/* Losses on logits [N,C,D,H,W] and int32 labels [N,1,D,H,W]. All return the
 * mean loss and write dlogits (overwritten), the gradient of that value.
 * CE: mean over voxels of -log softmax. BALANCED_CE (DLTK
 * sparse_balanced_crossentropy): per-voxel weights N/(C*count_c) computed from
 * the batch's labels, loss = mean(w * ce). DICE (DLTK dice_loss): 1 - mean
 * over (sample, class) pairs of (2*sum(p*y) + smooth) / (sum(p) + sum(y) +
 * smooth), with p the softmax and the sums over each sample's voxels (DLTK
 * reduces axes 1,2,3 of [N,D,H,W,C]), smooth 1e-5; include_bg=0 drops class
 * 0; only_present=1 averages only the pairs whose class is present in that
 * sample's labels (none present: loss 1, gradient 0).
 * DICE_CE: dice + ce. */
enum { DLT_LOSS_CE = 1, DLT_LOSS_BALANCED_CE, DLT_LOSS_DICE, DLT_LOSS_DICE_CE };
typedef struct dlt_loss_desc {
    int kind;
    float smooth;       /* 1e-5 */
    int include_bg;     /* 1: background class counted in Dice (DLTK default) */
    int only_present;
} dlt_loss_desc;

/* Optimiser step over one parameter tensor and its state. Adam (Kingma &
 * Ba, with bias correction as in TF/PyTorch): t is the 1-based step. SGD:
 * momentum mu, nesterov flag; weight decay (L2 added to the gradient). */
typedef struct dlt_optim_desc {
    int kind; /* DLT_OPTIM_ADAM or DLT_OPTIM_SGD */
    float lr, beta1, beta2, eps, weight_decay, momentum;
    int nesterov;
    int64_t t;
} dlt_optim_desc;
enum { DLT_OPTIM_ADAM = 1, DLT_OPTIM_SGD = 2 };

/* A backend's operations: one constant table per backend (lib/backend/ref/ref.c,
 * lib/backend/cpu/fast.c, lib/backend/cuda/backend.cu). Callers never use it directly: the
 * front functions below (lib/backend/front.c) check the shapes once, so a
 * backend may assume them, and then call the slot.
 *
 * Required: name, alloc, release, upload, download, zero, destroy. Every
 * operation slot is optional: NULL, or a call that returns DLT_EUNSUP
 * before writing anything (with the reason in dlt_errmsg()), runs the
 * operation on the reference backend through host copies of its tensors,
 * logged once per op at debug level. So a new backend starts with memory
 * alone and gains speed op by op. */
typedef struct dlt_backend_ops {
    const char *name; /* "cpu-ref", "cpu", "cuda" */

    /* ---- memory ---- */
    int (*alloc)(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w);
    void (*release)(dlt_backend *be, dlt_tensor *t);
    /* host is plain NCDHW float32 (int32 for LABEL), numel elements. */
    int (*upload)(dlt_backend *be, dlt_tensor *t, const void *host);
    int (*download)(dlt_backend *be, const dlt_tensor *t, void *host);
    int (*zero)(dlt_backend *be, dlt_tensor *t);
    int (*sync)(dlt_backend *be); /* wait for queued work (NULL: nothing is queued) */

    /* ---- convolution ---- y[N,Cout,..] = conv(x[N,Cin,..], w) (+ b) */
    int (*conv_fwd)(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                    const dlt_tensor *b, dlt_tensor *y);
    int (*conv_bwd_data)(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                         dlt_tensor *dx, int accum);
    /* dw (and db if non-NULL) accumulated */
    int (*conv_bwd_weights)(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                            dlt_tensor *dw, dlt_tensor *db);
    /* ---- transposed convolution: y = conv_bwd_data with weights w ---- */
    int (*convt_fwd)(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                     const dlt_tensor *b, dlt_tensor *y);
    int (*convt_bwd_data)(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                          dlt_tensor *dx, int accum);
    int (*convt_bwd_weights)(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                             dlt_tensor *dw, dlt_tensor *db);

    /* ---- normalisation (+ fused activation) ----
     * training=1: batch statistics; save_mean/save_rstd [C] (batch norm) or
     * [N*C] (instance norm) keep what backward needs. training=0: running
     * stats. gamma/beta/running_* are VEC tensors of C. */
    int (*norm_fwd)(dlt_backend *be, const dlt_norm_desc *nd, int training, const dlt_tensor *x,
                    const dlt_tensor *gamma, const dlt_tensor *beta, dlt_tensor *running_mean,
                    dlt_tensor *running_var, dlt_tensor *save_mean, dlt_tensor *save_rstd, dlt_tensor *y);
    /* needs x, y (the fused activation's output) and the saved stats */
    int (*norm_bwd)(dlt_backend *be, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                    const dlt_tensor *dy, const dlt_tensor *gamma, const dlt_tensor *save_mean,
                    const dlt_tensor *save_rstd, dlt_tensor *dx, int accum, dlt_tensor *dgamma, dlt_tensor *dbeta);

    /* ---- activation: y = act(x); prelu uses per-channel slopes `slope` (VEC) ---- */
    int (*act_fwd)(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x, dlt_tensor *y);
    int (*act_bwd)(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                   const dlt_tensor *dy, dlt_tensor *dx, int accum, dlt_tensor *dslope);

    /* ---- max pooling, kernel = stride = k[3] (DLTK's 'valid' shortcut);
     * the spatial sizes must be divisible by k ---- */
    int (*maxpool_fwd)(dlt_backend *be, const int k[3], const dlt_tensor *x, dlt_tensor *y);
    int (*maxpool_bwd)(dlt_backend *be, const int k[3], const dlt_tensor *x, const dlt_tensor *y,
                       const dlt_tensor *dy, dlt_tensor *dx, int accum);

    /* ---- channel ops ---- */
    /* y has x's channels with lo zero channels before and hi after */
    int (*padc_fwd)(dlt_backend *be, int lo, int hi, const dlt_tensor *x, dlt_tensor *y);
    int (*padc_bwd)(dlt_backend *be, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int accum);
    /* y = [a, b] along channels */
    int (*concat_fwd)(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y);
    int (*concat_bwd)(dlt_backend *be, const dlt_tensor *dy, dlt_tensor *da, int accum_a, dlt_tensor *db, int accum_b);
    /* y = a + b (same shape); backward is the executor's (gradient passes to both) */
    int (*add_fwd)(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y);
    /* dst (+)= src, same shape: the executor's tool for gradient sums */
    int (*copy)(dlt_backend *be, const dlt_tensor *src, dlt_tensor *dst, int accum);
    /* x *= alpha in place (weighting a loss's gradient) */
    int (*scale)(dlt_backend *be, float alpha, dlt_tensor *x);
    /* y = softmax over channels */
    int (*softmax_fwd)(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y);

    /* ---- loss: value (host double) and dlogits (may be NULL: value only) ---- */
    int (*loss)(dlt_backend *be, const dlt_loss_desc *ld, const dlt_tensor *logits, const dlt_tensor *labels,
                double *value, dlt_tensor *dlogits);

    /* ---- optimiser: updates p, m, v in place from g; m,v may be NULL for plain SGD ---- */
    int (*optim_step)(dlt_backend *be, const dlt_optim_desc *od, dlt_tensor *p, const dlt_tensor *g, dlt_tensor *m,
                      dlt_tensor *v);

    /* Frees what the constructor made (be->ctx); dlt_backend_free frees be. */
    void (*destroy)(dlt_backend *be);

    /* Optional: set a named option. "precision" = "fp32" (default) |
     * "tf32" (cuda) | "bf16" (convolutions only; see lib/backend/cuda/internal.h and
     * lib/backend/cpu/fast.c). Unknown key or value: DLT_EINVAL. */
    int (*set_option)(dlt_backend *be, const char *key, const char *value);
    /* Optional: what the backend says about itself for a key, or NULL.
     * cpu: "isa" (its loops' ISA, oneDNN's, the channel block), "precision"
     * (what convolutions compute in now: a bf16 request on a CPU without
     * bf16 kernels reads fp32), "convolutions" (a line per convolution
     * primitive made so far: geometry and implementation). The string
     * belongs to the backend (valid until its next call). */
    const char *(*get_info)(dlt_backend *be, const char *key);

    /* Optional: data-parallel averaging on the device itself (cuda: NCCL).
     * dist_attach joins the ranks of d (every rank calls it, after
     * creating its backend); dist_average then replaces each of n tensors
     * by its mean over the ranks, as one group. NULL, or an attach that
     * fails with DLT_EUNSUP: the trainer averages through the host (MPI). */
    int (*dist_attach)(dlt_backend *be, dlt_dist *d);
    int (*dist_average)(dlt_backend *be, dlt_tensor *const *t, int n);
} dlt_backend_ops;

/* One backend instance: its constant table and its state. */
struct dlt_backend {
    const dlt_backend_ops *ops;
    const char *name; /* ops->name */
    void *ctx;        /* backend state (streams, handles, primitive caches) */
    /* Cross-process sums for synchronised batch norm (zeroed: none). Every
     * process calls norm_fwd/norm_bwd in training mode on the same layers in
     * the same order, so their sums meet. */
    dlt_reduce reduce;
    dlt_backend *fallback; /* the reference backend that runs missing ops (made on first use) */
    uint64_t fell_back;    /* ops whose fallback was logged */
};

/* For constructors: a backend of these ops with state ctx (NULL and
 * DLT_ENOMEM when out of memory; ctx is then the caller's to free). */
dlt_backend *dlt_backend_new(const dlt_backend_ops *ops, void *ctx);

/* ---- the front: what the engine calls. Each checks its arguments'
 * shapes (DLT_ESHAPE / DLT_EINVAL naming the op), then runs the backend's
 * slot or the fallback. Signatures and meaning as the slots above. ---- */
int dlt_tensor_upload(dlt_tensor *t, const void *host);
int dlt_tensor_download(const dlt_tensor *t, void *host);
int dlt_tensor_zero(dlt_tensor *t);
int dlt_backend_sync(dlt_backend *be);
int dlt_op_conv_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                    const dlt_tensor *b, dlt_tensor *y);
int dlt_op_conv_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                         dlt_tensor *dx, int accum);
int dlt_op_conv_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                            dlt_tensor *dw, dlt_tensor *db);
int dlt_op_convt_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                     const dlt_tensor *b, dlt_tensor *y);
int dlt_op_convt_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                          dlt_tensor *dx, int accum);
int dlt_op_convt_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                             dlt_tensor *dw, dlt_tensor *db);
int dlt_op_norm_fwd(dlt_backend *be, const dlt_norm_desc *nd, int training, const dlt_tensor *x,
                    const dlt_tensor *gamma, const dlt_tensor *beta, dlt_tensor *running_mean, dlt_tensor *running_var,
                    dlt_tensor *save_mean, dlt_tensor *save_rstd, dlt_tensor *y);
int dlt_op_norm_bwd(dlt_backend *be, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                    const dlt_tensor *dy, const dlt_tensor *gamma, const dlt_tensor *save_mean,
                    const dlt_tensor *save_rstd, dlt_tensor *dx, int accum, dlt_tensor *dgamma, dlt_tensor *dbeta);
int dlt_op_act_fwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x, dlt_tensor *y);
int dlt_op_act_bwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                   const dlt_tensor *dy, dlt_tensor *dx, int accum, dlt_tensor *dslope);
int dlt_op_maxpool_fwd(dlt_backend *be, const int k[3], const dlt_tensor *x, dlt_tensor *y);
int dlt_op_maxpool_bwd(dlt_backend *be, const int k[3], const dlt_tensor *x, const dlt_tensor *y,
                       const dlt_tensor *dy, dlt_tensor *dx, int accum);
int dlt_op_padc_fwd(dlt_backend *be, int lo, int hi, const dlt_tensor *x, dlt_tensor *y);
int dlt_op_padc_bwd(dlt_backend *be, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int accum);
int dlt_op_concat_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y);
int dlt_op_concat_bwd(dlt_backend *be, const dlt_tensor *dy, dlt_tensor *da, int accum_a, dlt_tensor *db,
                      int accum_b);
int dlt_op_add_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y);
int dlt_op_copy(dlt_backend *be, const dlt_tensor *src, dlt_tensor *dst, int accum);
int dlt_op_scale(dlt_backend *be, float alpha, dlt_tensor *x);
int dlt_op_softmax_fwd(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y);
int dlt_op_loss(dlt_backend *be, const dlt_loss_desc *ld, const dlt_tensor *logits, const dlt_tensor *labels,
                double *value, dlt_tensor *dlogits);
int dlt_op_optim_step(dlt_backend *be, const dlt_optim_desc *od, dlt_tensor *p, const dlt_tensor *g, dlt_tensor *m,
                      dlt_tensor *v);
/* Data-parallel averaging on the device (the dist_* slots): DLT_EUNSUP
 * where the backend has none (the caller then averages through the host);
 * dlt_backend_dist_average after a successful attach only. */
int dlt_backend_dist_attach(dlt_backend *be, dlt_dist *d);
int dlt_backend_dist_average(dlt_backend *be, dlt_tensor *const *t, int n);

/* Synchronise training-mode batch norm across processes (NULL: stop). */
static inline void dlt_backend_set_reduce(dlt_backend *be, const dlt_reduce *r)
{
    if (r) be->reduce = *r;
    else memset(&be->reduce, 0, sizeof be->reduce);
}

/* Batch-norm statistics over all processes: per group g < ng, this
 * process's count, mean and m2 (sum of squared deviations from the mean)
 * in; everyone's out. A no-op without a reduce. Combined as sums of count,
 * count*mean and m2 + count*mean^2 in double (exact enough unless
 * |mean|/std exceeds ~1e6). */
int dlt_reduce_moments(const dlt_reduce *r, int64_t ng, double *count, double *mean, double *m2);
/* v[0..n) summed over all processes in place (no-op without a reduce). */
int dlt_reduce_sum(const dlt_reduce *r, double *v, int64_t n);

/* be's get_info(key), or NULL where the backend has none. */
static inline const char *dlt_backend_info(dlt_backend *be, const char *key)
{
    return be->ops->get_info ? be->ops->get_info(be, key) : NULL;
}

/* be's set_option, or DLT_EUNSUP naming the backend when it has none. */
static inline int dlt_backend_set_option(dlt_backend *be, const char *key, const char *value)
{
    if (!be->ops->set_option) return dlt_err(DLT_EUNSUP, "backend %s has no option %s", be->name, key);
    return be->ops->set_option(be, key, value);
}

/* The "precision" option (fp32, bf16, tf32 where the backend has them);
 * fp32 is also accepted by a backend without options, which computes in
 * fp32 anyway (cpu-ref). */
static inline int dlt_backend_set_precision(dlt_backend *be, const char *precision)
{
    if (!be->ops->set_option && !strcmp(precision, "fp32")) return 0;
    return dlt_backend_set_option(be, "precision", precision);
}

/* Create a backend by name: "cpu-ref" (plain C loops, the oracle), "cpu"
 * (the fast path), "cuda" (error without a usable GPU), "auto" (cuda if usable, else
 * cpu, saying so on stderr). *be is freed by dlt_backend_free. */
int dlt_backend_create(const char *name, dlt_backend **be);

/* The registry behind dlt_backend_create: every device name with a line
 * about it and its constructor (which may fail: cuda without a GPU or
 * without CUDA in the build). dlt_device_names(): "cpu, cpu-ref, cuda or
 * auto", for help and errors. */
typedef struct dlt_device {
    const char *name;
    const char *about;
    int (*create)(dlt_backend **be);
} dlt_device;
int dlt_device_count(void);
const dlt_device *dlt_device_at(int i);
const char *dlt_device_names(void);
void dlt_backend_free(dlt_backend *be);

/* Convenience: allocate + upload / download into a new host buffer. */
int dlt_tensor_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w);
void dlt_tensor_release(dlt_tensor *t);

#endif
