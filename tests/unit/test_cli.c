/* test_cli.c - dlt/cli.h: values of every type, ranges, choices, given
 * bits and counts, GNU argument forms (--a=b, --a b, -bN, -b N, bundles,
 * operands anywhere, --), usage errors (exit code, nothing parsed after),
 * and the --help text listing every option. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dlt/cli.h"
#include "dlt/core.h"

static const char *s_out;
static int64_t s_batch;
static int s_n, s_flag, s_verb, s_choice, s_calls;
static double s_lr;
static float s_mom;
static unsigned s_given;
static const char *const kinds[] = {"ce", "dice", NULL};

static int even(const dlt_option *o, const char *arg)
{
    (void)o;
    s_calls++;
    if (atoi(arg) % 2) return dlt_err(DLT_EINVAL, "'%s' is odd", arg);
    return 0;
}

static char order[64];
static int step(const dlt_option *o, const char *arg)
{
    size_t k = strlen(order);
    snprintf(order + k, sizeof order - k, "%s%s%s;", o->long_name, arg ? "=" : "", arg ? arg : "");
    return 0;
}

static dlt_option opts[] = {
    DLT_OPT_GROUP("Group one:"),
    DLT_OPT_STR('o', "output", &s_out, "FILE", "where"),
    DLT_OPT_I64('b', "batch", &s_batch, "N", 1, 4096, "patches\nsecond line"),
    DLT_OPT_INT('n', "count", &s_n, "N", 0, 10, "a count"),
    DLT_OPT_DBL(0, "lr", &s_lr, "X", 0, HUGE_VAL, DLT_OPT_LO_OPEN, "learning rate"),
    DLT_OPT_FLT(0, "momentum", &s_mom, "X", 0, 1, DLT_OPT_HI_OPEN, "momentum"),
    DLT_OPT_FLAG(0, "nesterov", &s_flag, 7, "a flag"),
    DLT_OPT_CHOICE(0, "loss", &s_choice, "ce|dice", kinds, "the loss"),
    DLT_OPT_CALL(0, "even", even, "N", "an even number"),
    DLT_OPT_CALL0(0, "whiten", step, "a step without a value"),
    DLT_OPT_CALL(0, "clip", step, "LO,HI", "a step with one"),
    DLT_OPT_CALL_OPT("tta", step, "AXES", "a step with an optional value"),
    DLT_OPT_COMMON(&s_verb),
    DLT_OPT_END,
};
static const dlt_cli cli = {"test-cli", "[OPTIONS] FILE...", "About.", opts, "Footer.", &s_given};

static void reset(void)
{
    s_out = NULL, s_batch = 4, s_n = 0, s_flag = 0, s_verb = 1, s_choice = -1, s_calls = 0, s_lr = 1e-3, s_mom = 0.9f;
    s_given = 0;
    order[0] = 0;
    opts[4].given = 1u << 3; /* --lr */
}

/* parse a space-separated command line; returns dlt_cli_parse's result */
static int parse(const char *line, char ***argv_out, int *argc_out)
{
    static char buf[512], *argv[32];
    snprintf(buf, sizeof buf, "test-cli %s", line);
    int argc = 0;
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    if (argv_out) *argv_out = argv;
    if (argc_out) *argc_out = argc;
    reset();
    /* usage errors go to stderr: keep the TAP output clean */
    fflush(stderr);
    int saved = dup(2);
    FILE *devnull = freopen("/dev/null", "w", stderr);
    (void)devnull;
    int r = dlt_cli_parse(&cli, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return r;
}

int main(void)
{
    dlt_log_init("test-cli");
    char **av;
    int ac;
    int r = parse("-o out.dltm in1 --batch=8 -n3 --lr 0.01 --momentum=0.5 --nesterov --loss dice --even 4 in2 -qv", &av, &ac);
    CHECK(r == ac - 2 && !strcmp(av[r], "in1") && !strcmp(av[r + 1], "in2"), "operands anywhere, moved last (first %d)", r);
    CHECK(s_out && !strcmp(s_out, "out.dltm") && s_batch == 8 && s_n == 3, "string, int64 (--a=b), int (-nN)");
    CHECK(fabs(s_lr - 0.01) < 1e-12 && s_mom == 0.5f && s_flag == 7 && s_choice == 1 && s_calls == 1,
          "double, float, flag value, choice index, callback");
    CHECK(s_verb == DLT_LOG_QUIET + 1, "-qv bundled: quiet then one more (%d)", s_verb);
    CHECK(s_given == 1u << 3 && opts[4].seen == 1 && dlt_cli_option(&cli, "batch")->seen == 1,
          "given bits and seen counts");
    r = parse("-b 16 -b 32 -- -not-an-option", &av, &ac);
    CHECK(r == ac - 1 && s_batch == 32 && !strcmp(av[r], "-not-an-option") && dlt_cli_option(&cli, "batch")->seen == 2,
          "-b N twice keeps the last; -- ends the options");
    const char *bad[] = {"--batch 0", "--batch 4097", "--batch x", "-n 11", "--lr 0", "--lr -1", "--lr nan",
                         "--momentum 1", "--loss focal", "--even 3", "--bogus", "-Z", "--batch", "--nesterov=1",
                         "--lr 1e-3x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(parse(bad[i], NULL, NULL) == DLT_CLI_EXIT_USAGE, "'%s' is a usage error", bad[i]);
    CHECK(parse("--lr 5 --batch 0 --count 2", NULL, NULL) == DLT_CLI_EXIT_USAGE && s_n == 0,
          "parsing stops at the first error");
    r = parse("--clip 1,2 in --whiten --tta --tta=x,y --whiten", &av, &ac);
    CHECK(r == ac - 1 && !strcmp(order, "clip=1,2;whiten;tta;tta=x,y;whiten;"),
          "callbacks run in command-line order; optional values only with = (%s)", order);
    CHECK(parse("--whiten=1", NULL, NULL) == DLT_CLI_EXIT_USAGE, "an argument-less callback refuses a value");
    /* --help: every option, the groups, the footer; continued lines indented */
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    dlt_cli_help(&cli, f);
    fclose(f);
    int all = 1;
    for (const dlt_option *o = opts; o->type != DLT_OPTT_END; o++) {
        char k[64];
        if (!o->long_name) continue;
        snprintf(k, sizeof k, "--%s", o->long_name);
        if (!strstr(txt, k)) all = 0;
    }
    CHECK(all && strstr(txt, "Usage: test-cli [OPTIONS] FILE...") && strstr(txt, "Group one:") && strstr(txt, "Footer.") &&
              strstr(txt, "  -b, --batch N") && strstr(txt, "\n                           second line\n") && strstr(txt, "--tta[=AXES]"),
          "--help lists every option with its argument, groups, footer, indented continuations");
    free(txt);
    return check_done();
}
