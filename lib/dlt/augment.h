/* dlt/augment.h - seeded data augmentation of patches (DLTK's
 * dltk.io.augmentation, plus nnU-Net's rotations, scaling, blur, contrast
 * and gamma, and a fast elastic warp).
 *
 * Patches are [channels][Z][Y][X] float32 images with an optional
 * [Z][Y][X] uint16 label (x fastest). Geometric transforms (flips, 90-degree
 * rotations, elastic warps) move image and label together; labels are never
 * interpolated (nearest neighbour). Every random number comes from the
 * counter-based Philox RNG at (seed, stream, position): the caller gives each
 * patch its own stream (e.g. derived from its record index), so a patch's
 * augmentation depends on nothing else, whatever came before it. */
#ifndef DLT_AUGMENT_H
#define DLT_AUGMENT_H

#include <stdint.h>

/* What to draw. A zeroed struct (with scale and gamma {0,0} or {1,1}) is
 * "no augmentation". */
typedef struct dlt_aug_config {
    int flip[3];          /* x,y,z: 1 = flip that axis with probability 1/2 */
    int rot90;            /* 1 = rotate in the x-y plane by k*90 degrees, k uniform in
                             0..3 (the patch must have X == Y) */
    double noise;         /* Gaussian noise sigma per voxel (0 = off) */
    double offset;        /* sigma of a Gaussian offset added per channel (0 = off) */
    double scale[2];      /* intensity scale factor, uniform in [lo,hi] (both 0 or 1 = off) */
    double gamma[2];      /* gamma, uniform in [lo,hi] (both 0 or 1 = off); applied as
                             nnU-Net does: per channel the patch is mapped to [0,1] by
                             its min and max, raised to gamma, mapped back */
    double elastic_alpha; /* elastic warp: displacement standard deviation in voxels
                             (0 = off) */
    double elastic_sigma; /* elastic warp: Gaussian smoothing width of the displacement
                             field in voxels (its correlation length) */
    /* nnU-Net's spatial and intensity transforms, each applied to a patch
     * with its probability p (0 = off); nnU-Net's defaults in brackets */
    double rotate, rotate_p; /* rotation by angles uniform in [-rotate, rotate] degrees
                                about x, y and z (30, 0.2), in voxel coordinates
                                about the patch centre */
    double sscale[2], sscale_p; /* spatial scaling: the sampled region's size times a
                                   factor uniform in [lo,hi] (> 1 shows more, objects
                                   smaller) (0.7,1.4, 0.2) */
    double blur[2], blur_p;  /* Gaussian blur, sigma uniform in [lo,hi] voxels, per
                                channel (0.5,1, 0.2) */
    double contrast[2], contrast_p; /* contrast: (x - mean) * f + mean per channel, f
                                       uniform in [lo,hi], clipped to the channel's range
                                       (0.75,1.25, 0.15) */
    double lowres[2], lowres_p; /* simulated low resolution: each channel sampled down by
                                   a factor uniform in [lo,hi] (nearest) and back up
                                   (linear) (0.5,1, 0.25) */
} dlt_aug_config;

/* One patch's draw. `seed` and `stream` are kept for the per-voxel draws
 * (noise, the elastic field) and the per-channel offsets. */
typedef struct dlt_aug_params {
    int flip[3];        /* 1 = flipped */
    int rot;            /* quarter turns in the x-y plane, 0..3 */
    float scale, gamma; /* 1 = none */
    float noise, offset_sigma;
    float elastic_alpha, elastic_sigma; /* alpha 0 = no warp */
    float angle[3];     /* rotation about x, y, z in radians; 0 = none */
    float sscale;       /* spatial scale; 1 (or 0) = none */
    float blur;         /* Gaussian sigma in voxels; 0 = none */
    float contrast;     /* contrast factor; 1 (or 0) = none */
    float lowres;       /* low-resolution factor; 1 (or 0) = none */
    uint64_t seed, stream;
} dlt_aug_params;

