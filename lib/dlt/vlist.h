/* dlt/vlist.h - lists of volumes for dlt-infer --list and dlt-train --val:
 * the TSV list files that dlt-phantom writes and dlt-sample reads.
 *
 * A header row (first field "id") names the columns: id, image (or image1,
 * image2, ... as channels, in that order), label (optional); other columns
 * are ignored. Without a header: id, image (2 columns) or id, images...,
 * label (the last of 3 or more). Blank lines and '#' lines are skipped.
 * Relative paths are relative to the list file's directory. */
#ifndef DLT_VLIST_H
#define DLT_VLIST_H

#include "dlt/volume.h"

typedef struct dlt_vlist_entry {
    char *id;
    int nimages;
    char **image; /* paths */
    char *label;  /* path or NULL */
    int line;     /* 1-based line in the list file */
} dlt_vlist_entry;

typedef struct dlt_vlist {
    int n;
    dlt_vlist_entry *e;
    char *path;
} dlt_vlist;

/* Read a list; a missing file is reported as "LIST:LINE: PATH: no such file". */
int dlt_vlist_read(const char *path, dlt_vlist *l);
void dlt_vlist_free(dlt_vlist *l);

/* Load an entry's images into one volume (channels of every image file
 * concatenated, in order; all on the first one's grid, else DLT_ESHAPE).
 * path "-" reads stdin. Errors are prefixed with the list and line. */
int dlt_vlist_load_images(const dlt_vlist *l, int i, dlt_volume *v);
/* Load images given as paths (dlt-infer IN): the same concatenation. */
int dlt_load_channels(const char *const *paths, int n, dlt_volume *v);

#endif
