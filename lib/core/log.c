/* log.c - stderr messages and progress bars (see dlt/core.h). */
#include "dlt/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "dlt";
static int level = -1;
static int nerrors; /* dlt_error calls so far (see dlt_errors_reported) */

void dlt_log_init(const char *progname)
{
    const char *s = strrchr(progname, '/');
    prog = s ? s + 1 : progname;
}

const char *dlt_progname(void) { return prog; }

int dlt_log_level(void)
{
    if (level < 0) {
        const char *e = getenv("DLT_LOG");
        level = e ? atoi(e) : DLT_LOG_INFO;
    }
    return level;
}

void dlt_log_set_level(int l) { level = l; }

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (kind) fprintf(stderr, "%s: %s: %s\n", prog, kind, buf);
    else fprintf(stderr, "%s: %s\n", prog, buf);
}

void dlt_log(int l, const char *fmt, ...)
{
    if (l > dlt_log_level()) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg(l >= DLT_LOG_DEBUG ? "debug" : NULL, fmt, ap);
    va_end(ap);
}

void dlt_warn(const char *fmt, ...)
{
    if (dlt_log_level() < DLT_LOG_INFO) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning", fmt, ap);
    va_end(ap);
}

void dlt_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("error", fmt, ap);
    va_end(ap);
    nerrors++;
}

int dlt_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("error", fmt, ap);
    va_end(ap);
    nerrors++;
    fprintf(stderr, "Try '%s --help'.\n", dlt_progname());
    return 2;
}

int dlt_errors_reported(void) { return nerrors; }

double dlt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_time(char *b, size_t n, double s)
{
    if (s < 0 || s > 1e7) { snprintf(b, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(b, n, "%02d:%02d", t / 60, t % 60);
}

void dlt_progress_start(dlt_progress *p, const char *what, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->t0 = p->last = dlt_now();
    p->interval_s = 10.0;
    p->tty = isatty(2) && dlt_log_level() >= DLT_LOG_INFO;
}

static void draw(dlt_progress *p, const char *extra, int final)
{
    double el = dlt_now() - p->t0;
    double rate = el > 0 ? p->done / el : 0;
    char e[16], eta[16];
    fmt_time(e, sizeof e, el);
    fmt_time(eta, sizeof eta, (p->total > 0 && rate > 0) ? (p->total - p->done) / rate : -1);
    if (p->tty) {
        char bar[31];
        int fill = p->total > 0 ? (int)(30.0 * p->done / p->total) : 0;
        if (fill > 30) fill = 30;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s: %s [%s] %lld/%lld %.2f/s %s eta %s %s\033[K%s", prog, p->what, bar,
                (long long)p->done, (long long)p->total, rate, e, eta, extra ? extra : "", final ? "\n" : "");
    } else if (dlt_log_level() >= DLT_LOG_INFO) {
        fprintf(stderr, "%s: %s %lld/%lld %.2f/s elapsed %s eta %s%s%s\n", prog, p->what, (long long)p->done,
                (long long)p->total, rate, e, eta, extra ? " " : "", extra ? extra : "");
    }
}

void dlt_progress_update(dlt_progress *p, int64_t done, const char *extra)
{
    p->done = done;
    double now = dlt_now();
    if (now - p->last < (p->tty ? 0.2 : p->interval_s)) return;
    p->last = now;
    draw(p, extra, 0);
}

void dlt_progress_end(dlt_progress *p, const char *extra) { draw(p, extra, 1); }
