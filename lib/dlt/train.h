/* dlt/train.h - training a dlt_net: loss, optimiser state, learning-rate
 * schedule, one step on a host batch, and checkpoints that resume exactly.
 *
 * Typical use (dlt-train):
 *   dlt_train_config tc; dlt_train_config_default(&tc);   // Adam lr 1e-3 eps 1e-5, CE
 *   dlt_trainer *tr; dlt_trainer_create(net, &tc, seed, &tr);
 *   // optionally: dlt_model ck; dlt_model_read(path, &ck); dlt_trainer_restore(tr, &ck);
 *   while (dlt_trainer_steps_done(tr) < steps) {
 *       dlt_trainer_step(tr, x, labels, n, d, h, w, &loss);   // x [n,C,d,h,w], labels [n,1,d,h,w] int32
 *   }
 *   dlt_model out; dlt_model_init(&out); dlt_trainer_save(tr, &out);
 *   dlt_model_set_meta(&out, "patch", ...); dlt_model_write(path, &out);
 *
 * Determinism: on the CPU backends a step's result depends only on the
 * weights, the optimiser state, the step count and the batch, so restoring a
 * checkpoint and feeding the same batches gives bit-identical weights. On
 * "cpu-ref" this holds for any thread count; on the oneDNN fast path ("cpu")
 * for the same thread count (oneDNN splits its weight-gradient sums by
 * thread; other counts agree to float rounding). */
#ifndef DLT_TRAIN_H
#define DLT_TRAIN_H

#include <stdint.h>

#include "dlt/backend.h"
#include "dlt/core.h"
#include "dlt/dist.h"
#include "dlt/model.h"
#include "dlt/net.h"

enum { DLT_SCHED_CONSTANT = 0, DLT_SCHED_STEP = 1, DLT_SCHED_POLY = 2 };

typedef struct dlt_train_config {
    dlt_loss_desc loss;   /* kind, smooth 1e-5, include_bg 1, only_present 0 */
    dlt_optim_desc optim; /* kind, lr (base), beta1 0.9, beta2 0.999, eps 1e-5, weight_decay 0,
                             momentum 0.9 (SGD), nesterov 0; t is kept by the trainer */
    int sched;            /* DLT_SCHED_* */
    int64_t sched_step;   /* STEP: lr *= sched_gamma every sched_step steps */
    double sched_gamma;   /* 0.1 */
    double poly_power;    /* POLY: lr * (1 - step/total_steps)^poly_power, 0.9 */
    int64_t total_steps;  /* POLY's horizon (required for POLY) */
} dlt_train_config;

/* Adam (lr 1e-3, betas 0.9/0.999, eps 1e-5 as the DLTK paper), CE loss,
 * constant schedule. */
void dlt_train_config_default(dlt_train_config *c);
/* The fields of a configuration a command line set (bits of `given`). */
enum {
    DLT_GIVEN_LOSS = 1 << 0, DLT_GIVEN_OPTIM = 1 << 1, DLT_GIVEN_LR = 1 << 2, DLT_GIVEN_EPS = 1 << 3,
    DLT_GIVEN_MOMENTUM = 1 << 4, DLT_GIVEN_NESTEROV = 1 << 5, DLT_GIVEN_WEIGHT_DECAY = 1 << 6,
    DLT_GIVEN_SCHED = 1 << 7, DLT_GIVEN_SCHED_STEP = 1 << 8, DLT_GIVEN_SCHED_GAMMA = 1 << 9, DLT_GIVEN_POLY = 1 << 10
};
/* A resumed run's configuration: every field whose bit is not in `given`
 * is taken from the checkpoint's metadata (as dlt_trainer_save wrote it;
 * keys it lacks leave the field as it is). total_steps is the caller's. */
void dlt_train_config_resume(dlt_train_config *c, unsigned given, const dlt_model *ck);
int dlt_train_config_check(const dlt_train_config *c);
/* "ce", "balanced-ce", "dice", "dice+ce" -> DLT_LOSS_*; "adam", "sgd" ->
 * DLT_OPTIM_*; "constant", "step", "poly" -> DLT_SCHED_*. -1 if unknown. */
int dlt_loss_parse(const char *s);
const char *dlt_loss_name(int kind);
int dlt_optim_parse(const char *s);
const char *dlt_optim_name(int kind);
int dlt_sched_parse(const char *s);
const char *dlt_sched_name(int kind);

typedef struct dlt_trainer dlt_trainer;

/* Allocates the optimiser state (Adam m and v, SGD momentum) for every
 * trainable parameter of `net` (not owned; must outlive the trainer), and a
 * dlt_rng (seed, stream 7) for the caller's own random choices, saved in
 * checkpoints. */
int dlt_trainer_create(dlt_net *net, const dlt_train_config *c, uint64_t seed, dlt_trainer **out);
void dlt_trainer_free(dlt_trainer *t);

/* One step: upload x [n, in_channels, d, h, w] and labels [n, 1, d, h, w]
 * (int32 class ids), forward in training mode, loss, backward, optimiser
 * step with the schedule's learning rate. *loss gets the loss before the
 * update. A NaN/Inf loss is returned (not an error); the caller decides. */
int dlt_trainer_step(dlt_trainer *t, const float *x, const int32_t *labels, int64_t n, int64_t d, int64_t h,
                     int64_t w, double *loss);
/* Loss only, no update (validation); training=0 uses running statistics. */
int dlt_trainer_eval_loss(dlt_trainer *t, const float *x, const int32_t *labels, int64_t n, int64_t d, int64_t h,
                          int64_t w, double *loss);

/* Data-parallel training (dlt/dist.h): from now on every step averages the
 * gradients, and the loss it reports, over the ranks of `d` before the
 * optimiser step, so every rank takes the same step: on the device where
 * the backend can (cuda: NCCL, attached here; collective), else through
 * the host (one MPI allreduce of all gradients in buckets of 4 Mi floats).
 * Each rank calls dlt_trainer_step with its own share of the batch.
 * NULL: alone. Fails only when the device's attach fails. */
int dlt_trainer_set_dist(dlt_trainer *t, dlt_dist *d);

int64_t dlt_trainer_steps_done(const dlt_trainer *t); /* optimiser steps taken so far */
double dlt_trainer_lr(const dlt_trainer *t);          /* the learning rate of the next step */
dlt_rng *dlt_trainer_rng(dlt_trainer *t);
dlt_net *dlt_trainer_net(dlt_trainer *t);
const dlt_train_config *dlt_trainer_config(const dlt_trainer *t);

/* Checkpoint: dlt_net_save plus "optim.m.<name>"/"optim.v.<name>" tensors
 * and metadata step, optim, lr, beta1, beta2, eps, weight_decay, momentum,
 * nesterov, loss, schedule, sched_step, sched_gamma, poly_power,
 * total_steps, rng ("seed,stream,pos"). dlt_trainer_restore loads weights,
 * optimiser state, step and RNG from such a file (the network config must
 * match the trainer's net); the loss/optimiser settings stay the
 * trainer's own (a tool may compare them with the file's and warn). A model
 * file without optimiser tensors restores weights only and starts the
 * optimiser fresh at its step (fine-tuning). */
int dlt_trainer_save(const dlt_trainer *t, dlt_model *m);
int dlt_trainer_restore(dlt_trainer *t, const dlt_model *m);

#endif
