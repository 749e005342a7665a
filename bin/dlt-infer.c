/* dlt-infer - segment volumes with a trained model: sliding-window
 * inference (lib/infer.c) with the network of lib/net*.c, writing label
 * volumes (and optionally class probabilities) on exactly the input's grid.
 * See dlt-infer(1). */
#include "dlt/core.h"
#include "dlt/infer.h"
#include "dlt/io.h"
#include "dlt/model.h"
#include "dlt/net.h"
#include "dlt/normalize.h"
#include "dlt/plan.h"
#include "dlt/vlist.h"
#include "dlt/volume.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dlt-infer -m MODEL [-m MODEL2...] [OPTIONS] IN [IN2...] [-o OUT]\n"
            "       dlt-infer -m MODEL [OPTIONS] --list LIST -o DIR\n"
            "Segment a volume (IN, or - for stdin; several files are channels, in order)\n"
            "with a model from dlt-train. The label volume (uint8, or uint16 when a label\n"
            "exceeds 255) has exactly the input's geometry; it goes to OUT or stdout.\n"
            "With --list (TSV id, image..., as dlt-sample reads), DIR/ID.nii.gz per entry.\n"
            "\n"
            "  -m, --model FILE       the model (required); several -m: an ensemble, their\n"
            "                         probabilities averaged (same classes and inputs)\n"
            "  -o, --output PATH      output volume (default stdout), or the directory for --list\n"
            "  -l, --list FILE        many volumes\n"
            "  -w, --window X[,Y,Z]   sliding window in voxels (default: the training patch),\n"
            "                         or 'whole': one window over the volume padded to the\n"
            "                         network's size multiple\n"
            "      --overlap F        fraction shared by neighbouring windows (default 0.5)\n"
            "      --blend mean|gaussian  average the windows (DLTK) or weight their\n"
            "                         centres (nnU-Net, sigma 1/8 window); default mean\n"
            "  -b, --batch N          windows per forward pass (default 1 on the CPU, where\n"
            "                         larger batches are slower; 4 on cuda)\n"
            "      --tta[=AXES]       mirror over every combination of the axes (default\n"
            "                         x,y,z: 8 passes) and average\n"
            "      --pad zero|edge|reflect  padding where a window leaves the volume\n"
            "                         (default: the training stream's, else zero)\n"
            "      --plan TEXT|FILE   preprocess IN as the plan says (a dlt-plan file or\n"
            "                         dlt-normalize steps), and map the prediction back to\n"
            "                         IN's grid (probabilities interpolated, then argmax)\n"
            "      --probs FILE       also write class probabilities, a 4-D float volume\n"
            "                         (needs classes x voxels x 4 bytes of memory)\n"
            "      --largest-component[=CLASSES]  keep each class's (or each of these\n"
            "                         classes', e.g. 1,3) largest connected component\n"
            "      --connectivity 6|26  for --largest-component (default 6, as scipy)\n"
            "  -d, --device NAME      cpu, cpu-ref, cuda or auto (default cpu)\n"
            "      --precision P      fp32 (default) or bf16: convolutions in bfloat16 with\n"
            "                         fp32 sums (several times faster on CPUs with AMX;\n"
            "                         probabilities within about 0.01); cuda also tf32\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "  -q, --quiet  -v, --verbose  -h, --help  --version\n"
            "See dlt-infer(1).\n");
}

enum { O_OVERLAP = 1000, O_BLEND, O_TTA, O_PAD, O_PROBS, O_LCC, O_CONN, O_PRECISION, O_PLAN, O_VERSION };

