/* bench_engine.c - time the engine on this machine: a training step of
 * DLTK's default U-Net (filters 16,32,64,128, strides 1,2,2,2, 1 input
 * channel, 14 classes, CE loss or --loss, Adam) on a batch of 64^3 patches, a forward
 * pass, or one 3^3 convolution; prints one tab-separated line in the shape
 * of the PyTorch peer's (../shared/peers/torch_dltk_unet.py), so that
 * bench/engine.sh can set them side by side.
 *
 *   bench_engine train [--batch 2] [--patch 64] [--steps 5] [--warmup 2]
 *   bench_engine infer [--batch 1] ...
 *   bench_engine conv  [--batch 2] [--patch 64] [--channels 16]
 * Options: --backend cpu|cpu-ref|cuda (cpu), --gflop G (nominal forward
 * GFLOP per patch, from the peer's flops mode; 0: not printed), --profile
 * (time per backend op kind, on stderr), --filters (U-Net filters per scale,
 * default 16,32,64,128). Threads: DLT_THREADS or all cores.
 * Times are medians over --steps runs after --warmup runs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "dlt/backend.h"
#include "dlt/net.h"
#include "dlt/train.h"


/* ---- --profile: wrap the table's hot entries and add up their time ---- */
enum { P_CONV_F, P_CONV_BD, P_CONV_BW, P_CONVT_F, P_CONVT_BD, P_NORM_F, P_NORM_B, P_POOL_F, P_POOL_B, P_PADC, P_CONCAT,
       P_ADD, P_COPY, P_LOSS, P_OPTIM, P_UPLOAD, P_ZERO, P_N };
static const char *pname[P_N] = {"conv_fwd", "conv_bwd_data", "conv_bwd_weights", "convt_fwd", "convt_bwd_data",
                                 "norm_fwd", "norm_bwd", "maxpool_fwd", "maxpool_bwd", "padc", "concat", "add_fwd",
                                 "copy", "loss", "optim_step", "upload", "zero"};
static double ptime[P_N];
/* per convolution shape and kind: time and nominal GFLOP */
#define NSHAPE 64
static struct { char key[96]; double t, gf; long n; } shp[NSHAPE];
static void shape_add(const char *kind, const dlt_conv_desc *c, const dlt_tensor *big, const dlt_tensor *small,
                      const dlt_tensor *in, double t)
{
    char k[96];
    snprintf(k, sizeof k, "%s %lld->%lld k%d s%d %lldx%lldx%lld", kind, (long long)in->c,
             (long long)(in == big ? small->c : big->c), c->k[2], c->stride[2], (long long)big->d, (long long)big->h,
             (long long)big->w);
    int g = c->groups > 0 ? c->groups : 1;
    const dlt_tensor *out = in == big ? small : big;
    double gf = 2.0 * small->n * small->d * small->h * small->w * (double)big->c * small->c / g * c->k[0] * c->k[1] *
                c->k[2] / 1e9;
    (void)out;
    for (int i = 0; i < NSHAPE; i++) {
        if (!shp[i].key[0]) snprintf(shp[i].key, sizeof shp[i].key, "%s", k);
        if (!strcmp(shp[i].key, k)) {
            shp[i].t += t, shp[i].gf += gf, shp[i].n++;
            return;
        }
    }
}
static long pcount[P_N];
static dlt_backend_ops orig, wrapped; /* the backend's table, and a copy with timed slots */
#define TIMED(k, call)                                                                                              \
    do {                                                                                                            \
        double t0_ = dlt_now();                                                                                     \
        int rc_ = call;                                                                                             \
        ptime[k] += dlt_now() - t0_;                                                                                \
        pcount[k]++;                                                                                                \
        return rc_;                                                                                                 \
    } while (0)
