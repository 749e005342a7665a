/* dlt-normalize - preprocess a volume (NIfTI) or a patch stream: intensity
 * normalisation, resampling, crop-or-pad, reorientation, chained in the
 * order given. The work is lib/image/normalize*.c; this file maps options to a
 * plan, detects the input kind and records what was done. */
#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/normalize.h"
#include "dlt/patches.h"
#include "dlt/plan.h"
#include "dlt/volume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_stream(const char *in, const char *out, const dlt_norm_plan *plan, int record)
{
    dlt_patch_reader r;
    int rc = dlt_patch_reader_open(&r, in);
    if (rc) return rc;
    dlt_patch_header h = r.header;
    char text[2048];
    dlt_norm_describe(plan, text, sizeof text);
    if (record) {
        const char *old = dlt_patch_header_get(&r.header, "preprocessing");
        char *val = NULL;
        if (asprintf(&val, "%s%s%s", old && *old ? old : "", old && *old ? ";" : "", text) < 0) {
            dlt_patch_reader_close(&r);
            return dlt_err(DLT_ENOMEM, "out of memory");
        }
        rc = dlt_patch_header_set(&r.header, "preprocessing", val);
        free(val);
        h = r.header;
    }
    dlt_outfile o;
    if (!rc) rc = dlt_outfile_open(&o, out);
    if (rc) {
        dlt_patch_reader_close(&r);
        return rc;
    }
    dlt_patch p;
    memset(&p, 0, sizeof p);
    int64_t n = 0;
    rc = dlt_patch_write_header(o.f, &h);
    while (!rc) {
        int got = dlt_patch_read(&r, &p);
        if (got <= 0) {
            rc = got;
            break;
        }
        if ((rc = dlt_norm_apply_patch(plan, &p)) != 0) break;
        rc = dlt_patch_write(o.f, &p);
        n++;
    }
    if (!rc) rc = dlt_outfile_commit(&o);
    else dlt_outfile_abort(&o);
    dlt_patch_free(&p);
    dlt_patch_reader_close(&r);
    if (!rc) dlt_log(DLT_LOG_VERBOSE, "%lld patches: %s", (long long)n, text);
    return rc;
}

static int run_volume(const char *in, const char *out, const dlt_norm_plan *plan, int is_label, const char *maskpath,
                      int record)
{
    dlt_volume v, m;
    memset(&m, 0, sizeof m);
    double t0 = dlt_now();
    int rc = is_label ? dlt_volume_read_label(in, &v) : dlt_volume_read(in, &v);
    if (rc) return rc;
    if (maskpath && (rc = dlt_volume_read_label(maskpath, &m)) != 0) {
        dlt_volume_free(&v);
        return rc;
    }
    char code[4];
    dlt_affine_orientation(v.affine, code);
    dlt_log(DLT_LOG_VERBOSE, "%s: %lldx%lldx%lld x %lld, %.4gx%.4gx%.4g mm, %s, read in %.2f s", in, (long long)v.nx,
            (long long)v.ny, (long long)v.nz, (long long)v.nc, v.spacing[0], v.spacing[1], v.spacing[2], code, dlt_now() - t0);
    double t1 = dlt_now();
    rc = dlt_norm_apply_volume(plan, &v, maskpath ? &m : NULL);
    if (rc) dlt_err_prefix(rc, "%s", strcmp(in, "-") ? in : "stdin");
    if (!rc) {
        dlt_affine_orientation(v.affine, code);
        dlt_log(DLT_LOG_VERBOSE, "-> %lldx%lldx%lld, %.4gx%.4gx%.4g mm, %s, in %.2f s", (long long)v.nx, (long long)v.ny,
                (long long)v.nz, v.spacing[0], v.spacing[1], v.spacing[2], code, dlt_now() - t1);
        char d[80];
        if (record) dlt_norm_descrip(dlt_volume_descrip(&v), plan, d, sizeof d);
        rc = dlt_volume_write(out, &v, record ? d : NULL);
    }
    dlt_volume_free(&v);
    if (maskpath) dlt_volume_free(&m);
    return rc;
}

