/* dlt-normalize - preprocess a volume (NIfTI) or a patch stream: intensity
 * normalisation, resampling, crop-or-pad, reorientation, chained in the
 * order given. The work is lib/normalize*.c; this file maps options to a
 * plan, detects the input kind and records what was done. */
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/normalize.h"
#include "dlt/patches.h"
#include "dlt/plan.h"
#include "dlt/volume.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dlt-normalize [OPTIONS] METHOD... [INPUT]\n"
            "Preprocess a NIfTI volume or a patch stream (told apart by content).\n"
            "INPUT is a path or - (stdin, the default); output goes to -o or stdout.\n"
            "\n"
            "Methods, applied in the order given (each channel separately):\n"
            "  --whiten               zero mean, unit variance (DLTK whitening)\n"
            "  --zero-one             rescale to [0,1] (DLTK normalise_zero_one)\n"
            "  --one-one              rescale to [-1,1] (DLTK normalise_one_one)\n"
            "  --clip LO,HI           clip to fixed values\n"
            "  --clip-percentile PLO,PHI  clip at percentiles (0..100) of the image\n"
            "  --ct LO,HI             CT window: clip to [LO,HI] HU, map to [0,1]\n"
            "  --ct-sym LO,HI         CT window mapped to [-1,1]\n"
            "  --spacing X,Y,Z        resample to this voxel size in mm (volumes only)\n"
            "  --size X,Y,Z           crop or pad, centred, to this size (volumes only)\n"
            "  --reorient CODE        permute/flip axes to CODE, e.g. RAS, LPS (volumes only)\n"
            "  --zscore MEAN,STD      (x - MEAN) / STD, fixed values (e.g. a dataset's)\n"
            "  --plan TEXT|FILE       steps in text form, e.g. 'ct=-1000,800;spacing=2,2,2',\n"
            "                         or a dlt-plan file (its 'normalize' steps)\n"
            "\n"
            "Modifiers (apply to every step, wherever given):\n"
            "  --nonzero              whiten over nonzero voxels only (zeros stay 0)\n"
            "  --mask FILE            whiten over the mask's nonzero voxels (outside -> 0)\n"
            "  --interp linear|bspline|nearest   resampling of images (default linear)\n"
            "  --label                INPUT is a label volume: geometry only, nearest\n"
            "  --no-record            leave the description / stream header unchanged\n"
            "\n"
            "  -o, --output FILE      output path (default -: stdout, never a terminal)\n"
            "  -q, --quiet  -v, --verbose  -h, --help  --version\n"
            "See dlt-normalize(1).\n");
}

enum {
    O_WHITEN = 256, O_ZERO_ONE, O_ONE_ONE, O_CLIP, O_CLIP_PCT, O_CT, O_CT_SYM, O_ZSCORE, O_SPACING, O_SIZE, O_REORIENT, O_PLAN,
    O_NONZERO, O_MASK, O_INTERP, O_LABEL, O_NORECORD, O_VERSION
};

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

int main(int argc, char **argv)
{
    dlt_log_init("dlt-normalize");
    dlt_stdout_check_at_exit();
    static const struct option opts[] = {
        {"whiten", no_argument, 0, O_WHITEN},
        {"zero-one", no_argument, 0, O_ZERO_ONE},
        {"one-one", no_argument, 0, O_ONE_ONE},
        {"clip", required_argument, 0, O_CLIP},
        {"clip-percentile", required_argument, 0, O_CLIP_PCT},
        {"ct", required_argument, 0, O_CT},
        {"ct-sym", required_argument, 0, O_CT_SYM},
        {"zscore", required_argument, 0, O_ZSCORE},
        {"spacing", required_argument, 0, O_SPACING},
        {"size", required_argument, 0, O_SIZE},
        {"reorient", required_argument, 0, O_REORIENT},
        {"plan", required_argument, 0, O_PLAN},
        {"nonzero", no_argument, 0, O_NONZERO},
        {"mask", required_argument, 0, O_MASK},
        {"interp", required_argument, 0, O_INTERP},
        {"label", no_argument, 0, O_LABEL},
        {"no-record", no_argument, 0, O_NORECORD},
        {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, O_VERSION},
        {0, 0, 0, 0},
    };
    dlt_norm_plan plan;
    int from_plan[DLT_NORM_MAX_STEPS] = {0}; /* step i came from --plan */
    memset(&plan, 0, sizeof plan);
    const char *out = "-", *maskpath = NULL;
    int nonzero = 0, is_label = 0, record = 1, interp = -1, verbosity = dlt_log_level();
    int c;
    /* getopt_long returns options in command-line order (it permutes only
     * the operands), which is the order the steps run in. */
    while ((c = getopt_long(argc, argv, "o:qvh", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case O_WHITEN: rc = dlt_norm_plan_add(&plan, "whiten", NULL); break;
        case O_ZERO_ONE: rc = dlt_norm_plan_add(&plan, "zero-one", NULL); break;
        case O_ONE_ONE: rc = dlt_norm_plan_add(&plan, "one-one", NULL); break;
        case O_CLIP: rc = dlt_norm_plan_add(&plan, "clip", optarg); break;
        case O_CLIP_PCT: rc = dlt_norm_plan_add(&plan, "clip-pct", optarg); break;
        case O_CT: rc = dlt_norm_plan_add(&plan, "ct", optarg); break;
        case O_CT_SYM: rc = dlt_norm_plan_add(&plan, "ct-sym", optarg); break;
        case O_SPACING: rc = dlt_norm_plan_add(&plan, "spacing", optarg); break;
        case O_SIZE: rc = dlt_norm_plan_add(&plan, "size", optarg); break;
        case O_REORIENT: rc = dlt_norm_plan_add(&plan, "reorient", optarg); break;
        case O_ZSCORE: rc = dlt_norm_plan_add(&plan, "zscore", optarg); break;
        case O_PLAN: {
            dlt_norm_plan q;
            rc = dlt_plan_normalize(optarg, &q);
            for (int i = 0; !rc && i < q.n; i++) {
                if (plan.n >= DLT_NORM_MAX_STEPS) rc = dlt_err(DLT_EINVAL, "too many steps");
                else from_plan[plan.n] = 1, plan.step[plan.n++] = q.step[i];
            }
            break;
        }
        case O_NONZERO: nonzero = 1; break;
        case O_MASK: maskpath = optarg; break;
        case O_INTERP:
            if (strcmp(optarg, "linear") == 0) interp = DLT_INTERP_LINEAR;
            else if (strcmp(optarg, "bspline") == 0) interp = DLT_INTERP_BSPLINE;
            else if (strcmp(optarg, "nearest") == 0) interp = DLT_INTERP_NEAREST;
            else rc = dlt_err(DLT_EINVAL, "--interp: '%s' is not linear, bspline or nearest", optarg);
            break;
        case O_LABEL: is_label = 1; break;
        case O_NORECORD: record = 0; break;
        case 'o': out = optarg; break;
        case 'q': verbosity = DLT_LOG_QUIET; break;
        case 'v': verbosity++; break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: printf("dlt-normalize %s\n", DLT_VERSION); return 0;
        default: usage(stderr); return 2;
        }
        if (rc) {
            dlt_error("%s", dlt_errmsg());
            return 2;
        }
    }
    dlt_log_set_level(verbosity);
    if (optind < argc - 1) {
        dlt_error("more than one input given ('%s', '%s'); see --help", argv[optind], argv[optind + 1]);
        return 2;
    }
    const char *in = optind < argc ? argv[optind] : "-";
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
