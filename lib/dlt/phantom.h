/* dlt/phantom.h - synthetic abdominal CT: the built-in dataset.
 *
 * Each subject is a contrast-enhanced (portal venous phase) abdominal CT in
 * HU with a label volume of the 13 BTCV organs (ids as in BTCV, see
 * dlt_phantom_class_name). Anatomy is built from ellipsoids, superquadrics
 * and tubes placed in patient coordinates, then varied per subject (body
 * size, organ position, size and pose, a smooth random deformation, contrast
 * timing) and imaged: body outline, subcutaneous fat, muscle wall, spine and
 * ribs, bowel, organ texture, a slight blur and Gaussian noise, HU rounded
 * to integers. The grid is LPS (voxel i to the patient's left, j posterior,
 * k superior), centred on world (0,0,0). The anatomy is scaled to the field
 * of view, so smaller grids show the same body more coarsely; thin organs
 * (adrenals, veins) keep at least about a voxel and a half of thickness.
 * A subject depends only on (seed, index, size, spacing, noise): the same
 * arguments give the same voxels on any machine and thread count. */
#ifndef DLT_PHANTOM_H
#define DLT_PHANTOM_H

#include <stdint.h>

#include "dlt/volume.h"

#define DLT_PHANTOM_NCLASSES 14 /* background + 13 organs */

typedef struct dlt_phantom_opts {
    int64_t nx, ny, nz;  /* grid (default 96, 96, 64) */
    double spacing[3];   /* mm (default 3, 3, 3) */
    double noise;        /* standard deviation of the image noise, HU (default 20) */
    uint64_t seed;       /* default 1 */
} dlt_phantom_opts;

void dlt_phantom_defaults(dlt_phantom_opts *o);

/* Class name for id 0..13 ("background", "spleen", ... "left adrenal
 * gland"); NULL outside that range. */
const char *dlt_phantom_class_name(int id);

/* Make subject `index` (>= 0): img gets a float32 HU image, lab the uint16
 * labels, both new volumes on the same grid (free with dlt_volume_free).
 * Returns 0 or a negative DLT_E* (bad options, out of memory). */
int dlt_phantom_make(const dlt_phantom_opts *o, int64_t index, dlt_volume *img, dlt_volume *lab);

#endif
