/* error.c - per-thread error message and checked allocation (see dlt/core.h). */
#include "dlt/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char errbuf[1024];

int dlt_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return code;
}

int dlt_err_prefix(int code, const char *fmt, ...)
{
    char pre[512], old[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    snprintf(errbuf, sizeof errbuf, "%.500s: %.500s", pre, old);
    return code;
}

const char *dlt_errmsg(void) { return errbuf; }

const char *dlt_strerror(int code)
{
    switch (code) {
    case DLT_OK: return "ok";
    case DLT_EIO: return "i/o error";
    case DLT_EFORMAT: return "bad format";
    case DLT_ETRUNC: return "truncated";
    case DLT_ENOMEM: return "out of memory";
    case DLT_EINVAL: return "invalid value";
    case DLT_ESHAPE: return "shape mismatch";
    case DLT_ECRC: return "checksum mismatch";
    case DLT_EUNSUP: return "not supported";
    case DLT_EDEVICE: return "device error";
    default: return "unknown error";
    }
}

static int64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0) return -1;
    switch (*end) {
    case 'k': case 'K': v *= 1024.0; break;
    case 'm': case 'M': v *= 1024.0 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
    default: break;
    }
    return (int64_t)v;
}

int64_t dlt_max_alloc(void)
{
    const char *e = getenv("DLT_MAX_ALLOC");
    if (e) {
        int64_t v = parse_size(e);
        if (v > 0) return v;
    }
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psz <= 0) return (int64_t)1 << 34;
    return (int64_t)pages * psz / 4 * 3;
}

int64_t dlt_mul_checked(int64_t a, int64_t b)
{
    if (a < 0 || b < 0) return -1;
    if (a != 0 && b > INT64_MAX / a) return -1;
    return a * b;
}

static void human(char *buf, size_t n, double bytes)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int i = 0;
    while (bytes >= 1024 && i < 6) { bytes /= 1024; i++; }
    snprintf(buf, n, "%.1f %s", bytes, u[i]);
}

void *dlt_alloc(int64_t n, int64_t size, const char *what)
{
    int64_t bytes = dlt_mul_checked(n, size);
    if (bytes < 0) {
        dlt_err(DLT_ENOMEM, "%s: size overflows (%lld x %lld bytes)", what, (long long)n, (long long)size);
        return NULL;
    }
    if (bytes > dlt_max_alloc()) {
        char h[32], m[32];
        human(h, sizeof h, (double)bytes);
        human(m, sizeof m, (double)dlt_max_alloc());
        dlt_err(DLT_ENOMEM, "%s: needs %s, more than the %s allowed (set DLT_MAX_ALLOC to change)", what, h, m);
        return NULL;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? (size_t)bytes : 64) != 0) {
        char h[32];
        human(h, sizeof h, (double)bytes);
        dlt_err(DLT_ENOMEM, "%s: cannot allocate %s", what, h);
        return NULL;
    }
    return p;
}

void *dlt_calloc(int64_t n, int64_t size, const char *what)
{
    void *p = dlt_alloc(n, size, what);
    if (p) memset(p, 0, (size_t)(n * size));
    return p;
}

void dlt_free(void *p) { free(p); }

static int threads_set;

void dlt_set_threads(int n)
{
    threads_set = n > 0 ? n : 0;
#ifdef _OPENMP
    if (threads_set) omp_set_num_threads(threads_set);
#endif
}

int dlt_threads(void)
{
    if (threads_set) return threads_set;
    const char *e = getenv("DLT_THREADS");
    if (e && atoi(e) > 0) return atoi(e);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
