/* dlt/feed.h - a patch stream read ahead in its own thread, through a
 * bounded queue, with every record checked before use (dlt-train).
 *
 * The reader thread parses records (the stream reader checks magic, CRC,
 * truncation and header consistency) and checks what training needs: the
 * size equals the header's patch, the channel count the header's, a label is
 * present, every label is below the class count and every image value is
 * finite. A bad record is handed to the consumer as an error at its place in
 * the stream, so the records before it are still used; the message names
 * the record (index in this stream, subject id, corner).
 *
 * Records are handed over by swapping buffers, so nothing is copied. */
#ifndef DLT_FEED_H
#define DLT_FEED_H

#include <signal.h>
#include <stdint.h>

#include "dlt/patches.h"

typedef struct dlt_feed dlt_feed;

/* Records the checks need: from the stream header, or set by the caller. */
typedef struct dlt_feed_config {
    int channels;       /* image channels per record */
    int classes;        /* labels must be < classes */
    int patch[3];       /* X,Y,Z */
    int capacity;       /* records queued ahead (>= 1) */
} dlt_feed_config;

/* Start reading from an opened reader (its header already read); the feed
 * takes the reader over (closes it in dlt_feed_close). */
int dlt_feed_start(dlt_patch_reader *r, const dlt_feed_config *c, dlt_feed **out);

enum { DLT_FEED_STOPPED = 2 };
/* Next record into *p (its buffers swapped with the queue's). Returns 1 when
 * a record was delivered, 0 at the end of the stream, a negative DLT_E* on a
 * bad record or stream (message set), or DLT_FEED_STOPPED when *stop (may
 * be NULL) became non-zero while waiting (checked every 50 ms). */
int dlt_feed_next(dlt_feed *f, dlt_patch *p, volatile sig_atomic_t *stop);
/* Records delivered so far. */
int64_t dlt_feed_delivered(const dlt_feed *f);
/* Stop the thread (even when blocked reading), close the reader, free. */
void dlt_feed_close(dlt_feed *f);

/* The checks alone, on one record (index `rec` for messages): 0 or
 * DLT_EINVAL / DLT_ESHAPE with a message naming the record. */
int dlt_feed_check(const dlt_feed_config *c, const dlt_patch *p, const char *name, int64_t rec);

#endif
