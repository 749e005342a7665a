/* dlt/core.h - the pieces every module uses: error codes with a per-thread
 * message, stderr logging and progress, checked allocation, and a
 * counter-based RNG (Philox4x32-10) whose streams are identical on CPU and GPU
 * and independent of thread count.
 *
 * Convention: a function that can fail returns 0 or a negative DLT_E* code and
 * sets the message that dlt_errmsg() returns. The library never prints
 * (except through dlt_log, which a tool may silence), never exits. */
#ifndef DLT_CORE_H
#define DLT_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define DLT_VERSION "0.1.0"

enum {
    DLT_OK = 0,
    DLT_EIO = -1,      /* read/write failed (missing file, disk full, short read) */
    DLT_EFORMAT = -2,  /* not the expected format, or corrupt */
    DLT_ETRUNC = -3,   /* file or stream ends early */
    DLT_ENOMEM = -4,   /* allocation failed or a size is absurd */
    DLT_EINVAL = -5,   /* invalid argument or value (bad shape, NaN...) */
    DLT_ESHAPE = -6,   /* shapes or grids do not match */
    DLT_ECRC = -7,     /* checksum mismatch */
    DLT_EUNSUP = -8,   /* valid but not supported */
    DLT_EDEVICE = -9,  /* backend / device failure */
};

/* Set the per-thread message (printf-style) and return `code`, so that
 * `return dlt_err(DLT_EIO, "%s: %s", path, strerror(errno));` reads well. */
int dlt_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "prefix: " (e.g. a file name); returns code. */
int dlt_err_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message set on this thread ("" if none). Never NULL. */
const char *dlt_errmsg(void);
/* A short name for a code ("io error", "bad format", ...). */
const char *dlt_strerror(int code);

/* Largest single allocation the library will attempt (bytes); larger requests
 * fail with DLT_ENOMEM before touching malloc. Default: 3/4 of physical RAM;
 * the environment variable DLT_MAX_ALLOC (bytes, or with suffix K/M/G) overrides. */
int64_t dlt_max_alloc(void);
/* Checked allocation: NULL and DLT_ENOMEM message naming `what` on failure,
 * overflow of n*size, or more than dlt_max_alloc(). Memory is 64-byte aligned
 * and must be released with dlt_free(). */
void *dlt_alloc(int64_t n, int64_t size, const char *what);
void *dlt_calloc(int64_t n, int64_t size, const char *what);
void dlt_free(void *p);
/* n1*n2*... with overflow check: returns -1 on overflow or a negative factor. */
int64_t dlt_mul_checked(int64_t a, int64_t b);

/* ---- logging (stderr) ----
 * Levels: 0 quiet (errors only), 1 normal, 2 verbose, 3 debug. Default 1;
 * env DLT_LOG overrides; tools set it from -q/-v. The prefix is the program
 * name set with dlt_log_init (e.g. "dlt-train"). */
enum { DLT_LOG_QUIET = 0, DLT_LOG_INFO = 1, DLT_LOG_VERBOSE = 2, DLT_LOG_DEBUG = 3 };
void dlt_log_init(const char *progname);
const char *dlt_progname(void);
void dlt_log_set_level(int level);
int dlt_log_level(void);
void dlt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dlt_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROG: error: MSG\n" on stderr (always printed). */
void dlt_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A bad command line: "PROG: error: MSG\nTry 'PROG --help'.\n" on stderr;
 * returns 2, the tools' exit status for it (return dlt_usage_error(...)). */
int dlt_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* How many errors dlt_error has printed (the exit check of stdout stays
 * silent after one, so a write error is never reported twice). */
int dlt_errors_reported(void);

/* Progress: a bar with rate and ETA when stderr is a terminal, otherwise one
 * plain line every `interval_s` seconds (and at the end). total <= 0: unknown. */
typedef struct dlt_progress {
    const char *what;
    int64_t total, done;
    double t0, last;
    double interval_s;
    int tty;
} dlt_progress;
void dlt_progress_start(dlt_progress *p, const char *what, int64_t total);
void dlt_progress_update(dlt_progress *p, int64_t done, const char *extra);
void dlt_progress_end(dlt_progress *p, const char *extra);
double dlt_now(void); /* monotonic seconds */

/* ---- RNG: Philox4x32-10 (Salmon et al. 2011) ----
 * dlt_philox(key, counter) is a pure function; a value depends only on
 * (seed, stream, index), never on threads or call order, so the GPU backend
 * reproduces the CPU's numbers exactly. */
void dlt_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]);
/* Uniform float in [0,1) (24-bit) for element `i` of stream `stream`. */
float dlt_rng_uniform_at(uint64_t seed, uint64_t stream, uint64_t i);
/* Standard normal for element i (Box-Muller on a Philox block). */
float dlt_rng_normal_at(uint64_t seed, uint64_t stream, uint64_t i);

/* A sequential generator: the state is (seed, stream, position), three
 * integers that a checkpoint saves and restores. */
typedef struct dlt_rng {
    uint64_t seed, stream, pos;
} dlt_rng;
void dlt_rng_init(dlt_rng *r, uint64_t seed, uint64_t stream);
uint32_t dlt_rng_u32(dlt_rng *r);
uint64_t dlt_rng_u64(dlt_rng *r);
double dlt_rng_uniform(dlt_rng *r);            /* [0,1), 53 bits */
uint64_t dlt_rng_below(dlt_rng *r, uint64_t n); /* uniform in [0,n), unbiased; n>0 */
double dlt_rng_normal(dlt_rng *r);              /* N(0,1) */

/* CRC32 (zlib polynomial), chainable: crc = dlt_crc32(crc, buf, n), start 0. */
uint32_t dlt_crc32(uint32_t crc, const void *buf, size_t n);

/* Threads for CPU work: what dlt_set_threads set, else DLT_THREADS env,
 * else all online cores. */
int dlt_threads(void);
/* A tool's --threads N: CPU work (OpenMP, the backends) uses n threads;
 * n <= 0 restores the default. Call before creating a backend. */
void dlt_set_threads(int n);

#endif