/* ---- the command line (dlt/cli.h): the methods run in the order given ---- */
static dlt_norm_plan plan;
static int from_plan[DLT_NORM_MAX_STEPS]; /* step i came from --plan */
static const char *out = "-", *maskpath;
static int nonzero, is_label, record = 1, interp = -1, verbosity;
static const char *const interps[] = {"linear", "bspline", "nearest", NULL};
static int interp_choice = -1;

/* a method: the step named as the option (clip-percentile is "clip-pct") */
static int opt_step(const dlt_option *o, const char *arg)
{
    return dlt_norm_plan_add(&plan, strcmp(o->long_name, "clip-percentile") ? o->long_name : "clip-pct", arg);
}

static int opt_plan(const dlt_option *o, const char *arg)
{
    dlt_norm_plan q;
    int rc = dlt_plan_normalize(arg, &q);
    for (int i = 0; !rc && i < q.n; i++) {
        if (plan.n >= DLT_NORM_MAX_STEPS) rc = dlt_err(DLT_EINVAL, "too many steps");
        else from_plan[plan.n] = 1, plan.step[plan.n++] = q.step[i];
    }
    return rc;
}

static dlt_option opts[] = {
    DLT_OPT_GROUP("Methods, applied in the order given (each channel separately):"),
    DLT_OPT_CALL0(0, "whiten", opt_step, "zero mean, unit variance (DLTK whitening)"),
    DLT_OPT_CALL0(0, "zero-one", opt_step, "rescale to [0,1] (DLTK normalise_zero_one)"),
    DLT_OPT_CALL0(0, "one-one", opt_step, "rescale to [-1,1] (DLTK normalise_one_one)"),
    DLT_OPT_CALL(0, "clip", opt_step, "LO,HI", "clip to fixed values"),
    DLT_OPT_CALL(0, "clip-percentile", opt_step, "PLO,PHI", "clip at percentiles (0..100) of the image"),
    DLT_OPT_CALL(0, "ct", opt_step, "LO,HI", "CT window: clip to [LO,HI] HU, map to [0,1]"),
    DLT_OPT_CALL(0, "ct-sym", opt_step, "LO,HI", "CT window mapped to [-1,1]"),
    DLT_OPT_CALL(0, "spacing", opt_step, "X,Y,Z", "resample to this voxel size in mm (volumes only)"),
    DLT_OPT_CALL(0, "size", opt_step, "X,Y,Z", "crop or pad, centred, to this size (volumes only)"),
    DLT_OPT_CALL(0, "reorient", opt_step, "CODE", "permute/flip axes to CODE, e.g. RAS, LPS (volumes only)"),
    DLT_OPT_CALL(0, "zscore", opt_step, "MEAN,STD", "(x - MEAN) / STD, fixed values (e.g. a dataset's)"),
    DLT_OPT_CALL(0, "plan", opt_plan, "TEXT|FILE",
                 "steps in text form, e.g. 'ct=-1000,800;spacing=2,2,2',\nor a dlt-plan file (its 'normalize' steps)"),
    DLT_OPT_GROUP("Modifiers (apply to every step, wherever given):"),
    DLT_OPT_FLAG(0, "nonzero", &nonzero, 1, "whiten over nonzero voxels only (zeros stay 0)"),
    DLT_OPT_STR(0, "mask", &maskpath, "FILE", "whiten over the mask's nonzero voxels (outside -> 0)"),
    DLT_OPT_CHOICE(0, "interp", &interp_choice, "linear|bspline|nearest", interps, "resampling of images (default linear)"),
    DLT_OPT_FLAG(0, "label", &is_label, 1, "INPUT is a label volume: geometry only, nearest"),
    DLT_OPT_FLAG(0, "no-record", &record, 0, "leave the description / stream header unchanged"),
    DLT_OPT_GROUP(""),
    DLT_OPT_STR('o', "output", &out, "FILE", "output path (default -: stdout, never a terminal)"),
    DLT_OPT_COMMON(&verbosity),
    DLT_OPT_END,
};