#define TIMED_SHAPE(k, kind, big, small, in, call)                                                                  \
    do {                                                                                                            \
        double t0_ = dlt_now();                                                                                     \
        int rc_ = call;                                                                                             \
        double t_ = dlt_now() - t0_;                                                                                \
        ptime[k] += t_;                                                                                             \
        pcount[k]++;                                                                                                \
        shape_add(kind, c, big, small, in, t_);                                                                     \
        return rc_;                                                                                                 \
    } while (0)
static int w_conv_f(dlt_backend *b, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                    const dlt_tensor *bi, dlt_tensor *y)
{
    TIMED_SHAPE(P_CONV_F, "fwd", x, y, x, orig.conv_fwd(b, c, x, w, bi, y));
}
static int w_conv_bd(dlt_backend *b, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                     dlt_tensor *dx, int a)
{
    TIMED_SHAPE(P_CONV_BD, "bwd_d", dx, dy, dx, orig.conv_bwd_data(b, c, dy, w, dx, a));
}
static int w_conv_bw(dlt_backend *b, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                     dlt_tensor *dw, dlt_tensor *db)
{
    TIMED_SHAPE(P_CONV_BW, "bwd_w", x, dy, x, orig.conv_bwd_weights(b, c, x, dy, dw, db));
}
static int w_convt_f(dlt_backend *b, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                     const dlt_tensor *bi, dlt_tensor *y)
{
    TIMED(P_CONVT_F, orig.convt_fwd(b, c, x, w, bi, y));
}
static int w_convt_bd(dlt_backend *b, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                      dlt_tensor *dx, int a)
{
    TIMED(P_CONVT_BD, orig.convt_bwd_data(b, c, dy, w, dx, a));
}
static int w_norm_f(dlt_backend *b, const dlt_norm_desc *nd, int tr, const dlt_tensor *x, const dlt_tensor *g,
                    const dlt_tensor *be, dlt_tensor *rm, dlt_tensor *rv, dlt_tensor *sm, dlt_tensor *sr, dlt_tensor *y)
{
    TIMED(P_NORM_F, orig.norm_fwd(b, nd, tr, x, g, be, rm, rv, sm, sr, y));
}
static int w_norm_b(dlt_backend *b, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                    const dlt_tensor *dy, const dlt_tensor *g, const dlt_tensor *sm, const dlt_tensor *sr, dlt_tensor *dx,
                    int a, dlt_tensor *dg, dlt_tensor *db)
{
    TIMED(P_NORM_B, orig.norm_bwd(b, nd, x, y, dy, g, sm, sr, dx, a, dg, db));
}
static int w_pool_f(dlt_backend *b, const int k[3], const dlt_tensor *x, dlt_tensor *y)
{
    TIMED(P_POOL_F, orig.maxpool_fwd(b, k, x, y));
}
static int w_pool_b(dlt_backend *b, const int k[3], const dlt_tensor *x, const dlt_tensor *y, const dlt_tensor *dy,
                    dlt_tensor *dx, int a)
{
    TIMED(P_POOL_B, orig.maxpool_bwd(b, k, x, y, dy, dx, a));
}
static int w_padc_f(dlt_backend *b, int lo, int hi, const dlt_tensor *x, dlt_tensor *y)
{
    TIMED(P_PADC, orig.padc_fwd(b, lo, hi, x, y));
}
static int w_padc_b(dlt_backend *b, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int a)
{
    TIMED(P_PADC, orig.padc_bwd(b, lo, hi, dy, dx, a));
}
static int w_cat_f(dlt_backend *b, const dlt_tensor *x, const dlt_tensor *y, dlt_tensor *z)
{
    TIMED(P_CONCAT, orig.concat_fwd(b, x, y, z));
}
static int w_cat_b(dlt_backend *b, const dlt_tensor *dy, dlt_tensor *da, int aa, dlt_tensor *db, int ab)
{
    TIMED(P_CONCAT, orig.concat_bwd(b, dy, da, aa, db, ab));
}
static int w_add(dlt_backend *b, const dlt_tensor *x, const dlt_tensor *y, dlt_tensor *z)
{
    TIMED(P_ADD, orig.add_fwd(b, x, y, z));
}
static int w_copy(dlt_backend *b, const dlt_tensor *s, dlt_tensor *d, int a) { TIMED(P_COPY, orig.copy(b, s, d, a)); }
static int w_loss(dlt_backend *b, const dlt_loss_desc *ld, const dlt_tensor *lg, const dlt_tensor *lb, double *v,
                  dlt_tensor *d)
{
    TIMED(P_LOSS, orig.loss(b, ld, lg, lb, v, d));
}
static int w_optim(dlt_backend *b, const dlt_optim_desc *od, dlt_tensor *p, const dlt_tensor *g, dlt_tensor *m,
                   dlt_tensor *v)
{
    TIMED(P_OPTIM, orig.optim_step(b, od, p, g, m, v));
}
static int w_upload(dlt_backend *b, dlt_tensor *t, const void *h) { TIMED(P_UPLOAD, orig.upload(b, t, h)); }
static int w_zero(dlt_backend *b, dlt_tensor *t) { TIMED(P_ZERO, orig.zero(b, t)); }
static double alloc_mb[4];
static int w_alloc(dlt_backend *b, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
    if (role >= 0 && role < 4) alloc_mb[role] += 4.0 * n * c * d * h * w / 1048576.0;
    return orig.alloc(b, t, role, n, c, d, h, w);
}

