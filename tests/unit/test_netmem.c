/* test_netmem.c - the executor's memory plans (lib/nn/net_exec.c): planned
 * bytes of the default U-Net's training and inference plans within stated
 * bounds of a tensor-per-value executor (DLT_NET_KEEP_ALL=1); results
 * (weights, losses, logits, probabilities) bit-identical with and without
 * buffer reuse over training steps alternating with inference at the same
 * and at other shapes, for the U-Net (BN; PReLU + instance norm), the
 * asymmetric U-Net with conv shortcuts and the FCN; alternating plans share
 * buffers and do not grow; backward refused when its activations are gone. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dlt/train.h"

static dlt_backend *be;

static void keep_all(int on)
{
    if (on) setenv("DLT_NET_KEEP_ALL", "1", 1);
    else unsetenv("DLT_NET_KEEP_ALL");
}

/* Bytes of the training (n=2) and inference (n=1) plans of the default
 * U-Net (1 channel, 14 classes) at 16^3: forward passes only. */
static void plan_sizes(int keep, int64_t *train, int64_t *infer, int64_t *both)
{
    dlt_net_config c;
    dlt_net *net;
    dlt_net_config_default(&c, DLT_NET_UNET, 1, 14);
    keep_all(keep);
    dlt_net_create(&c, be, 1, &net);
    float *x = malloc(sizeof(float) * 2 * 16 * 16 * 16);
    for (int i = 0; i < 2 * 16 * 16 * 16; i++) x[i] = (float)dlt_rng_normal_at(3, 0, (uint64_t)i);
    int rc = dlt_net_forward(net, x, 2, 16, 16, 16, 1, NULL);
    if (!rc) rc = dlt_net_forward(net, x, 1, 16, 16, 16, 0, NULL);
    CHECK(rc == 0, "default U-Net forwards at 16^3%s (%s)", keep ? ", keep-all" : "", rc ? dlt_errmsg() : "ok");
    *train = dlt_net_plan_bytes(net, 1), *infer = dlt_net_plan_bytes(net, 0), *both = dlt_net_plan_bytes(net, -1);
    dlt_net_free(net);
    free(x);
    keep_all(0);
}

/* Everything a run produces, appended to one buffer for a bitwise compare. */
typedef struct rec {
    unsigned char *p;
    size_t n, cap;
} rec;

static void put(rec *r, const void *p, size_t n)
{
    if (r->n + n > r->cap) {
        r->cap = 2 * (r->n + n);
        r->p = realloc(r->p, r->cap);
    }
    memcpy(r->p + r->n, p, n);
    r->n += n;
}

static void put_tensor(rec *r, const dlt_tensor *t)
{
    size_t n = (size_t)dlt_tensor_numel(t);
    float *h = malloc(4 * n);
    dlt_tensor_download(t, h);
    put(r, h, 4 * n);
    free(h);
}

/* Three training steps, each followed by inference at the training shape,
 * at batch 1 and at a larger window, an eval loss and a bare training
 * forward; then the weights. Returns the number of failed calls. */
