/* dlt/sample.h - patch sampling from subjects held in memory (dlt-sample).
 *
 * A subject is one or more image volumes (channels) and an optional label
 * volume on the same grid, loaded once. A sampler turns a record index k
 * into a patch: which subject, where, which class was aimed at, and the
 * augmentation; record k depends only on (configuration, subjects, seed, k),
 * never on the records before it, so `skip` is free and a resumed training
 * run sees exactly the stream it would have seen.
 *
 * Record order: an epoch is nsubjects * per_volume records. Without shuffle,
 * subject s gives records s*per_volume .. (s+1)*per_volume-1 of each epoch;
 * with shuffle, the epoch's slots are permuted (a fresh permutation per
 * epoch, seeded by the epoch number), so subjects interleave.
 *
 * Samplers:
 *   random      the patch lies inside the volume where it fits, its corner
 *               uniform; a volume smaller than the patch sits inside it.
 *   balanced    DLTK's extract_class_balanced_example_array: patch centres
 *               on voxels of a class, the classes present in the subject
 *               drawn in proportion to their weights (equal by default).
 *               Over each subject's per_volume slots of an epoch the
 *               proportions are exact (stratified, order scrambled).
 *   foreground  nnU-Net's oversampling: a fraction fg_fraction of each
 *               subject's slots (stratified likewise) is centred on a
 *               foreground voxel (a present class > 0 chosen uniformly,
 *               then a voxel of it); the rest are random patches.
 * Centred patches may cross the volume border (padded by `pad`); with
 * DLT_PAD_NONE they are shifted inside instead, and a volume smaller than
 * the patch is refused.
 *
 * Memory: images 4 bytes per voxel and channel, labels 2, and for the
 * balanced and foreground samplers a uint32 index of each class's voxels,
 * except classes covering >= 25% of the volume (background, usually), which
 * are drawn by rejection instead: at most 4 bytes per voxel, typically far
 * less. */
#ifndef DLT_SAMPLE_H
#define DLT_SAMPLE_H

#include <stdint.h>

#include "dlt/augment.h"
#include "dlt/patches.h"
#include "dlt/volume.h"

enum { DLT_SAMPLER_RANDOM = 0, DLT_SAMPLER_BALANCED = 1, DLT_SAMPLER_FOREGROUND = 2 };
enum { DLT_PAD_ZERO = 0, DLT_PAD_EDGE = 1, DLT_PAD_REFLECT = 2, DLT_PAD_NONE = 3 };

/* Parse "random|balanced|foreground" / "zero|edge|reflect|none"; -1 if unknown. */
int dlt_sampler_kind(const char *name);
const char *dlt_sampler_name(int kind);
int dlt_pad_mode(const char *name);
const char *dlt_pad_name(int mode);

typedef struct dlt_subject {
    char *id;          /* subject id (owned) */
    char *listfile;    /* list file it came from (owned; NULL when given directly) */
    int line;          /* its line in the list file (1-based; 0 when given directly) */
    int nimages;
    char **image;      /* image paths (owned), one or more files, each 1+ channels */
    char *labelpath;   /* label path (owned) or NULL */
    /* voxel data: filled by dlt_subject_load, or by hand (unit tests) */
    int64_t dim[3];    /* nx, ny, nz */
    int64_t channels;
    float **chan;      /* [channels] -> [nz][ny][nx] (owned array; data in vol[]) */
    uint16_t *label;   /* [nz][ny][nx] or NULL */
    char preprocessing[80]; /* from the first image's NIfTI description "dlt:STEPS"
                               (as dlt-normalize writes it): STEPS; else "" */
    /* class index: filled by dlt_subject_index */
    int nclasses;
    int64_t *count;    /* [nclasses] voxels per class */
    uint32_t **index;  /* [nclasses] voxel indices of each class, or NULL (rejection) */
    uint16_t maxlabel;
    /* owned volumes (NULL for hand-made subjects) */
    dlt_volume *vol;
    int nvol;
    dlt_volume *labvol;
} dlt_subject;

/* Read a list file (TSV). A header row (one field is "id") names the
 * columns, in any order: id, image (or image1, image2, ...: the channels in
 * number order), label; other columns are ignored. Without a header the
 * columns are id, images..., label (the last). Blank
 * lines and lines starting with '#' are skipped. Relative paths are taken
 * relative to the list file's directory. A row with a missing file fails
 * with "FILE:LINE: PATH: no such file". *subj is an array of *n subjects
 * (free with dlt_subjects_free). */
