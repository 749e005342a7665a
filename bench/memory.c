/* bench/memory.c - peak memory of the network executor, for bench/memory.sh.
 *
 *   memory train [--device cpu] [--batch 2] [--patch 64] [--classes 14] [--steps 1]
 *   memory infer [--device cpu] [--batch 1] [--patch 64] [--classes 14] [--steps 1]
 *
 * train: the default U-Net (1 input channel), Adam, CE, `steps` training
 * steps on random data; infer: `steps` inference forward passes (training=0,
 * as the peer's model.eval() forward under no_grad). Prints one TSV line:
 * mode, batch, patch, seconds of the last step and of the fastest, the executor's planned bytes
 * (dlt_net_plan_bytes) and the process's peak RSS (getrusage, KiB). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "dlt/train.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *device = "cpu";
    int batch = -1, patch = 64, classes = 14, steps = 1;
    static const struct option lo[] = {{"device", 1, 0, 'd'}, {"batch", 1, 0, 'b'}, {"patch", 1, 0, 'p'},
                                       {"classes", 1, 0, 'c'}, {"steps", 1, 0, 's'}, {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (o) {
        case 'd': device = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 'p': patch = atoi(optarg); break;
        case 'c': classes = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        default: return 2;
        }
    }
    if (optind != argc - 1 || (strcmp(argv[optind], "train") && strcmp(argv[optind], "infer"))) {
        fprintf(stderr, "usage: memory train|infer [--device D] [--batch N] [--patch P] [--classes C] [--steps S]\n");
        return 2;
    }
    int train = !strcmp(argv[optind], "train");
    if (batch < 1) batch = train ? 2 : 1;
    dlt_backend *be;
    dlt_net_config c;
    dlt_net *net;
    dlt_net_config_default(&c, DLT_NET_UNET, 1, classes);
    if (dlt_backend_create(device, &be) || dlt_net_create(&c, be, 1, &net)) {
        fprintf(stderr, "memory: error: %s\n", dlt_errmsg());
        return 1;
    }
    int64_t sp = (int64_t)patch * patch * patch;
    float *x = malloc(sizeof(float) * (size_t)(batch * sp));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)(batch * sp));
    for (int64_t i = 0; i < batch * sp; i++) {
        x[i] = (float)dlt_rng_normal_at(1, 0, (uint64_t)i);
        y[i] = (int32_t)(dlt_rng_uniform_at(2, 0, (uint64_t)i) * classes) % classes;
    }
    dlt_trainer *t = NULL;
    dlt_train_config tc;
    dlt_train_config_default(&tc);
    if (train && dlt_trainer_create(net, &tc, 1, &t)) {
        fprintf(stderr, "memory: error: %s\n", dlt_errmsg());
        return 1;
    }
    double sec = 0, best = 1e30;
    for (int s = 0; s < steps; s++) {
        double t0 = now(), loss;
        int rc = train ? dlt_trainer_step(t, x, y, batch, patch, patch, patch, &loss)
                       : dlt_net_forward(net, x, batch, patch, patch, patch, 0, NULL);
        if (rc) {
            fprintf(stderr, "memory: error: %s\n", dlt_errmsg());
            return 1;
        }
        sec = now() - t0;
        if (sec < best) best = sec;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s\t%s\tbatch=%d\tpatch=%d\ts=%.2f\ts_min=%.2f\tplan_mib=%.1f\tpeak_rss_kib=%ld\n", be->name, argv[optind], batch,
           patch, sec, best, dlt_net_plan_bytes(net, train) / 1048576.0, ru.ru_maxrss);
    dlt_trainer_free(t);
    dlt_net_free(net);
    dlt_backend_free(be);
    free(x), free(y);
    return 0;
}
