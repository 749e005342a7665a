/* dlt-infer - segment volumes with a trained model: sliding-window
 * inference (lib/nn/infer.c) with the network of lib/nn/net*.c, writing label
 * volumes (and optionally class probabilities) on exactly the input's grid.
 * See dlt-infer(1). */
#include "dlt/cli.h"
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
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- the command line (dlt/cli.h) ---- */
static const char *models[MAX_MODELS];
static int nmodels;
static const char *out, *list, *window, *probs, *device = "cpu", *precision, *tta, *pad, *plan;
static double overlap = 0.5;
static int blend = DLT_BLEND_MEAN, batch, lcc, conn = 6, threads, use_tta, loglevel = DLT_LOG_INFO;
static int lcc_cls[1024], n_lcc_cls;
static const char *const blends[] = {"mean", "gaussian", NULL}; /* DLT_BLEND_* order */

static int opt_model(const dlt_option *o, const char *arg)
{
    if (nmodels == MAX_MODELS) return dlt_err(DLT_EINVAL, "more than %d models", MAX_MODELS);
    models[nmodels++] = arg;
    return 0;
}
/* "x,z" -> a bit per axis (x 1, y 2, z 4); stops at a space. -1 if bad. */
static int axes_mask(const char *s)
{
    int m = 0;
    for (; *s && *s != ' '; s++) {
        if (*s == 'x') m |= 1;
        else if (*s == 'y') m |= 2;
        else if (*s == 'z') m |= 4;
        else if (*s != ',') return -1;
    }
    return m;
}

static int opt_tta(const dlt_option *o, const char *arg)
{
    if (arg && axes_mask(arg) <= 0) return dlt_err(DLT_EINVAL, "'%s' (axes among x,y,z)", arg);
    use_tta = 1, tta = arg;
    return 0;
}
static int opt_pad(const dlt_option *o, const char *arg)
{
    if (pad_parse(arg) < 0) return dlt_err(DLT_EINVAL, "'%s' (zero, edge or reflect)", arg);
    pad = arg;
    return 0;
}
static int opt_lcc(const dlt_option *o, const char *arg)
{
    lcc = 1;
    if (arg && (dlt_parse_ints(arg, 1024, lcc_cls, &n_lcc_cls) || !n_lcc_cls))
        return dlt_err(DLT_EINVAL, "'%s' is not a comma list of classes", arg);
    return 0;
}
static int opt_conn(const dlt_option *o, const char *arg)
{
    if (strcmp(arg, "6") && strcmp(arg, "26")) return dlt_err(DLT_EINVAL, "'%s' (6 or 26)", arg);
    conn = atoi(arg);
    return 0;
}

static dlt_option opts[] = {
    DLT_OPT_CALL('m', "model", opt_model, "FILE",
                 "the model (required); several -m: an ensemble, their\nprobabilities averaged (same classes and inputs)"),
    DLT_OPT_STR('o', "output", &out, "PATH", "output volume (default stdout), or the directory for --list"),
    DLT_OPT_STR('l', "list", &list, "FILE", "many volumes"),
    DLT_OPT_STR('w', "window", &window, "X[,Y,Z]",
                "sliding window in voxels (default: the training patch),\nor 'whole': one window over the volume padded to the\n"
                "network's size multiple"),
    DLT_OPT_DBL(0, "overlap", &overlap, "F", 0, 1, DLT_OPT_HI_OPEN, "fraction shared by neighbouring windows (default 0.5)"),
    DLT_OPT_CHOICE(0, "blend", &blend, "mean|gaussian", blends,
                   "average the windows (DLTK) or weight their\ncentres (nnU-Net, sigma 1/8 window); default mean"),
    DLT_OPT_INT('b', "batch", &batch, "N", 1, 1024,
                "windows per forward pass (default 1 on the CPU, where\nlarger batches are slower; 4 on cuda)"),
    DLT_OPT_CALL_OPT("tta", opt_tta, "AXES",
                     "mirror over every combination of the axes and average\n(default: the axes the model was trained "
                     "flipped along)"),
    DLT_OPT_CALL(0, "pad", opt_pad, "zero|edge|reflect",
                 "padding where a window leaves the volume\n(default: the training stream's, else zero)"),
    DLT_OPT_STR(0, "plan", &plan, "TEXT|FILE",
                "preprocess IN as the plan says (a dlt-plan file or\ndlt-normalize steps), and map the prediction back to\n"
                "IN's grid (probabilities interpolated, then argmax)"),
    DLT_OPT_STR(0, "probs", &probs, "FILE",
                "also write class probabilities, a 4-D float volume\n(needs classes x voxels x 4 bytes of memory)"),
    DLT_OPT_CALL_OPT("largest-component", opt_lcc, "CLASSES",
                     "keep each class's (or each of these\nclasses', e.g. 1,3) largest connected component"),
    DLT_OPT_CALL(0, "connectivity", opt_conn, "6|26", "for --largest-component (default 6, as scipy)"),
    DLT_OPT_STR('d', "device", &device, "NAME", "cpu, cpu-ref, cuda or auto (default cpu)"),
    DLT_OPT_STR(0, "precision", &precision, "P",
                "fp32 (default) or bf16: convolutions in bfloat16 with\nfp32 sums (several times faster on CPUs with AMX;\n"
                "probabilities within about 0.01); cuda also tf32"),
    DLT_OPT_INT('t', "threads", &threads, "N", 1, 1024, "CPU threads (default: all cores)"),
    DLT_OPT_COMMON(&loglevel),
    DLT_OPT_END,
};

