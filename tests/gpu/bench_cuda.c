/* bench_cuda.c - speed of the CUDA backend on DLTK's U-Net, printed in the
 * same tab-separated form as ../shared/peers/torch_dltk_unet.py so the two
 * lines sit side by side (built and run by tests/gpu/run.sh).
 *
 *   bench_cuda train|infer|windows [--batch N] [--patch P] [--precision fp32|tf32|bf16]
 *              [--steps 5] [--warmup 2] [--classes 14]
 *
 * train: one Adam step with CE on a random batch (upload of the batch and
 * the loss read-back included), median of --steps after --warmup.
 * infer: a training=0 forward pass of a batch (upload included).
 * windows: the forward passes + softmax of the 27 windows (64^3, overlap
 * 0.5) of a 128^3 volume in batches of --batch; the peer's `sliding` also
 * accumulates the windows into the volume on the GPU, which this does not
 * do, so it is a lower bound on dlt-infer's time, not the same measure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda.h"
#include "dlt/backend.h"
#include "dlt/core.h"
#include "dlt/net.h"
#include "dlt/train.h"

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "train", *prec = "fp32";
    int batch = 8, P = 64, steps = 5, warm = 2, classes = 14;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--patch")) P = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--precision")) prec = argv[i + 1];
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warm = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--classes")) classes = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_cuda: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (steps < 1 || steps > 100) steps = 5;
    dlt_log_init("bench_cuda");
    dlt_backend *be;
    if (dlt_backend_create("cuda", &be) || dlt_backend_set_option(be, "precision", prec)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    dlt_net_config cfg;
    dlt_net_config_default(&cfg, DLT_NET_UNET, 1, classes);
    dlt_net *net;
    if (dlt_net_create(&cfg, be, 1, &net)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    int64_t vox = (int64_t)batch * P * P * P;
    float *x = malloc((size_t)vox * 4);
    int32_t *lab = malloc((size_t)vox * 4);
    dlt_rng r;
    dlt_rng_init(&r, 3, 0);
    for (int64_t i = 0; i < vox; i++) x[i] = (float)dlt_rng_normal(&r), lab[i] = (int32_t)dlt_rng_below(&r, classes);
    double ts[100];
    char tag[256];
    snprintf(tag, sizeof tag, "dlt %s\tcuda\tprecision=%s\tnet=unet\tparams=%lld", DLT_VERSION, prec,
             (long long)dlt_net_count_trainable(net));
    int rc = 0;
    if (!strcmp(mode, "train")) {
        dlt_train_config tc;
        dlt_train_config_default(&tc);
        dlt_trainer *t;
        if ((rc = dlt_trainer_create(net, &tc, 1, &t)) == 0) {
            for (int s = 0; s < warm + steps && !rc; s++) {
                double loss, t0 = dlt_now();
                rc = dlt_trainer_step(t, x, lab, batch, P, P, P, &loss);
                if (!rc) rc = dlt_backend_sync(be);
                if (s >= warm) ts[s - warm] = dlt_now() - t0;
            }
            dlt_trainer_free(t);
        }
        if (!rc) {
            qsort(ts, steps, sizeof *ts, cmpd);
            double m = ts[steps / 2];
            printf("%s\ttrain\tbatch=%d\tpatch=%d\ts_per_step=%.4f\tpatches_per_s=%.3f\n", tag, batch, P, m,
                   batch / m);
        }
    } else if (!strcmp(mode, "infer")) {
        for (int s = 0; s < warm + steps && !rc; s++) {
            double t0 = dlt_now();
            rc = dlt_net_forward(net, x, batch, P, P, P, 0, NULL);
            if (!rc) rc = dlt_backend_sync(be);
            if (s >= warm) ts[s - warm] = dlt_now() - t0;
        }
        if (!rc) {
            qsort(ts, steps, sizeof *ts, cmpd);
            double m = ts[steps / 2];
            printf("%s\tinfer\tbatch=%d\tpatch=%d\ts_per_batch=%.4f\tpatches_per_s=%.3f\n", tag, batch, P, m,
                   batch / m);
        }
    } else if (!strcmp(mode, "windows")) {
        int nwin = 27;
        dlt_tensor probs = {0};
        for (int s = 0; s < warm + steps && !rc; s++) {
            double t0 = dlt_now();
            for (int w0 = 0; w0 < nwin && !rc; w0 += batch) {
                int nb = nwin - w0 < batch ? nwin - w0 : batch;
                const dlt_tensor *lg;
                rc = dlt_net_forward(net, x, nb, P, P, P, 0, &lg);
                if (!rc && (!probs.data || probs.n != nb)) {
                    dlt_tensor_release(&probs);
                    rc = dlt_tensor_alloc(be, &probs, DLT_T_ACT, lg->n, lg->c, lg->d, lg->h, lg->w);
                }
                if (!rc) rc = dlt_op_softmax_fwd(be, lg, &probs);
            }
            if (!rc) rc = dlt_backend_sync(be);
            if (s >= warm) ts[s - warm] = dlt_now() - t0;
        }
        dlt_tensor_release(&probs);
        if (!rc) {
            qsort(ts, steps, sizeof *ts, cmpd);
            double m = ts[steps / 2];
            printf("%s\twindows\tvolume=128,128,128\tpatch=%d\toverlap=0.5\tbatch=%d\ts_per_volume=%.3f\t"
                   "mvox_per_s=%.3f\t(no accumulation: lower bound)\n",
                   tag, P, batch, m, 128.0 * 128 * 128 / m / 1e6);
        }
    } else {
        fprintf(stderr, "bench_cuda: mode must be train, infer or windows\n");
        return 2;
    }
    if (rc) dlt_error("%s", dlt_errmsg());
    int64_t held, peak;
    dlt_cuda_mem_stats(be, &held, &peak);
    fprintf(stderr, "bench_cuda: GPU memory: pool holds %.0f MiB, peak live %.0f MiB\n", held / 1048576.0,
            peak / 1048576.0);
    dlt_net_free(net);
    dlt_backend_free(be);
    free(x);
    free(lab);
    return rc ? 1 : 0;
}
