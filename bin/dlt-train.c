/* dlt-train - train a segmentation network from a patch stream (stdin or a
 * file) into a model file, with checkpoints that resume bit-exactly,
 * validation by sliding-window Dice, and a clean stop on SIGINT/SIGTERM.
 * The network and trainer are lib/net*.c and lib/train.c, the read-ahead
 * queue lib/feed.c, validation lib/infer.c + lib/metrics.c; this file holds
 * the options, the loop and the model metadata. See dlt-train(1). */
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
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dlt-train [OPTIONS] -o MODEL.dltm [STREAM]\n"
            "Train a network on a patch stream (dlt-sample's output; STREAM or - for\n"
            "stdin, the default). Input channels, classes and the patch size come from\n"
            "the stream header. MODEL.dltm is the checkpoint (weights, optimiser and RNG\n"
            "state), written every --checkpoint-every steps, at the end and on SIGINT/SIGTERM.\n"
            "\n"
            "Network (as the peer torch_dltk_unet.py):\n"
            "      --net unet|asym-unet|fcn   (default unet)\n"
            "      --filters LIST       channels per scale (default 16,32,64,128)\n"
            "      --strides LIST       per scale, 1,2,2,2 or 1x1x1,1x2x2,... X,Y,Z (default 1,2,2,2)\n"
            "      --res-units N        residual units per scale (default 1)\n"
            "      --norm batch|instance\n"
            "Training:\n"
            "      --loss ce|balanced-ce|dice|dice+ce   (default ce)\n"
            "      --optim adam|sgd     (default adam)\n"
            "      --lr X               learning rate (default 0.001)\n"
            "      --eps X              Adam epsilon (default 1e-5, as the DLTK paper)\n"
            "      --momentum X         SGD momentum (default 0.9)  --nesterov\n"
            "      --weight-decay X     L2 weight decay (default 0)\n"
            "      --schedule constant|step|poly  (default constant)\n"
            "      --lr-step N --lr-gamma X       step schedule: lr *= X every N steps (0.1)\n"
            "      --poly-power X       poly schedule: lr*(1-step/steps)^X (0.9)\n"
            "  -b, --batch N            patches per step (default 4); under MPI per rank:\n"
            "                           a step uses ranks*N records of the stream\n"
            "  -n, --steps N            the step count to reach (a resumed run continues to\n"
            "                           N); default: until the stream ends\n"
            "  -s, --seed N             weight initialisation and trainer RNG (default 1)\n"
            "  -d, --device NAME        cpu, cpu-ref, cuda or auto (default cpu)\n"
            "      --precision P        fp32 (default) or bf16: convolutions in bfloat16 with\n"
            "                           fp32 sums and fp32 weights (mixed precision; several\n"
            "                           times faster on CPUs with AMX); cuda also tf32\n"
            "  -t, --threads N          CPU threads (default: all cores)\n"
            "      --sync-bn, --no-sync-bn  under MPI, batch-norm statistics over all ranks'\n"
            "                           samples (default) or each rank's own\n"
            "Files:\n"
            "  -o, --output FILE        the model/checkpoint file (required)\n"
            "  -r, --resume FILE        continue from a checkpoint (feed the stream with\n"
            "                           dlt-sample --skip <its records>)\n"
            "      --checkpoint-every N (default 500; 0: only at the end)\n"
            "  -l, --log FILE           TSV: step loss lr patches_per_s elapsed_s [val_dice...]\n"
            "      --log-every N        rows every N steps (default 10)\n"
            "Validation:\n"
            "      --val LIST           volumes (TSV id, image..., label) scored every\n"
            "                           --val-every steps; the best is kept in MODEL.best.dltm\n"
            "      --val-every N        (default: --checkpoint-every)\n"
            "      --val-overlap X      sliding-window overlap (default 0.5)\n"
            "  -q, --quiet  -v, --verbose  -h, --help  --version\n"
            "See dlt-train(1).\n");
}

