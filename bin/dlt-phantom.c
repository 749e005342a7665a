/* dlt-phantom - write synthetic abdominal CT subjects with the 13 BTCV organ
 * labels: DIR/img0001.nii.gz + DIR/label0001.nii.gz ..., DIR/list.tsv (the
 * list file dlt-sample reads) and DIR/classes.tsv. The generator is
 * lib/image/phantom.c; this file is options and files. On failure every file this
 * run wrote is removed again (and DIR, when this run made it). */
#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/phantom.h"
#include "dlt/volume.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static dlt_phantom_opts po;
static int64_t count = 10, first = 1;
static double noise = 20;
static int level = DLT_LOG_INFO;
static const char *outdir;

static int opt_seed(const dlt_option *o, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[0] == '-') return dlt_err(DLT_EINVAL, "'%s': expected a non-negative integer", s);
    po.seed = v;
    return 0;
}

static int opt_size(const dlt_option *o, const char *s)
{
    int v[3];
    if (dlt_parse_int3(s, 4, 4096, v)) return DLT_EINVAL;
    po.nx = v[0], po.ny = v[1], po.nz = v[2];
    return 0;
}

static int opt_spacing(const dlt_option *o, const char *s)
{
    double v[3];
    int n;
    if (dlt_parse_doubles(s, 3, v, &n) || n == 2) return dlt_err(DLT_EINVAL, "'%s': expected S or X,Y,Z in mm", s);
    if (n == 1) v[1] = v[2] = v[0];
    for (int i = 0; i < 3; i++)
        if (!(v[i] >= 0.05 && v[i] <= 50)) return dlt_err(DLT_EINVAL, "'%s': voxel sizes must be in [0.05, 50] mm", s);
    memcpy(po.spacing, v, sizeof v);
    return 0;
}

static dlt_option opts[] = {
    DLT_OPT_STR('o', "output", &outdir, "DIR", "where to write (made if missing; its parent must exist)"),
    DLT_OPT_I64('n', "count", &count, "N", 1, 100000, "number of subjects (default 10)"),
    DLT_OPT_I64(0, "first", &first, "K", 1, 9999999,
                "number of the first subject (default 1); subject K is\nthe same whatever -n, so --first 21 makes a disjoint set"),
    DLT_OPT_CALL('s', "seed", opt_seed, "S", "random seed (default 1)"),
    DLT_OPT_CALL(0, "size", opt_size, "X,Y,Z", "grid in voxels, or N for NxNxN (default 96,96,64)"),
    DLT_OPT_CALL(0, "spacing", opt_spacing, "S", "voxel size in mm, S or X,Y,Z (default 3)"),
    DLT_OPT_DBL(0, "noise", &noise, "HU", 0, 1000, 0, "image noise standard deviation (default 20)"),
    DLT_OPT_COMMON(&level),
    DLT_OPT_END,
};

static const dlt_cli cli = {
    "dlt-phantom", "[options] -o DIR",
    "Write synthetic abdominal CT volumes (float32 HU, LPS) with the 13 BTCV organ\n"
    "labels (uint8): DIR/imgNNNN.nii.gz, DIR/labelNNNN.nii.gz, DIR/list.tsv and\n"
    "DIR/classes.tsv. The same options always give the same bytes.",
    opts, "See dlt-phantom(1).", NULL};

/* Files written so far, removed again if the run fails. */
static char **written;
static int nwritten;
static int made_dir;

static void cleanup(void)
{
    for (int i = nwritten - 1; i >= 0; i--) unlink(written[i]);
    if (made_dir) rmdir(outdir);
}

static int remember(const char *path)
{
    char **w = realloc(written, (size_t)(nwritten + 1) * sizeof *w);
    if (!w) return dlt_err(DLT_ENOMEM, "out of memory");
    written = w;
    written[nwritten++] = strdup(path);
    return 0;
}

