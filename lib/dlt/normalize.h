/* dlt/normalize.h - preprocessing of images: intensity normalisation
 * (DLTK's whitening, normalise_zero_one, normalise_one_one; clipping; CT
 * windows) and geometry (resampling to a voxel spacing, crop-or-pad to a size,
 * reorientation to a 3-letter axis code), on arrays, on volumes and on patches.
 *
 * A plan is an ordered list of steps. It has a compact text form, the same
 * one that dlt-normalize writes into the NIfTI description ("dlt:" + plan)
 * and into a patch stream's `preprocessing` header key:
 *
 *   whiten | whiten=nonzero | whiten=mask | zero-one | one-one |
 *   clip=LO,HI | clip-pct=PLO,PHI | ct=LO,HI | ct-sym=LO,HI | zscore=MEAN,STD |
 *   spacing=X,Y,Z[:linear|:bspline|:nearest] | size=X,Y,Z | reorient=RAS
 *
 * joined by ';', e.g. "ct=-1000,800;spacing=2,2,2". dlt_norm_plan_parse reads
 * it back, so dlt-infer can apply what a model's training data had.
 *
 * Conventions (documented in dlt-normalize(1)):
 * - intensity steps act on each channel separately; non-finite voxels are
 *   left out of statistics (mean, std, min, max, percentiles);
 * - resampling keeps the centre of the physical extent fixed: the new grid
 *   covers [-0.5, n-0.5] voxel edges of the old one, n' = round(n*s/s'),
 *   and samples outside the old voxel centres use the edge value (linear) or
 *   mirror the data (B-spline, with Unser's exact prefilter); labels use
 *   nearest neighbour; there is no anti-aliasing;
 * - crop-or-pad is DLTK's resize_image_with_crop_or_pad: centred, the
 *   smaller half before (crop offset floor((n-t)/2); pad (t-n)/2 before),
 *   padding with 0; the origin moves by the offset;
 * - reorientation permutes and flips axes only (no interpolation) and is
 *   exactly invertible. */
#ifndef DLT_NORMALIZE_H
#define DLT_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "dlt/patches.h"
#include "dlt/volume.h"

/* ---- intensity, on one channel of n voxels (in place) ---- */

/* (x - mean) / std over the voxels where mask != 0 (mask NULL: all voxels);
 * population std. With a mask, voxels outside it are set to 0. std == 0 gives
 * all zeros (as DLTK). Fails (DLT_EINVAL) when no voxel is selected. */
int dlt_norm_whiten(float *x, int64_t n, const uint8_t *mask);
/* (x - min) / (max - min); a constant image becomes 0 (as DLTK). */
void dlt_norm_zero_one(float *x, int64_t n);
/* 2 * zero_one - 1; a constant image becomes -1 (as DLTK). */
void dlt_norm_one_one(float *x, int64_t n);
void dlt_norm_clip(float *x, int64_t n, double lo, double hi);
/* Clip to [lo, hi] then map linearly to [0, 1] (sym: [-1, 1]); hi > lo. */
void dlt_norm_ct(float *x, int64_t n, double lo, double hi, int sym);
/* Percentiles p[0..np-1] (0..100) of the finite values, with linear
 * interpolation between order statistics (numpy's default). Expected linear
 * time (selection, not sorting); uses a temporary copy. No finite value:
 * DLT_EINVAL. */
int dlt_norm_percentiles(const float *x, int64_t n, const double *p, int np, double *out);

/* ---- geometry on arrays (x fastest: [nz][ny][nx]) ---- */

enum { DLT_INTERP_NEAREST = 0, DLT_INTERP_LINEAR = 1, DLT_INTERP_BSPLINE = 3 };

/* Resample in [n[2]][n[1]][n[0]] to out [m[2]][m[1]][m[0]]: output voxel i
 * along axis a samples the input at continuous index shift[a] + scale[a]*i.
 * Separable (three 1-D passes), OpenMP over lines. B-spline: cubic with the
 * exact prefilter (mirror boundary); linear: clamp to the edge. */
int dlt_resample_f32(const float *in, const int64_t n[3], float *out, const int64_t m[3],
                     const double scale[3], const double shift[3], int interp);
/* Nearest neighbour for labels (index rounds half up, clamped). */
int dlt_resample_u16(const uint16_t *in, const int64_t n[3], uint16_t *out, const int64_t m[3],
                     const double scale[3], const double shift[3]);
/* The resampling grid for a new spacing: m = round(n*s/s') (>= 1), and the
 * scale/shift that keep the extent centre. */
void dlt_resample_grid(const int64_t n[3], const double spacing[3], const double target[3], int64_t m[3],
                       double scale[3], double shift[3]);

/* Copy out[k][j][i] = in[k+off2][j+off1][i+off0], `pad` where outside. */
void dlt_crop_pad_f32(const float *in, const int64_t n[3], float *out, const int64_t m[3],
                      const int64_t off[3], float pad);
void dlt_crop_pad_u16(const uint16_t *in, const int64_t n[3], uint16_t *out, const int64_t m[3],
                      const int64_t off[3], uint16_t pad);
