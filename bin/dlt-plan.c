/* dlt-plan - measure a dataset (a dlt-sample list) and write an experiment
 * plan: target spacing, normalisation, patch, batch, network scales and
 * steps for a memory and time budget (nnU-Net's planning, lib/plan.c).
 * The plan is a small text file (dlt-plan(1)); dlt-normalize --plan FILE
 * applies its normalisation, and the pipelines read the rest. */
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/plan.h"
#include "dlt/vlist.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dlt-plan --list LIST [OPTIONS] [-o PLAN]\n"
            "Measure the labelled cases of LIST (TSV id, image(s), label, as dlt-sample\n"
            "reads) and write a plan (text, to PLAN or stdout): target spacing,\n"
            "normalisation (a dlt-normalize plan), patch, batch, network scales and\n"
            "training steps for the budget. dlt-normalize --plan PLAN applies it.\n"
            "\n"
            "  -l, --list FILE        the cases (required)\n"
            "  -o, --output FILE      the plan (default stdout)\n"
            "      --modality ct|mr   normalisation kind (default: CT when the images hold\n"
            "                         air in Hounsfield units, below -500)\n"
            "      --memory MB        activation memory of a training step (default 4096)\n"
            "      --minutes M        training time (default 20)\n"
            "      --speed VOX|measure  training speed in patch voxels per second (default\n"
            "                         400000: two AVX-512 cores), or 'measure': time a few\n"
            "                         training steps of the planned network here\n"
            "  -d, --device D         for --speed measure: cpu (default), cuda...\n"
            "      --max-batch N      (default 8)\n"
            "  -q, --quiet  -v, --verbose  -h, --help  --version\n"
            "See dlt-plan(1).\n");
}

static int positive(const char *s, double *v)
{
    char *e;
    errno = 0;
    *v = strtod(s, &e);
    return e == s || *e || errno || !(*v > 0 && *v < 1e12) ? -1 : 0;
}

static void on_case(int done, int total) { dlt_log(DLT_LOG_VERBOSE, "measured %d of %d cases", done, total); }

int main(int argc, char **argv)
{
    dlt_log_init("dlt-plan");
    dlt_stdout_check_at_exit();
    enum { O_MODALITY = 256, O_MEMORY, O_MINUTES, O_SPEED, O_MAXBATCH, O_VERSION };
    static const struct option opts[] = {
        {"list", required_argument, 0, 'l'},        {"output", required_argument, 0, 'o'},
        {"modality", required_argument, 0, O_MODALITY}, {"memory", required_argument, 0, O_MEMORY},
        {"minutes", required_argument, 0, O_MINUTES}, {"speed", required_argument, 0, O_SPEED},
        {"max-batch", required_argument, 0, O_MAXBATCH}, {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},           {"help", no_argument, 0, 'h'},
        {"device", required_argument, 0, 'd'},
        {"version", no_argument, 0, O_VERSION},     {0, 0, 0, 0},
    };
    const char *list = NULL, *out = "-", *device = "cpu";
    int measure = 0;
    dlt_plan_budget b;
    dlt_plan_budget_default(&b);
    int verbosity = dlt_log_level(), c;
    double x;
    while ((c = getopt_long(argc, argv, "l:o:d:qvh", opts, NULL)) != -1) {
        switch (c) {
        case 'l': list = optarg; break;
        case 'o': out = optarg; break;
        case 'd': device = optarg; break;
        case O_MODALITY:
            if (strcmp(optarg, "ct") && strcmp(optarg, "mr")) return dlt_usage_error("--modality: '%s' (ct or mr)", optarg);
            b.modality = optarg;
            break;
        case O_MEMORY:
            if (positive(optarg, &b.memory_mb)) return dlt_usage_error("--memory: '%s' is not a positive number of MB", optarg);
            break;
        case O_MINUTES:
            if (positive(optarg, &b.minutes)) return dlt_usage_error("--minutes: '%s' is not a positive number", optarg);
            break;
        case O_SPEED:
            if (!strcmp(optarg, "measure")) measure = 1;
            else if (positive(optarg, &b.voxels_per_s))
                return dlt_usage_error("--speed: '%s' is not a positive number or 'measure'", optarg);
            break;
        case O_MAXBATCH:
            if (positive(optarg, &x) || x != (int)x || x < 2 || x > 1024)
                return dlt_usage_error("--max-batch: '%s' (an integer from 2 to 1024)", optarg);
            b.max_batch = (int)x;
            break;
        case 'q': verbosity = DLT_LOG_QUIET; break;
        case 'v': verbosity++; break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: printf("dlt-plan %s\n", DLT_VERSION); return 0;
        default: fprintf(stderr, "Try 'dlt-plan --help'.\n"); return 2;
        }
    }
    dlt_log_set_level(verbosity);
    if (!list) return dlt_usage_error("no cases: give --list LIST");
    if (optind < argc) return dlt_usage_error("unexpected operand '%s'", argv[optind]);

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
