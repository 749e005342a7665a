/* probe.c - run a network once on random data so that a backend reports
 * what it chose for each operation (see dlt/probe.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlt/probe.h"
#include "dlt/train.h"

int dlt_net_probe(dlt_backend *be, const dlt_net_config *c, int64_t batch, const int64_t patch[3], int train,
                  int infer)
{
    if (batch < 1 || batch > 64) return dlt_err(DLT_EINVAL, "probe: batch %lld is not in 1..64", (long long)batch);
    int rc = dlt_net_check_size(c, patch[0], patch[1], patch[2]);
    if (rc) return rc;
    const int64_t nvox = patch[0] * patch[1] * patch[2];
    float *x = dlt_alloc(batch * c->in_channels * nvox, sizeof(float), "probe input");
    int32_t *lab = dlt_alloc(batch * nvox, sizeof(int32_t), "probe labels");
    float *probs = infer ? dlt_alloc(c->classes * nvox, sizeof(float), "probe probabilities") : NULL;
    dlt_net *net = NULL;
    dlt_trainer *tr = NULL;
    if (!x || !lab || (infer && !probs)) {
        rc = DLT_ENOMEM;
        goto out;
    }
    dlt_rng g;
    dlt_rng_init(&g, 1, 0);
    for (int64_t i = 0; i < batch * c->in_channels * nvox; i++) x[i] = (float)(2 * dlt_rng_uniform(&g) - 1);
    for (int64_t i = 0; i < batch * nvox; i++) lab[i] = (int32_t)dlt_rng_below(&g, (uint32_t)c->classes);
    if ((rc = dlt_net_create(c, be, 1, &net))) goto out;
    if (train) {
        dlt_train_config tc;
        dlt_train_config_default(&tc);
        double loss;
        rc = dlt_trainer_create(net, &tc, 1, &tr);
        if (!rc) rc = dlt_trainer_step(tr, x, lab, batch, patch[2], patch[1], patch[0], &loss);
        if (rc) goto out;
    }
    if (infer) rc = dlt_net_predict(net, x, 1, patch[2], patch[1], patch[0], probs);
out:
    dlt_trainer_free(tr);
    dlt_net_free(net);
    dlt_free(x), dlt_free(lab), dlt_free(probs);
    return rc;
}

void dlt_cpu_model(char *buf, int len)
{
    snprintf(buf, (size_t)len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(buf, (size_t)len, "%.*s", (int)strcspn(v, "\n"), v);
        break;
    }
    fclose(f);
}