/* DLTK's offsets for crop-or-pad from n to size t (per axis). */
void dlt_crop_pad_offsets(const int64_t n[3], const int64_t t[3], int64_t off[3]);

/* A reorientation: output axis j is input axis perm[j], reversed if flip[j]. */
typedef struct dlt_reorient {
    int perm[3], flip[3];
    int64_t m[3];         /* output dims */
    double affine[4][4];  /* output voxel -> world */
} dlt_reorient;
/* Orientation code of an affine ("RAS", "LPS"...): each voxel axis is named
 * by the world direction it points to most (greedy on the largest |cosine|,
 * so oblique affines get a consistent answer). */
void dlt_affine_orientation(const double affine[4][4], char code[4]);
/* Plan the reorientation of an n-voxel grid with `affine` to `code` (three
 * letters, one of R/L, A/P, S/I each, any case). DLT_EINVAL on a bad code. */
int dlt_reorient_plan(const double affine[4][4], const int64_t n[3], const char *code, dlt_reorient *r);
void dlt_reorient_f32(const float *in, const int64_t n[3], float *out, const dlt_reorient *r);
void dlt_reorient_u16(const uint16_t *in, const int64_t n[3], uint16_t *out, const dlt_reorient *r);

/* ---- geometry on volumes (all channels, or the label; geometry updated
 * through dlt_volume_set_geometry) ---- */
int dlt_volume_resample(dlt_volume *v, const double spacing[3], int interp);
int dlt_volume_crop_pad(dlt_volume *v, const int64_t size[3]);
int dlt_volume_reorient(dlt_volume *v, const char *code);

/* ---- plans ---- */

enum {
    DLT_NORM_WHITEN = 1, DLT_NORM_ZERO_ONE, DLT_NORM_ONE_ONE, DLT_NORM_CLIP, DLT_NORM_CLIP_PCT,
    DLT_NORM_CT, DLT_NORM_ZSCORE, DLT_NORM_SPACING, DLT_NORM_SIZE, DLT_NORM_REORIENT
};
enum { DLT_WHITEN_ALL = 0, DLT_WHITEN_NONZERO, DLT_WHITEN_MASK };
#define DLT_NORM_MAX_STEPS 32

typedef struct dlt_norm_step {
    int kind;
    double a[3];      /* clip/ct/percentiles: a[0], a[1]; zscore: mean, std; spacing: X,Y,Z mm */
    int64_t size[3];  /* size: X,Y,Z voxels */
    char code[4];     /* reorient */
    int mode;         /* whiten: DLT_WHITEN_*; ct: 1 = [-1,1]; spacing: DLT_INTERP_* */
} dlt_norm_step;

typedef struct dlt_norm_plan {
    int n;
    dlt_norm_step step[DLT_NORM_MAX_STEPS];
} dlt_norm_plan;

/* Append one step: name as in the text form ("ct", "spacing", "whiten"...),
 * arg its value or NULL ("-1000,800", "2,2,2:bspline", "nonzero").
 * Checks values (hi > lo, percentiles in [0,100], spacing > 0...). */
int dlt_norm_plan_add(dlt_norm_plan *p, const char *name, const char *arg);
/* Parse the text form (with or without the "dlt:" prefix; "" is empty). */
int dlt_norm_plan_parse(dlt_norm_plan *p, const char *text);
/* Text form into buf; returns the full length (like snprintf). */
int dlt_norm_describe(const dlt_norm_plan *p, char *buf, size_t cap);
/* The first step that needs a whole volume (spacing, size, reorient), or NULL. */
const dlt_norm_step *dlt_norm_plan_whole_volume(const dlt_norm_plan *p);
/* Name of a step kind ("whiten", "spacing"...). */
const char *dlt_norm_step_name(int kind);

/* Apply to a volume in order. A label volume (v->label) accepts only the
 * geometric steps (resampling is then nearest whatever the step says).
 * `mask` (a label volume on v's input grid, nonzero = inside; may be NULL)
 * is needed by whiten=mask and follows the geometric steps with v. */
int dlt_norm_apply_volume(const dlt_norm_plan *p, dlt_volume *v, const dlt_volume *mask);
/* Apply the per-patch steps to a patch's image channels (label untouched);
 * whole-volume steps and whiten=mask are refused (DLT_EUNSUP). */
int dlt_norm_apply_patch(const dlt_norm_plan *p, dlt_patch *pt);

/* New description: "dlt:<old steps>;<plan>" when `old` starts with "dlt:",
 * else "dlt:<plan>"; cut at a step boundary with a final ";..." to fit in
 * cap-1 chars (NIfTI: 80 bytes with the NUL). */
void dlt_norm_descrip(const char *old, const dlt_norm_plan *p, char *buf, size_t cap);

/* ---- input detection ----
 * Peek at the first bytes of `path` ("-" = stdin) without losing them: for
 * stdin the bytes read are pushed back by putting a pipe in front of fd 0
 * (a thread copies the peeked bytes and then the rest), so any reader of
 * "-" afterwards sees the whole input. *got may be < cap for short inputs. */
int dlt_peek_input(const char *path, void *buf, int64_t cap, int64_t *got);

#endif