static const struct option longopts[] = {
    {"model", required_argument, 0, 'm'},
    {"output", required_argument, 0, 'o'},
    {"list", required_argument, 0, 'l'},
    {"window", required_argument, 0, 'w'},
    {"overlap", required_argument, 0, O_OVERLAP},
    {"blend", required_argument, 0, O_BLEND},
    {"batch", required_argument, 0, 'b'},
    {"tta", optional_argument, 0, O_TTA},
    {"pad", required_argument, 0, O_PAD},
    {"probs", required_argument, 0, O_PROBS},
    {"plan", required_argument, 0, O_PLAN},
    {"largest-component", optional_argument, 0, O_LCC},
    {"connectivity", required_argument, 0, O_CONN},
    {"device", required_argument, 0, 'd'},
    {"precision", required_argument, 0, O_PRECISION},
    {"threads", required_argument, 0, 't'},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, O_VERSION},
    {0, 0, 0, 0},
};

static int pad_parse(const char *s)
{
    if (!strcmp(s, "zero") || !strcmp(s, "none")) return DLT_INFER_PAD_ZERO;
    if (!strcmp(s, "edge")) return DLT_INFER_PAD_EDGE;
    if (!strcmp(s, "reflect")) return DLT_INFER_PAD_REFLECT;
    return -1;
}

enum { MAX_MODELS = 16 };

typedef struct ctx {
    int nmodels;
    dlt_model m[MAX_MODELS]; /* m[0] speaks for all: preprocessing, patch, pad */
    dlt_net *net[MAX_MODELS];
    const char *model_path[MAX_MODELS];
    dlt_infer_ensemble ens;
    const dlt_net_config *nc;
    int64_t mult[3]; /* every member's size multiple divides it (--window whole) */
    int window_whole, window[3];
    dlt_infer_config ic;
    int have_plan;         /* --plan: preprocess here, predict, map back */
    dlt_norm_plan plan;
    const double *target; /* the plan's spacing, NULL when it keeps the grid */
    int lcc, conn;
    uint8_t *lcc_only; /* [classes]: the classes --largest-component=LIST names; NULL: all */
    dlt_progress prog;
    int show;
} ctx;

static void on_progress(void *p, int64_t done, int64_t total)
{
    ctx *c = p;
    if (c->show) dlt_progress_update(&c->prog, done, NULL);
}

/* --plan: a copy of img preprocessed by the plan, into *work. */
static int preprocess(const ctx *c, const dlt_volume *img, dlt_volume *work)
{
    int rc = dlt_volume_like(work, img, img->nc, 0);
    if (rc) return rc;
    memcpy(work->data, img->data, sizeof(float) * (size_t)(img->nc * img->nx * img->ny * img->nz));
    if ((rc = dlt_norm_apply_volume(&c->plan, work, NULL))) dlt_volume_free(work);
    return rc;
}

/* One volume: img (loaded) -> out (and probs). `name` for messages. With
 * --plan the network sees img preprocessed (resampled, maybe), and its
 * probabilities come back to img's grid before the argmax. */
