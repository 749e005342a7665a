/* dlt/net.h - DLTK's segmentation networks, built as a graph of backend
 * operations, with weights, forward/backward passes and model-file I/O.
 *
 * Networks (DESIGN.md section 4; ../shared/peers/torch_dltk_unet.py):
 *   DLT_NET_UNET       residual_unet_3d: 3^3 stem, res_units pre-activation
 *                      residual units per encoder scale, fixed trilinear
 *                      upsampling, concat [skip, up], res_units decoder units,
 *                      1^3 head. Encoder leaky ReLU 0.1, decoder relu6.
 *   DLT_NET_ASYM_UNET  asymmetric_residual_unet_3d: the same encoder, one
 *                      decoder unit per scale whatever res_units is.
 *   DLT_NET_FCN        residual_fcn_3d: the same encoder (relu6), upscore
 *                      steps (1^3 score conv, upsampling, + BN(1^3 conv(skip))),
 *                      1^3 head.
 * Parameter tensors carry the peer's state_dict names (stem.weight,
 * enc.0.0.bn0.weight, dec.0.0.short.weight, up.0.w, head.weight...), so a
 * saved model loads into the peer. Defaults give the peer's parameter
 * counts: 2,287,024 (U-Net, 1 input channel, 14 classes), 1,273,480 (FCN).
 *
 * Axes: a batch is [N, C, D, H, W] = [N, C, Z, Y, X] (x fastest). User-facing
 * strides are written X,Y,Z (as dlt_parse_int3 reads "1x2x2"); the config
 * keeps them in that order.
 *
 * Typical use (dlt-infer):
 *   dlt_model m; dlt_model_read(path, &m);
 *   dlt_backend *be; dlt_backend_create("cpu", &be);
 *   dlt_net *net; dlt_net_load(&m, be, &net);
 *   dlt_net_predict(net, x, n, d, h, w, probs);   // probs [n, classes, d, h, w]
 */
#ifndef DLT_NET_H
#define DLT_NET_H

#include <stdint.h>

#include "dlt/backend.h"
#include "dlt/model.h"

enum { DLT_NET_UNET = 1, DLT_NET_ASYM_UNET = 2, DLT_NET_FCN = 3 };
#define DLT_NET_MAX_SCALES 8

typedef struct dlt_net_config {
    int kind;                              /* DLT_NET_* */
    int in_channels, classes;
    int nscales;                           /* entries used in filters/strides (2..8) */
    int filters[DLT_NET_MAX_SCALES];       /* channels per scale: 16,32,64,128 */
    int strides[DLT_NET_MAX_SCALES][3];    /* per scale, X,Y,Z order: 1,2,2,2; strides[0] must be 1x1x1 */
    int res_units;                         /* residual units per encoder scale (and U-Net decoder scale) */
    int act_enc, act_dec;                  /* DLT_ACT_*: encoder units, decoder units (unused by the FCN) */
    float alpha;                           /* leaky ReLU slope (0.1) */
    int norm;                              /* DLT_NORM_BATCH (default) or DLT_NORM_INSTANCE */
    float norm_momentum, norm_eps;         /* 0.99 (TF sense), 1e-3 */
    int deep_sup;                          /* deep supervision (U-Net kinds): auxiliary outputs, 0 (off) to
                                            * nscales-2: a 1^3 head ("ds.K.weight") on the decoder output of
                                            * scale K+1 for K < deep_sup, so ds.0 is at half resolution */
} dlt_net_config;

/* The DLTK defaults for `kind`: filters 16,32,64,128, strides 1,2,2,2, one
 * residual unit, DLTK's activations, batch norm 0.99/1e-3. */
void dlt_net_config_default(dlt_net_config *c, int kind, int in_channels, int classes);
/* 0, or DLT_EINVAL with a message naming the bad field. */
int dlt_net_config_check(const dlt_net_config *c);

