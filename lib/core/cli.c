/* cli.c - dlt/cli.h: the option table turned into getopt_long's arrays,
 * each value parsed and range-checked by its type, and --help written from
 * the same table. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/io.h"

static int takes_arg(const dlt_option *o)
{
    return o->type == DLT_OPTT_STR || o->type == DLT_OPTT_I64 || o->type == DLT_OPTT_INT || o->type == DLT_OPTT_DBL ||
           o->type == DLT_OPTT_FLT || o->type == DLT_OPTT_CHOICE || o->type == DLT_OPTT_CALL;
}

static int is_option(const dlt_option *o) { return o->type != DLT_OPTT_GROUP && o->type != DLT_OPTT_END; }

const dlt_option *dlt_cli_option(const dlt_cli *cli, const char *long_name)
{
    for (const dlt_option *o = cli->opts; o->type != DLT_OPTT_END; o++)
        if (is_option(o) && o->long_name && !strcmp(o->long_name, long_name)) return o;
    return NULL;
}

/* "1..4096", "> 0", "in [0,1)" */
static void range_text(const dlt_option *o, char *buf, size_t n)
{
    const int ints = o->type == DLT_OPTT_I64 || o->type == DLT_OPTT_INT;
    const int lo_inf = o->lo <= -1e300, hi_inf = o->hi >= 1e300;
    if (ints) {
        if (hi_inf) snprintf(buf, n, ">= %.0f", o->lo);
        else snprintf(buf, n, "%.0f..%.0f", o->lo, o->hi);
    } else if (lo_inf && hi_inf) snprintf(buf, n, "a number");
    else if (hi_inf) snprintf(buf, n, "%s %g", o->flags & DLT_OPT_LO_OPEN ? ">" : ">=", o->lo);
    else if (lo_inf) snprintf(buf, n, "%s %g", o->flags & DLT_OPT_HI_OPEN ? "<" : "<=", o->hi);
    else
        snprintf(buf, n, "in %c%g,%g%c", o->flags & DLT_OPT_LO_OPEN ? '(' : '[', o->lo, o->hi,
                 o->flags & DLT_OPT_HI_OPEN ? ')' : ']');
}

static int bad_value(const dlt_option *o, const char *arg)
{
    char r[96];
    if (o->type == DLT_OPTT_CHOICE) {
        size_t k = 0;
        r[0] = 0;
        for (int i = 0; o->choices[i] && k + 1 < sizeof r; i++)
            k += (size_t)snprintf(r + k, sizeof r - k, "%s%s", i ? ", " : "", o->choices[i]);
    } else range_text(o, r, sizeof r);
    return dlt_usage_error("--%s: bad value '%s' (%s)", o->long_name, arg, r);
}

/* The argument of o into its value: 0, or a usage error (printed). */
static int set_value(const dlt_option *o, const char *arg)
{
    switch (o->type) {
    case DLT_OPTT_STR: *(const char **)o->value = arg; return 0;
    case DLT_OPTT_I64:
    case DLT_OPTT_INT: {
        int64_t v;
        if (dlt_parse_i64(arg, (int64_t)o->lo, o->hi >= 9.2e18 ? INT64_MAX : (int64_t)o->hi, &v)) return bad_value(o, arg);
        if (o->type == DLT_OPTT_INT) *(int *)o->value = (int)v;
        else *(int64_t *)o->value = v;
        return 0;
    }
    case DLT_OPTT_DBL:
    case DLT_OPTT_FLT: {
        char *end;
        errno = 0;
        double v = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(v) || v < o->lo || v > o->hi ||
            ((o->flags & DLT_OPT_LO_OPEN) && v == o->lo) || ((o->flags & DLT_OPT_HI_OPEN) && v == o->hi))
            return bad_value(o, arg);
        if (o->type == DLT_OPTT_FLT) *(float *)o->value = (float)v;
        else *(double *)o->value = v;
        return 0;
    }
    case DLT_OPTT_CHOICE:
        for (int i = 0; o->choices[i]; i++)
            if (!strcmp(o->choices[i], arg)) {
                *(int *)o->value = i;
                return 0;
            }
        return bad_value(o, arg);
    case DLT_OPTT_CALL:
    case DLT_OPTT_CALL_OPT:
    case DLT_OPTT_CALL0:
        if (o->call(o, arg)) return dlt_usage_error("--%s: %s", o->long_name, dlt_errmsg());
        return 0;
    default: return 0;
    }
}

