/* plan_speed.c - dlt-plan --speed measure: this machine's training speed
 * for a plan, timed on its network (see dlt/plan.h). Apart from plan.c so
 * that readers of plan files need no backend. */
#include "dlt/plan.h"

#include <math.h>
#include <stdlib.h>

#include "dlt/core.h"
#include "dlt/net.h"
#include "dlt/train.h"

int dlt_plan_measure_speed(const dlt_plan *p, int channels, int classes, const char *device, double *voxels_per_s)
{
    dlt_net_config c;
    dlt_net_config_default(&c, DLT_NET_UNET, channels, classes);
    c.nscales = p->levels;
    for (int l = 0; l < p->levels; l++) {
        c.filters[l] = p->filters[l];
        for (int a = 0; a < 3; a++) c.strides[l][a] = p->strides[l][a];
    }
    int64_t vox = (int64_t)p->patch[0] * p->patch[1] * p->patch[2], n = p->batch;
    dlt_backend *be = NULL;
    dlt_net *net = NULL;
    dlt_trainer *tr = NULL;
    float *x = malloc(sizeof(float) * (size_t)(n * channels * vox));
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)(n * vox));
    int rc = x && lab ? 0 : dlt_err(DLT_ENOMEM, "speed: out of memory");
    if (!rc) rc = dlt_backend_create(device, &be);
    if (!rc) rc = dlt_net_create(&c, be, 1, &net);
    dlt_train_config tc;
    dlt_train_config_default(&tc);
    if (!rc) rc = dlt_trainer_create(net, &tc, 1, &tr);
    dlt_rng g;
    dlt_rng_init(&g, 1, 0);
    for (int64_t i = 0; !rc && i < n * vox; i++) {
        lab[i] = (int32_t)dlt_rng_below(&g, (uint64_t)classes);
        for (int ch = 0; ch < channels; ch++) x[(i / vox * channels + ch) * vox + i % vox] = (float)dlt_rng_normal(&g);
    }
    double t[3];
    for (int s = -2; s < 3 && !rc; s++) {
        double t0 = dlt_now(), loss;
        rc = dlt_trainer_step(tr, x, lab, n, p->patch[2], p->patch[1], p->patch[0], &loss);
        if (s >= 0) t[s] = dlt_now() - t0;
    }
    if (!rc) {
        double a = fmin(t[0], t[1]), b = fmax(t[0], t[1]), med = t[2] < a ? a : t[2] > b ? b : t[2];
        *voxels_per_s = (double)(n * vox) / med;
    }
    dlt_trainer_free(tr);
    dlt_net_free(net);
    dlt_backend_free(be);
    free(x);
    free(lab);
    return rc;
}
