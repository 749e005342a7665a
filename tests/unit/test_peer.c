/* test_peer.c - conformance with the PyTorch peer (skipped when
 * /usr/bin/python3 cannot import torch): a small U-Net and FCN (filters
 * 4,8,16, patch 16) saved as a model file are loaded into
 * ../shared/peers/torch_dltk_unet.py (tests/unit/peer_check.py); the same
 * batch gives the same logits and CE loss (1e-4), the same parameter
 * gradients, and the same weights and running statistics after one Adam
 * step (1e-4 normwise per tensor). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dlt/train.h"

static int write_raw(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

static void run(const char *kind, const char *dir)
{
    enum { N = 2, D = 16, H = 16, W = 16, C = 3 };
    dlt_backend *be;
    dlt_backend_create("cpu-ref", &be);
    dlt_net_config c;
    dlt_net_config_default(&c, dlt_net_kind_parse(kind), 1, C);
    dlt_net_parse_filters(&c, "4,8,16");
    dlt_net_parse_strides(&c, "1,2,2");
    dlt_net *net;
    dlt_net_create(&c, be, 5, &net);
    /* non-trivial BN parameters, so that gamma/beta and the running stats are really checked */
    for (int i = 0; i < dlt_net_nparams(net); i++) {
        dlt_param *p = dlt_net_param(net, i);
        if (p->role != DLT_T_VEC) continue;
        int64_t n = dlt_tensor_numel(&p->value);
        float *h = malloc(4 * (size_t)n);
        dlt_tensor_download(&p->value, h);
        for (int64_t j = 0; j < n; j++) h[j] += 0.2f * (dlt_rng_uniform_at(3, (uint64_t)i, (uint64_t)j) - 0.5f);
        dlt_tensor_upload(&p->value, h);
        free(h);
    }
    dlt_model m;
    dlt_model_init(&m);
    dlt_net_save(net, &m);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(dlt_model_write(path, &m) == 0, "%s: model file written", kind);
    dlt_model_free(&m);

    float *x = malloc(sizeof(float) * N * D * H * W);
    int32_t *y = malloc(sizeof(int32_t) * N * D * H * W);
    for (int i = 0; i < N * D * H * W; i++) {
        x[i] = dlt_rng_normal_at(11, 0, (uint64_t)i);
        y[i] = (int32_t)(dlt_rng_uniform_at(12, 0, (uint64_t)i) * C);
    }
    dlt_train_config tc;
    dlt_train_config_default(&tc); /* Adam lr 1e-3 eps 1e-5, CE: the peer's train mode */
    dlt_trainer *tr;
    dlt_trainer_create(net, &tc, 1, &tr);
    double loss;
    int rc = dlt_trainer_step(tr, x, y, N, D, H, W, &loss);
    CHECK(rc == 0, "%s: one training step (%s)", kind, rc ? dlt_errmsg() : "ok");
    /* logits of that step's forward are still in the net; gradients too */
    const dlt_tensor *lg = NULL;
    float *lgh = malloc(sizeof(float) * N * C * D * H * W);
    /* the logits tensor is the last value; re-read it through a forward-free accessor: the
     * trainer's forward left it in place, so a training forward would change BN stats.
     * Use a second net loaded from the saved file instead. */
    dlt_model m0;
    dlt_model_init(&m0);
    dlt_model_read(path, &m0);
    dlt_net *net0;
    dlt_net_load(&m0, be, &net0);
    dlt_model_free(&m0);
    dlt_net_forward(net0, x, N, D, H, W, 1, &lg);
    dlt_tensor_download(lg, lgh);
    dlt_net_free(net0);
    write_raw(dir, "logits.f32", lgh, sizeof(float) * N * C * D * H * W);
    write_raw(dir, "x.f32", x, sizeof(float) * N * D * H * W);
    write_raw(dir, "y.i32", y, sizeof(int32_t) * N * D * H * W);
    char buf[64];
    snprintf(buf, sizeof buf, "%d %d %d %d", N, D, H, W);
    write_raw(dir, "shape.txt", buf, strlen(buf));
    snprintf(buf, sizeof buf, "%.17g", loss);
    write_raw(dir, "loss.txt", buf, strlen(buf));
    dlt_model g;
    dlt_model_init(&g);
    for (int i = 0; i < dlt_net_nparams(net); i++) {
        dlt_param *p = dlt_net_param(net, i);
        if (!p->trainable) continue;
        int64_t n = dlt_tensor_numel(&p->grad), shape[5] = {p->value.n, p->value.c, p->value.d, p->value.h, p->value.w};
        float *h = malloc(4 * (size_t)n);
        dlt_tensor_download(&p->grad, h);
        dlt_model_add(&g, p->name, DLT_DT_F32, p->role == DLT_T_VEC ? 1 : 5, shape, h);
        free(h);
    }
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    dlt_model_write(path, &g);
    dlt_model_free(&g);
    dlt_model_init(&g);
    dlt_net_save(net, &g);
    snprintf(path, sizeof path, "%s/after.safetensors", dir);
    dlt_model_write(path, &g);
    dlt_model_free(&g);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/unit/peer_check.py %s %s 2>&1", dir, kind);
    FILE *pp = popen(cmd, "r");
    char line[512];
    double logits = 1, lossrel = 1, grads = 1, weights = 1, running = 1;
    int missing = -1, unexpected = -1, ng = -1, np = -2;
    while (pp && fgets(line, sizeof line, pp)) {
        sscanf(line, "logits %lf", &logits);
        sscanf(line, "loss %lf", &lossrel);
        sscanf(line, "grads %lf", &grads);
        sscanf(line, "weights %lf", &weights);
        sscanf(line, "running %lf", &running);
        sscanf(line, "missing_other %d", &missing);
        sscanf(line, "unexpected %d", &unexpected);
        sscanf(line, "grad_tensors %d %d", &ng, &np);
        if (strncmp(line, "logits", 6) && strncmp(line, "loss", 4) && strncmp(line, "grads", 5) &&
            strncmp(line, "weights", 7) && strncmp(line, "running", 7) && strncmp(line, "missing", 7) &&
            strncmp(line, "unexpected", 10) && strncmp(line, "grad_t", 6))
            printf("# python: %s", line);
    }
    if (pp) pclose(pp);
    CHECK(missing == 0 && unexpected == 0, "%s: the model file loads into the peer (missing %d, unexpected %d)", kind,
          missing, unexpected);
    CHECK(ng == np, "%s: one gradient per peer parameter (%d, %d)", kind, ng, np);
    CHECK(logits < 1e-4, "%s: logits equal the peer's (rel %.2g)", kind, logits);
    CHECK(lossrel < 1e-5, "%s: CE loss equals the peer's (rel %.2g)", kind, lossrel);
    CHECK(grads < 1e-4, "%s: parameter gradients equal the peer's (max rel %.2g)", kind, grads);
    CHECK(weights < 1e-4, "%s: weights after one Adam step equal the peer's (max rel %.2g)", kind, weights);
    CHECK(running < 1e-4, "%s: BN running statistics equal the peer's (max rel %.2g)", kind, running);
    dlt_trainer_free(tr);
    dlt_net_free(net);
    dlt_backend_free(be);
    free(x), free(y), free(lgh);
}

int main(void)
{
    if (system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
        SKIP("/usr/bin/python3 cannot import torch");
        return check_done();
    }
    const char *sh = getenv("DLT_SHARED");
    char peer[512];
    snprintf(peer, sizeof peer, "%s/peers/torch_dltk_unet.py", sh ? sh : "../shared");
    if (access(peer, R_OK) != 0) {
        SKIP("peer %s not found", peer);
        return check_done();
    }
    char dir[] = "/tmp/dlt-peer-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    run("unet", dir);
    run("fcn", dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return check_done();
}
