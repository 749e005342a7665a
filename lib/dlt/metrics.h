/* dlt/metrics.h - segmentation metrics: per-class overlap (Dice, precision,
 * recall, volumes) and surface distances (HD95, ASSD, NSD) from an exact
 * Euclidean distance transform; summary statistics; class names.
 * Used by dlt-dice, and by dlt-train's validation and dlt-infer.
 *
 * Conventions (as medpy.metric.binary, documented in dlt-dice(1)):
 * - the surface of a class is its voxels with at least one 6-neighbour
 *   outside the class (outside the image counts as outside);
 * - d(a, B) is the Euclidean distance in mm (voxel spacing applied) from the
 *   centre of surface voxel a to the nearest surface voxel centre of B;
 * - HD95 = 95th percentile (linear interpolation, numpy's default) of the
 *   union of {d(a,B)} over A's surface and {d(b,A)} over B's surface;
 * - ASSD = (mean d(a,B) + mean d(b,A)) / 2;
 * - NSD at tolerance t mm (normalised surface Dice, Nikolov et al. 2021, as
 *   the MSD and nnU-Net evaluations report it) = (#{a: d(a,B) <= t} +
 *   #{b: d(b,A) <= t}) / (|A's surface| + |B's surface|), surface voxels
 *   counted (as MONAI's compute_surface_dice; the DeepMind library weights
 *   each by its surface area instead), 0 when one side is empty;
 * - a class absent from both volumes has no values (NAN; `absent` set);
 *   present in only one: Dice, precision and recall 0 (0/0 counts as 0 when
 *   the class exists on the other side), distances INFINITY. */
#ifndef DLT_METRICS_H
#define DLT_METRICS_H

#include <stdint.h>

#include "dlt/volume.h"

/* Squared Euclidean distance transform (Felzenszwalb & Huttenlocher 2012):
 * d2[v] = min over voxels f with feat[f] != 0 of |v - f|^2 in mm^2, with
 * voxel size spacing[0..2] along x, y, z; INFINITY when no feature voxel.
 * Exact, O(voxels), OpenMP over lines. feat, d2: [n2][n1][n0]. */
int dlt_edt_sq(const uint8_t *feat, const int64_t n[3], const double spacing[3], float *d2);
/* Surface of a binary mask (see above): surf[v] = 1 on surface voxels. */
void dlt_surface(const uint8_t *mask, const int64_t n[3], uint8_t *surf);

/* HD95 and ASSD (mm) between two binary masks on one grid (INFINITY when
 * one has no voxel), and with nsd_tol > 0 (mm) the NSD at that tolerance
 * (nsd may be NULL; NAN when nsd_tol <= 0). */
int dlt_surface_distances(const uint8_t *a, const uint8_t *b, const int64_t n[3], const double spacing[3],
                          double nsd_tol, double *hd95, double *assd, double *nsd);

/* p-th percentile (0..100) of x[0..n-1], linear interpolation; sorts x. */
double dlt_percentile_sort(double *x, int64_t n, double p);

typedef struct dlt_class_metrics {
    int label;
    int absent;                /* in neither volume: the fields below are NAN */
    int64_t n_pred, n_ref, tp; /* voxel counts */
    double dice, precision, recall;
    double vol_pred_ml, vol_ref_ml;
    double hd95, assd;         /* mm; INFINITY when one side is empty; NAN if not computed */
    double nsd;                /* NSD at the class's tolerance; 0 when one side is empty; NAN if not computed */
} dlt_class_metrics;

/* Metrics for each of labels[0..nl-1] between label maps pred and ref of
 * n voxels each ([n2][n1][n0]) with voxel size `spacing` (mm).
 * distances = 0 skips HD95/ASSD/NSD (NAN) for a fast Dice (validation).
 * nsd_tol: NULL (no NSD), or the tolerance in mm of each of labels[]
 * (a value <= 0 skips that class's NSD). */
int dlt_metrics_compute(const uint16_t *pred, const uint16_t *ref, const int64_t n[3], const double spacing[3],
                        const int *labels, int nl, int distances, const double *nsd_tol, dlt_class_metrics *out);
/* The same on two label volumes, after checking that they share a grid
 * (dlt_volume_same_grid with tol mm; the message says how they differ). */
int dlt_metrics_volumes(const dlt_volume *pred, const dlt_volume *ref, double tol, const int *labels, int nl,
                        int distances, const double *nsd_tol, dlt_class_metrics *out);
/* Largest label value in a label map. */
int dlt_label_max(const uint16_t *x, int64_t n);

/* Summary of the non-NaN values of x[0..n-1] (INFINITY is a value: the mean
 * and std are then INFINITY). std is the sample standard deviation (n-1),
 * NAN when fewer than 2 values; all NAN when no value. */
typedef struct dlt_stats {
    int64_t n;
    double mean, std, median, min, max;
} dlt_stats;
void dlt_stats_compute(const double *x, int64_t n, dlt_stats *s);

/* Class names: id -> name. */
typedef struct dlt_class_names {
    int n;
    int *id;
    char **name;
} dlt_class_names;
/* TSV file "id<TAB>name" per line; '#' comments, blank lines and a header
 * line (first field not an integer) are skipped. */
int dlt_class_names_read(const char *path, dlt_class_names *cn);
/* A names list as a model or stream stores it: a JSON array of strings
 * (["background","liver"]) or a comma-separated list; position = class id. */
int dlt_class_names_parse(const char *s, dlt_class_names *cn);
const char *dlt_class_names_get(const dlt_class_names *cn, int id); /* NULL if unknown */
void dlt_class_names_free(dlt_class_names *cn);

#endif