static int write_text(const char *path, const char *text)
{
    dlt_outfile o;
    int rc = dlt_outfile_open(&o, path);
    if (rc) return rc;
    rc = dlt_write_all(o.f, text, strlen(text), path);
    if (rc) {
        dlt_outfile_abort(&o);
        return rc;
    }
    rc = dlt_outfile_commit(&o);
    return rc ? rc : remember(path);
}

int main(int argc, char **argv)
{
    dlt_log_init("dlt-phantom");
    dlt_stdout_check_at_exit();
    dlt_phantom_defaults(&po);
    noise = po.noise;
    const int optind1 = dlt_cli_parse(&cli, argc, argv);
    if (optind1 < 0) return optind1 == DLT_CLI_EXIT_OK ? 0 : 2;
    po.noise = noise;
    if (optind1 < argc) return dlt_usage_error("unexpected argument '%s'", argv[optind1]);
    if (!outdir || !*outdir) return dlt_usage_error("%s", "-o DIR is required");
    if (first + count - 1 > 9999999) return dlt_usage_error("%s", "--first + -n too large");
    if (getenv("DLT_LOG") == NULL) dlt_log_set_level(level);

    struct stat st;
    if (stat(outdir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            dlt_error("%s: not a directory", outdir);
            return 1;
        }
    } else if (mkdir(outdir, 0777) != 0) {
        dlt_error("%s: cannot create: %s", outdir, strerror(errno));
        return 1;
    } else {
        made_dir = 1;
    }

    size_t cap = 64 + (size_t)count * 64;
    char *list = malloc(cap), *classes = malloc(1024);
    size_t len = (size_t)snprintf(list, cap, "id\timage\tlabel\n");
    size_t cl = (size_t)snprintf(classes, 1024, "id\tname\n");
    for (int i = 0; i < DLT_PHANTOM_NCLASSES; i++) cl += (size_t)snprintf(classes + cl, 1024 - cl, "%d\t%s\n", i, dlt_phantom_class_name(i));

    dlt_progress pr;
    dlt_progress_start(&pr, "subjects", count);
    int rc = 0;
    char path[PATH_MAX];
    for (long long s = 0; s < count && !rc; s++) {
        long long k = first + s;
        dlt_volume img, lab;
        rc = dlt_phantom_make(&po, k - 1, &img, &lab);
        if (rc) break;
        char desc[80];
        snprintf(desc, sizeof desc, "dlt-phantom %s seed %llu subject %lld", DLT_VERSION, (unsigned long long)po.seed, k);
        snprintf(path, sizeof path, "%s/img%04lld.nii.gz", outdir, k);
        rc = dlt_volume_write(path, &img, desc);
        if (!rc) rc = remember(path);
        snprintf(path, sizeof path, "%s/label%04lld.nii.gz", outdir, k);
        if (!rc) rc = dlt_volume_write(path, &lab, desc);
        if (!rc) rc = remember(path);
        dlt_volume_free(&img);
        dlt_volume_free(&lab);
        len += (size_t)snprintf(list + len, cap - len, "%04lld\timg%04lld.nii.gz\tlabel%04lld.nii.gz\n", k, k, k);
        dlt_progress_update(&pr, s + 1, NULL);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/classes.tsv", outdir);
        rc = write_text(path, classes);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/list.tsv", outdir);
        rc = write_text(path, list);
    }
    if (rc) {
        if (pr.tty) fputc('\n', stderr);
        dlt_error("%s", dlt_errmsg());
        cleanup();
    } else if (dlt_log_level() >= DLT_LOG_VERBOSE) {
        dlt_progress_end(&pr, NULL);
        dlt_log(DLT_LOG_VERBOSE, "wrote %lld subjects to %s", (long long)count, outdir);
    } else if (pr.tty) {
        dlt_progress_end(&pr, NULL);
    }
    for (int i = 0; i < nwritten; i++) free(written[i]);
    free(written);
    free(list);
    free(classes);
    return rc ? 1 : 0;
}
