/* check.h - a tiny TAP producer for the C unit tests. Each test binary
 * prints "ok N - name", "not ok N - name" or "ok N - name # SKIP why";
 * tests/run.sh adds them up. Usage:
 *   CHECK(cond, "name %d", i);   SKIP("why");   return check_done();  */
#ifndef DLT_CHECK_H
#define DLT_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int check_n, check_failed;

static int check_report(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    printf("%sok %d - ", ok ? "" : "not ", ++check_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!ok) {
        printf("#   failed at %s:%d\n", file, line);
        check_failed++;
    }
    fflush(stdout);
    return ok;
}

#define CHECK(cond, ...) check_report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define SKIP(...) (printf("ok %d - ", ++check_n), printf(__VA_ARGS__), printf(" # SKIP\n"), fflush(stdout))
/* Relative error |a-b| / max(|a|,|b|,floor). */
static inline double check_relerr(double a, double b, double floor_)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    if (m < floor_) m = floor_;
    return fabs(a - b) / m;
}

static int check_done(void)
{
    printf("1..%d\n", check_n);
    return check_failed ? 1 : 0;
}

#endif
