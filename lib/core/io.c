/* io.c - atomic output files, whole-file reads, option parsers (dlt/io.h). */
#include "dlt/io.h"
#include "dlt/core.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

int dlt_outfile_open(dlt_outfile *o, const char *path)
{
    memset(o, 0, sizeof *o);
    if (strcmp(path, "-") == 0) {
        o->f = stdout;
        o->path = strdup("-");
        return 0;
    }
    o->path = strdup(path);
    if (asprintf(&o->tmp, "%s.tmp.XXXXXX", path) < 0) return dlt_err(DLT_ENOMEM, "%s: out of memory", path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int e = errno;
        free(o->tmp);
        free(o->path);
        o->tmp = o->path = NULL;
        return dlt_err(DLT_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    o->f = fdopen(fd, "wb");
    return 0;
}

int dlt_outfile_commit(dlt_outfile *o)
{
    int rc = 0;
    if (!o->tmp) {
        if (fflush(o->f) != 0) rc = dlt_err(DLT_EIO, "stdout: write failed: %s", strerror(errno));
        free(o->path);
        o->path = NULL;
        return rc;
    }
    if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0) rc = dlt_err(DLT_EIO, "%s: write failed: %s", o->path, strerror(errno));
    if (fclose(o->f) != 0 && rc == 0) rc = dlt_err(DLT_EIO, "%s: write failed: %s", o->path, strerror(errno));
    o->f = NULL;
    if (rc == 0 && rename(o->tmp, o->path) != 0) rc = dlt_err(DLT_EIO, "%s: cannot rename: %s", o->path, strerror(errno));
    if (rc) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    return rc;
}

void dlt_outfile_abort(dlt_outfile *o)
{
    if (o->tmp) {
        if (o->f) fclose(o->f);
        unlink(o->tmp);
    } else if (o->f) {
        fflush(o->f);
    }
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
}

int dlt_write_all(FILE *f, const void *buf, size_t n, const char *what)
{
    if (n && fwrite(buf, 1, n, f) != n) return dlt_err(DLT_EIO, "%s: write failed: %s", what, strerror(errno));
    return 0;
}

int dlt_stdout_is_tty(void) { return isatty(1); }

/* At exit, after main returned: flush and close stdout. A full disk or a
 * closed pipe often shows only here (the last buffer), and a tool that ends
 * 0 after a lost write makes a pipeline build on a truncated file. As in
 * gnulib's close_stdout, the status becomes 1 and the message names stdout,
 * unless the tool has already reported an error. A reader that went away
 * (EPIPE with SIGPIPE ignored) is not an error of ours: the reader decides. */
static void close_stdout(void)
{
    int pending = ferror(stdout);
    errno = 0;
    int rc = fclose(stdout);
    if (rc == 0 && !pending) return;
    if (errno == EPIPE || (!pending && errno == EBADF)) return; /* gone reader; stdout closed and unused */
    if (!dlt_errors_reported()) dlt_error("stdout: write failed: %s", errno ? strerror(errno) : "I/O error");
    fflush(stderr);
    _exit(1);
}

void dlt_stdout_check_at_exit(void) { atexit(close_stdout); }

static int read_stream(FILE *f, const char *path, uint8_t **buf, int64_t *len)
{
    int64_t cap = 1 << 16, n = 0;
    *buf = NULL;
    *len = 0;
    uint8_t *b = dlt_alloc(cap, 1, path);
    if (!b) return DLT_ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > dlt_max_alloc() / 2) { dlt_free(b); return dlt_err(DLT_ENOMEM, "%s: file too large", path); }
            uint8_t *nb = dlt_alloc(cap * 2, 1, path);
            if (!nb) { dlt_free(b); return DLT_ENOMEM; }
            memcpy(nb, b, (size_t)n);
            dlt_free(b);
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, (size_t)(cap - n), f);
        n += (int64_t)r;
        if (r == 0) break;
    }
    if (ferror(f)) { dlt_free(b); return dlt_err(DLT_EIO, "%s: read failed: %s", path, strerror(errno)); }
    *buf = b;
    *len = n;
    return 0;
}