enum {
    O_NET = 1000, O_FILTERS, O_STRIDES, O_RES, O_NORM, O_LOSS, O_OPTIM, O_LR, O_EPS, O_MOM, O_NEST, O_WD, O_SCHED,
    O_LRSTEP, O_LRGAMMA, O_POLY, O_CKPT, O_LOGEVERY, O_VAL, O_VALEVERY, O_VALOV, O_PRECISION, O_VERSION, O_SYNCBN, O_NOSYNCBN
};

static const struct option longopts[] = {
    {"net", required_argument, 0, O_NET},
    {"filters", required_argument, 0, O_FILTERS},
    {"strides", required_argument, 0, O_STRIDES},
    {"res-units", required_argument, 0, O_RES},
    {"norm", required_argument, 0, O_NORM},
    {"loss", required_argument, 0, O_LOSS},
    {"optim", required_argument, 0, O_OPTIM},
    {"lr", required_argument, 0, O_LR},
    {"eps", required_argument, 0, O_EPS},
    {"momentum", required_argument, 0, O_MOM},
    {"nesterov", no_argument, 0, O_NEST},
    {"weight-decay", required_argument, 0, O_WD},
    {"schedule", required_argument, 0, O_SCHED},
    {"lr-step", required_argument, 0, O_LRSTEP},
    {"lr-gamma", required_argument, 0, O_LRGAMMA},
    {"poly-power", required_argument, 0, O_POLY},
    {"batch", required_argument, 0, 'b'},
    {"steps", required_argument, 0, 'n'},
    {"seed", required_argument, 0, 's'},
    {"device", required_argument, 0, 'd'},
    {"precision", required_argument, 0, O_PRECISION},
    {"threads", required_argument, 0, 't'},
    {"sync-bn", no_argument, 0, O_SYNCBN},
    {"no-sync-bn", no_argument, 0, O_NOSYNCBN},
    {"output", required_argument, 0, 'o'},
    {"resume", required_argument, 0, 'r'},
    {"checkpoint-every", required_argument, 0, O_CKPT},
    {"log", required_argument, 0, 'l'},
    {"log-every", required_argument, 0, O_LOGEVERY},
    {"val", required_argument, 0, O_VAL},
    {"val-every", required_argument, 0, O_VALEVERY},
    {"val-overlap", required_argument, 0, O_VALOV},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, O_VERSION},
    {0, 0, 0, 0},
};

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig)
{
    if (g_stop) { /* a second signal: stop now */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    g_stop = sig;
}

static int parse_dbl(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(x)) return -1;
    *v = x;
    return 0;
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
    int loglevel = DLT_LOG_INFO;
    const char *netname = NULL, *filters = NULL, *strides = NULL, *norm = NULL, *out = NULL, *resume = NULL,
               *logpath = NULL, *valpath = NULL, *device = "cpu", *precision = NULL;
    int64_t res_units = -1, batch = 4, steps = -1, seed = 1, threads = 0, ckpt_every = 500, log_every = 10,
            val_every = -1;
    double d, val_overlap = 0.5;
    /* the training configuration, and which of it was given (a resumed run
     * takes the rest from the checkpoint: dlt_train_config_resume) */
    dlt_train_config tc;
    dlt_train_config_default(&tc);
    tc.sched_step = 1000; /* dlt-train(1)'s default */
    unsigned given = 0;
    int g_batch = 0, g_steps = 0, g_seed = 0, sync_bn = 1;
    int c;
    while ((c = getopt_long(argc, argv, "b:n:s:d:t:o:r:l:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case O_NET:
            if (dlt_net_kind_parse(optarg) < 0) return dlt_usage_error("--net: unknown network '%s'%s", optarg, " (unet, asym-unet, fcn)");
            netname = optarg;
            break;
        case O_FILTERS: filters = optarg; break;
        case O_STRIDES: strides = optarg; break;
        case O_RES:
            if (dlt_parse_i64(optarg, 1, INT64_MAX, &res_units) || res_units > 16) return dlt_usage_error("--res-units: bad value '%s'%s", optarg, "");
            break;
        case O_NORM:
            if (strcmp(optarg, "batch") && strcmp(optarg, "instance"))
                return dlt_usage_error("--norm: '%s'%s", optarg, " (batch or instance)");
            norm = optarg;
            break;
        case O_LOSS:
            if ((tc.loss.kind = dlt_loss_parse(optarg)) < 0) return dlt_usage_error("--loss: unknown loss '%s'%s", optarg, " (ce, balanced-ce, dice, dice+ce)");
            given |= DLT_GIVEN_LOSS;
            break;
        case O_OPTIM:
            if ((tc.optim.kind = dlt_optim_parse(optarg)) < 0) return dlt_usage_error("--optim: unknown optimiser '%s'%s", optarg, " (adam, sgd)");
            given |= DLT_GIVEN_OPTIM;
            break;
        case O_LR:
            if (parse_dbl(optarg, &d) || d <= 0) return dlt_usage_error("--lr: bad value '%s'%s", optarg, " (> 0)");
            tc.optim.lr = (float)d, given |= DLT_GIVEN_LR;
            break;
        case O_EPS:
            if (parse_dbl(optarg, &d) || d <= 0) return dlt_usage_error("--eps: bad value '%s'%s", optarg, " (> 0)");
            tc.optim.eps = (float)d, given |= DLT_GIVEN_EPS;
            break;
        case O_MOM:
            if (parse_dbl(optarg, &d) || d < 0 || d >= 1) return dlt_usage_error("--momentum: bad value '%s'%s", optarg, " (in [0,1))");
            tc.optim.momentum = (float)d, given |= DLT_GIVEN_MOMENTUM;
            break;
        case O_NEST: tc.optim.nesterov = 1, given |= DLT_GIVEN_NESTEROV; break;
        case O_WD:
            if (parse_dbl(optarg, &d) || d < 0) return dlt_usage_error("--weight-decay: bad value '%s'%s", optarg, " (>= 0)");
            tc.optim.weight_decay = (float)d, given |= DLT_GIVEN_WEIGHT_DECAY;
            break;
        case O_SCHED:
            if ((tc.sched = dlt_sched_parse(optarg)) < 0) return dlt_usage_error("--schedule: unknown schedule '%s'%s", optarg, " (constant, step, poly)");
            given |= DLT_GIVEN_SCHED;
            break;
        case O_LRSTEP:
            if (dlt_parse_i64(optarg, 1, INT64_MAX, &tc.sched_step)) return dlt_usage_error("--lr-step: bad value '%s'%s", optarg, " (>= 1)");
            given |= DLT_GIVEN_SCHED_STEP;
            break;
        case O_LRGAMMA:
            if (parse_dbl(optarg, &tc.sched_gamma) || tc.sched_gamma <= 0) return dlt_usage_error("--lr-gamma: bad value '%s'%s", optarg, " (> 0)");
            given |= DLT_GIVEN_SCHED_GAMMA;
            break;
        case O_POLY:
            if (parse_dbl(optarg, &tc.poly_power) || tc.poly_power <= 0) return dlt_usage_error("--poly-power: bad value '%s'%s", optarg, " (> 0)");
            given |= DLT_GIVEN_POLY;
            break;
        case 'b':
            if (dlt_parse_i64(optarg, 1, INT64_MAX, &batch) || batch > 4096) return dlt_usage_error("--batch: bad value '%s'%s", optarg, " (1..4096)");
            g_batch = 1;
            break;
        case 'n':
            if (dlt_parse_i64(optarg, 0, INT64_MAX, &steps)) return dlt_usage_error("--steps: bad value '%s'%s", optarg, " (>= 0)");
            g_steps = 1;
            break;
        case 's':
            if (dlt_parse_i64(optarg, 0, INT64_MAX, &seed)) return dlt_usage_error("--seed: bad value '%s'%s", optarg, " (>= 0)");
            g_seed = 1;
            break;
        case 'd': device = optarg; break;
        case O_SYNCBN: sync_bn = 1; break;
        case O_NOSYNCBN: sync_bn = 0; break;
        case O_PRECISION: precision = optarg; break;
        case 't':
            if (dlt_parse_i64(optarg, 1, INT64_MAX, &threads) || threads > 1024) return dlt_usage_error("--threads: bad value '%s'%s", optarg, "");
            break;
        case 'o': out = optarg; break;
        case 'r': resume = optarg; break;
        case O_CKPT:
            if (dlt_parse_i64(optarg, 0, INT64_MAX, &ckpt_every)) return dlt_usage_error("--checkpoint-every: bad value '%s'%s", optarg, " (>= 0)");
            break;
        case 'l': logpath = optarg; break;
        case O_LOGEVERY:
            if (dlt_parse_i64(optarg, 1, INT64_MAX, &log_every)) return dlt_usage_error("--log-every: bad value '%s'%s", optarg, " (>= 1)");
            break;
        case O_VAL: valpath = optarg; break;
        case O_VALEVERY:
            if (dlt_parse_i64(optarg, 0, INT64_MAX, &val_every)) return dlt_usage_error("--val-every: bad value '%s'%s", optarg, " (>= 0)");
            break;
        case O_VALOV:
            if (parse_dbl(optarg, &val_overlap) || val_overlap < 0 || val_overlap >= 1)
                return dlt_usage_error("--val-overlap: bad value '%s'%s", optarg, " (in [0,1))");
            break;
        case 'q': loglevel = DLT_LOG_QUIET; break;
        case 'v': loglevel++; break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: printf("dlt-train %s\n", DLT_VERSION); return 0;
        default: fprintf(stderr, "Try 'dlt-train --help'.\n"); return 2;
        }
    }
    dlt_log_set_level(rank > 0 ? DLT_LOG_QUIET : loglevel);
    if (!out) return dlt_usage_error("no output model: give -o MODEL.dltm");
    if (!strcmp(out, "-")) return dlt_usage_error("-o -: checkpoints need a file, not stdout");
    if (optind < argc - 1) return dlt_usage_error("one patch stream at most (got '%s' and '%s')", argv[optind], argv[optind + 1]);
    if (val_every < 0) val_every = ckpt_every;
    const char *in = optind < argc ? argv[optind] : "-";
    if (rank == 0 && !strcmp(in, "-") && isatty(0)) return dlt_usage_error("no patch stream: stdin is a terminal (pipe dlt-sample into it)");
    if (tc.sched == DLT_SCHED_POLY && steps <= 0 && !resume)
        return dlt_usage_error("--schedule poly needs --steps");
    /* The network options must parse before anything is read. */
    dlt_net_config probe;
    dlt_net_config_default(&probe, netname ? dlt_net_kind_parse(netname) : DLT_NET_UNET, 1, 2);
    if (filters && dlt_net_parse_filters(&probe, filters)) return dlt_usage_error("--filters: %s", dlt_errmsg());
    if (strides && dlt_net_parse_strides(&probe, strides)) return dlt_usage_error("--strides: %s", dlt_errmsg());
    dlt_set_threads((int)threads);

    /* ---- the checkpoint to resume (read fully before anything is written) ---- */
    dlt_model ck;
    dlt_model_init(&ck);
    int64_t ck_records = 0;
    char ck_prec[32] = ""; /* the checkpoint's precision, taken unless --precision is given */
    if (resume) {
        if (dlt_model_read(resume, &ck)) {
            dlt_error("cannot resume: %s", dlt_errmsg());
            return 1;
        }
        const char *s = dlt_model_get_meta(&ck, "records");
        if (!s || dlt_parse_i64(s, 0, INT64_MAX, &ck_records)) {
            dlt_error("%s: not a dlt-train checkpoint (no 'records' in its metadata)", resume);
            return 1;
        }
        dlt_train_config_resume(&tc, given, &ck);
        if (!g_batch && (s = dlt_model_get_meta(&ck, "batch"))) batch = atoll(s) > 0 ? atoll(s) : batch;
        /* another rank count keeps the step's record count where it divides */
        if (!g_batch && (s = dlt_model_get_meta(&ck, "global_batch")) && atoll(s) != batch * ranks) {
            if (atoll(s) > 0 && atoll(s) % ranks == 0) batch = atoll(s) / ranks;
            else dlt_warn("%s: its %s records a step do not divide among %d ranks; using --batch %" PRId64 " per rank",
                          resume, s, ranks, batch);
        }
        if (!g_steps && (s = dlt_model_get_meta(&ck, "steps"))) steps = atoll(s);
        if (!g_seed && (s = dlt_model_get_meta(&ck, "seed"))) seed = atoll(s);
        if ((s = dlt_model_get_meta(&ck, "precision"))) snprintf(ck_prec, sizeof ck_prec, "%s", s);
    }

    /* ---- the stream header (rank 0 reads the stream; the others learn its shape) ---- */
    dlt_patch_reader rd;
    memset(&rd, 0, sizeof rd);
    const char *sname = strcmp(in, "-") ? in : "stdin";
    int hdr[6] = {0};
    if (rank == 0) hdr[0] = !open_stream(in, sname, &rd, &hdr[1], &hdr[2], hdr + 3);
    if (dlt_dist_bcast(dist, hdr, sizeof hdr) || !hdr[0]) {
        dlt_model_free(&ck);
        dlt_dist_finish(dist);
        return 1;
    }
    const int channels = hdr[1], classes = hdr[2], patch[3] = {hdr[3], hdr[4], hdr[5]};

    /* ---- network ---- */
    dlt_net_config nc;
    if (resume) {
        if (dlt_net_config_from_model(&ck, &nc)) {
            dlt_error("%s: %s", resume, dlt_errmsg());
            return 1;
        }
        if (nc.classes != classes || nc.in_channels != channels) {
            dlt_error("%s: the stream has %d channel%s and %d classes, the checkpoint %s has %d and %d", sname, channels,
                      channels == 1 ? "" : "s", classes, resume, nc.in_channels, nc.classes);
            return 1;
        }
        char a[256], b[256];
        dlt_net_format_filters(&nc, a, sizeof a);
        dlt_net_format_filters(&probe, b, sizeof b);
        if ((netname && dlt_net_kind_parse(netname) != nc.kind) || (filters && strcmp(a, b))) {
            dlt_error("%s: the checkpoint is a %s with filters %s; --net/--filters differ", resume,
                      dlt_net_kind_name(nc.kind), a);
            return 1;
        }
        const char *ps = dlt_model_get_meta(&ck, "patch");
        char pp[64];
        snprintf(pp, sizeof pp, "%d,%d,%d", patch[0], patch[1], patch[2]);
        if (ps && strcmp(ps, pp)) dlt_warn("the stream's patch %s differs from the checkpoint's %s", pp, ps);
    } else {
        nc = probe;
        nc.in_channels = channels;
        nc.classes = classes;
        if (res_units > 0) nc.res_units = (int)res_units;
        if (norm) nc.norm = strcmp(norm, "instance") ? DLT_NORM_BATCH : DLT_NORM_INSTANCE;
        if (dlt_net_config_check(&nc)) return dlt_usage_error("%s", dlt_errmsg());
    }
    if (dlt_net_check_size(&nc, patch[0], patch[1], patch[2])) {
        dlt_error("%s: patch %d,%d,%d: %s", sname, patch[0], patch[1], patch[2], dlt_errmsg());
        return 1;
    }
    tc.total_steps = steps > 0 ? steps : 0;
    if (dlt_train_config_check(&tc)) return dlt_usage_error("%s", dlt_errmsg());

    valset vs = {0};
    vs.overlap = val_overlap;
    if (rank == 0 && valpath && val_load(valpath, channels, classes, &vs)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }

    dlt_backend *be = NULL;
    if (dlt_backend_create(device, &be)) {
        dlt_error("--device %s: %s", device, dlt_errmsg());
        return 1;
    }
    if (precision && dlt_backend_set_precision(be, precision))
        return dlt_usage_error("--precision: %s", dlt_errmsg());
    if (!precision && ck_prec[0]) {
        precision = ck_prec;
        if (dlt_backend_set_precision(be, ck_prec)) {
            dlt_warn("%s was trained in %s, which device %s lacks: continuing in fp32", resume, ck_prec, be->name);
            precision = "fp32";
        }
    } else if (precision && ck_prec[0] && strcmp(precision, ck_prec)) {
        dlt_warn("%s was trained in %s, this run in %s: the result will not be bit-identical to an uninterrupted run",
                 resume, ck_prec, precision);
    }
    dlt_net *net = NULL;
    dlt_trainer *tr = NULL;
    if (dlt_net_create(&nc, be, (uint64_t)seed, &net) || dlt_trainer_create(net, &tc, (uint64_t)seed, &tr)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    /* every rank starts from the same weights (one seed) and takes the
     * same steps: averaged gradients, batch norm over all ranks' samples */
    if (dlt_trainer_set_dist(tr, dist)) {
        dlt_error("%s", dlt_errmsg());
        dlt_dist_abort(dist, 1);
    }
    if (sync_bn) dlt_backend_set_reduce(be, dlt_dist_reduce(dist));
    run r = {0};
    r.out = out;
    r.stream_name = sname;
    r.tr = tr;
    /* a copy: the feed owns the reader (and its header) and frees it on close */
    dlt_patch_header hcopy;
    memset(&hcopy, 0, sizeof hcopy);
    for (int i = 0; i < rd.header.nkeys; i++) dlt_patch_header_set(&hcopy, rd.header.key[i], rd.header.value[i]);
    r.hdr = &hcopy;
    memcpy(r.patch, patch, sizeof patch);
    r.batch = (int)batch;
    r.ranks = ranks;
    r.seed = (uint64_t)seed;
    r.precision = precision ? precision : "fp32";
    r.steps_target = steps;
    r.best_val = NAN;
    r.last_loss = NAN;
    size_t olen = strlen(out);
    if (olen > 5 && !strcmp(out + olen - 5, ".dltm"))
        snprintf(r.best_path, sizeof r.best_path, "%.*s.best.dltm", (int)(olen - 5), out);
    else
        snprintf(r.best_path, sizeof r.best_path, "%s.best", out);
    if (resume) {
        if (dlt_trainer_restore(tr, &ck)) {
            dlt_error("%s: %s", resume, dlt_errmsg());
            return 1;
        }
        const char *s;
        r.records = ck_records;
        if ((s = dlt_model_get_meta(&ck, "intensity"))) snprintf(r.intensity, sizeof r.intensity, "%s", s);
        if ((s = dlt_model_get_meta(&ck, "best_val_dice"))) r.best_val = atof(s);
        if ((s = dlt_model_get_meta(&ck, "best_val_step"))) r.best_step = atoll(s);
        if ((s = dlt_model_get_meta(&ck, "train_loss"))) r.last_loss = atof(s);
        dlt_log(DLT_LOG_INFO, "resuming %s at step %" PRId64 " (%" PRId64 " records used)", resume,
                dlt_trainer_steps_done(tr), ck_records);
    }
    dlt_model_free(&ck);

    /* ---- log file ---- */
    FILE *logf = NULL;
    if (rank == 0 && logpath) {
        logf = fopen(logpath, "a");
        if (!logf) {
            dlt_error("%s: %s", logpath, strerror(errno));
            return 1;
        }
        if (ftell(logf) == 0) {
            fprintf(logf, "step\tloss\tlr\tpatches_per_s\telapsed_s");
            if (valpath) {
                dlt_class_names cn = {0};
                const char *names = dlt_patch_header_get(&hcopy, "class_names");
                if (names) dlt_class_names_parse(names, &cn);
                fprintf(logf, "\tval_dice_mean");
                for (int k = 1; k < classes; k++) {
                    const char *nm = dlt_class_names_get(&cn, k);
                    if (nm) fprintf(logf, "\tval_dice_%s", nm);
                    else fprintf(logf, "\tval_dice_%d", k);
                }
                dlt_class_names_free(&cn);
            }
            fputc('\n', logf);
            fflush(logf);
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL); /* what mpirun forwards to every rank (its own SIGTERM ends the job) */

    dlt_feed_config fc = {.channels = channels, .classes = classes, .patch = {patch[0], patch[1], patch[2]},
                          .capacity = (int)(2 * batch > 8 ? 2 * batch : 8)};
    dlt_feed *feed = NULL;
    if (rank == 0 && dlt_feed_start(&rd, &fc, &feed)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    char fbuf[128], sbuf[256];
    dlt_net_format_filters(&nc, fbuf, sizeof fbuf);
    dlt_net_format_strides(&nc, sbuf, sizeof sbuf);
    dlt_log(DLT_LOG_INFO,
            "%s filters %s strides %s, %d channel%s -> %d classes, %" PRId64 " parameters; patch %d,%d,%d, batch %d%s, "
            "%s loss, %s, device %s%s%s",
            dlt_net_kind_name(nc.kind), fbuf, sbuf, channels, channels == 1 ? "" : "s", classes,
            dlt_net_count_trainable(net), patch[0], patch[1], patch[2], r.batch, ranks > 1 ? " per rank" : "",
            dlt_loss_name(tc.loss.kind),
            dlt_optim_name(tc.optim.kind), be->name, precision ? ", precision " : "", precision ? precision : "");
    dlt_log(DLT_LOG_VERBOSE, "%d CPU threads", dlt_threads());
    if (ranks > 1)
        dlt_log(DLT_LOG_INFO, "%d ranks (%s): %" PRId64 " records a step, batch norm %s", ranks, dlt_dist_library(),
                batch * ranks, nc.norm == DLT_NORM_BATCH ? (sync_bn ? "over all ranks" : "per rank") : "per sample");

    /* ---- the loop ---- */
    const int64_t vox = (int64_t)patch[0] * patch[1] * patch[2], gbatch = batch * ranks;
    const int64_t nbuf = rank == 0 ? gbatch : batch; /* rank 0 reads the whole step */
    batchbuf bb = {.vox = vox, .channels = channels};
    bb.x = dlt_alloc(nbuf * channels * vox, sizeof(float), "batch images");
    bb.y = dlt_alloc(nbuf * vox, sizeof(int32_t), "batch labels");
    /* Intensity sample of the first step's records (fresh runs only): any
     * checkpoint has seen them, so a resumed run records the same statistics. */
    bb.istride = vox / 65536 + 1, bb.iper = (vox + bb.istride - 1) / bb.istride, bb.ircap = gbatch < 64 ? gbatch : 64;
    if (rank == 0 && !r.intensity[0]) bb.isamp = dlt_alloc(channels * bb.ircap * bb.iper, sizeof(float), "intensity sample");
    double *vdice = calloc((size_t)classes, sizeof(double));
    if (!bb.x || !bb.y || !vdice || (rank == 0 && !r.intensity[0] && !bb.isamp)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    dlt_patch p = {0};
    int status = 0, ended = 0, interrupted = 0, agreed = 0; /* agreed: every rank knows of the error */
    int64_t step = dlt_trainer_steps_done(tr), start = step, leftover = 0, last_ckpt = resume ? step : -1;
    double t0 = dlt_now(), tlog = t0, loss_sum = 0;
    int64_t loss_n = 0, rec_log = 0;
    dlt_progress prog;
    if (loglevel > 0 && rank == 0) dlt_progress_start(&prog, "steps", steps >= 0 ? steps - start : 0);
    if (steps >= 0 && step >= steps) dlt_log(DLT_LOG_INFO, "already at step %" PRId64 " (--steps %" PRId64 ")", step, steps);

    while (steps < 0 || step < steps) {
        int64_t got;
        int st = next_batch(dist, feed, &p, &bb, batch, &got);
        if (st == B_STOPPED) interrupted = 1;
        if (st == B_ERROR) status = 1, agreed = 1;
        if (st == B_ENDED) ended = 1, leftover = got;
        if (st != B_OK) break;
        double lr_now = dlt_trainer_lr(tr), lv;
        if (dlt_trainer_step(tr, bb.x, bb.y, batch, patch[2], patch[1], patch[0], &lv)) {
            dlt_error("step %" PRId64 ": %s", step + 1, dlt_errmsg());
            status = 1;
            break;
        }
        if (!isfinite(lv)) { /* the mean over the ranks: all stop here */
            agreed = 1;
            if (rank == 0)
            dlt_error("step %" PRId64 ": the loss is %s (training diverged; try a smaller --lr); %s", step + 1,
                      isnan(lv) ? "nan" : "infinite",
                      last_ckpt >= 0 ? "the last checkpoint is intact" : "no checkpoint was written");
            if (last_ckpt >= 0) dlt_log(DLT_LOG_INFO, "last good checkpoint: %s (step %" PRId64 ")", out, last_ckpt);
            status = 1;
            break;
        }
        step++;
        r.records += gbatch;
        r.last_loss = lv;
        loss_sum += lv, loss_n++, rec_log += gbatch;
        int final = steps >= 0 && step >= steps;
        double vmean = NAN;
        if (rank == 0 && vs.n && ((val_every > 0 && step % val_every == 0) || final)) {
            if (validate(net, &vs, classes, patch, r.batch, vdice, &vmean)) {
                dlt_error("step %" PRId64 ": %s", step, dlt_errmsg());
                status = 1;
                break;
            }
            dlt_log(DLT_LOG_INFO, "step %" PRId64 ": validation mean Dice %.4f", step, vmean);
            if (!isnan(vmean) && (isnan(r.best_val) || vmean > r.best_val)) {
                r.best_val = vmean, r.best_step = step;
                if (save_model(&r, r.best_path, vmean)) {
                    dlt_error("%s", dlt_errmsg());
                    status = 1;
                    break;
                }
            }
        }
        if (logf && (step % log_every == 0 || final || !isnan(vmean))) {
            double now = dlt_now();
            fprintf(logf, "%" PRId64 "\t%.6g\t%.6g\t%.2f\t%.2f", step, loss_sum / loss_n, lr_now,
                    now > tlog ? rec_log / (now - tlog) : 0.0, now - t0);
            if (valpath) {
                fprintf(logf, "\t%.6g", vmean);
                for (int k = 1; k < classes; k++) fprintf(logf, "\t%.6g", isnan(vmean) ? NAN : vdice[k]);
            }
            fputc('\n', logf);
            fflush(logf);
            tlog = now, loss_sum = 0, loss_n = 0, rec_log = 0;
        }
        if (rank == 0 && ckpt_every > 0 && step % ckpt_every == 0 && !final) {
            if (save_model(&r, out, NAN)) {
                dlt_error("%s", dlt_errmsg());
                status = 1;
                break;
            }
            last_ckpt = step;
        }
        if (loglevel > 0 && rank == 0) {
            char ex[64];
            snprintf(ex, sizeof ex, "loss %.4g", lv);
            dlt_progress_update(&prog, step - start, ex);
        }
    }
    if (status && !agreed && ranks > 1) dlt_dist_abort(dist, 1); /* the others may wait in a collective */
    if (loglevel > 0 && rank == 0 && step > start) {
        char ex[64];
        snprintf(ex, sizeof ex, "loss %.4g", r.last_loss);
        dlt_progress_end(&prog, ex);
    }
    if (feed) dlt_feed_close(feed);
    if (!status && rank == 0) {
        float *isamp = bb.isamp;
        const int64_t irec = bb.irec, iper = bb.iper, ircap = bb.ircap;
        if (isamp && irec > 0) {
            /* [channel][record][k] is [channel][n] with n = irec*iper when irec == ircap;
             * otherwise compact the channels first */
            int64_t n = irec * iper;
            for (int ch = 1; ch < channels; ch++)
                memmove(isamp + ch * n, isamp + ch * ircap * iper, sizeof(float) * (size_t)n);
            dlt_intensity_stats(isamp, n, channels, r.intensity, sizeof r.intensity);
        }
        if (save_model(&r, out, NAN)) {
            dlt_error("%s", dlt_errmsg());
            status = 1;
        }
    }
    if (!status && rank == 0) {
        if (interrupted) {
            print_resume(argc, argv, &r, step);
        } else {
            if (ended && steps >= 0 && step < steps)
                dlt_log(DLT_LOG_INFO, "the stream ended at step %" PRId64 " (before --steps %" PRId64 ")", step, steps);
            if (leftover)
                dlt_log(DLT_LOG_INFO, "%" PRId64 " record%s at the end (fewer than --batch) not used", leftover,
                        leftover == 1 ? "" : "s");
            dlt_log(DLT_LOG_INFO, "wrote %s: step %" PRId64 ", %" PRId64 " records, loss %.4g, %.1f s", out, step,
                    r.records, r.last_loss, dlt_now() - t0);
        }
    }
    if (logf) fclose(logf);
    dlt_patch_free(&p);
    dlt_free(bb.x), dlt_free(bb.y), dlt_free(bb.isamp);
    free(vdice);
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
