/* dlt/io.h - file helpers shared by the tools and formats: atomic output
 * (temporary + fsync + rename, so a failed tool leaves nothing half-written),
 * whole-file reads with "-" for stdin and transparent gzip, and small parsers
 * for the option values the tools share. */
#ifndef DLT_IO_H
#define DLT_IO_H

#include <stdint.h>
#include <stdio.h>

/* Atomic output. path "-" writes to stdout directly (no temporary). */
typedef struct dlt_outfile {
    FILE *f;
    char *path; /* final name */
    char *tmp;  /* temporary name in the same directory; NULL for stdout */
} dlt_outfile;
/* Opens a temporary beside `path` (mode 0644 after umask). */
int dlt_outfile_open(dlt_outfile *o, const char *path);
/* Flush, fsync, close, rename over `path`. On failure the temporary is removed. */
int dlt_outfile_commit(dlt_outfile *o);
/* Close and remove the temporary; the previous `path` (if any) stays intact. */
void dlt_outfile_abort(dlt_outfile *o);

/* Read a whole file (path or "-") into memory; gzip (by magic 1f 8b) is
 * inflated. *buf from dlt_alloc (free with dlt_free). Errors name the path. */
int dlt_read_file(const char *path, uint8_t **buf, int64_t *len);

/* Write n bytes fully, or fail with DLT_EIO naming `what`. */
int dlt_write_all(FILE *f, const void *buf, size_t n, const char *what);

/* 1 if stdout is a terminal (binary output must be refused then). */
int dlt_stdout_is_tty(void);
/* Every tool calls this first: at exit, stdout is flushed and closed, and a
 * write error there (e.g. > /dev/full) turns the exit status into 1 with
 * "stdout: write failed: ..." on stderr. */
void dlt_stdout_check_at_exit(void);

/* Parse "64" (-> 64,64,64), "64,64,32" or "64x64x32" into v[3]; values in
 * [lo,hi]. Returns 0 or DLT_EINVAL with a message. */
int dlt_parse_int3(const char *s, int lo, int hi, int v[3]);
/* Parse one decimal integer in [lo, hi] (the whole string); 0 or DLT_EINVAL
 * (the tools word their own usage message). */
int dlt_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *v);
/* Parse a comma list of up to `max` ints; *n gets the count. */
int dlt_parse_ints(const char *s, int max, int *v, int *n);
/* Parse a comma list of up to `max` doubles. */
int dlt_parse_doubles(const char *s, int max, double *v, int *n);

#endif