/* Check a configuration for a patch size (X,Y,Z): ranges ordered and
 * positive where they must be, rot90 only with X == Y. 0 or DLT_EINVAL. */
int dlt_aug_check(const dlt_aug_config *cfg, const int size[3]);
/* Draw one patch's parameters from stream `stream` (pure: same inputs, same
 * draw). */
void dlt_aug_draw(const dlt_aug_config *cfg, uint64_t seed, uint64_t stream, dlt_aug_params *p);
/* 1 when the draw moves voxels (flip, rotation or warp). */
int dlt_aug_is_geometric(const dlt_aug_params *p);
/* 1 when the draw resamples the patch through a displacement field
 * (elastic warp, rotation by an angle, spatial scaling). */
int dlt_aug_has_field(const dlt_aug_params *p);

/* Reusable scratch buffers (zero-initialise; free with dlt_aug_work_free). */
typedef struct dlt_aug_work {
    float *f;
    int64_t fcap;
    uint16_t *u;
    int64_t ucap;
    float *field; /* [3][Z][Y][X] displacement */
    int64_t fieldcap;
} dlt_aug_work;
void dlt_aug_work_free(dlt_aug_work *w);

/* Flips and rotation in place on image [channels][Z][Y][X] and label
 * [Z][Y][X] (label may be NULL). 0 or DLT_ENOMEM. */
int dlt_aug_flip_rotate(const dlt_aug_params *p, float *image, int64_t channels, uint16_t *label,
                        const int size[3], dlt_aug_work *w);
/* Intensity changes in place, in this order: blur, gamma, scale, contrast,
 * low resolution, per-channel offset, per-voxel noise. Labels are untouched. */
int dlt_aug_intensity(const dlt_aug_params *p, float *image, int64_t channels, const int size[3]);

/* Elastic displacement field for a patch of size (X,Y,Z): disp[3][Z][Y][X]
 * (components x,y,z, in voxels). White Gaussian noise on a coarse grid
 * (spacing sigma/2) is smoothed by a Gaussian of width sigma and scaled so
 * that each component has standard deviation alpha, then trilinearly
 * interpolated to every voxel: far cheaper than smoothing a full-size field,
 * and the same field (it is band-limited at ~1/sigma anyway). *maxabs gets
 * the largest |component|, so the caller can read a big enough source box.
 * Pure in (alpha, sigma, size, seed, stream). 0 or DLT_ENOMEM / DLT_EINVAL. */
int dlt_aug_elastic_field(double alpha, double sigma, const int size[3], uint64_t seed, uint64_t stream,
                          float *disp, float *maxabs);
/* The displacement field of a draw: the elastic field (when alpha > 0) plus
 * the rotation and spatial scaling about the patch centre c, i.e. the source
 * of output voxel v is c + s R (v - c) + elastic(v), with R = Rz Ry Rx.
 * disp[3][Z][Y][X] as for dlt_aug_elastic_field, *maxabs likewise. */
int dlt_aug_spatial_field(const dlt_aug_params *p, const int size[3], float *disp, float *maxabs);
/* Warp: for every output voxel v (x,y,z), the source position is
 * v + origin + disp(v) in a source box src[channels][SZ][SY][SX] (srcsize =
 * SX,SY,SZ); images are read trilinearly, labels at the nearest voxel,
 * positions outside the box clamped to its edge. dst is [channels][Z][Y][X],
 * dstlab [Z][Y][X] (both label pointers may be NULL). */
void dlt_aug_warp(const float *src, const uint16_t *srclab, int64_t channels, const int srcsize[3],
                  const int origin[3], const float *disp, float *dst, uint16_t *dstlab, const int size[3]);
/* The same (the whole spatial field of the draw) on a patch in place (its
 * own box, clamped at its border), for tools that only have patches. */
int dlt_aug_elastic_patch(const dlt_aug_params *p, float *image, int64_t channels, uint16_t *label,
                          const int size[3], dlt_aug_work *w);

#endif
