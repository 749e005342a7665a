/* dlt-train - train a segmentation network from a patch stream (stdin or a
 * file) into a model file, with checkpoints that resume bit-exactly,
 * validation by sliding-window Dice, and a clean stop on SIGINT/SIGTERM.
 * The network and trainer are lib/nn/net*.c and lib/nn/train.c, the read-ahead
 * queue lib/data/feed.c, validation lib/nn/infer.c + lib/eval/metrics.c; this file holds
 * the options, the loop and the model metadata. See dlt-train(1). */
#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/dist.h"
#include "dlt/feed.h"
#include "dlt/infer.h"
#include "dlt/io.h"
#include "dlt/metrics.h"
#include "dlt/model.h"
#include "dlt/net.h"
#include "dlt/patches.h"
#include "dlt/train.h"
#include "dlt/vlist.h"
#include "dlt/volume.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- the command line: one table (dlt/cli.h) ---- */
static struct {
    const char *net, *filters, *strides, *out, *resume, *log, *val, *device, *precision;
    int64_t res_units, deep_sup, batch, steps, seed, threads, ckpt_every, log_every, val_every;
    double val_overlap;
    int norm, sync_bn, verbosity;
    dlt_train_config tc;
} A = {.device = "cpu", .res_units = -1, .deep_sup = -1, .batch = 4, .steps = -1, .seed = 1, .ckpt_every = 500, .log_every = 10,
       .val_every = -1, .val_overlap = 0.5, .norm = -1, .sync_bn = 1, .verbosity = DLT_LOG_INFO};

static int opt_net(const dlt_option *o, const char *s)
{
    if (dlt_net_kind_parse(s) < 0) return dlt_err(DLT_EINVAL, "unknown network '%s' (unet, asym-unet, fcn)", s);
    A.net = s;
    return 0;
}
static int opt_loss(const dlt_option *o, const char *s)
{
    if ((A.tc.loss.kind = dlt_loss_parse(s)) < 0) return dlt_err(DLT_EINVAL, "unknown loss '%s' (ce, balanced-ce, dice, dice+ce)", s);
    return 0;
}
static int opt_optim(const dlt_option *o, const char *s)
{
    if ((A.tc.optim.kind = dlt_optim_parse(s)) < 0) return dlt_err(DLT_EINVAL, "unknown optimiser '%s' (adam, sgd)", s);
    return 0;
}
static int opt_sched(const dlt_option *o, const char *s)
{
    if ((A.tc.sched = dlt_sched_parse(s)) < 0) return dlt_err(DLT_EINVAL, "unknown schedule '%s' (constant, step, poly)", s);
    return 0;
}
static const char *const norms[] = {"batch", "instance", NULL};

static dlt_option opts[] = {
    DLT_OPT_GROUP("Network (as the peer torch_dltk_unet.py):"),
    DLT_OPT_CALL(0, "net", opt_net, "unet|asym-unet|fcn", "(default unet)"),
    DLT_OPT_STR(0, "filters", &A.filters, "LIST", "channels per scale (default 16,32,64,128)"),
    DLT_OPT_STR(0, "strides", &A.strides, "LIST", "per scale, 1,2,2,2 or 1x1x1,1x2x2,... X,Y,Z (default 1,2,2,2)"),
    DLT_OPT_I64(0, "res-units", &A.res_units, "N", 1, 16, "residual units per scale (default 1)"),
    DLT_OPT_CHOICE(0, "norm", &A.norm, "batch|instance", norms, "normalisation (default batch)"),
    DLT_OPT_I64(0, "deep-supervision", &A.deep_sup, "N", 0, DLT_NET_MAX_SCALES - 2,
                "losses also at the N decoder scales below full\nresolution, weighted as nnU-Net (default 0: off)"),
    DLT_OPT_GROUP("Training:"),
    DLT_OPT_CALL(0, "loss", opt_loss, "ce|balanced-ce|dice|dice+ce", "(default ce)"),
    DLT_OPT_CALL(0, "optim", opt_optim, "adam|sgd", "(default adam)"),
    DLT_OPT_FLT(0, "lr", &A.tc.optim.lr, "X", 0, HUGE_VAL, DLT_OPT_LO_OPEN, "learning rate (default 0.001)"),
    DLT_OPT_FLT(0, "eps", &A.tc.optim.eps, "X", 0, HUGE_VAL, DLT_OPT_LO_OPEN, "Adam epsilon (default 1e-5, as the DLTK paper)"),
    DLT_OPT_FLT(0, "momentum", &A.tc.optim.momentum, "X", 0, 1, DLT_OPT_HI_OPEN, "SGD momentum (default 0.9)"),
    DLT_OPT_FLAG(0, "nesterov", &A.tc.optim.nesterov, 1, "Nesterov momentum (SGD)"),
    DLT_OPT_FLT(0, "weight-decay", &A.tc.optim.weight_decay, "X", 0, HUGE_VAL, 0, "L2 weight decay (default 0)"),
    DLT_OPT_CALL(0, "schedule", opt_sched, "constant|step|poly", "(default constant)"),
    DLT_OPT_I64(0, "lr-step", &A.tc.sched_step, "N", 1, INT64_MAX, "step schedule: lr *= --lr-gamma every N steps"),
    DLT_OPT_DBL(0, "lr-gamma", &A.tc.sched_gamma, "X", 0, HUGE_VAL, DLT_OPT_LO_OPEN, "(default 0.1)"),
    DLT_OPT_DBL(0, "poly-power", &A.tc.poly_power, "X", 0, HUGE_VAL, DLT_OPT_LO_OPEN,
                "poly schedule: lr*(1-step/steps)^X (0.9)"),
    DLT_OPT_I64('b', "batch", &A.batch, "N", 1, 4096,
                "patches per step (default 4); under MPI per rank:\na step uses ranks*N records of the stream"),
    DLT_OPT_I64('n', "steps", &A.steps, "N", 0, INT64_MAX,
                "the step count to reach (a resumed run continues to\nN); default: until the stream ends"),
    DLT_OPT_I64('s', "seed", &A.seed, "N", 0, INT64_MAX, "weight initialisation and trainer RNG (default 1)"),
    DLT_OPT_STR('d', "device", &A.device, "NAME", "cpu, cpu-ref, cuda or auto (default cpu)"),
    DLT_OPT_STR(0, "precision", &A.precision, "P",
                "fp32 (default) or bf16: convolutions in bfloat16 with\nfp32 sums and fp32 weights (mixed precision; several\n"
                "times faster on CPUs with AMX); cuda also tf32"),
    DLT_OPT_I64('t', "threads", &A.threads, "N", 1, 1024, "CPU threads (default: all cores)"),
    DLT_OPT_FLAG(0, "sync-bn", &A.sync_bn, 1, "under MPI, batch-norm statistics over all ranks'\nsamples (default)"),
    DLT_OPT_FLAG(0, "no-sync-bn", &A.sync_bn, 0, "... or each rank's own"),
    DLT_OPT_GROUP("Files:"),
    DLT_OPT_STR('o', "output", &A.out, "FILE", "the model/checkpoint file (required)"),
    DLT_OPT_STR('r', "resume", &A.resume, "FILE",
                "continue from a checkpoint (feed the stream with\ndlt-sample --skip <its records>)"),
    DLT_OPT_I64(0, "checkpoint-every", &A.ckpt_every, "N", 0, INT64_MAX, "(default 500; 0: only at the end)"),
    DLT_OPT_STR('l', "log", &A.log, "FILE", "TSV: step loss lr patches_per_s elapsed_s [val_dice...]"),
    DLT_OPT_I64(0, "log-every", &A.log_every, "N", 1, INT64_MAX, "rows every N steps (default 10)"),
    DLT_OPT_GROUP("Validation:"),
    DLT_OPT_STR(0, "val", &A.val, "LIST",
                "volumes (TSV id, image..., label) scored every\n--val-every steps; the best is kept in MODEL.best.dltm"),
    DLT_OPT_I64(0, "val-every", &A.val_every, "N", 0, INT64_MAX, "(default: --checkpoint-every)"),
    DLT_OPT_DBL(0, "val-overlap", &A.val_overlap, "X", 0, 1, DLT_OPT_HI_OPEN, "sliding-window overlap (default 0.5)"),
    DLT_OPT_GROUP("Common:"),
    DLT_OPT_COMMON(&A.verbosity),
    DLT_OPT_END,
};

