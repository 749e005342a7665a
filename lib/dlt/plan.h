/* dlt/plan.h - nnU-Net-style experiment planning: a dataset's fingerprint
 * (spacings, sizes, foreground intensities, class frequencies) and the plan
 * derived from it (target spacing, normalisation, patch, batch, network
 * scales, steps for a time budget), as a small text file that dlt-plan
 * writes and dlt-normalize --plan and the pipelines read.
 *
 * Plan file (documented as dlt-plan(1)): a first line "DLTPLAN 1", then
 * "key value" lines ('#' comments allowed), then "end". Keys the tools read:
 *   normalize  a dlt-normalize plan text (intensity steps, then spacing)
 *   patch X,Y,Z   batch N   filters F1,F2,..   strides S1,S2,..   steps N
 * and the fingerprint for people: modality, cases, channels, classes,
 * spacing_median, target_spacing, anisotropic_axis, size_median,
 * size_resampled, intensity (per channel: mean, std, p0.5, p99.5 over
 * foreground), class_fraction. */
#ifndef DLT_PLAN_H
#define DLT_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "dlt/vlist.h"

enum { DLT_PLAN_MAX_CHANNELS = 8, DLT_PLAN_MAX_LEVELS = 6 };

typedef struct dlt_fingerprint {
    int ncases, channels, classes;
    double (*spacing)[3]; /* [ncases] mm */
    int64_t (*size)[3];   /* [ncases] voxels */
    /* foreground (label > 0) intensity per channel, from up to 10000
     * evenly spaced foreground voxels of each case */
    double fg_mean[DLT_PLAN_MAX_CHANNELS], fg_std[DLT_PLAN_MAX_CHANNELS];
    double fg_p005[DLT_PLAN_MAX_CHANNELS], fg_p995[DLT_PLAN_MAX_CHANNELS];
    double p005_all;      /* 0.5th percentile of channel 0 over all sampled voxels */
    double zero_fraction; /* fraction of exact zeros in the images (MR background) */
    int64_t *class_voxels; /* [classes] over all cases */
} dlt_fingerprint;

/* Read every case of a list (images and label, as dlt-sample's lists) and
 * measure it. A case without a label, or whose images and label differ in
 * grid, is an error naming it. progress (may be NULL) is called per case. */
int dlt_fingerprint_measure(const dlt_vlist *l, dlt_fingerprint *fp, void (*progress)(int done, int total));
void dlt_fingerprint_free(dlt_fingerprint *fp);

/* What the plan may spend: memory for a training step's activations, and
 * training time at a measured speed (voxels of patches per second). */
typedef struct dlt_plan_budget {
    const char *modality;   /* "ct", "mr" or NULL: guessed (CT when channel 0's
                               0.5th percentile is below -500, i.e. air in HU) */
    double memory_mb;       /* activations of one step (default 4096) */
    double minutes;         /* training time (default 20) */
    double voxels_per_s;    /* training speed (default 400000) */
    int max_batch;          /* (default 8) */
} dlt_plan_budget;
void dlt_plan_budget_default(dlt_plan_budget *b);

typedef struct dlt_plan {
    char modality[4];
    double spacing_median[3], target_spacing[3];
    int aniso_axis;                /* -1: none, else 0..2 (x, y, z) */
    double size_median[3], size_resampled[3];
    char normalize[512];           /* dlt-normalize plan text */
    int patch[3], batch, levels, filters[DLT_PLAN_MAX_LEVELS];
    int strides[DLT_PLAN_MAX_LEVELS][3]; /* per level, X,Y,Z: 1 or 2 */
    int64_t steps;
    double speed;       /* the voxels/s the steps were planned with */
    int speed_measured; /* 1: measured here (dlt_plan_measure_speed) */
} dlt_plan;

/* The plan for a fingerprint and budget (see dlt-plan(1) for the rules). */
int dlt_plan_make(const dlt_fingerprint *fp, const dlt_plan_budget *b, dlt_plan *p);
/* This machine's training speed for a plan: the median of 3 timed steps
 * (after 2 warm-up steps) of its U-Net on random data on `device`
 * ("cpu", "cuda"...), in patch voxels per second. Some seconds. */
int dlt_plan_measure_speed(const dlt_plan *p, int channels, int classes, const char *device, double *voxels_per_s);
/* Write the plan file (fingerprint lines included) to f; `source` names
 * the list it came from. */
int dlt_plan_write(FILE *f, const dlt_fingerprint *fp, const dlt_plan *p, const char *source);
/* One value of a plan file: 0 and value (up to cap bytes) set, DLT_EFORMAT
 * when the file is not a plan, DLT_EINVAL when the key is missing. */
int dlt_plan_file_get(const char *path, const char *key, char *value, size_t cap);
/* 1 when path names a readable file starting "DLTPLAN 1". */
int dlt_plan_file_is(const char *path);
/* The normalisation of --plan ARG, as dlt-normalize and dlt-infer take it:
 * a plan file (its normalize line), else plan text; a file that is not a
 * plan is an error saying so. */
struct dlt_norm_plan;
int dlt_plan_normalize(const char *arg, struct dlt_norm_plan *p);

#endif