int dlt_sample_list_read(const char *path, dlt_subject **subj, int *n);
/* One subject from paths (id from the first image's base name). */
int dlt_subject_from_paths(dlt_subject *s, const char *const *images, int nimages, const char *label);
/* Load the volumes: images (channels concatenated), label; checks that all
 * share the label's grid. Errors are prefixed "LISTFILE:LINE: " when the
 * subject came from a list. */
int dlt_subject_load(dlt_subject *s);
/* Count voxels per class (nclasses > every label value, else DLT_EINVAL
 * naming the subject and the value) and, when `lists` is set, build the
 * per-class voxel indices for classes c with want[c] != 0 (want NULL: all).
 * Rebuilding replaces the previous index. */
int dlt_subject_index(dlt_subject *s, int nclasses, int lists, const int *want);
/* Scan the label for its largest value (into s->maxlabel); 0 if unlabelled. */
void dlt_subject_scan(dlt_subject *s);
/* Bytes held: images, labels, class indices. */
void dlt_subject_bytes(const dlt_subject *s, int64_t *image, int64_t *label, int64_t *index);
/* Free the class index only (hand-made subjects in tests). */
void dlt_subject_index_free(dlt_subject *s);
/* Free everything the subject owns (volumes, paths, index). */
void dlt_subject_free(dlt_subject *s);
void dlt_subjects_free(dlt_subject *s, int n);

/* Copy a patch of `size` (X,Y,Z) with first voxel `corner` (may be negative
 * or reach past the far side) out of the subject: image [channels][Z][Y][X],
 * label [Z][Y][X] (either may be NULL to skip). Outside the volume: zeros
 * (pad zero; label 0), the nearest edge voxel (edge), or the mirror image
 * without repeating the edge voxel, as numpy's "reflect" (reflect).
 * DLT_PAD_NONE behaves as zero (the sampler keeps such patches inside). */
void dlt_sample_extract(const dlt_subject *s, const int corner[3], const int size[3], int pad, float *image,
                        uint16_t *label);

typedef struct dlt_sample_config {
    int sampler;            /* DLT_SAMPLER_* */
    int patch[3];           /* X,Y,Z voxels */
    int pad;                /* DLT_PAD_* */
    int per_volume;         /* records per subject per epoch (>= 1) */
    int shuffle;            /* permute each epoch's slots */
    uint64_t seed;
    double fg_fraction;     /* foreground sampler: fraction of forced patches, 0..1 */
    int nclasses;           /* > every label value */
    const double *class_weights; /* [nclasses] (balanced), NULL = equal */
    dlt_aug_config aug;
} dlt_sample_config;

/* Where record k comes from. */
typedef struct dlt_sample_plan {
    int64_t epoch;
    int subject;
    int slot;          /* index among the subject's per_volume slots of the epoch */
    int cls;           /* class aimed at, or -1 (a random patch) */
    int corner[3];     /* first voxel in the subject's grid (before augmentation) */
} dlt_sample_plan;

typedef struct dlt_sampler {
    dlt_sample_config cfg;
    dlt_subject *subj;
    int nsubj;
    int64_t channels;
    int missing_classes[64]; /* balanced: classes absent from every subject (first 64) */
    int nmissing;
    /* the current epoch's slot permutation (shuffle) */
    int64_t perm_epoch;
    uint32_t *perm;
    /* scratch */
    float *box;
    uint16_t *boxlab;
    int64_t boxcap;
    dlt_aug_work work;
} dlt_sampler;

/* Check the configuration against the subjects (same channel count, patch
 * fits when pad is none, class weights, augmentation) and build the class
 * indices the sampler needs. The subjects must outlive the sampler. */
int dlt_sampler_init(dlt_sampler *s, const dlt_sample_config *cfg, dlt_subject *subj, int nsubj);
/* Plan record k (pure in k). */
int dlt_sampler_plan(dlt_sampler *s, int64_t k, dlt_sample_plan *plan);
/* Produce record k into p (its buffers grown as needed; free with
 * dlt_patch_free): extraction, augmentation, id, corner, size. */
int dlt_sampler_record(dlt_sampler *s, int64_t k, dlt_patch *p);
/* A copy sharing the subjects but with its own scratch, for another thread. */
void dlt_sampler_clone(dlt_sampler *dst, const dlt_sampler *src);
void dlt_sampler_free(dlt_sampler *s);

/* The RNG stream of record k for purpose 0 (placement) or 1 (augmentation). */
static inline uint64_t dlt_sample_stream(int64_t k, int purpose) { return ((uint64_t)k << 2) | (uint64_t)purpose; }

#endif