static const dlt_cli cli = {
    "dlt-train", "[OPTIONS] -o MODEL.dltm [STREAM]",
    "Train a network on a patch stream (dlt-sample's output; STREAM or - for\n"
    "stdin, the default). Input channels, classes and the patch size come from\n"
    "the stream header. MODEL.dltm is the checkpoint (weights, optimiser and RNG\n"
    "state), written every --checkpoint-every steps, at the end and on SIGINT/SIGTERM.\n"
    "Under mpirun or srun the ranks train one model together (dlt-train(1)).",
    opts, "See dlt-train(1).", NULL};

/* Which training settings the command line gave: a resumed run takes the
 * others from its checkpoint (dlt_train_config_resume). */
static unsigned given_settings(void)
{
    static const struct { const char *opt; unsigned bit; } map[] = {
        {"loss", DLT_GIVEN_LOSS}, {"optim", DLT_GIVEN_OPTIM}, {"lr", DLT_GIVEN_LR}, {"eps", DLT_GIVEN_EPS},
        {"momentum", DLT_GIVEN_MOMENTUM}, {"nesterov", DLT_GIVEN_NESTEROV}, {"weight-decay", DLT_GIVEN_WEIGHT_DECAY},
        {"schedule", DLT_GIVEN_SCHED}, {"lr-step", DLT_GIVEN_SCHED_STEP}, {"lr-gamma", DLT_GIVEN_SCHED_GAMMA},
        {"poly-power", DLT_GIVEN_POLY}};
    unsigned g = 0;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (dlt_cli_option(&cli, map[i].opt)->seen) g |= map[i].bit;
    return g;
}
static int given(const char *opt) { return dlt_cli_option(&cli, opt)->seen > 0; }

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig)
{
    if (g_stop) { /* a second signal: stop now */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    g_stop = sig;
}

/* ---- validation set, loaded once ---- */
typedef struct valcase {
    char *id;
    dlt_volume img, lab;
} valcase;

typedef struct valset {
    int n;
    valcase *c;
    double overlap;
} valset;

static int val_load(const char *path, int channels, int classes, valset *vs)
{
    dlt_vlist l;
    int rc = dlt_vlist_read(path, &l);
    if (rc) return rc;
    vs->c = calloc((size_t)l.n, sizeof(valcase));
    if (!vs->c) return dlt_err(DLT_ENOMEM, "out of memory");
    for (int i = 0; i < l.n && !rc; i++) {
        valcase *c = &vs->c[vs->n];
        if (!l.e[i].label) {
            rc = dlt_err(DLT_EINVAL, "%s:%d: validation needs a label column", path, l.e[i].line);
            break;
        }
        if ((rc = dlt_vlist_load_images(&l, i, &c->img))) break;
        vs->n++;
        c->id = strdup(l.e[i].id);
        if ((rc = dlt_volume_read_label(l.e[i].label, &c->lab))) break;
        if ((rc = dlt_volume_same_grid(&c->img, &c->lab, 1e-3))) {
            dlt_err_prefix(rc, "%s:%d: image and label", path, l.e[i].line);
            break;
        }
        if (c->img.nc != channels)
            rc = dlt_err(DLT_ESHAPE, "%s:%d: %lld channels, the stream has %d", path, l.e[i].line, (long long)c->img.nc,
                         channels);
        int mx = dlt_label_max(c->lab.label, c->lab.nx * c->lab.ny * c->lab.nz);
        if (!rc && mx >= classes)
            rc = dlt_err(DLT_EINVAL, "%s:%d: label %d is not below the class count %d", path, l.e[i].line, mx, classes);
    }
    dlt_vlist_free(&l);
    return rc;
}

static void val_free(valset *vs)
{
    for (int i = 0; i < vs->n; i++) {
        free(vs->c[i].id);
        dlt_volume_free(&vs->c[i].img);
        dlt_volume_free(&vs->c[i].lab);
    }
    free(vs->c);
}

/* Mean Dice per class (dice[1..classes-1], NAN where the class is absent
 * from every case) and over those classes (*mean). */
static int validate(dlt_net *net, const valset *vs, int classes, const int patch[3], int batch, double *dice,
                    double *mean)
{
    int nl = classes - 1, rc = 0;
    int *labels = malloc(sizeof(int) * (size_t)(nl > 0 ? nl : 1));
    dlt_class_metrics *m = malloc(sizeof *m * (size_t)(nl > 0 ? nl : 1));
    double *sum = calloc((size_t)classes, sizeof(double));
    int *cnt = calloc((size_t)classes, sizeof(int));
    if (!labels || !m || !sum || !cnt) rc = dlt_err(DLT_ENOMEM, "out of memory");
    for (int k = 0; k < nl; k++) labels[k] = k + 1;
    for (int i = 0; i < vs->n && !rc; i++) {
        const valcase *c = &vs->c[i];
        dlt_infer_config ic;
        dlt_infer_config_default(&ic);
        for (int a = 0; a < 3; a++) ic.window[a] = patch[a];
        ic.overlap = vs->overlap;
        ic.batch = batch;
        ic.channels = (int)c->img.nc;
        ic.classes = classes;
        ic.predict = dlt_infer_predict_net;
        ic.predict_ctx = net;
        int64_t dim[3] = {c->img.nx, c->img.ny, c->img.nz};
        uint16_t *pred = dlt_alloc(dim[0] * dim[1] * dim[2], sizeof(uint16_t), "validation labels");
        if (!pred) {
            rc = DLT_ENOMEM;
            break;
        }
        rc = dlt_infer_volume(&ic, c->img.data, dim, pred, NULL);
        if (!rc && nl > 0) rc = dlt_metrics_compute(pred, c->lab.label, dim, c->img.spacing, labels, nl, 0, NULL, m);
        dlt_free(pred);
        if (rc) {
            dlt_err_prefix(rc, "validation case %s", c->id);
            break;
        }
        for (int k = 0; k < nl; k++)
            if (!m[k].absent) sum[k + 1] += m[k].dice, cnt[k + 1]++;
    }
    double tot = 0;
    int nc = 0;
    for (int k = 1; k < classes; k++) {
        dice[k] = cnt[k] ? sum[k] / cnt[k] : NAN;
        if (cnt[k]) tot += dice[k], nc++;
    }
    *mean = nc ? tot / nc : NAN;
    free(labels), free(m), free(sum), free(cnt);
    return rc;
}

/* ---- run state ---- */
typedef struct run {
    const char *out, *stream_name;
    char best_path[4096];
    dlt_trainer *tr;
    dlt_patch_header *hdr;
    int patch[3];
    int64_t records;       /* records consumed by all steps taken, from the stream's start */
    int64_t steps_target;
    int batch, ranks;      /* per rank; the step uses ranks*batch records */
    uint64_t seed;
    const char *precision;
    double last_loss;
    char intensity[1024];
    double best_val;
    int64_t best_step;
} run;

static int save_model(run *r, const char *path, double val)
{
    dlt_model m;
    dlt_model_init(&m);
    int rc = dlt_trainer_save(r->tr, &m);
    char b[1100];
    const char *v;
#define SET(k, ...) \
    if (!rc) { snprintf(b, sizeof b, __VA_ARGS__); rc = dlt_model_set_meta(&m, k, b); }
    SET("patch", "%d,%d,%d", r->patch[0], r->patch[1], r->patch[2]);
    SET("records", "%" PRId64, r->records);
    SET("batch", "%d", r->batch);
    SET("ranks", "%d", r->ranks);
    SET("global_batch", "%d", r->batch * r->ranks);
    SET("steps", "%" PRId64, r->steps_target);
    SET("seed", "%" PRIu64, r->seed);
    SET("precision", "%s", r->precision);
    SET("train_loss", "%.9g", r->last_loss);
    if ((v = dlt_patch_header_get(r->hdr, "class_names"))) SET("class_names", "%s", v);
    if ((v = dlt_patch_header_get(r->hdr, "preprocessing"))) SET("preprocessing", "%s", v);
    if ((v = dlt_patch_header_get(r->hdr, "pad"))) SET("pad", "%s", v);
    if ((v = dlt_patch_header_get(r->hdr, "sampler"))) SET("stream_sampler", "%s", v);
    if ((v = dlt_patch_header_get(r->hdr, "seed"))) SET("stream_seed", "%s", v);
    if ((v = dlt_patch_header_get(r->hdr, "augment"))) SET("stream_augment", "%s", v); /* dlt-infer --tta's axes */
    if (r->intensity[0]) SET("intensity", "%s", r->intensity);
    if (!isnan(r->best_val)) {
        SET("best_val_dice", "%.9g", r->best_val);
        SET("best_val_step", "%" PRId64, r->best_step);
    }
    if (!isnan(val)) SET("val_dice", "%.9g", val);
#undef SET
    if (!rc) rc = dlt_model_write(path, &m);
    dlt_model_free(&m);
    return rc;
}

/* Shell-quote an argument when needed (for the resume line). */
static void put_arg(FILE *f, const char *a)
{
    if (*a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%") == strlen(a)) {
        fputs(a, f);
        return;
    }
    fputc('\'', f);
    for (; *a; a++)
        if (*a == '\'') fputs("'\\''", f);
        else fputc(*a, f);
    fputc('\'', f);
}

static void print_resume(int argc, char **argv, const run *r, int64_t step)
{
    char launcher[64] = "";
    if (r->ranks > 1) snprintf(launcher, sizeof launcher, "mpirun -np %d ", r->ranks); /* or srun, as before */
    fprintf(stderr, "%s: stopped at step %" PRId64 " after %" PRId64 " records; checkpoint %s. Resume with:\n",
            dlt_progname(), step, r->records, r->out);
    fprintf(stderr, "%s:   dlt-sample <the same options> --skip %" PRId64 " | %sdlt-train", dlt_progname(), r->records,
            launcher);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-r") || !strcmp(argv[i], "--resume")) {
            i++;
            continue;
        }
        if (!strncmp(argv[i], "--resume=", 9) || (!strncmp(argv[i], "-r", 2) && argv[i][2])) continue;
        fputc(' ', stderr);
        put_arg(stderr, argv[i]);
    }
    fputs(" --resume ", stderr);
    put_arg(stderr, r->out);
    fputc('\n', stderr);
}