static const dlt_cli cli = {
    "dlt-infer", "-m MODEL [-m MODEL2...] [OPTIONS] IN [IN2...] [-o OUT]\n       dlt-infer -m MODEL [OPTIONS] --list LIST -o DIR",
    "Segment a volume (IN, or - for stdin; several files are channels, in order)\n"
    "with a model from dlt-train. The label volume (uint8, or uint16 when a label\n"
    "exceeds 255) has exactly the input's geometry; it goes to OUT or stdout.\n"
    "With --list (TSV id, image..., as dlt-sample reads), DIR/ID.nii.gz per entry.",
    opts, "See dlt-infer(1).", NULL};

/* --plan: the steps to apply before predicting, and the one spacing step
 * to undo after. 0, or 2 (a usage error, reported). */
static int read_plan(ctx *cx)
{
    if (dlt_plan_normalize(plan, &cx->plan)) return dlt_usage_error("--plan: %s", dlt_errmsg());
    for (int i = 0; i < cx->plan.n; i++) {
        const dlt_norm_step *s = &cx->plan.step[i];
        if (s->kind == DLT_NORM_SPACING && !cx->target) cx->target = s->a;
        else if (s->kind >= DLT_NORM_SPACING)
            return dlt_usage_error("--plan: %s: only intensity steps and one spacing step can be undone here",
                                   dlt_norm_step_name(s->kind));
        else if (s->kind == DLT_NORM_WHITEN && s->mode == DLT_WHITEN_MASK)
            return dlt_usage_error("--plan: %s", "whiten=mask needs a mask, which dlt-infer does not take");
    }
    cx->have_plan = 1;
    return 0;
}

/* Every model takes the window; the volume is padded to the least common
 * multiple of their size multiples. 0, or 2 (a usage error, reported). */
static int check_window(ctx *cx, const dlt_net_config *nc, const int wv[3], int whole)
{
    cx->mult[0] = cx->mult[1] = cx->mult[2] = 1;
    for (int i = 0; i < nmodels; i++) {
        if (!whole && dlt_net_check_size(&nc[i], wv[0], wv[1], wv[2])) {
            if (nmodels > 1) dlt_err_prefix(DLT_ESHAPE, "%s", models[i]);
            return dlt_usage_error("--window: %s", dlt_errmsg());
        }
        int64_t mi[3];
        dlt_net_size_multiple(&nc[i], mi);
        for (int a = 0; a < 3; a++) /* least common multiple */
            for (int64_t l = cx->mult[a];; l += cx->mult[a])
                if (l % mi[a] == 0) {
                    cx->mult[a] = l;
                    break;
                }
    }
    return 0;
}

/* --largest-component=CLASSES: the classes it applies to, checked against
 * the model. 0, or 2 (a usage error, reported). */
static int lcc_classes(ctx *cx, int classes)
{
    cx->lcc_only = calloc((size_t)classes, 1);
    for (int i = 0; i < n_lcc_cls; i++) {
        if (lcc_cls[i] < 1 || lcc_cls[i] >= classes) {
            char cl[16];
            snprintf(cl, sizeof cl, "%d", lcc_cls[i]);
            dlt_err(DLT_EINVAL, "--largest-component: class %s is not one of the model's 1..%d", cl,
                    classes - 1);
            return dlt_usage_error("%s", dlt_errmsg());
        }
        cx->lcc_only[lcc_cls[i]] = 1;
    }
    return 0;
}

/* --tta's mirror axes: the ones given, else those the model was trained
 * flipped along (its stream_augment metadata, from dlt-sample --flip).
 * Mirroring along an axis the model never saw flipped averages in nonsense
 * where a class depends on the side (hippocampus anterior/posterior, left
 * and right kidney): measured on the hippocampus, x,y,z took the mean Dice
 * from 0.876 to 0.29. 0, or 2 (a usage error, reported). */
