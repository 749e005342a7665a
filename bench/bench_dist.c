/* bench_dist.c - data-parallel training steps of DLTK's default U-Net
 * (filters 16,32,64,128, 1 channel, 14 classes, CE, Adam) on the "cpu"
 * backend, alone or under mpirun: the global batch (--batch, default 2) is
 * split over the ranks, gradients averaged, batch norm synchronised (as
 * dlt-train; --no-sync-bn: per rank). Rank 0 prints one line: ranks,
 * threads per rank, the median step time over --steps after --warmup, and
 * the median time of one allreduce of all gradients (the cost the step
 * pays for data parallelism, timed on its own after the steps, --reps
 * times) with its bus bandwidth 2(N-1)/N * bytes / time.
 *   [mpirun -np N] bench_dist [--batch 2] [--patch 64] [--steps 5] [--warmup 2] [--reps 20] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "dlt/backend.h"
#include "dlt/dist.h"
#include "dlt/net.h"
#include "dlt/train.h"


int main(int argc, char **argv)
{
    dlt_log_init("bench_dist");
    dlt_dist *d = NULL;
    if (dlt_dist_init(&argc, &argv, &d)) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    int batch = 2, P = 64, steps = 5, warmup = 2, reps = 20, sync_bn = 1, c;
    static const struct option lo[] = {{"batch", 1, 0, 'b'}, {"patch", 1, 0, 'p'}, {"steps", 1, 0, 's'},
                                       {"warmup", 1, 0, 'w'}, {"reps", 1, 0, 'r'}, {"no-sync-bn", 0, 0, 'n'},
                                       {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) switch (c) {
        case 'b': batch = atoi(optarg); break;
        case 'p': P = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 'n': sync_bn = 0; break;
        default: return 2;
        }
    const int rank = dlt_dist_rank(d), N = dlt_dist_size(d);
    if (batch % N || steps < 1 || reps < 1) {
        dlt_error("--batch %d does not split over %d ranks (or --steps/--reps < 1)", batch, N);
        return 2;
    }
    const int b = batch / N;
    const int64_t nvox = (int64_t)P * P * P;
    dlt_backend *be = NULL;
    dlt_net *net = NULL;
    dlt_trainer *tr = NULL;
    dlt_net_config nc;
    dlt_net_config_default(&nc, DLT_NET_UNET, 1, 14);
    dlt_train_config tc;
    dlt_train_config_default(&tc);
    int rc = dlt_backend_create("cpu", &be);
    if (!rc) rc = dlt_net_create(&nc, be, 1, &net);
    if (!rc) rc = dlt_trainer_create(net, &tc, 1, &tr);
    if (rc) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    if (dlt_trainer_set_dist(tr, d)) {
        dlt_error("%s", dlt_errmsg());
        dlt_dist_abort(d, 1);
    }
    if (sync_bn) dlt_backend_set_reduce(be, dlt_dist_reduce(d));
    float *x = malloc(4 * (size_t)(b * nvox));
    int32_t *lab = malloc(4 * (size_t)(b * nvox));
    dlt_rng g;
    dlt_rng_init(&g, 1, (uint64_t)rank);
    for (int64_t i = 0; i < b * nvox; i++) x[i] = (float)dlt_rng_normal(&g), lab[i] = (int32_t)dlt_rng_below(&g, 14);
    double *ts = malloc(sizeof(double) * (size_t)(steps > reps ? steps : reps)), loss;
    for (int s = -warmup; s < steps && !rc; s++) {
        double t0 = dlt_now();
        rc = dlt_trainer_step(tr, x, lab, b, P, P, P, &loss);
        if (s >= 0) ts[s] = dlt_now() - t0;
    }
    const double step = rc ? 0 : bench_median(ts, steps);
    /* one allreduce of every gradient, as the trainer does it */
    const int64_t np = dlt_net_count_trainable(net);
    float *buf = calloc((size_t)np + 1, sizeof(float));
    for (int k = -2; k < reps && !rc; k++) {
        double t0 = dlt_now();
        for (int64_t o = 0; o < np + 1 && !rc; o += (int64_t)4 << 20)
            rc = dlt_dist_sum_f32(d, buf + o, np + 1 - o < ((int64_t)4 << 20) ? np + 1 - o : (int64_t)4 << 20);
        if (k >= 0) ts[k] = dlt_now() - t0;
    }
    const double ar = rc ? 0 : bench_median(ts, reps);
    if (rc) dlt_error("%s", dlt_errmsg());
    else if (rank == 0)
        printf("dlt\tranks=%d\tthreads=%d\tbatch=%d\tpatch=%d\tsync_bn=%d\tparams=%lld\ts_per_step=%.4f\tpatches_per_s=%.3f"
               "\tallreduce_ms=%.3f\tbusbw_gb_per_s=%.2f\n",
               N, dlt_threads(), batch, P, sync_bn, (long long)np, step, batch / step, ar * 1e3,
               N > 1 && ar > 0 ? 2.0 * (N - 1) / N * 4.0 * (double)(np + 1) / ar / 1e9 : 0.0);
    free(buf), free(ts), free(x), free(lab);
    dlt_trainer_free(tr);
    dlt_net_free(net);
    dlt_backend_free(be);
    dlt_dist_finish(d);
    return rc ? 1 : 0;
}
