/* dlt/cli.h - a tool's command line from one table: parsing, --help and
 * which options were given (after git's parse-options and Netpbm's option
 * tables). Each option is declared once, with its value's type, range and
 * help; -q, -v, -h and --version are DLT_OPT_COMMON.
 *
 *   static int64_t batch = 4;
 *   static const char *out;
 *   static dlt_option opts[] = {
 *       DLT_OPT_GROUP("Files:"),
 *       DLT_OPT_STR('o', "output", &out, "FILE", "the model (required)"),
 *       DLT_OPT_I64('b', "batch", &batch, "N", 1, 4096, "patches per step (default 4)"),
 *       DLT_OPT_COMMON(&verbosity),
 *       DLT_OPT_END,
 *   };
 *   static const dlt_cli cli = {"dlt-train", "[OPTIONS] -o MODEL.dltm [STREAM]",
 *                               "Train a network on a patch stream ...", opts, "See dlt-train(1)."};
 *   int first = dlt_cli_parse(&cli, argc, argv);   // argv[first..] are the operands
 *   if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
 *
 * Errors are one line, "PROG: error: --NAME: bad value 'ARG' (RANGE)",
 * then "Try 'PROG --help'." (dlt_usage_error), exit status 2. A value
 * option given twice keeps the last. dlt_option.seen counts the times an
 * option was given; DLT_OPT_GIVEN(opt) adds a bit to *cli->given so that a
 * tool can tell a default from a choice (dlt-train's --resume merge). */
#ifndef DLT_CLI_H
#define DLT_CLI_H

#include <math.h> /* HUGE_VAL: an open-ended range */
#include <stdint.h>
#include <stdio.h>

enum {
    DLT_OPTT_END = 0,
    DLT_OPTT_GROUP,   /* a heading in --help */
    DLT_OPTT_FLAG,    /* int *value = ival (no argument) */
    DLT_OPTT_COUNT,   /* int *value += 1 (-v) */
    DLT_OPTT_STR,     /* const char **value = the argument */
    DLT_OPTT_I64,     /* int64_t *value, lo..hi inclusive */
    DLT_OPTT_INT,     /* int *value, lo..hi inclusive */
    DLT_OPTT_DBL,     /* double *value, finite, in the range (see flags) */
    DLT_OPTT_FLT,     /* float *value, as DBL */
    DLT_OPTT_CHOICE,  /* int *value = the index of the argument in choices (NULL-terminated) */
    DLT_OPTT_CALL,    /* call(opt, arg): 0, or an error message in dlt_errmsg() */
    DLT_OPTT_CALL_OPT, /* as CALL with an optional argument (--name or --name=ARG; arg NULL without) */
    DLT_OPTT_CALL0,   /* as CALL without an argument (arg NULL): an action in command-line order */
    DLT_OPTT_HELP,    /* -h: --help text to stdout, exit 0 */
    DLT_OPTT_VERSION, /* --version: "PROG VERSION", exit 0 */
    DLT_OPTT_QUIET,   /* -q: int *value = DLT_LOG_QUIET */
};

/* range flags of DBL/FLT: the bound itself excluded */
enum { DLT_OPT_LO_OPEN = 1, DLT_OPT_HI_OPEN = 2 };

typedef struct dlt_option dlt_option;
struct dlt_option {
    int type;
    int short_name;       /* 'b', or 0 */
    const char *long_name; /* "batch" */
    void *value;
    const char *argh;     /* the argument's name in --help ("N"); NULL: none */
    const char *help;     /* may hold newlines: continued lines are indented */
    double lo, hi;        /* I64/INT/DBL/FLT ranges */
    int flags;            /* DLT_OPT_LO_OPEN, DLT_OPT_HI_OPEN */
    int ival;             /* FLAG: the value stored */
    const char *const *choices;
    int (*call)(const dlt_option *opt, const char *arg);
    unsigned given;       /* OR-ed into *cli->given when seen */
    int seen;             /* times given (set by the parser) */
};