static int tta_flips(const dlt_model *m, int *flips)
{
    const char *aug = dlt_model_get_meta(m, "stream_augment"), *f;
    const int trained = !aug ? -1 : (f = strstr(aug, "flip=")) ? axes_mask(f + 5) : 0; /* -1: not recorded */
    if (tta) {
        *flips = axes_mask(tta);
        if (trained >= 0 && (*flips & ~trained))
            dlt_warn("--tta=%s mirrors along axes %s never saw flipped (its training stream: %s); where a class depends "
                     "on the side, the average is wrong",
                     tta, models[0], aug);
        return 0;
    }
    if (trained < 0) {
        *flips = 7;
        dlt_log(DLT_LOG_VERBOSE, "--tta: %s does not record its training flips; mirroring x,y,z", models[0]);
        return 0;
    }
    if (!trained)
        return dlt_usage_error("--tta: %s was trained without flips (its stream: %s); give the axes, e.g. --tta=x, to "
                               "mirror anyway",
                               models[0], aug);
    *flips = trained;
    dlt_log(DLT_LOG_VERBOSE, "--tta: mirroring along the axes the model was trained flipped along (%s)", aug);
    return 0;
}

/* --list: DIR/ID.nii.gz per entry. 0, or 1 (reported). */
static int run_list(ctx *cx)
{
    int status = 0;
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
        if (dlt_vlist_load_images(&l, i, &img) || segment(cx, &img, l.e[i].image[0], path, NULL)) {
            dlt_error("%s", dlt_errmsg());
            status = 1;
        }
        if (!status) dlt_volume_free(&img);
        dlt_progress_update(&lp, i + 1, l.e[i].id);
    }
    if (!status) dlt_log(DLT_LOG_INFO, "%d volume%s segmented into %s", l.n, l.n == 1 ? "" : "s", out);
    dlt_vlist_free(&l);
    return status;
}

/* IN [IN2...] (channels) to OUT or stdout. 0, or 1 (reported). */
static int run_one(ctx *cx, const char *const *in, int nin)
{
    int status = 0;
    dlt_volume img;
    if (dlt_load_channels(in, nin, &img)) {
        dlt_error("%s", dlt_errmsg());
        status = 1;
    } else {
        const char *name = strcmp(in[0], "-") ? in[0] : "stdin";
        if (segment(cx, &img, name, out ? out : "-", probs)) {
            dlt_error("%s", dlt_errmsg());
            status = 1;
        }
        dlt_volume_free(&img);
    }
    return status;
}

int main(int argc, char **argv)
{
    dlt_log_init("dlt-infer");
    dlt_stdout_check_at_exit();
    const int first = dlt_cli_parse(&cli, argc, argv);
    if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
    dlt_log_set_level(loglevel);
    if (!nmodels) return dlt_usage_error("no model: give -m MODEL");
    if (list && first < argc) return dlt_usage_error("give --list or input volumes, not both ('%s')", argv[first]);
    if (!list && first >= argc) return dlt_usage_error("no input volume (a path, or - for stdin)");
    if (list && !out) return dlt_usage_error("--list needs -o DIR");
    if (list && probs) return dlt_usage_error("--probs writes one volume; it cannot be used with --list");
    if (!list && (!out || !strcmp(out, "-")) && dlt_stdout_is_tty())
        return dlt_usage_error("refusing to write a binary volume to a terminal (use -o FILE or a pipe)");
    int wv[3] = {0, 0, 0}, whole = 0;
    if (window) {
        if (!strcmp(window, "whole")) whole = 1;
        else if (dlt_parse_int3(window, 1, 4096, wv)) return dlt_usage_error("--window: %s", dlt_errmsg());
    }
    dlt_set_threads(threads);

    ctx cx;
    memset(&cx, 0, sizeof cx);
    if (plan && read_plan(&cx)) return 2;
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
    if (check_window(&cx, nc, wv, whole)) return 2;
    int flips = 0;
    if (use_tta && tta_flips(&cx.m[0], &flips)) return 2;
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
    if (n_lcc_cls && lcc_classes(&cx, nc[0].classes)) return 2;
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

    const int status = list ? run_list(&cx) : run_one(&cx, (const char *const *)argv + first, argc - first);
    dlt_infer_ensemble_free(&cx.ens);
    free(cx.lcc_only);
    for (int i = 0; i < nmodels; i++) {
        dlt_net_free(cx.net[i]);
        dlt_model_free(&cx.m[i]);
    }
    dlt_backend_free(be);
    return status;
}