static int gunzip(const char *path, const uint8_t *in, int64_t inlen, uint8_t **out, int64_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK) return dlt_err(DLT_ENOMEM, "%s: zlib init failed", path);
    int64_t cap = inlen * 4 + 4096, n = 0;
    uint8_t *b = dlt_alloc(cap, 1, path);
    if (!b) { inflateEnd(&z); return DLT_ENOMEM; }
    z.next_in = (Bytef *)in;
    int64_t left = inlen;
    int zr = Z_OK;
    while (zr != Z_STREAM_END) {
        if (n == cap) {
            if (cap > dlt_max_alloc() / 2) { zr = Z_MEM_ERROR; break; }
            uint8_t *nb = dlt_alloc(cap * 2, 1, path);
            if (!nb) { zr = Z_MEM_ERROR; break; }
            memcpy(nb, b, (size_t)n);
            dlt_free(b);
            b = nb;
            cap *= 2;
        }
        if (z.avail_in == 0) {
            uInt c = left > (1 << 30) ? (1u << 30) : (uInt)left;
            z.avail_in = c;
            left -= c;
        }
        z.next_out = b + n;
        z.avail_out = (uInt)((cap - n) > (1 << 30) ? (1 << 30) : (cap - n));
        uInt before = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        n += before - z.avail_out;
        if (zr == Z_STREAM_END && left + z.avail_in > 0) {
            /* concatenated gzip members */
            inflateReset(&z);
            zr = Z_OK;
            continue;
        }
        if (zr == Z_BUF_ERROR && z.avail_in == 0 && left == 0) break;
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) break;
    }
    inflateEnd(&z);
    if (zr != Z_STREAM_END) {
        dlt_free(b);
        if (zr == Z_MEM_ERROR) return dlt_err(DLT_ENOMEM, "%s: decompressed data too large", path);
        if (zr == Z_BUF_ERROR || zr == Z_OK) return dlt_err(DLT_ETRUNC, "%s: truncated gzip data", path);
        return dlt_err(DLT_EFORMAT, "%s: corrupt gzip data", path);
    }
    *out = b;
    *outlen = n;
    return 0;
}

int dlt_read_file(const char *path, uint8_t **buf, int64_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return dlt_err(DLT_EIO, "%s: %s", path, strerror(errno));
    uint8_t *raw = NULL;
    int64_t n = 0;
    int rc = read_stream(f, strcmp(path, "-") == 0 ? "stdin" : path, &raw, &n);
    if (f != stdin) fclose(f);
    if (rc) return rc;
    if (n >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        rc = gunzip(path, raw, n, buf, len);
        dlt_free(raw);
        return rc;
    }
    *buf = raw;
    *len = n;
    return 0;
}

int dlt_parse_ints(const char *s, int max, int *v, int *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < INT_MIN || x > INT_MAX) return dlt_err(DLT_EINVAL, "'%s': not a list of integers", s);
        if (*n >= max) return dlt_err(DLT_EINVAL, "'%s': more than %d values", s, max);
        v[(*n)++] = (int)x;
        if (*end == 0) break;
        if (*end != ',') return dlt_err(DLT_EINVAL, "'%s': not a list of integers", s);
        p = end + 1;
        if (!*p) return dlt_err(DLT_EINVAL, "'%s': trailing comma", s);
    }
    if (*n == 0) return dlt_err(DLT_EINVAL, "empty list");
    return 0;
}

int dlt_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return dlt_err(DLT_EINVAL, "'%s': not an integer in [%lld, %lld]", s, (long long)lo, (long long)hi);
    *v = x;
    return 0;
}

int dlt_parse_doubles(const char *s, int max, double *v, int *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double x = strtod(p, &end);
        if (end == p) return dlt_err(DLT_EINVAL, "'%s': not a list of numbers", s);
        if (*n >= max) return dlt_err(DLT_EINVAL, "'%s': more than %d values", s, max);
        v[(*n)++] = x;
        if (*end == 0) break;
        if (*end != ',') return dlt_err(DLT_EINVAL, "'%s': not a list of numbers", s);
        p = end + 1;
        if (!*p) return dlt_err(DLT_EINVAL, "'%s': trailing comma", s);
    }
    if (*n == 0) return dlt_err(DLT_EINVAL, "empty list");
    return 0;
}

int dlt_parse_int3(const char *s, int lo, int hi, int v[3])
{
    char buf[128];
    if (strlen(s) >= sizeof buf) return dlt_err(DLT_EINVAL, "'%s': too long", s);
    strcpy(buf, s);
    for (char *p = buf; *p; p++)
        if (*p == 'x') *p = ',';
    int n;
    int rc = dlt_parse_ints(buf, 3, v, &n);
    if (rc) return dlt_err(DLT_EINVAL, "'%s': expected N or X,Y,Z", s);
    if (n == 1) v[1] = v[2] = v[0];
    else if (n != 3) return dlt_err(DLT_EINVAL, "'%s': expected N or X,Y,Z", s);
    for (int i = 0; i < 3; i++)
        if (v[i] < lo || v[i] > hi) return dlt_err(DLT_EINVAL, "'%s': values must be in [%d, %d]", s, lo, hi);
    return 0;
}