static int run(rec *r, int keep, int kind, const char *filters, int act, int norm, int res_units)
{
    enum { N = 2, S = 8 };
    dlt_net_config c;
    dlt_net *net;
    dlt_trainer *t;
    dlt_train_config tc;
    int bad = 0;
    keep_all(keep);
    dlt_net_config_default(&c, kind, 2, 3);
    dlt_net_parse_filters(&c, filters);
    dlt_net_parse_strides(&c, "1,2,2");
    c.res_units = res_units;
    if (act) c.act_enc = c.act_dec = act;
    c.norm = norm;
    c.norm_momentum = 0.5f;
    dlt_train_config_default(&tc);
    tc.optim.lr = 1e-2f;
    if (dlt_net_create(&c, be, 3, &net) || dlt_trainer_create(net, &tc, 1, &t)) return 1;
    float *x = malloc(sizeof(float) * N * 2 * 8 * S * S * S), *pr = malloc(sizeof(float) * N * 3 * 8 * S * S * S);
    int32_t *y = malloc(sizeof(int32_t) * N * S * S * S);
    int64_t bytes0 = 0;
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N * 2 * 8 * S * S * S; i++) x[i] = (float)dlt_rng_normal_at(5, (uint64_t)s, (uint64_t)i);
        for (int i = 0; i < N * S * S * S; i++) y[i] = (int32_t)(dlt_rng_uniform_at(6, (uint64_t)s, (uint64_t)i) * 3);
        double loss;
        const dlt_tensor *lg;
        bad += dlt_trainer_step(t, x, y, N, S, S, S, &loss) != 0;
        put(r, &loss, sizeof loss);
        bad += dlt_net_predict(net, x, N, S, S, S, pr) != 0; /* the training shape: shares its buffers */
        put(r, pr, sizeof(float) * N * 3 * S * S * S);
        bad += dlt_net_predict(net, x, 1, S, 2 * S, S, pr) != 0; /* another shape */
        put(r, pr, sizeof(float) * 3 * S * 2 * S * S);
        for (int k = 0; k < 2; k++) { /* a larger window: first on tensors of its own, then on the plan's */
            bad += dlt_net_predict(net, x, 1, 2 * S, 2 * S, 2 * S, pr) != 0;
            put(r, pr, sizeof(float) * 3 * 8 * S * S * S);
        }
        bad += dlt_trainer_eval_loss(t, x, y, N, S, S, S, &loss) != 0;
        put(r, &loss, sizeof loss);
        bad += dlt_net_forward(net, x, N, S, S, S, 1, &lg) != 0;
        put_tensor(r, lg);
        if (s == 1) bytes0 = dlt_net_plan_bytes(net, -1);
        if (s == 2) bad += dlt_net_plan_bytes(net, -1) != bytes0; /* steady state: nothing grows */
    }
    for (int i = 0; i < dlt_net_nparams(net); i++) put_tensor(r, &dlt_net_param(net, i)->value);
    free(x), free(pr), free(y);
    dlt_trainer_free(t);
    dlt_net_free(net);
    keep_all(0);
    return bad;
}

static void identical(const char *what, int kind, const char *filters, int act, int norm, int res_units)
{
    rec a = {0}, b = {0};
    int bad_a = run(&a, 1, kind, filters, act, norm, res_units), bad_b = run(&b, 0, kind, filters, act, norm, res_units);
    CHECK(!bad_a && !bad_b, "%s: every call succeeds, plan bytes steady (%d, %d failures)", what, bad_a, bad_b);
    CHECK(a.n == b.n && a.n > 0 && !memcmp(a.p, b.p, a.n),
          "%s: losses, logits, probabilities and weights bit-identical with and without reuse (%zu bytes)", what, a.n);
    free(a.p), free(b.p);
}