/* Names: "unet", "asym-unet", "fcn" <-> DLT_NET_*; -1/NULL if unknown. */
int dlt_net_kind_parse(const char *s);
const char *dlt_net_kind_name(int kind);
/* Activations: "none", "relu", "leaky" (slope 0.1) or "leaky:0.2", "relu6",
 * "prelu" (per-channel slopes, init 0.25, trained). Returns 0 or DLT_EINVAL;
 * alpha may be NULL. */
int dlt_net_act_parse(const char *s, int *act, float *alpha);
const char *dlt_net_act_name(int act);
/* Parse "--filters"/"--strides" style lists into the config: filters
 * "16,32,64,128" sets nscales; strides "1,2,2,2" (isotropic) or
 * "1x1x1,1x2x2,2x2x2" (X,Y,Z per scale) must have nscales entries. */
int dlt_net_parse_filters(dlt_net_config *c, const char *s);
int dlt_net_parse_strides(dlt_net_config *c, const char *s);
/* Format filters/strides as the parsers read them (buf of len bytes). */
void dlt_net_format_filters(const dlt_net_config *c, char *buf, int len);
void dlt_net_format_strides(const dlt_net_config *c, char *buf, int len);

/* Per axis (X,Y,Z) the product of the strides: an input size must be a
 * multiple of it. dlt_net_check_size: 0, or DLT_ESHAPE with a message such
 * as "input 60x64x64 (X,Y,Z): 60 is not a multiple of 8 (the product of the
 * x strides)" and the nearest valid sizes. */
void dlt_net_size_multiple(const dlt_net_config *c, int64_t m_xyz[3]);
int dlt_net_check_size(const dlt_net_config *c, int64_t x, int64_t y, int64_t z);

typedef struct dlt_net dlt_net;

/* A parameter or buffer tensor. trainable: weights, norm gamma/beta, PReLU
 * slopes (these have a grad and take optimiser steps); buffers: running
 * mean/var and the fixed upsampling kernels (no grad). */
typedef struct dlt_param {
    char name[96];    /* the peer's state_dict name */
    int trainable;
    int role;         /* DLT_T_WEIGHT or DLT_T_VEC */
    dlt_tensor value; /* on the net's backend */
    dlt_tensor grad;  /* trainable only; accumulated by dlt_net_backward */
} dlt_param;

/* Build the network on `be` and initialise it: conv weights LeCun-uniform
 * (limit sqrt(3/fan_in), fan_in = Cin/groups * kd*kh*kw) from Philox stream
 * (seed, parameter index), so the weights depend on the seed only; gamma 1,
 * beta 0, running mean 0, var 1; PReLU 0.25; upsampling kernels fixed.
 * The net keeps `be` (not owned). Free with dlt_net_free. */
int dlt_net_create(const dlt_net_config *c, dlt_backend *be, uint64_t seed, dlt_net **out);
void dlt_net_free(dlt_net *net);
const dlt_net_config *dlt_net_get_config(const dlt_net *net);
dlt_backend *dlt_net_backend(const dlt_net *net);

/* Parameters and buffers in the peer's state_dict order. */
int dlt_net_nparams(const dlt_net *net);
dlt_param *dlt_net_param(dlt_net *net, int i);
dlt_param *dlt_net_find_param(dlt_net *net, const char *name); /* NULL if absent */
/* Scalars in trainable tensors (the peer's sum(p.numel() for p in parameters())). */
int64_t dlt_net_count_trainable(const dlt_net *net);

/* Forward pass on a host batch x [n, in_channels, d, h, w] (d,h,w = Z,Y,X).
 * The first pass for a given (n,d,h,w) and mode plans and allocates the
 * activations; later passes with that shape and mode reuse them (another
 * shape replans that mode; see dlt_net_plan_bytes).
 * training=1: batch-norm batch statistics, running stats updated, and
 * everything backward needs is kept; training=0: running statistics.
 * *logits (may be NULL) points to the net's logits [n, classes, d, h, w],
 * valid until the next forward or dlt_net_release_plan. */
