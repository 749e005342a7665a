/* dlt/volume.h - NIfTI volumes in memory (read and written through nifti_clib).
 *
 * A volume is nx*ny*nz voxels (x fastest, NIfTI order) times nc channels
 * (a 4-D file's 4th dimension; a trailing dimension of 1 is 3-D). Images are
 * float32 with scl_slope/scl_inter applied; label volumes are uint16 class
 * ids (a file holding non-integers, negatives or values over 65535 is
 * refused). Geometry travels with the volume: `hdr` keeps the source file's
 * NIfTI header (dims, pixdim, units, qform, sform and their codes, intent,
 * description...), and every derived volume is written with it unchanged,
 * bit-exact, unless an operation (resampling, cropping, reorienting) replaces
 * it through dlt_volume_set_geometry. */
#ifndef DLT_VOLUME_H
#define DLT_VOLUME_H

#include <stdint.h>

typedef struct dlt_volume {
    int64_t nx, ny, nz, nc;
    float *data;       /* image: [nc][nz][ny][nx] float32, or NULL for a label volume */
    uint16_t *label;   /* label: [nz][ny][nx] class ids, or NULL for an image */
    double affine[4][4]; /* voxel (i,j,k,1) -> world mm (RAS+, NIfTI convention):
                            the sform when sform_code > 0, else the qform when
                            qform_code > 0, else nibabel's ANALYZE fallback
                            diag(-dx,dy,dz) centred on the volume (as nibabel) */
    double spacing[3];   /* voxel size in mm along i, j, k (pixdim[1..3], positive) */
    void *hdr;           /* private: the source's NIfTI header (lib/image/volume_int.h);
                            use the accessors below */
} dlt_volume;

/* Read an image (any stored datatype, NIfTI-1 or -2, .nii or .nii.gz; path
 * "-" reads stdin, gzip detected by magic). Errors name the path and say what
 * is wrong (missing, not NIfTI, truncated, dims absurd, data size a lie...). */
int dlt_volume_read(const char *path, dlt_volume *v);
/* Read a label volume (see above); 4-D with nc > 1 is refused. */
int dlt_volume_read_label(const char *path, dlt_volume *v);
/* Header only (no voxel data): dims, affine, spacing; for quick checks. */
int dlt_volume_read_header(const char *path, dlt_volume *v);

/* New volume on the grid of `ref` (same dims and geometry header), nc
 * channels, image (is_label = 0, zeroed float data) or label (zeroed uint16). */
int dlt_volume_like(dlt_volume *v, const dlt_volume *ref, int64_t nc, int is_label);
/* New volume with its own geometry: dims, spacing, affine (voxel -> world);
 * written with qform and sform both set from the affine (codes 1 = scanner). */
int dlt_volume_new(dlt_volume *v, int64_t nx, int64_t ny, int64_t nz, int64_t nc, int is_label,
                   const double affine[4][4]);
/* Replace dims and affine (after resampling, cropping, reorienting); units,
 * codes and the rest of the header are kept. Reallocates the data. */
int dlt_volume_set_geometry(dlt_volume *v, int64_t nx, int64_t ny, int64_t nz, const double affine[4][4]);

/* Write: images as float32, labels as uint8 (max <= 255) or uint16, with
 * the volume's geometry header. ".nii.gz" compresses; "-" writes an
 * uncompressed .nii stream to stdout. Atomic (temporary, fsync, rename).
 * `descrip` (<= 79 chars, may be NULL to keep) goes into the description
 * field, e.g. the preprocessing applied. */
int dlt_volume_write(const char *path, const dlt_volume *v, const char *descrip);

/* The description field of the header ("" if none). */
const char *dlt_volume_descrip(const dlt_volume *v);
/* Orientation code from the affine, e.g. "RAS", "LPS" (3 chars + NUL). */
void dlt_volume_orientation(const dlt_volume *v, char code[4]);
/* Same dims and affines within tol (mm); else DLT_ESHAPE with a message
 * saying exactly how they differ. */
int dlt_volume_same_grid(const dlt_volume *a, const dlt_volume *b, double tol);

/* What the source file held (for dlt-info): the stored datatype name
 * ("uint8", "int16", "float64"...; "float32" for a volume made in memory),
 * the NIfTI version (1 or 2), the qform/sform codes and the stored scaling
 * (slope 0 or non-finite: none). */
const char *dlt_volume_datatype(const dlt_volume *v);
int dlt_volume_nifti_version(const dlt_volume *v);
void dlt_volume_xform_codes(const dlt_volume *v, int *qform_code, int *sform_code);
void dlt_volume_scaling(const dlt_volume *v, double *slope, double *inter);

void dlt_volume_free(dlt_volume *v);

#endif