static int segment(ctx *c, dlt_volume *img, const char *name, const char *out, const char *probs_path)
{
    if (img->nc != c->nc->in_channels)
        return dlt_err(DLT_ESHAPE, "%s: %lld channel%s, the model %s expects %d", name, (long long)img->nc,
                       img->nc == 1 ? "" : "s", c->model_path[0], c->nc->in_channels);
    dlt_volume work, *orig = img;
    int rc;
    if (c->have_plan) {
        if ((rc = preprocess(c, img, &work))) return dlt_err_prefix(rc, "%s: --plan", name);
        img = &work;
    }
    int back = c->have_plan && c->target; /* the grid changed: map back */
    int64_t dim[3] = {img->nx, img->ny, img->nz};
    char msg[1024];
    if (dlt_infer_intensity_check(img->data, dim[0] * dim[1] * dim[2], (int)img->nc,
                                  dlt_model_get_meta(&c->m[0], "preprocessing"), dlt_model_get_meta(&c->m[0], "intensity"), msg,
                                  sizeof msg))
        dlt_warn("%s: %s", name, msg);
    dlt_infer_config ic = c->ic;
    for (int a = 0; a < 3; a++)
        ic.window[a] = c->window_whole ? (dim[a] + c->mult[a] - 1) / c->mult[a] * c->mult[a] : c->window[a];
    ic.progress = on_progress;
    ic.progress_ctx = c;
    dlt_log(DLT_LOG_VERBOSE, "%s: %lldx%lldx%lld, window %lldx%lldx%lld, %lld windows, %.0f MiB working memory", name,
            (long long)dim[0], (long long)dim[1], (long long)dim[2], (long long)ic.window[0], (long long)ic.window[1],
            (long long)ic.window[2], (long long)dlt_infer_count(&ic, dim),
            (double)dlt_infer_work_bytes(&ic, dim) / (1 << 20));
    dlt_volume lab, pv, pw;
    memset(&lab, 0, sizeof lab);
    memset(&pv, 0, sizeof pv);
    memset(&pw, 0, sizeof pw);
    rc = dlt_volume_like(&lab, orig, 1, 1);
    if (!rc && probs_path) rc = dlt_volume_like(&pv, orig, ic.classes, 0);
    if (!rc && back) rc = dlt_volume_like(&pw, img, ic.classes, 0); /* on the network's grid */
    double t0 = dlt_now();
    if (!rc) {
        c->show = isatty(2) && dlt_log_level() >= DLT_LOG_INFO;
        if (c->show) dlt_progress_start(&c->prog, "windows", dlt_infer_count(&ic, dim));
        if (back) {
            rc = dlt_infer_volume(&ic, img->data, dim, NULL, pw.data);
            int64_t n[3] = {orig->nx, orig->ny, orig->nz};
            if (!rc)
                rc = dlt_infer_to_grid(pw.data, ic.classes, dim, n, orig->spacing, c->target, lab.label,
                                       probs_path ? pv.data : NULL);
        } else
            rc = dlt_infer_volume(&ic, img->data, dim, lab.label, probs_path ? pv.data : NULL);
        if (c->show) dlt_progress_end(&c->prog, NULL);
    }
    int64_t odim[3] = {orig->nx, orig->ny, orig->nz};
    if (!rc && c->lcc) rc = dlt_largest_component(lab.label, odim, ic.classes, c->lcc_only, c->conn);
    char desc[80];
    const char *base = strrchr(c->model_path[0], '/');
    if (c->nmodels > 1) snprintf(desc, sizeof desc, "dlt-infer ensemble of %d: %s...", c->nmodels, base ? base + 1 : c->model_path[0]);
    else snprintf(desc, sizeof desc, "dlt-infer %s", base ? base + 1 : c->model_path[0]);
    if (!rc && probs_path) rc = dlt_volume_write(probs_path, &pv, desc);
    if (!rc) rc = dlt_volume_write(out, &lab, desc);
    if (!rc)
        dlt_log(DLT_LOG_VERBOSE, "%s: %.2f s -> %s", name, dlt_now() - t0, strcmp(out, "-") ? out : "stdout");
    dlt_volume_free(&lab);
    dlt_volume_free(&pv);
    dlt_volume_free(&pw);
    if (img != orig) dlt_volume_free(&work);
    return rc;
}

static int same_meta(const dlt_model *a, const dlt_model *b, const char *key)
{
    const char *x = dlt_model_get_meta(a, key), *y = dlt_model_get_meta(b, key);
    return x == y || (x && y && !strcmp(x, y));
}

/* Read the models c->model_path[0..nmodels-1]; the members of an ensemble
 * must agree with the first on what they predict from what (classes, their
 * names, input channels, preprocessing). nc[i]: their network configs. */