int main(void)
{
    dlt_backend_create("cpu-ref", &be);

    /* planned bytes, default U-Net at 16^3 (the ratios hold at any size that
     * keeps the net's shapes: 64^3 gives 945 and 249 MiB against 1386 and
     * 354 MiB with a tensor per value; see bench/RESULTS.md) */
    int64_t tk, ik, bk, tp, ip, bp;
    plan_sizes(1, &tk, &ik, &bk);
    plan_sizes(0, &tp, &ip, &bp);
    CHECK(ik > 0 && tk > 3 * ik, "keep-all plans: training (2 samples, gradients) %.2f MiB, inference %.2f MiB",
          tk / 1048576.0, ik / 1048576.0);
    CHECK(tp > 0 && tp <= tk * 70 / 100, "training plan %.2f MiB <= 70%% of a tensor per value and gradient (%.2f MiB)",
          tp / 1048576.0, tk / 1048576.0);
    CHECK(ip > 0 && ip <= ik * 72 / 100, "inference plan %.2f MiB <= 72%% of a tensor per value (%.2f MiB)",
          ip / 1048576.0, ik / 1048576.0);
    /* a few tensors: at most 6 full-size 48-channel tensors' worth (the
     * concat and its norm are 48 channels at full size; buffers are shared
     * only between tensors of one shape, so the plan exceeds the most bytes
     * live at once, 1.8 MiB here) */
    CHECK(ip <= 6 * (int64_t)4 * 48 * 16 * 16 * 16, "inference plan %.2f MiB <= 6 x a 48-channel 16^3 tensor",
          ip / 1048576.0);
    CHECK(bp == tp + ip && bk == tk + ik, "plans of different batch sizes share nothing: %.2f = %.2f + %.2f MiB",
          bp / 1048576.0, tp / 1048576.0, ip / 1048576.0);

    identical("unet bn", DLT_NET_UNET, "4,8,16", 0, DLT_NORM_BATCH, 1);
    identical("unet prelu instance-norm 2 units", DLT_NET_UNET, "4,8,8", DLT_ACT_PRELU, DLT_NORM_INSTANCE, 2);
    identical("asym-unet conv shortcuts", DLT_NET_ASYM_UNET, "6,4,8", 0, DLT_NORM_BATCH, 2);
    identical("fcn", DLT_NET_FCN, "4,8,16", 0, DLT_NORM_BATCH, 1);

    /* the same shape in both modes: the inference plan costs nothing more */
    {
        dlt_net_config c;
        dlt_net *net;
        dlt_net_config_default(&c, DLT_NET_UNET, 1, 3);
        dlt_net_parse_filters(&c, "4,8,16");
        dlt_net_parse_strides(&c, "1,2,2");
        dlt_net_create(&c, be, 1, &net);
        float x[2 * 8 * 8 * 8] = {0}, pr[2 * 3 * 8 * 8 * 8];
        for (int i = 0; i < 2 * 8 * 8 * 8; i++) x[i] = (float)dlt_rng_normal_at(1, 0, (uint64_t)i);
        const dlt_tensor *lg;
        dlt_tensor dl;
        int rc = dlt_net_forward(net, x, 2, 8, 8, 8, 1, &lg);
        int64_t tb = dlt_net_plan_bytes(net, 1);
        rc = rc ? rc : dlt_net_predict(net, x, 2, 8, 8, 8, pr);
        CHECK(!rc && dlt_net_plan_bytes(net, 0) > 0 && dlt_net_plan_bytes(net, -1) == tb + 4 * 2 * 3 * 8 * 8 * 8,
              "inference at the training shape reuses the training buffers (all: %.3f MiB, training %.3f MiB, + "
              "probabilities)",
              dlt_net_plan_bytes(net, -1) / 1048576.0, tb / 1048576.0);
        dlt_tensor_alloc(be, &dl, DLT_T_ACT, 2, 3, 8, 8, 8);
        dlt_tensor_zero(&dl);
        rc = dlt_net_backward(net, &dl);
        CHECK(rc == DLT_EINVAL, "backward after an inference forward refused: %s", dlt_errmsg());
        rc = dlt_net_forward(net, x, 2, 8, 8, 8, 1, &lg);
        rc = rc ? rc : dlt_net_backward(net, &dl);
        CHECK(rc == 0, "backward after a training forward");
        rc = dlt_net_backward(net, &dl);
        CHECK(rc == DLT_EINVAL, "a second backward refused (its activations hold gradients now): %s", dlt_errmsg());
        rc = dlt_net_forward(net, x, 2, 8, 8, 8, 1, &lg);
        int rc2 = dlt_net_forward(net, x, 1, 8, 8, 7, 0, &lg);
        rc = rc ? rc : dlt_net_backward(net, &dl);
        CHECK(rc2 == DLT_ESHAPE && rc == DLT_EINVAL, "a failed forward between forward and backward: backward refused");
        dlt_net_release_plan(net);
        CHECK(dlt_net_plan_bytes(net, -1) == 0, "release_plan frees every plan");
        rc = dlt_net_predict(net, x, 2, 8, 8, 8, pr);
        CHECK(rc == 0 && dlt_net_plan_bytes(net, 1) == 0 && dlt_net_plan_bytes(net, 0) > 0, "replanned after release");
        dlt_tensor_release(&dl);
        dlt_net_free(net);
    }
    dlt_backend_free(be);
    return check_done();
}