/* The backend's ops table is constant: time it through a copy whose hot
 * slots are wrapped (only those the backend fills; an empty slot stays
 * empty and runs on the reference through the front). */
static void profile_install(dlt_backend *be)
{
    orig = wrapped = *be->ops;
#define WRAP(slot, fn) (wrapped.slot = orig.slot ? fn : NULL)
    WRAP(conv_fwd, w_conv_f), WRAP(conv_bwd_data, w_conv_bd), WRAP(conv_bwd_weights, w_conv_bw);
    WRAP(convt_fwd, w_convt_f), WRAP(convt_bwd_data, w_convt_bd);
    WRAP(norm_fwd, w_norm_f), WRAP(norm_bwd, w_norm_b), WRAP(maxpool_fwd, w_pool_f), WRAP(maxpool_bwd, w_pool_b);
    WRAP(padc_fwd, w_padc_f), WRAP(padc_bwd, w_padc_b), WRAP(concat_fwd, w_cat_f), WRAP(concat_bwd, w_cat_b);
    WRAP(add_fwd, w_add), WRAP(copy, w_copy), WRAP(loss, w_loss), WRAP(optim_step, w_optim);
    WRAP(upload, w_upload), WRAP(zero, w_zero), WRAP(alloc, w_alloc);
#undef WRAP
    be->ops = &wrapped;
}

static void profile_report(int runs)
{
    double tot = 0;
    for (int i = 0; i < P_N; i++) tot += ptime[i];
    fprintf(stderr, "profile (per run, %d runs):\n", runs);
    for (int i = 0; i < P_N; i++)
        if (pcount[i])
            fprintf(stderr, "  %-18s %8.1f ms  %5.1f%%  (%ld calls)\n", pname[i], 1e3 * ptime[i] / runs,
                    100 * ptime[i] / tot, pcount[i] / runs);
    fprintf(stderr, "  %-18s %8.1f ms\n", "total", 1e3 * tot / runs);
    fprintf(stderr, "tensors allocated (logical sizes): activations %.0f MB, weights %.1f MB, vectors %.1f MB, labels %.1f MB\n",
            alloc_mb[0], alloc_mb[1], alloc_mb[2], alloc_mb[3]);
    fprintf(stderr, "convolutions by shape (per run):\n");
    for (int i = 0; i < NSHAPE && shp[i].key[0]; i++)
        fprintf(stderr, "  %-40s %8.1f ms %7.1f GFLOP/s  (%ld calls)\n", shp[i].key, 1e3 * shp[i].t / runs,
                shp[i].gf / shp[i].t, shp[i].n / runs);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_engine train|infer|conv [--backend cpu] [--batch N] [--patch P] [--steps S]\n"
               "       [--warmup W] [--gflop G] [--channels C] [--loss ce|balanced-ce|dice|dice+ce] [--filters F,F,..]\n"
               "       [--profile] [--precision fp32|bf16|tf32]\n");
}