/* Open the patch stream and read what training needs from its header: 0,
 * or 1 with the error reported. */
static int open_stream(const char *in, const char *sname, dlt_patch_reader *rd, int *channels, int *classes,
                       int patch[3])
{
    if (dlt_patch_reader_open(rd, in)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    const char *hv;
    if (!(hv = dlt_patch_header_get(&rd->header, "channels")) || (*channels = atoi(hv)) < 1) {
        dlt_error("%s: the stream header has no channel count", sname);
        return 1;
    }
    if (!(hv = dlt_patch_header_get(&rd->header, "classes")) || (*classes = atoi(hv)) < 2) {
        dlt_error("%s: the stream header has no class count of at least 2 ('classes')", sname);
        return 1;
    }
    if (!(hv = dlt_patch_header_get(&rd->header, "patch")) || dlt_parse_int3(hv, 1, 4096, patch)) {
        dlt_error("%s: the stream header has no patch size", sname);
        return 1;
    }
    if ((hv = dlt_patch_header_get(&rd->header, "label")) && strcmp(hv, "yes")) {
        dlt_error("%s: the stream has no labels (label %s); training needs labelled patches", sname, hv);
        return 1;
    }
    return 0;
}

/* ---- a step's records ---- */
typedef struct batchbuf {
    float *x;     /* [ranks*batch on rank 0, else batch][channels][vox] */
    int32_t *y;   /* [.. ][vox] */
    int64_t vox;
    int channels;
    /* intensity sample of the first step's records (rank 0, fresh runs) */
    float *isamp;
    int64_t istride, iper, ircap, irec;
} batchbuf;

enum { B_OK = 0, B_ENDED, B_STOPPED, B_ERROR };

static void take_record(batchbuf *b, const dlt_patch *p, int64_t i)
{
    const int64_t vox = b->vox;
    memcpy(b->x + i * b->channels * vox, p->image, sizeof(float) * (size_t)(b->channels * vox));
    for (int64_t v = 0; v < vox; v++) b->y[i * vox + v] = p->label[v];
    if (b->isamp && b->irec < b->ircap) {
        for (int ch = 0; ch < b->channels; ch++)
            for (int64_t v = 0, k = 0; v < vox; v += b->istride, k++)
                b->isamp[(ch * b->ircap + b->irec) * b->iper + k] = p->image[ch * vox + v];
        b->irec++;
    }
}

/* Rank 0 reads ranks*batch records (*got counts them); every rank learns
 * the outcome, the worst over the ranks (a signal to any rank stops all at
 * the same step), and on B_OK holds its share: rank r the records
 * [r*batch, (r+1)*batch) of the step. */
static int next_batch(dlt_dist *dist, dlt_feed *feed, dlt_patch *p, batchbuf *b, int64_t batch, int64_t *got)
{
    int st = B_OK;
    *got = 0;
    if (dlt_dist_rank(dist) == 0)
        while (*got < batch * dlt_dist_size(dist) && st == B_OK) {
            int rc = dlt_feed_next(feed, p, &g_stop);
            if (rc == 1) take_record(b, p, (*got)++);
            else if (rc == DLT_FEED_STOPPED || (rc < 0 && g_stop)) st = B_STOPPED; /* the sampler died of the same signal */
            else if (rc == 0) st = B_ENDED;
            else {
                dlt_error("%s", dlt_errmsg());
                st = B_ERROR;
            }
        }
    if (g_stop && st == B_OK) st = B_STOPPED;
    if (dlt_dist_size(dist) == 1) return st;
    if (dlt_dist_max_int(dist, &st, 1)) return B_ERROR;
    if (st == B_OK &&
        (dlt_dist_scatter(dist, b->x, b->x, sizeof(float) * batch * b->channels * b->vox) ||
         dlt_dist_scatter(dist, b->y, b->y, sizeof(int32_t) * batch * b->vox))) {
        dlt_error("%s", dlt_errmsg());
        return B_ERROR;
    }
    return st;
}

/* MODEL.dltm -> MODEL.best.dltm (else MODEL.best) */
static void best_path(const char *out, char *buf, size_t n)
{
    const size_t olen = strlen(out);
    if (olen > 5 && !strcmp(out + olen - 5, ".dltm")) snprintf(buf, n, "%.*s.best.dltm", (int)(olen - 5), out);
    else snprintf(buf, n, "%s.best", out);
}

/* The checkpoint's state into the trainer and the run. 0, or 1 (reported). */
static int restore(run *r, const dlt_model *ck, int64_t records)
{
    if (dlt_trainer_restore(r->tr, ck)) {
        dlt_error("%s: %s", A.resume, dlt_errmsg());
        return 1;
    }
    const char *s;
    r->records = records;
    if ((s = dlt_model_get_meta(ck, "intensity"))) snprintf(r->intensity, sizeof r->intensity, "%s", s);
    if ((s = dlt_model_get_meta(ck, "best_val_dice"))) r->best_val = atof(s);
    if ((s = dlt_model_get_meta(ck, "best_val_step"))) r->best_step = atoll(s);
    if ((s = dlt_model_get_meta(ck, "train_loss"))) r->last_loss = atof(s);
    dlt_log(DLT_LOG_INFO, "resuming %s at step %" PRId64 " (%" PRId64 " records used)", A.resume,
            dlt_trainer_steps_done(r->tr), records);
    return 0;
}

static void say_setup(const dlt_net_config *nc, dlt_net *net, const dlt_backend *be, int ranks, int classes,
                      const int patch[3], int channels)
{
    char fbuf[128], sbuf[256];
    dlt_net_format_filters(nc, fbuf, sizeof fbuf);
    dlt_net_format_strides(nc, sbuf, sizeof sbuf);
    dlt_log(DLT_LOG_INFO,
            "%s filters %s strides %s, %d channel%s -> %d classes, %" PRId64 " parameters; patch %d,%d,%d, batch %d%s, "
            "%s loss%s, %s, device %s%s%s",
            dlt_net_kind_name(nc->kind), fbuf, sbuf, channels, channels == 1 ? "" : "s", classes,
            dlt_net_count_trainable(net), patch[0], patch[1], patch[2], (int)A.batch, ranks > 1 ? " per rank" : "",
            dlt_loss_name(A.tc.loss.kind), nc->deep_sup ? " with deep supervision" : "", dlt_optim_name(A.tc.optim.kind), be->name, A.precision ? ", precision " : "",
            A.precision ? A.precision : "");
    dlt_log(DLT_LOG_VERBOSE, "%d CPU threads", dlt_threads());
    if (ranks > 1)
        dlt_log(DLT_LOG_INFO, "%d ranks (%s): %" PRId64 " records a step, batch norm %s", ranks, dlt_dist_library(),
                A.batch * ranks, nc->norm == DLT_NORM_BATCH ? (A.sync_bn ? "over all ranks" : "per rank") : "per sample");
}

/* ---- setting up ---- */

/* The checkpoint to resume, read fully before anything is written; the
 * settings the command line left open come from it. 0, or 1 (reported). */
static int load_resume(dlt_model *ck, int ranks, int64_t *records, char prec[32])
{
    if (dlt_model_read(A.resume, ck)) {
        dlt_error("cannot resume: %s", dlt_errmsg());
        return 1;
    }
    const char *s = dlt_model_get_meta(ck, "records");
    if (!s || dlt_parse_i64(s, 0, INT64_MAX, records)) {
        dlt_error("%s: not a dlt-train checkpoint (no 'records' in its metadata)", A.resume);
        return 1;
    }
    dlt_train_config_resume(&A.tc, given_settings(), ck);
    if (!given("batch") && (s = dlt_model_get_meta(ck, "batch"))) A.batch = atoll(s) > 0 ? atoll(s) : A.batch;
    /* another rank count keeps the step's record count where it divides */
    if (!given("batch") && (s = dlt_model_get_meta(ck, "global_batch")) && atoll(s) != A.batch * ranks) {
        if (atoll(s) > 0 && atoll(s) % ranks == 0) A.batch = atoll(s) / ranks;
        else dlt_warn("%s: its %s records a step do not divide among %d ranks; using --batch %" PRId64 " per rank",
                      A.resume, s, ranks, A.batch);
    }
    if (!given("steps") && (s = dlt_model_get_meta(ck, "steps"))) A.steps = atoll(s);
    if (!given("seed") && (s = dlt_model_get_meta(ck, "seed"))) A.seed = atoll(s);
    if ((s = dlt_model_get_meta(ck, "precision"))) snprintf(prec, 32, "%s", s);
    return 0;
}

/* The network: the checkpoint's (checked against the stream and the
 * options), or the options' for the stream's channels and classes. 0, 1
 * (reported) or 2 (a usage error, reported). */
static int net_config(const dlt_model *ck, const dlt_net_config *probe, const char *sname, int channels, int classes,
                      const int patch[3], dlt_net_config *nc)
{
    if (A.resume) {
        if (dlt_net_config_from_model(ck, nc)) {
            dlt_error("%s: %s", A.resume, dlt_errmsg());
            return 1;
        }
        if (nc->classes != classes || nc->in_channels != channels) {
            dlt_error("%s: the stream has %d channel%s and %d classes, the checkpoint %s has %d and %d", sname, channels,
                      channels == 1 ? "" : "s", classes, A.resume, nc->in_channels, nc->classes);
            return 1;
        }
        char a[256], b[256];
        dlt_net_format_filters(nc, a, sizeof a);
        dlt_net_format_filters(probe, b, sizeof b);
        if ((A.net && dlt_net_kind_parse(A.net) != nc->kind) || (A.filters && strcmp(a, b)) ||
            (A.deep_sup >= 0 && A.deep_sup != nc->deep_sup)) {
            dlt_error("%s: the checkpoint is a %s with filters %s and deep supervision %d; --net/--filters/"
                      "--deep-supervision differ", A.resume, dlt_net_kind_name(nc->kind), a, nc->deep_sup);
            return 1;
        }
        const char *ps = dlt_model_get_meta(ck, "patch");
        char pp[64];
        snprintf(pp, sizeof pp, "%d,%d,%d", patch[0], patch[1], patch[2]);
        if (ps && strcmp(ps, pp)) dlt_warn("the stream's patch %s differs from the checkpoint's %s", pp, ps);
    } else {
        *nc = *probe;
        nc->in_channels = channels;
        nc->classes = classes;
        if (A.res_units > 0) nc->res_units = (int)A.res_units;
        if (A.norm >= 0) nc->norm = A.norm ? DLT_NORM_INSTANCE : DLT_NORM_BATCH;
        if (A.deep_sup >= 0) nc->deep_sup = (int)A.deep_sup;
        if (dlt_net_config_check(nc)) return dlt_usage_error("%s", dlt_errmsg());
    }
    if (dlt_net_check_size(nc, patch[0], patch[1], patch[2])) {
        dlt_error("%s: patch %d,%d,%d: %s", sname, patch[0], patch[1], patch[2], dlt_errmsg());
        return 1;
    }
    return 0;
}

/* The backend and its precision: --precision, else the checkpoint's
 * (fp32 with a warning where this device lacks it). 0, 1 or 2 (reported). */
static int make_backend(const char *ck_prec, dlt_backend **be)
{
    if (dlt_backend_create(A.device, be)) {
        dlt_error("--device %s: %s", A.device, dlt_errmsg());
        return 1;
    }
    if (A.precision && dlt_backend_set_precision(*be, A.precision)) return dlt_usage_error("--precision: %s", dlt_errmsg());
    if (!A.precision && ck_prec[0]) {
        A.precision = ck_prec;
        if (dlt_backend_set_precision(*be, ck_prec)) {
            dlt_warn("%s was trained in %s, which device %s lacks: continuing in fp32", A.resume, ck_prec, (*be)->name);
            A.precision = "fp32";
        }
    } else if (A.precision && ck_prec[0] && strcmp(A.precision, ck_prec)) {
        dlt_warn("%s was trained in %s, this run in %s: the result will not be bit-identical to an uninterrupted run",
                 A.resume, ck_prec, A.precision);
    }
    return 0;
}

/* The log file, its header written when it is empty (NULL: reported). */
static FILE *open_log(const dlt_patch_header *h, int classes)
{
    FILE *f = fopen(A.log, "a");
    if (!f) {
        dlt_error("%s: %s", A.log, strerror(errno));
        return NULL;
    }
    if (ftell(f) == 0) {
        fprintf(f, "step\tloss\tlr\tpatches_per_s\telapsed_s");
        if (A.val) {
            dlt_class_names cn = {0};
            const char *names = dlt_patch_header_get(h, "class_names");
            if (names) dlt_class_names_parse(names, &cn);
            fprintf(f, "\tval_dice_mean");
            for (int k = 1; k < classes; k++) {
                const char *nm = dlt_class_names_get(&cn, k);
                if (nm) fprintf(f, "\tval_dice_%s", nm);
                else fprintf(f, "\tval_dice_%d", k);
            }
            dlt_class_names_free(&cn);
        }
        fputc('\n', f);
        fflush(f);
    }
    return f;
}

/* ---- the loop ---- */

/* What the loop works with, besides the run's metadata. */
typedef struct loop {
    run *r;
    dlt_dist *dist;
    int rank;
    dlt_feed *feed;
    dlt_net *net;
    batchbuf bb;
    valset *vs;
    FILE *logf;
    int classes;
    double *vdice;
    /* outcome */
    int64_t step, start, leftover, last_ckpt;
    int status, ended, interrupted, agreed; /* agreed: every rank knows of the error */
} loop;

/* Validation, the best model, the log row and the checkpoint after a
 * step (rank 0). 0, or 1 (reported). */
static int after_step(loop *L, double lr_now, double *loss_sum, int64_t *loss_n, int64_t *rec_log, double *tlog,
                      double t0)
{
    run *r = L->r;
    const int64_t step = L->step;
    const int final = A.steps >= 0 && step >= A.steps;
    double vmean = NAN;
    if (L->vs->n && ((A.val_every > 0 && step % A.val_every == 0) || final)) {
        if (validate(L->net, L->vs, L->classes, r->patch, r->batch, L->vdice, &vmean)) {
            dlt_error("step %" PRId64 ": %s", step, dlt_errmsg());
            return 1;
        }
        dlt_log(DLT_LOG_INFO, "step %" PRId64 ": validation mean Dice %.4f", step, vmean);
        if (!isnan(vmean) && (isnan(r->best_val) || vmean > r->best_val)) {
            r->best_val = vmean, r->best_step = step;
            if (save_model(r, r->best_path, vmean)) {
                dlt_error("%s", dlt_errmsg());
                return 1;
            }
        }
    }
    if (L->logf && (step % A.log_every == 0 || final || !isnan(vmean))) {
        double now = dlt_now();
        fprintf(L->logf, "%" PRId64 "\t%.6g\t%.6g\t%.2f\t%.2f", step, *loss_sum / *loss_n, lr_now,
                now > *tlog ? *rec_log / (now - *tlog) : 0.0, now - t0);
        if (A.val) {
            fprintf(L->logf, "\t%.6g", vmean);
            for (int k = 1; k < L->classes; k++) fprintf(L->logf, "\t%.6g", isnan(vmean) ? NAN : L->vdice[k]);
        }
        fputc('\n', L->logf);
        fflush(L->logf);
        *tlog = now, *loss_sum = 0, *loss_n = 0, *rec_log = 0;
    }
    if (A.ckpt_every > 0 && step % A.ckpt_every == 0 && !final) {
        if (save_model(r, A.out, NAN)) {
            dlt_error("%s", dlt_errmsg());
            return 1;
        }
        L->last_ckpt = step;
    }
    return 0;
}

static void train_loop(loop *L)
{
    run *r = L->r;
    const int64_t gbatch = A.batch * dlt_dist_size(L->dist);
    dlt_patch p = {0};
    double t0 = dlt_now(), tlog = t0, loss_sum = 0;
    int64_t loss_n = 0, rec_log = 0;
    dlt_progress prog;
    const int bar = A.verbosity > 0 && L->rank == 0;
    if (bar) dlt_progress_start(&prog, "steps", A.steps >= 0 ? A.steps - L->start : 0);
    if (A.steps >= 0 && L->step >= A.steps)
        dlt_log(DLT_LOG_INFO, "already at step %" PRId64 " (--steps %" PRId64 ")", L->step, A.steps);
    while (A.steps < 0 || L->step < A.steps) {
        int64_t got;
        const int st = next_batch(L->dist, L->feed, &p, &L->bb, A.batch, &got);
        if (st == B_STOPPED) L->interrupted = 1;
        if (st == B_ERROR) L->status = 1, L->agreed = 1;
        if (st == B_ENDED) L->ended = 1, L->leftover = got;
        if (st != B_OK) break;
        double lr_now = dlt_trainer_lr(r->tr), lv;
        if (dlt_trainer_step(r->tr, L->bb.x, L->bb.y, A.batch, r->patch[2], r->patch[1], r->patch[0], &lv)) {
            dlt_error("step %" PRId64 ": %s", L->step + 1, dlt_errmsg());
            L->status = 1;
            break;
        }
        if (!isfinite(lv)) { /* the mean over the ranks: all stop here */
            L->agreed = 1;
            if (L->rank == 0)
                dlt_error("step %" PRId64 ": the loss is %s (training diverged; try a smaller --lr); %s", L->step + 1,
                          isnan(lv) ? "nan" : "infinite",
                          L->last_ckpt >= 0 ? "the last checkpoint is intact" : "no checkpoint was written");
            if (L->last_ckpt >= 0)
                dlt_log(DLT_LOG_INFO, "last good checkpoint: %s (step %" PRId64 ")", A.out, L->last_ckpt);
            L->status = 1;
            break;
        }
        L->step++;
        r->records += gbatch;
        r->last_loss = lv;
        loss_sum += lv, loss_n++, rec_log += gbatch;
        if (L->rank == 0 && after_step(L, lr_now, &loss_sum, &loss_n, &rec_log, &tlog, t0)) {
            L->status = 1;
            break;
        }
        if (bar) {
            char ex[64];
            snprintf(ex, sizeof ex, "loss %.4g", lv);
            dlt_progress_update(&prog, L->step - L->start, ex);
        }
    }
    if (L->status && !L->agreed && dlt_dist_size(L->dist) > 1)
        dlt_dist_abort(L->dist, 1); /* the others may wait in a collective */
    if (bar && L->step > L->start) {
        char ex[64];
        snprintf(ex, sizeof ex, "loss %.4g", r->last_loss);
        dlt_progress_end(&prog, ex);
    }
    dlt_patch_free(&p);
}

/* After the loop (rank 0): the intensity statistics, the last checkpoint,
 * and what happened. 0, or 1 (reported). */
static int finish(loop *L, int argc, char **argv, double t0)
{
    run *r = L->r;
    batchbuf *b = &L->bb;
    if (b->isamp && b->irec > 0) {
        /* [channel][record][k] is [channel][n] with n = irec*iper when irec == ircap;
         * otherwise compact the channels first */
        const int64_t n = b->irec * b->iper;
        for (int ch = 1; ch < b->channels; ch++)
            memmove(b->isamp + ch * n, b->isamp + ch * b->ircap * b->iper, sizeof(float) * (size_t)n);
        dlt_intensity_stats(b->isamp, n, b->channels, r->intensity, sizeof r->intensity);
    }
    if (save_model(r, A.out, NAN)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    if (L->interrupted) {
        print_resume(argc, argv, r, L->step);
        return 0;
    }
    if (L->ended && A.steps >= 0 && L->step < A.steps)
        dlt_log(DLT_LOG_INFO, "the stream ended at step %" PRId64 " (before --steps %" PRId64 ")", L->step, A.steps);
    if (L->leftover)
        dlt_log(DLT_LOG_INFO, "%" PRId64 " record%s at the end (fewer than --batch) not used", L->leftover,
                L->leftover == 1 ? "" : "s");
    dlt_log(DLT_LOG_INFO, "wrote %s: step %" PRId64 ", %" PRId64 " records, loss %.4g, %.1f s", A.out, L->step,
            r->records, r->last_loss, dlt_now() - t0);
    return 0;
}

/* The stream's first records feed the intensity statistics (fresh runs, rank 0). */
static int batch_alloc(batchbuf *b, int rank, int ranks, int channels, const int patch[3], int fresh)
{
    const int64_t vox = (int64_t)patch[0] * patch[1] * patch[2], gbatch = A.batch * ranks;
    const int64_t nbuf = rank == 0 ? gbatch : A.batch; /* rank 0 reads the whole step */
    *b = (batchbuf){.vox = vox, .channels = channels};
    b->x = dlt_alloc(nbuf * channels * vox, sizeof(float), "batch images");
    b->y = dlt_alloc(nbuf * vox, sizeof(int32_t), "batch labels");
    b->istride = vox / 65536 + 1, b->iper = (vox + b->istride - 1) / b->istride, b->ircap = gbatch < 64 ? gbatch : 64;
    if (rank == 0 && fresh) b->isamp = dlt_alloc(channels * b->ircap * b->iper, sizeof(float), "intensity sample");
    return !b->x || !b->y || (rank == 0 && fresh && !b->isamp);
}

int main(int argc, char **argv)
{
    dlt_log_init("dlt-train");
    dlt_stdout_check_at_exit();
    /* under mpirun/srun: one of several ranks (dlt/dist.h); rank 0 reads,
     * logs and writes, the others say only their errors */
    dlt_dist *dist = NULL;
    if (dlt_dist_init(&argc, &argv, &dist)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    const int rank = dlt_dist_rank(dist), ranks = dlt_dist_size(dist);
    static char rankname[64];
    if (rank > 0) snprintf(rankname, sizeof rankname, "dlt-train[rank %d]", rank), dlt_log_init(rankname);
    dlt_train_config_default(&A.tc);
    A.tc.sched_step = 1000; /* dlt-train(1)'s default */
    A.verbosity = dlt_log_level();
    const int first = dlt_cli_parse(&cli, argc, argv);
    if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
    dlt_log_set_level(rank > 0 ? DLT_LOG_QUIET : A.verbosity);
    if (!A.out) return dlt_usage_error("no output model: give -o MODEL.dltm");
    if (!strcmp(A.out, "-")) return dlt_usage_error("-o -: checkpoints need a file, not stdout");
    if (first < argc - 1) return dlt_usage_error("one patch stream at most (got '%s' and '%s')", argv[first], argv[first + 1]);
    if (A.val_every < 0) A.val_every = A.ckpt_every;
    const char *in = first < argc ? argv[first] : "-", *sname = strcmp(in, "-") ? in : "stdin";
    if (rank == 0 && !strcmp(in, "-") && isatty(0)) return dlt_usage_error("no patch stream: stdin is a terminal (pipe dlt-sample into it)");
    if (A.tc.sched == DLT_SCHED_POLY && A.steps <= 0 && !A.resume) return dlt_usage_error("--schedule poly needs --steps");
    dlt_net_config probe; /* the network options parse before anything is read */
    dlt_net_config_default(&probe, A.net ? dlt_net_kind_parse(A.net) : DLT_NET_UNET, 1, 2);
    if (A.filters && dlt_net_parse_filters(&probe, A.filters)) return dlt_usage_error("--filters: %s", dlt_errmsg());
    if (A.strides && dlt_net_parse_strides(&probe, A.strides)) return dlt_usage_error("--strides: %s", dlt_errmsg());
    dlt_set_threads((int)A.threads);

    dlt_model ck;
    dlt_model_init(&ck);
    int64_t ck_records = 0;
    char ck_prec[32] = ""; /* the checkpoint's precision, taken unless --precision is given */
    if (A.resume && load_resume(&ck, ranks, &ck_records, ck_prec)) return 1;
    /* the stream header: rank 0 reads the stream, the others learn its shape */
    dlt_patch_reader rd;
    memset(&rd, 0, sizeof rd);
    int hdr[6] = {0};
    if (rank == 0) hdr[0] = !open_stream(in, sname, &rd, &hdr[1], &hdr[2], hdr + 3);
    if (dlt_dist_bcast(dist, hdr, sizeof hdr) || !hdr[0]) {
        dlt_model_free(&ck);
        dlt_dist_finish(dist);
        return 1;
    }
    const int channels = hdr[1], classes = hdr[2], patch[3] = {hdr[3], hdr[4], hdr[5]};
    dlt_net_config nc;
    int rc = net_config(&ck, &probe, sname, channels, classes, patch, &nc);
    if (rc) return rc;
    A.tc.total_steps = A.steps > 0 ? A.steps : 0;
    if (dlt_train_config_check(&A.tc)) return dlt_usage_error("%s", dlt_errmsg());
    valset vs = {.overlap = A.val_overlap};
    if (rank == 0 && A.val && val_load(A.val, channels, classes, &vs)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    dlt_backend *be = NULL;
    if ((rc = make_backend(ck_prec, &be))) return rc;
    dlt_net *net = NULL;
    dlt_trainer *tr = NULL;
    if (dlt_net_create(&nc, be, (uint64_t)A.seed, &net) || dlt_trainer_create(net, &A.tc, (uint64_t)A.seed, &tr)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    /* every rank starts from the same weights (one seed) and takes the
     * same steps: averaged gradients, batch norm over all ranks' samples */
    if (dlt_trainer_set_dist(tr, dist)) {
        dlt_error("%s", dlt_errmsg());
        dlt_dist_abort(dist, 1);
    }
    if (A.sync_bn) dlt_backend_set_reduce(be, dlt_dist_reduce(dist));
    run r = {.out = A.out, .stream_name = sname, .tr = tr, .batch = (int)A.batch, .ranks = ranks, .seed = (uint64_t)A.seed,
             .precision = A.precision ? A.precision : "fp32", .steps_target = A.steps, .best_val = NAN, .last_loss = NAN};
    /* a copy: the feed owns the reader (and its header) and frees it on close */
    dlt_patch_header hcopy;
    memset(&hcopy, 0, sizeof hcopy);
    for (int i = 0; i < rd.header.nkeys; i++) dlt_patch_header_set(&hcopy, rd.header.key[i], rd.header.value[i]);
    r.hdr = &hcopy;
    memcpy(r.patch, patch, sizeof patch);
    best_path(A.out, r.best_path, sizeof r.best_path);
    if (A.resume && restore(&r, &ck, ck_records)) return 1;
    dlt_model_free(&ck);
    loop L = {.r = &r, .dist = dist, .rank = rank, .net = net, .vs = &vs, .classes = classes, .step = dlt_trainer_steps_done(tr)};
    L.start = L.step, L.last_ckpt = A.resume ? L.step : -1;
    if (rank == 0 && A.log && !(L.logf = open_log(&hcopy, classes))) return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL); /* what mpirun forwards to every rank (its own SIGTERM ends the job) */
    dlt_feed_config fc = {.channels = channels, .classes = classes, .patch = {patch[0], patch[1], patch[2]},
                          .capacity = (int)(2 * A.batch > 8 ? 2 * A.batch : 8)};
    if (rank == 0 && dlt_feed_start(&rd, &fc, &L.feed)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    say_setup(&nc, net, be, ranks, classes, patch, channels);
    if (batch_alloc(&L.bb, rank, ranks, channels, patch, !r.intensity[0]) || !(L.vdice = calloc((size_t)classes, sizeof(double)))) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    const double t0 = dlt_now();
    train_loop(&L);
    if (L.feed) dlt_feed_close(L.feed);
    int status = L.status;
    if (!status && rank == 0) status = finish(&L, argc, argv, t0);
    if (L.logf) fclose(L.logf);
    dlt_free(L.bb.x), dlt_free(L.bb.y), dlt_free(L.bb.isamp);
    free(L.vdice);
    val_free(&vs);
    dlt_patch_header_free(&hcopy);
    dlt_trainer_free(tr);
    dlt_net_free(net);
    dlt_backend_free(be);
    /* rank 0's last checkpoint decides the run's status */
    if (ranks > 1 && dlt_dist_max_int(dist, &status, 1)) status = 1;
    dlt_dist_finish(dist);
    return status;
}
