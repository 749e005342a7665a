/* dlt-plan - measure a dataset (a dlt-sample list) and write an experiment
 * plan: target spacing, normalisation, patch, batch, network scales and
 * steps for a memory and time budget (nnU-Net's planning, lib/data/plan.c).
 * The plan is a small text file (dlt-plan(1)); dlt-normalize --plan FILE
 * applies its normalisation, and the pipelines read the rest. */
#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/plan.h"
#include "dlt/vlist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *list, *out = "-", *device = "cpu", *speed;
static dlt_plan_budget b;
static int verbosity = DLT_LOG_INFO;
static const char *const modalities[] = {"ct", "mr", NULL};
static int modality = -1;

static dlt_option opts[] = {
    DLT_OPT_STR('l', "list", &list, "FILE", "the cases (required)"),
    DLT_OPT_STR('o', "output", &out, "FILE", "the plan (default stdout)"),
    DLT_OPT_CHOICE(0, "modality", &modality, "ct|mr", modalities,
                   "normalisation kind (default: CT when the images hold\nair in Hounsfield units, below -500)"),
    DLT_OPT_DBL(0, "memory", &b.memory_mb, "MB", 0, HUGE_VAL, DLT_OPT_LO_OPEN,
                "activation memory of a training step (default 4096)"),
    DLT_OPT_DBL(0, "minutes", &b.minutes, "M", 0, HUGE_VAL, DLT_OPT_LO_OPEN, "training time (default 20)"),
    DLT_OPT_STR(0, "speed", &speed, "VOX|measure",
                "training speed in patch voxels per second (default\n400000: two AVX-512 cores), or 'measure': time a few\n"
                "training steps of the planned network here"),
    DLT_OPT_STR('d', "device", &device, "D", "for --speed measure: cpu (default), cuda..."),
    DLT_OPT_INT(0, "max-batch", &b.max_batch, "N", 2, 1024, "(default 8)"),
    DLT_OPT_COMMON(&verbosity),
    DLT_OPT_END,
};

static const dlt_cli cli = {
    "dlt-plan", "--list LIST [OPTIONS] [-o PLAN]",
    "Measure the labelled cases of LIST (TSV id, image(s), label, as dlt-sample\n"
    "reads) and write a plan (text, to PLAN or stdout): target spacing,\n"
    "normalisation (a dlt-normalize plan), patch, batch, network scales and\n"
    "training steps for the budget. dlt-normalize --plan PLAN applies it.",
    opts, "See dlt-plan(1).", NULL};

static void on_case(int done, int total) { dlt_log(DLT_LOG_VERBOSE, "measured %d of %d cases", done, total); }

int main(int argc, char **argv)
{
    dlt_log_init("dlt-plan");
    dlt_stdout_check_at_exit();
    dlt_plan_budget_default(&b);
    verbosity = dlt_log_level();
    const int first = dlt_cli_parse(&cli, argc, argv);
    if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
    dlt_log_set_level(verbosity);
    if (modality >= 0) b.modality = modalities[modality];
    int measure = speed && !strcmp(speed, "measure");
    if (speed && !measure) {
        char *e;
        errno = 0;
        b.voxels_per_s = strtod(speed, &e);
        if (e == speed || *e || errno || !(b.voxels_per_s > 0 && b.voxels_per_s < 1e12))
            return dlt_usage_error("--speed: '%s' is not a positive number or 'measure'", speed);
    }
    if (!list) return dlt_usage_error("no cases: give --list LIST");
    if (first < argc) return dlt_usage_error("unexpected operand '%s'", argv[first]);

    dlt_vlist l;
    dlt_fingerprint fp;
    dlt_plan p;
    dlt_outfile o;
    int rc = dlt_vlist_read(list, &l);
    if (rc) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    rc = dlt_fingerprint_measure(&l, &fp, on_case);
    if (!rc) {
        rc = dlt_plan_make(&fp, &b, &p);
        /* measured: the speed of the plan made at the default speed, then
         * the plan again at the measured one */
        if (!rc && measure && (rc = dlt_plan_measure_speed(&p, fp.channels, fp.classes, device, &b.voxels_per_s)) == 0) {
            dlt_log(DLT_LOG_INFO, "measured %.0f patch voxels/s training on %s", b.voxels_per_s, device);
            rc = dlt_plan_make(&fp, &b, &p);
        }
        if (!rc) p.speed = b.voxels_per_s, p.speed_measured = measure;
        if (!rc && (rc = dlt_outfile_open(&o, out)) == 0) {
            if ((rc = dlt_plan_write(o.f, &fp, &p, list)) == 0) rc = dlt_outfile_commit(&o);
            else dlt_outfile_abort(&o);
        }
        if (!rc)
            dlt_log(DLT_LOG_INFO, "%d cases, %s: patch %d,%d,%d, batch %d, %d levels, %lld steps; normalize %s",
                    fp.ncases, p.modality, p.patch[0], p.patch[1], p.patch[2], p.batch, p.levels, (long long)p.steps,
                    p.normalize);
        dlt_fingerprint_free(&fp);
    }
    dlt_vlist_free(&l);
    if (rc) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    return 0;
}
