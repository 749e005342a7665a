/* dlt/patches.h - the patch stream (dlt-patches(5)).
 *
 * A text header, then records that simply concatenate, so streams can be
 * cat'ed (a second header in the middle is accepted when it is identical).
 *
 *   DLTPATCHES 1\n
 *   key value\n ...        channels, classes, patch (X,Y,Z), label (yes/no),
 *                          class_names, preprocessing, sampler, seed, source...
 *   end\n                  (dlt-patches(5) lists the keys; others are free)
 *
 * Each record, little-endian:
 *   "PREC" magic (4 bytes), uint32 record length in bytes (after this field),
 *   uint16 id length + id bytes (subject id, UTF-8, no NUL),
 *   int32 corner[3] (x,y,z of the patch's first voxel in the source volume;
 *   may be negative where the patch crosses the border), int32 size[3] (X,Y,Z),
 *   uint32 channels, float32 image[channels][Z][Y][X],
 *   uint8 has_label, uint16 label[Z][Y][X] (if has_label),
 *   uint32 crc32 (zlib) of everything from the magic up to here.
 * A truncated or corrupted stream is detected and the error names the
 * record number (0-based) and its byte offset. */
#ifndef DLT_PATCHES_H
#define DLT_PATCHES_H

#include <stdint.h>
#include <stdio.h>

#define DLT_PATCHES_MAX_KEYS 64

typedef struct dlt_patch_header {
    int nkeys;
    char *key[DLT_PATCHES_MAX_KEYS];
    char *value[DLT_PATCHES_MAX_KEYS];
} dlt_patch_header;

/* Header keys: get returns NULL when absent; set replaces or appends. */
const char *dlt_patch_header_get(const dlt_patch_header *h, const char *key);
int dlt_patch_header_set(dlt_patch_header *h, const char *key, const char *value);
void dlt_patch_header_free(dlt_patch_header *h);

typedef struct dlt_patch {
    char id[256];
    int32_t corner[3], size[3];
    uint32_t channels;
    float *image;     /* [channels][Z][Y][X] */
    int has_label;
    uint16_t *label;  /* [Z][Y][X] or NULL */
    int64_t cap_image, cap_label; /* allocated elements (the reader reuses buffers) */
} dlt_patch;

typedef struct dlt_patch_reader {
    FILE *f;
    const char *name;   /* for messages ("stdin" or the path) */
    dlt_patch_header header;
    int64_t record;     /* index of the next record */
    int64_t offset;     /* byte offset of the next record */
    int owns_file;
} dlt_patch_reader;

/* Open a stream (path or "-"); reads and checks the header. */
int dlt_patch_reader_open(dlt_patch_reader *r, const char *path);
/* Start on an already-open FILE whose first bytes are the header. */
int dlt_patch_reader_fopen(dlt_patch_reader *r, FILE *f, const char *name);
/* Start on a stream held in memory (n bytes; buf must outlive the reader). */
int dlt_patch_reader_mem(dlt_patch_reader *r, const void *buf, int64_t n, const char *name);
/* Next record into p (buffers grown as needed). Returns 1 when a record was
 * read, 0 at a clean end of stream, negative on error (truncation, CRC,
 * absurd sizes), the message naming the record and byte offset. */
int dlt_patch_read(dlt_patch_reader *r, dlt_patch *p);
void dlt_patch_reader_close(dlt_patch_reader *r);
void dlt_patch_free(dlt_patch *p);

/* Writer: header first, then records. */
int dlt_patch_write_header(FILE *f, const dlt_patch_header *h);
int dlt_patch_write(FILE *f, const dlt_patch *p);

/* Is this buffer (the first bytes of a file) a patch stream? */
int dlt_patch_is_stream(const void *buf, int64_t n);

#endif