int dlt_cli_parse(const dlt_cli *cli, int argc, char **argv)
{
    int n = 0;
    for (const dlt_option *o = cli->opts; o->type != DLT_OPTT_END; o++) n += is_option(o);
    struct option *lo = calloc((size_t)n + 1, sizeof *lo);
    char *so = malloc(3 * (size_t)n + 2);
    dlt_option **by = calloc((size_t)n + 1, sizeof *by);
    if (!lo || !so || !by) {
        free(lo), free(so), free(by);
        dlt_error("out of memory");
        return DLT_CLI_EXIT_USAGE;
    }
    /* getopt_long returns 1000+i for option i; a short name maps to it below */
    size_t k = 0;
    so[k++] = ':'; /* a missing argument returns ':', not '?' */
    int i = 0;
    for (dlt_option *o = cli->opts; o->type != DLT_OPTT_END; o++) {
        if (!is_option(o)) continue;
        o->seen = 0;
        by[i] = o;
        lo[i] = (struct option){o->long_name,
                                o->type == DLT_OPTT_CALL_OPT ? optional_argument : takes_arg(o) ? required_argument : no_argument,
                                NULL, 1000 + i};
        if (o->short_name) {
            so[k++] = (char)o->short_name;
            if (takes_arg(o)) so[k++] = ':';
        }
        i++;
    }
    so[k] = 0;
    int rc = 0, c;
    optind = 0; /* 0: glibc starts afresh (no state left from an earlier parse) */
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
        dlt_option *o = NULL;
        if (c >= 1000) o = by[c - 1000];
        else if (c != '?' && c != ':')
            for (int j = 0; j < n && !o; j++)
                if (by[j]->short_name == c) o = by[j];
        if (!o) {
            const char *bad = argv[optind - 1];
            if (c == ':' && optopt >= 1000 && optopt - 1000 < n)
                dlt_usage_error("option '--%s' needs a value", by[optopt - 1000]->long_name);
            else if (c == ':' && optopt > 0) dlt_usage_error("option '-%c' needs a value", optopt);
            else if (c == ':') dlt_usage_error("option '%s' needs a value", bad);
            else if (optopt >= 1000 && optopt - 1000 < n)
                dlt_usage_error("option '--%s' takes no value", by[optopt - 1000]->long_name);
            else if (optopt > 0 && optopt < 1000) dlt_usage_error("unknown option '-%c'", optopt);
            else dlt_usage_error("unknown option '%s'", bad);
            rc = DLT_CLI_EXIT_USAGE;
            break;
        }
        o->seen++;
        if (cli->given) *cli->given |= o->given;
        switch (o->type) {
        case DLT_OPTT_FLAG: *(int *)o->value = o->ival; break;
        case DLT_OPTT_COUNT: (*(int *)o->value)++; break;
        case DLT_OPTT_QUIET: *(int *)o->value = DLT_LOG_QUIET; break;
        case DLT_OPTT_HELP:
            dlt_cli_help(cli, stdout);
            rc = DLT_CLI_EXIT_OK;
            break;
        case DLT_OPTT_VERSION:
            printf("%s %s\n", cli->prog, DLT_VERSION);
            rc = DLT_CLI_EXIT_OK;
            break;
        default: /* values; CALL0 with a NULL argument */
            if (set_value(o, o->type == DLT_OPTT_CALL0 ? NULL : optarg)) rc = DLT_CLI_EXIT_USAGE;
        }
    }
    free(lo), free(so), free(by);
    return rc ? rc : optind;
}

/* "  -b, --batch N" or "      --lr X" */
static int opt_label(const dlt_option *o, char *buf, size_t n)
{
    char s[8] = "    ";
    if (o->short_name) snprintf(s, sizeof s, "-%c, ", o->short_name);
    if (o->type == DLT_OPTT_CALL_OPT) return snprintf(buf, n, "  %s--%s[=%s]", s, o->long_name, o->argh ? o->argh : "X");
    return snprintf(buf, n, "  %s--%s%s%s", s, o->long_name, o->argh ? " " : "", o->argh ? o->argh : "");
}

void dlt_cli_help(const dlt_cli *cli, FILE *f)
{
    enum { COL = 27 };
    fprintf(f, "Usage: %s %s\n", cli->prog, cli->usage);
    if (cli->about && *cli->about) fprintf(f, "%s\n", cli->about);
    fputc('\n', f);
    for (const dlt_option *o = cli->opts; o->type != DLT_OPTT_END; o++) {
        if (o->type == DLT_OPTT_GROUP) {
            fprintf(f, "%s\n", o->help);
            continue;
        }
        char lab[160];
        int len = opt_label(o, lab, sizeof lab);
        fputs(lab, f);
        const char *h = o->help ? o->help : "";
        if (len + 2 > COL) fprintf(f, "\n%*s", COL, "");
        else fprintf(f, "%*s", COL - len, "");
        for (; *h; h++) {
            fputc(*h, f);
            if (*h == '\n' && h[1]) fprintf(f, "%*s", COL, "");
        }
        fputc('\n', f);
    }
    if (cli->footer && *cli->footer) fprintf(f, "%s\n", cli->footer);
}