static int read_models(ctx *c, dlt_net_config *nc)
{
    for (int i = 0; i < c->nmodels; i++) {
        const char *p = c->model_path[i];
        int rc = dlt_model_read(p, &c->m[i]);
        if (rc) return rc; /* its message names the file */
        if (dlt_net_config_from_model(&c->m[i], &nc[i])) return dlt_err_prefix(DLT_EFORMAT, "%s", p);
        if (i == 0) continue;
        const char *p0 = c->model_path[0], *what = NULL;
        if (nc[i].classes != nc[0].classes) what = "the number of classes";
        else if (nc[i].in_channels != nc[0].in_channels) what = "the input channels";
        else if (!same_meta(&c->m[i], &c->m[0], "class_names")) what = "the class names";
        else if (!same_meta(&c->m[i], &c->m[0], "preprocessing")) what = "the preprocessing of the training data";
        if (what)
            return dlt_err(DLT_ESHAPE, "%s and %s differ in %s: an ensemble's models must predict the same classes "
                           "from the same inputs", p0, p, what);
    }
    return 0;
}

int main(int argc, char **argv)
{
    dlt_log_init("dlt-infer");
    dlt_stdout_check_at_exit();
    int loglevel = DLT_LOG_INFO, c;
    const char *models[MAX_MODELS];
    int nmodels = 0;
    const char *out = NULL, *list = NULL, *window = NULL, *probs = NULL, *device = "cpu", *precision = NULL;
    const char *tta = NULL, *pad = NULL, *plan = NULL;
    double overlap = 0.5;
    int blend = DLT_BLEND_MEAN, batch = 0, lcc = 0, conn = 6, threads = 0, use_tta = 0;
    int lcc_cls[1024], n_lcc_cls = 0;
    while ((c = getopt_long(argc, argv, "m:o:l:w:b:d:t:qvh", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'm':
            if (nmodels == MAX_MODELS) return dlt_usage_error("more than %d models (-m)", MAX_MODELS);
            models[nmodels++] = optarg;
            break;
        case 'o': out = optarg; break;
        case 'l': list = optarg; break;
        case 'w': window = optarg; break;
        case O_OVERLAP:
            overlap = strtod(optarg, &end);
            if (*end || end == optarg || !(overlap >= 0 && overlap < 1)) return dlt_usage_error("--overlap: bad value '%s' (in [0,1))", optarg);
            break;
        case O_BLEND:
            if (!strcmp(optarg, "mean")) blend = DLT_BLEND_MEAN;
            else if (!strcmp(optarg, "gaussian")) blend = DLT_BLEND_GAUSSIAN;
            else return dlt_usage_error("--blend: '%s' (mean or gaussian)", optarg);
            break;
        case 'b':
            batch = (int)strtol(optarg, &end, 10);
            if (*end || end == optarg || batch < 1 || batch > 1024) return dlt_usage_error("--batch: bad value '%s' (1..1024)", optarg);
            break;
        case O_TTA: use_tta = 1, tta = optarg; break;
        case O_PAD:
            if (pad_parse(optarg) < 0) return dlt_usage_error("--pad: '%s' (zero, edge or reflect)", optarg);
            pad = optarg;
            break;
        case O_PROBS: probs = optarg; break;
        case O_PLAN: plan = optarg; break;
        case O_LCC:
            lcc = 1;
            if (optarg && (dlt_parse_ints(optarg, 1024, lcc_cls, &n_lcc_cls) || !n_lcc_cls))
                return dlt_usage_error("--largest-component: '%s' is not a comma list of classes", optarg);
            break;
        case O_CONN:
            conn = (int)strtol(optarg, &end, 10);
            if (*end || (conn != 6 && conn != 26)) return dlt_usage_error("--connectivity: '%s' (6 or 26)", optarg);
            break;
        case 'd': device = optarg; break;
        case O_PRECISION: precision = optarg; break;
        case 't':
            threads = (int)strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > 1024) return dlt_usage_error("--threads: bad value '%s'", optarg);
            break;
        case 'q': loglevel = DLT_LOG_QUIET; break;
        case 'v': loglevel++; break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: printf("dlt-infer %s\n", DLT_VERSION); return 0;
        default: fprintf(stderr, "Try 'dlt-infer --help'.\n"); return 2;
        }
    }
    dlt_log_set_level(loglevel);
    if (!nmodels) return dlt_usage_error("no model: give -m MODEL");
    if (list && optind < argc) return dlt_usage_error("give --list or input volumes, not both ('%s')", argv[optind]);
    if (!list && optind >= argc) return dlt_usage_error("no input volume (a path, or - for stdin)");
    if (list && !out) return dlt_usage_error("--list needs -o DIR");
    if (list && probs) return dlt_usage_error("--probs writes one volume; it cannot be used with --list");
    if (!list && (!out || !strcmp(out, "-")) && dlt_stdout_is_tty())
        return dlt_usage_error("refusing to write a binary volume to a terminal (use -o FILE or a pipe)");
    int flips = 0;
    if (use_tta) {
        const char *s = tta ? tta : "x,y,z";
        for (; *s; s++) {
            if (*s == 'x') flips |= 1;
            else if (*s == 'y') flips |= 2;
            else if (*s == 'z') flips |= 4;
            else if (*s != ',') return dlt_usage_error("--tta: '%s' (axes among x,y,z)", tta);
        }
    }
    int wv[3] = {0, 0, 0}, whole = 0;
    if (window) {
        if (!strcmp(window, "whole")) whole = 1;
        else if (dlt_parse_int3(window, 1, 4096, wv)) return dlt_usage_error("--window: %s", dlt_errmsg());
    }
    dlt_set_threads(threads);

    ctx cx;
    memset(&cx, 0, sizeof cx);
    if (plan) {
        if (dlt_plan_normalize(plan, &cx.plan)) return dlt_usage_error("--plan: %s", dlt_errmsg());
        for (int i = 0; i < cx.plan.n; i++) {
            const dlt_norm_step *s = &cx.plan.step[i];
            if (s->kind == DLT_NORM_SPACING && !cx.target) cx.target = s->a;
            else if (s->kind >= DLT_NORM_SPACING)
                return dlt_usage_error("--plan: %s: only intensity steps and one spacing step can be undone here",
                                   dlt_norm_step_name(s->kind));
            else if (s->kind == DLT_NORM_WHITEN && s->mode == DLT_WHITEN_MASK)
                return dlt_usage_error("--plan: %s", "whiten=mask needs a mask, which dlt-infer does not take");
        }
        cx.have_plan = 1;
    }
    cx.nmodels = nmodels;
    memcpy(cx.model_path, models, sizeof models[0] * (size_t)nmodels);
    for (int i = 0; i < nmodels; i++) dlt_model_init(&cx.m[i]);
    dlt_net_config nc[MAX_MODELS];
    if (read_models(&cx, nc)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    if (!window) {
        const char *ps = dlt_model_get_meta(&cx.m[0], "patch");
        if (!ps || dlt_parse_int3(ps, 1, 4096, wv)) {
            dlt_error("%s: no training patch size in the model ('patch'); give --window", models[0]);
            return 1;
        }
    }
    cx.mult[0] = cx.mult[1] = cx.mult[2] = 1;
    for (int i = 0; i < nmodels; i++) {
        if (!whole && dlt_net_check_size(&nc[i], wv[0], wv[1], wv[2])) {
            if (nmodels > 1) dlt_err_prefix(DLT_ESHAPE, "%s", models[i]);
            return dlt_usage_error("--window: %s", dlt_errmsg());
        }
        int64_t mi[3];
        dlt_net_size_multiple(&nc[i], mi);
        for (int a = 0; a < 3; a++) /* least common multiple */
            for (int64_t l = cx.mult[a];; l += cx.mult[a])
                if (l % mi[a] == 0) {
                    cx.mult[a] = l;
                    break;
                }
    }
    if (!pad) pad = dlt_model_get_meta(&cx.m[0], "pad");
    int padmode = pad && pad_parse(pad) >= 0 ? pad_parse(pad) : DLT_INFER_PAD_ZERO;

    dlt_backend *be;
    if (dlt_backend_create(device, &be)) {
        dlt_error("--device %s: %s", device, dlt_errmsg());
        return 1;
    }
    if (precision && dlt_backend_set_precision(be, precision))
        return dlt_usage_error("--precision: %s", dlt_errmsg());
    for (int i = 0; i < nmodels; i++)
        if (dlt_net_load(&cx.m[i], be, &cx.net[i])) {
            dlt_error("%s: %s", models[i], dlt_errmsg());
            return 1;
        }
    cx.nc = dlt_net_get_config(cx.net[0]);
    cx.ens.nets = cx.net;
    cx.ens.n = nmodels;
    cx.window_whole = whole;
    memcpy(cx.window, wv, sizeof wv);
    cx.lcc = lcc, cx.conn = conn;
    if (n_lcc_cls) {
        cx.lcc_only = calloc((size_t)nc[0].classes, 1);
        for (int i = 0; i < n_lcc_cls; i++) {
            if (lcc_cls[i] < 1 || lcc_cls[i] >= nc[0].classes) {
                char cl[16];
                snprintf(cl, sizeof cl, "%d", lcc_cls[i]);
                dlt_err(DLT_EINVAL, "--largest-component: class %s is not one of the model's 1..%d", cl,
                        nc[0].classes - 1);
                return dlt_usage_error("%s", dlt_errmsg());
            }
            cx.lcc_only[lcc_cls[i]] = 1;
        }
    }
    dlt_infer_config_default(&cx.ic);
    cx.ic.overlap = overlap;
    cx.ic.blend = blend;
    /* CPU: a window's activations stay in cache better one at a time
     * (bench/RESULTS.md: 64^3 windows 7.7 s at batch 1, 8.9 s at 4) */
    cx.ic.batch = batch ? batch : strcmp(be->name, "cuda") ? 1 : 4;
    cx.ic.flips = flips;
    cx.ic.pad = padmode;
    cx.ic.channels = nc[0].in_channels;
    cx.ic.classes = nc[0].classes;
    cx.ic.predict = dlt_infer_predict_ensemble;
    cx.ic.predict_ctx = &cx.ens;

    int status = 0;
    if (list) {
        dlt_vlist l;
        if (dlt_vlist_read(list, &l)) {
            dlt_error("%s", dlt_errmsg());
            return 1;
        }
        if (mkdir(out, 0777) && errno != EEXIST) {
            dlt_error("%s: %s", out, strerror(errno));
            return 1;
        }
        dlt_progress lp;
        dlt_progress_start(&lp, "volumes", l.n);
        for (int i = 0; i < l.n && !status; i++) {
            dlt_volume img;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.nii.gz", out, l.e[i].id);
            if (dlt_vlist_load_images(&l, i, &img) || segment(&cx, &img, l.e[i].image[0], path, NULL)) {
                dlt_error("%s", dlt_errmsg());
                status = 1;
            }
            if (!status) dlt_volume_free(&img);
            dlt_progress_update(&lp, i + 1, l.e[i].id);
        }
        if (!status) dlt_log(DLT_LOG_INFO, "%d volume%s segmented into %s", l.n, l.n == 1 ? "" : "s", out);
        dlt_vlist_free(&l);
    } else {
        dlt_volume img;
        if (dlt_load_channels((const char *const *)argv + optind, argc - optind, &img)) {
            dlt_error("%s", dlt_errmsg());
            status = 1;
        } else {
            const char *name = strcmp(argv[optind], "-") ? argv[optind] : "stdin";
            if (segment(&cx, &img, name, out ? out : "-", probs)) {
                dlt_error("%s", dlt_errmsg());
                status = 1;
            }
            dlt_volume_free(&img);
        }
    }
    dlt_infer_ensemble_free(&cx.ens);
    free(cx.lcc_only);
    for (int i = 0; i < nmodels; i++) {
        dlt_net_free(cx.net[i]);
        dlt_model_free(&cx.m[i]);
    }
    dlt_backend_free(be);
    return status;
}