typedef struct dlt_cli {
    const char *prog;     /* "dlt-train" */
    const char *usage;    /* after "Usage: PROG " */
    const char *about;    /* paragraph(s) under the usage line */
    dlt_option *opts;     /* ends with DLT_OPT_END */
    const char *footer;   /* last lines of --help ("See dlt-train(1).") */
    unsigned *given;      /* NULL, or receives the given bits */
} dlt_cli;

/* Parse argv (GNU style: options and operands mixed, "--" ends options,
 * --name=value or --name value, -bN or -b N, bundled flags -qv). Returns
 * the index of the first operand (argv is permuted so that the operands
 * come last), DLT_CLI_EXIT_OK after --help/--version (printed), or
 * DLT_CLI_EXIT_USAGE after a usage error (printed). */
enum { DLT_CLI_EXIT_OK = -1, DLT_CLI_EXIT_USAGE = -2 };
int dlt_cli_parse(const dlt_cli *cli, int argc, char **argv);
/* The --help text. */
void dlt_cli_help(const dlt_cli *cli, FILE *f);
/* The option named `long_name` in the table (NULL if none). */
const dlt_option *dlt_cli_option(const dlt_cli *cli, const char *long_name);

#define DLT_OPT_END {.type = DLT_OPTT_END}
#define DLT_OPT_GROUP(title) {.type = DLT_OPTT_GROUP, .help = (title)}
#define DLT_OPT_FLAG(s, l, v, val, h) {.type = DLT_OPTT_FLAG, .short_name = (s), .long_name = (l), .value = (v), .ival = (val), .help = (h)}
#define DLT_OPT_STR(s, l, v, a, h) {.type = DLT_OPTT_STR, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), .help = (h)}
#define DLT_OPT_I64(s, l, v, a, min, max, h)                                                                       \
    {.type = DLT_OPTT_I64, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), .lo = (min), .hi = (max), .help = (h)}
#define DLT_OPT_INT(s, l, v, a, min, max, h)                                                                       \
    {.type = DLT_OPTT_INT, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), .lo = (min), .hi = (max), .help = (h)}
#define DLT_OPT_DBL(s, l, v, a, min, max, fl, h)                                                                   \
    {.type = DLT_OPTT_DBL, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), .lo = (min), .hi = (max),  \
     .flags = (fl), .help = (h)}
#define DLT_OPT_FLT(s, l, v, a, min, max, fl, h)                                                                   \
    {.type = DLT_OPTT_FLT, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), .lo = (min), .hi = (max),  \
     .flags = (fl), .help = (h)}
#define DLT_OPT_CHOICE(s, l, v, a, list, h)                                                                        \
    {.type = DLT_OPTT_CHOICE, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), .choices = (list), .help = (h)}
#define DLT_OPT_CALL(s, l, fn, a, h) {.type = DLT_OPTT_CALL, .short_name = (s), .long_name = (l), .call = (fn), .argh = (a), .help = (h)}
#define DLT_OPT_CALL0(s, l, fn, h) {.type = DLT_OPTT_CALL0, .short_name = (s), .long_name = (l), .call = (fn), .help = (h)}
#define DLT_OPT_CALL_OPT(l, fn, a, h) {.type = DLT_OPTT_CALL_OPT, .long_name = (l), .call = (fn), .argh = (a), .help = (h)}
/* -q, -v, -h, --version; *verbosity starts at the tool's default level */
#define DLT_OPT_COMMON(verbosity)                                                                                  \
    {.type = DLT_OPTT_QUIET, .short_name = 'q', .long_name = "quiet", .value = (verbosity), .help = "errors only"}, \
    {.type = DLT_OPTT_COUNT, .short_name = 'v', .long_name = "verbose", .value = (verbosity),                      \
     .help = "more messages (again: debug)"},                                                                       \
    {.type = DLT_OPTT_HELP, .short_name = 'h', .long_name = "help", .help = "this help"},                          \
    {.type = DLT_OPTT_VERSION, .long_name = "version", .help = "the version"}

#endif
