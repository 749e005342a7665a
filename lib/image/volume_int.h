/* volume_int.h - private to the volume module (volume*.c): the geometry
 * header that a dlt_volume carries in its `hdr` field.
 *
 * The source header is kept as a NIfTI-2 header struct in native byte order,
 * whatever the file held: every NIfTI-1 field converts to its NIfTI-2 twin
 * exactly (float -> double, short -> int64), and back again when written as
 * NIfTI-1, so geometry fields round-trip bit for bit. */
#ifndef DLT_VOLUME_INT_H
#define DLT_VOLUME_INT_H

#include "dlt/volume.h"

#include <nifti2_io.h>

typedef struct dlt_vhdr {
    nifti_2_header h;  /* native order; dims/datatype describe the source file */
    int version;       /* 1 or 2: the NIfTI version written (the source's) */
    int src_version;   /* 1 or 2 as read; 1 for volumes made in memory */
    int src_datatype;  /* DT_* stored in the source file (DT_FLOAT32 for new) */
    char descrip[81];  /* NUL-terminated copy of h.descrip */
} dlt_vhdr;

static inline dlt_vhdr *dlt_vhdr_of(const dlt_volume *v) { return (dlt_vhdr *)v->hdr; }

/* Fill v->affine and v->spacing from the header (nibabel's rules). */
void dlt_vhdr_affine(const dlt_vhdr *H, const int64_t dims[3], double affine[4][4], double spacing[3]);
/* Set pixdim, qform and sform of H from an affine; codes kept when > 0,
 * otherwise the other form's code, otherwise 1 (scanner). NIfTI-1 headers
 * have their float fields rounded to float, so that the affine read back
 * from the written file equals the one recomputed from H. */
void dlt_vhdr_set_affine(dlt_vhdr *H, const double affine[4][4]);
/* Round every float-typed NIfTI-1 field to float precision (version 1 only). */
void dlt_vhdr_round_n1(dlt_vhdr *H);

#endif