int dlt_net_forward(dlt_net *net, const float *x, int64_t n, int64_t d, int64_t h, int64_t w, int training,
                    const dlt_tensor **logits);
/* The same with a batch already on the backend (plain [n,C,d,h,w] tensor). */
int dlt_net_forward_tensor(dlt_net *net, const dlt_tensor *x, int training, const dlt_tensor **logits);
/* Backward after a training forward, once, with no other forward between
 * (the executor reuses the activations' memory for gradients): dlogits has
 * the logits' shape (e.g. from dlt_op_loss). Parameter gradients are ADDED
 * to param->grad; call dlt_net_zero_grad first (the trainer does). */
int dlt_net_backward(dlt_net *net, const dlt_tensor *dlogits);
/* Deep supervision (config deep_sup > 0): a training forward also computes
 * the auxiliary logits, aux k at the resolution of decoder scale k+1
 * (dlt_net_aux_logits, valid until the next forward; NULL after an
 * inference forward, which skips the auxiliary heads). dlt_net_backward_aux
 * is dlt_net_backward with their gradients too (daux[k] of aux k's shape;
 * daux NULL, or a NULL entry: no gradient from that head). */
int dlt_net_aux_count(const dlt_net *net);
const dlt_tensor *dlt_net_aux_logits(dlt_net *net, int k);
int dlt_net_backward_aux(dlt_net *net, const dlt_tensor *dlogits, const dlt_tensor *const *daux);
int dlt_net_zero_grad(dlt_net *net);
/* Inference: forward with training=0 and softmax over classes, copied to the
 * host probs [n, classes, d, h, w] (caller's memory). */
int dlt_net_predict(dlt_net *net, const float *x, int64_t n, int64_t d, int64_t h, int64_t w, float *probs);
/* Free the activations of the current plans (weights stay). */
void dlt_net_release_plan(dlt_net *net);
/* Memory of the executor's plans (net_exec.c's head comment): a training
 * plan and an inference plan, each for the last batch shape its mode ran
 * with, drawing on one pool of buffers that are reused once their contents
 * are dead, so an inference forward holds a few activations at a time and a
 * training step only what backward reads. The first forward at a new
 * inference shape allocates each activation at its first write and frees
 * it after its last read (peak: the most bytes live at once); the plan's
 * buffers come at the second forward with that shape.
 * dlt_net_plan_bytes: bytes (logical float32; a backend's private layout
 * may pad) of the activation, gradient and statistics tensors of the
 * training plan (training=1), the inference plan (0; counted from the plan,
 * allocated or not yet), or all plans (-1; shared buffers counted once); 0
 * where there is no plan. DLT_NET_KEEP_ALL=1 in the environment when a plan
 * is made turns reuse off (a buffer per value and gradient: the same
 * results, for tests and debugging). */
int64_t dlt_net_plan_bytes(const dlt_net *net, int training);

/* ---- model files (dlt/model.h) ----
 * dlt_net_save adds every parameter and buffer (F32, the peer's names and
 * shapes; BN num_batches_tracked is not stored: load the file into the peer
 * with strict=False) and the metadata keys net, in_channels, classes,
 * filters, strides, res_units, activation ("enc,dec", e.g. "leaky:0.1,relu6"),
 * norm, deep_supervision (when on), dlt_version. The caller adds class_names, patch, step and
 * preprocessing. dlt_net_config_from_model reads those keys back (errors
 * name the key); dlt_net_load builds the net and loads every tensor,
 * checking names and shapes; dlt_net_load_weights fills an existing net. */
int dlt_net_save(dlt_net *net, dlt_model *m);
int dlt_net_config_from_model(const dlt_model *m, dlt_net_config *c);
int dlt_net_load(const dlt_model *m, dlt_backend *be, dlt_net **out);
int dlt_net_load_weights(dlt_net *net, const dlt_model *m);

#endif