static const dlt_cli cli = {"dlt-normalize", "[OPTIONS] METHOD... [INPUT]",
                            "Preprocess a NIfTI volume or a patch stream (told apart by content).\n"
                            "INPUT is a path or - (stdin, the default); output goes to -o or stdout.",
                            opts, "See dlt-normalize(1).", NULL};

int main(int argc, char **argv)
{
    dlt_log_init("dlt-normalize");
    dlt_stdout_check_at_exit();
    verbosity = dlt_log_level();
    /* the parser hands options over in command-line order (it permutes only
     * the operands), which is the order the steps run in */
    const int first = dlt_cli_parse(&cli, argc, argv);
    if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
    static const int interp_kind[] = {DLT_INTERP_LINEAR, DLT_INTERP_BSPLINE, DLT_INTERP_NEAREST};
    if (interp_choice >= 0) interp = interp_kind[interp_choice];
    dlt_log_set_level(verbosity);
    if (first < argc - 1) {
        dlt_error("more than one input given ('%s', '%s'); see --help", argv[first], argv[first + 1]);
        return 2;
    }
    const char *in = first < argc ? argv[first] : "-";
    /* A label volume takes a --plan's geometry steps only (the same plan
     * serves its image), so the steps left may be none: a plain copy. */
    int planned = 0;
    if (is_label) {
        int k = 0;
        for (int i = 0; i < plan.n; i++) {
            planned |= from_plan[i];
            if (!(from_plan[i] && plan.step[i].kind >= DLT_NORM_WHITEN && plan.step[i].kind <= DLT_NORM_ZSCORE))
                plan.step[k++] = plan.step[i];
        }
        plan.n = k;
    }
    if (plan.n == 0 && !planned) {
        dlt_error("no method given (e.g. --whiten, --ct LO,HI, --spacing X,Y,Z); see --help");
        return 2;
    }
    if (nonzero && maskpath) {
        dlt_error("--nonzero and --mask exclude each other");
        return 2;
    }
    int has_whiten = 0;
    for (int i = 0; i < plan.n; i++) {
        dlt_norm_step *s = &plan.step[i];
        if (s->kind == DLT_NORM_WHITEN) {
            has_whiten = 1;
            if (nonzero) s->mode = DLT_WHITEN_NONZERO;
            if (maskpath) s->mode = DLT_WHITEN_MASK;
        }
        if (s->kind == DLT_NORM_SPACING) {
            if (is_label) s->mode = DLT_INTERP_NEAREST;
            else if (interp >= 0) s->mode = interp;
        }
    }
    if ((nonzero || maskpath) && !has_whiten) {
        dlt_error("%s given without --whiten", nonzero ? "--nonzero" : "--mask");
        return 2;
    }
    if (strcmp(out, "-") == 0 && dlt_stdout_is_tty()) {
        dlt_error("refusing to write binary data to a terminal; use -o FILE or a pipe");
        return 2;
    }

    uint8_t head[64];
    int64_t got = 0;
    int rc = dlt_peek_input(in, head, sizeof head, &got);
    if (rc) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    if (got == 0) {
        dlt_error("%s: empty input", strcmp(in, "-") ? in : "stdin");
        return 1;
    }
    if (dlt_patch_is_stream(head, got)) {
        const dlt_norm_step *s = dlt_norm_plan_whole_volume(&plan);
        if (s) {
            dlt_error("%s: a patch stream: --%s needs whole volumes; apply it to the volumes before dlt-sample",
                      strcmp(in, "-") ? in : "stdin", dlt_norm_step_name(s->kind));
            return 1;
        }
        if (is_label || maskpath) {
            dlt_error("%s: a patch stream: %s applies to volumes only", strcmp(in, "-") ? in : "stdin",
                      is_label ? "--label" : "--mask");
            return 1;
        }
        rc = run_stream(in, out, &plan, record);
    } else {
        rc = run_volume(in, out, &plan, is_label, maskpath, record && plan.n > 0);
    }
    if (rc) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    return 0;
}