int main(int argc, char **argv)
{
    const char *backend = "cpu";
    int batch = -1, patch = 64, steps = 5, warmup = 2, profile = 0, channels = 16, loss_kind = DLT_LOSS_CE;
    const char *filters = NULL, *precision = NULL;
    double gflop = 0;
    static const struct option lo[] = {{"backend", 1, 0, 'b'}, {"batch", 1, 0, 'n'},   {"patch", 1, 0, 'p'},
                                       {"steps", 1, 0, 's'},   {"warmup", 1, 0, 'w'},  {"gflop", 1, 0, 'g'},
                                       {"profile", 0, 0, 'P'}, {"channels", 1, 0, 'c'}, {"filters", 1, 0, 'f'}, {"help", 0, 0, 'h'},
                                       {"loss", 1, 0, 'L'}, {"precision", 1, 0, 'X'},
                                       {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (o) {
        case 'b': backend = optarg; break;
        case 'n': batch = atoi(optarg); break;
        case 'p': patch = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'g': gflop = atof(optarg); break;
        case 'P': profile = 1; break;
        case 'f': filters = optarg; break;
        case 'X': precision = optarg; break;
        case 'c': channels = atoi(optarg); break;
        case 'L':
            if ((loss_kind = dlt_loss_parse(optarg)) < 0) {
                fprintf(stderr, "bench_engine: error: %s: unknown loss\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc || steps < 1 || warmup < 0 || patch < 8) {
        usage(stderr);
        return 2;
    }
    const char *mode = argv[optind];
    const int train = !strcmp(mode, "train"), infer = !strcmp(mode, "infer"), conv = !strcmp(mode, "conv");
    if (!train && !infer && !conv) {
        usage(stderr);
        return 2;
    }
    if (batch < 1) batch = infer ? 1 : 2;
    dlt_log_init("bench_engine");
    dlt_backend *be;
    if (dlt_backend_create(backend, &be)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    if (precision && dlt_backend_set_precision(be, precision)) {
        dlt_error("--precision %s: %s", precision, dlt_errmsg());
        return 1;
    }
    if (profile) profile_install(be);
    const int64_t P = patch, nvox = P * P * P;
    double *ts = calloc((size_t)steps, sizeof(double));
    int rc = 0;
    double m = 0;
    if (conv) {
        /* one C->C 3^3 convolution: forward, backward data, backward weights */
        dlt_conv_desc cd;
        memset(&cd, 0, sizeof cd);
        cd.k[0] = cd.k[1] = cd.k[2] = 3;
        cd.stride[0] = cd.stride[1] = cd.stride[2] = 1;
        cd.groups = 1;
        const int64_t in[3] = {P, P, P};
        int64_t out[3];
        dlt_conv_same(&cd, in, out);
        dlt_tensor x, w, y, dx, dw;
        rc = dlt_tensor_alloc(be, &x, DLT_T_ACT, batch, channels, P, P, P);
        rc = rc ? rc : dlt_tensor_alloc(be, &w, DLT_T_WEIGHT, channels, channels, 3, 3, 3);
        rc = rc ? rc : dlt_tensor_alloc(be, &y, DLT_T_ACT, batch, channels, P, P, P);
        rc = rc ? rc : dlt_tensor_alloc(be, &dx, DLT_T_ACT, batch, channels, P, P, P);
        rc = rc ? rc : dlt_tensor_alloc(be, &dw, DLT_T_WEIGHT, channels, channels, 3, 3, 3);
        float *h = malloc(4 * (size_t)(batch * channels * nvox));
        for (int64_t i = 0; i < batch * channels * nvox; i++) h[i] = (float)((i * 2654435761u) % 1000) / 1000.f - .5f;
        rc = rc ? rc : dlt_tensor_upload(&x, h);
        rc = rc ? rc : dlt_tensor_upload(&w, h);
        const double gf = 2.0 * batch * channels * channels * 27.0 * nvox / 1e9;
        const char *names[3] = {"fwd", "bwd_data", "bwd_weights"};
        for (int k = 0; k < 3 && !rc; k++) {
            for (int s = -warmup; s < steps && !rc; s++) {
                double t0 = dlt_now();
                rc = k == 0   ? dlt_op_conv_fwd(be, &cd, &x, &w, NULL, &y)
                     : k == 1 ? dlt_op_conv_bwd_data(be, &cd, &y, &w, &dx, 0)
                              : dlt_op_conv_bwd_weights(be, &cd, &x, &y, &dw, NULL);
                if (s >= 0) ts[s] = dlt_now() - t0;
            }
            if (rc) break;
            m = bench_median(ts, steps);
            printf("dlt %s\tthreads=%d\tconv3x3x3\t%s\tbatch=%d\tchannels=%d\tpatch=%d\ts=%.4f\tgflop_per_s=%.1f\n",
                   backend, dlt_threads(), names[k], batch, channels, patch, m, gf / m);
        }
        free(h);
    } else {
        dlt_net_config c;
        dlt_net_config_default(&c, DLT_NET_UNET, 1, 14);
        if (filters && dlt_net_parse_filters(&c, filters)) {
            dlt_error("--filters: %s", dlt_errmsg());
            return 2;
        }
        dlt_net *net = NULL;
        dlt_trainer *tr = NULL;
        rc = dlt_net_create(&c, be, 1, &net);
        float *x = malloc(4 * (size_t)(batch * nvox));
        int32_t *lab = malloc(4 * (size_t)(batch * nvox));
        dlt_rng g;
        dlt_rng_init(&g, 1, 0);
        for (int64_t i = 0; i < batch * nvox; i++) x[i] = (float)dlt_rng_normal(&g), lab[i] = (int32_t)dlt_rng_below(&g, 14);
        dlt_train_config tc;
        dlt_train_config_default(&tc);
        tc.loss.kind = loss_kind;
        if (!rc && train) rc = dlt_trainer_create(net, &tc, 1, &tr);
        for (int s = -warmup; s < steps && !rc; s++) {
            if (s == 0 && profile) memset(ptime, 0, sizeof ptime), memset(pcount, 0, sizeof pcount), memset(shp, 0, sizeof shp);
            double t0 = dlt_now(), loss;
            const dlt_tensor *lg;
            rc = train ? dlt_trainer_step(tr, x, lab, batch, P, P, P, &loss)
                       : dlt_net_forward(net, x, batch, P, P, P, 0, &lg);
            if (s >= 0) ts[s] = dlt_now() - t0;
        }
        if (!rc) {
            m = bench_median(ts, steps);
            printf("dlt %s\tthreads=%d\tnet=unet\tparams=%lld\t%s\tloss=%s\tbatch=%d\tpatch=%d\t%s=%.4f\tpatches_per_s=%.3f",
                   backend, dlt_threads(), (long long)dlt_net_count_trainable(net), mode, dlt_loss_name(loss_kind), batch, patch,
                   train ? "s_per_step" : "s_per_batch", m, batch / m);
            if (gflop > 0) printf("\tgflop_per_s=%.1f", (train ? 3 : 1) * gflop * batch / m);
            printf("\n");
            if (profile) profile_report(steps);
        }
        dlt_trainer_free(tr);
        dlt_net_free(net);
        free(x), free(lab);
    }
    if (rc) dlt_error("%s", dlt_errmsg());
    free(ts);
    dlt_backend_free(be);
    return rc ? 1 : 0;
}
