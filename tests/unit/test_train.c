/* test_train.c - the trainer: learning-rate schedules, bit-identical steps
 * for the same seed and any thread count, checkpoint (model file round trip)
 * and resume bit-identical to an uninterrupted run, a refused checkpoint of
 * another network, and a small U-Net overfitting a fixed phantom batch to
 * near-zero loss (CE, then Dice+CE) with correct inference-mode predictions. */
#include <omp.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dlt/train.h"

enum { N = 2, D = 8, H = 16, W = 16, C = 3 };
static float X[4][N * D * H * W];
static int32_t Y[4][N * D * H * W];
static dlt_backend *be;

/* A phantom: a bright ball (class 1) and a dark box (class 2) on noise. */
static void phantom(int b, float *x, int32_t *y)
{
    for (int n = 0; n < N; n++)
        for (int z = 0; z < D; z++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++) {
                    int i = ((n * D + z) * H + yy) * W + xx;
                    double cx = 5 + 2 * n + b, r2 = (xx - cx) * (xx - cx) + (yy - 8.0) * (yy - 8.0) + (z - 4.0) * (z - 4.0) * 2;
                    int lab = r2 < 12 ? 1 : (xx >= 11 && yy >= 3 && yy < 7 && z >= 2 && z < 6) ? 2 : 0;
                    y[i] = lab;
                    x[i] = (float)((lab == 1 ? 1.0 : lab == 2 ? -1.0 : 0.0) + 0.3 * dlt_rng_normal_at(77, (uint64_t)b, (uint64_t)i));
                }
}

static float momentum = 0.99f;
static dlt_net *make_net(uint64_t seed)
{
    dlt_net_config c;
    dlt_net_config_default(&c, DLT_NET_UNET, 1, C);
    c.norm_momentum = momentum;
    dlt_net_parse_filters(&c, "4,8,8");
    dlt_net_parse_strides(&c, "1,2,2");
    dlt_net *net = NULL;
    if (dlt_net_create(&c, be, seed, &net)) fprintf(stderr, "%s\n", dlt_errmsg());
    return net;
}

/* All parameters and buffers, concatenated, for bit comparisons. */
static float *snapshot(dlt_net *net, int64_t *len)
{
    int64_t n = 0;
    for (int i = 0; i < dlt_net_nparams(net); i++) n += dlt_tensor_numel(&dlt_net_param(net, i)->value);
    float *s = malloc(4 * (size_t)n);
    int64_t o = 0;
    for (int i = 0; i < dlt_net_nparams(net); i++) {
        dlt_param *p = dlt_net_param(net, i);
        dlt_tensor_download(&p->value, s + o);
        o += dlt_tensor_numel(&p->value);
    }
    *len = n;
    return s;
}

static void steps(dlt_trainer *t, int from, int to)
{
    double loss;
    for (int k = from; k < to; k++) dlt_trainer_step(t, X[k % 4], Y[k % 4], N, D, H, W, &loss);
}

int main(void)
{
    dlt_backend_create("cpu-ref", &be);
    for (int b = 0; b < 4; b++) phantom(b, X[b], Y[b]);
    dlt_train_config tc;
    dlt_train_config_default(&tc);

    /* schedules */
    {
        dlt_net *net = make_net(1);
        dlt_trainer *t;
        tc.sched = DLT_SCHED_STEP, tc.sched_step = 2, tc.sched_gamma = 0.5;
        dlt_trainer_create(net, &tc, 1, &t);
        steps(t, 0, 5);
        CHECK(dlt_trainer_steps_done(t) == 5 && fabs(dlt_trainer_lr(t) - 1e-3f * 0.25) < 1e-12,
              "step schedule: lr * 0.5^floor(5/2)");
        dlt_trainer_free(t);
        tc.sched = DLT_SCHED_POLY, tc.total_steps = 10, tc.poly_power = 0.9;
        dlt_trainer_create(net, &tc, 1, &t);
        CHECK(fabs(dlt_trainer_lr(t) - 1e-3f) < 1e-12, "poly schedule starts at lr");
        dlt_trainer_free(t);
        tc.total_steps = 0;
        CHECK(dlt_trainer_create(net, &tc, 1, &t) == DLT_EINVAL, "poly without total steps refused: %s", dlt_errmsg());
        tc.sched = DLT_SCHED_CONSTANT;
        CHECK(dlt_loss_parse("dice+ce") == DLT_LOSS_DICE_CE && dlt_optim_parse("sgd") == DLT_OPTIM_SGD &&
                  dlt_sched_parse("poly") == DLT_SCHED_POLY && dlt_loss_parse("mse") == -1,
              "loss/optimiser/schedule names");
        dlt_net_free(net);
    }

    /* a resumed run's configuration: the checkpoint's, but what was given */
    {
        dlt_net *net = make_net(1);
        dlt_train_config a;
        dlt_train_config_default(&a);
        a.optim.kind = DLT_OPTIM_SGD, a.optim.lr = 0.02f, a.optim.momentum = 0.8f, a.optim.nesterov = 1;
        a.optim.weight_decay = 1e-4f, a.optim.eps = 1e-7f, a.loss.kind = DLT_LOSS_DICE_CE;
        a.sched = DLT_SCHED_STEP, a.sched_step = 7, a.sched_gamma = 0.3, a.poly_power = 0.8;
        dlt_trainer *t;
        dlt_model m;
        dlt_model_init(&m);
        CHECK(dlt_trainer_create(net, &a, 1, &t) == 0 && dlt_trainer_save(t, &m) == 0, "checkpoint written");
        dlt_train_config b;
        dlt_train_config_default(&b);
        b.optim.lr = 0.5f, b.loss.kind = DLT_LOSS_CE;
        dlt_train_config_resume(&b, DLT_GIVEN_LR, &m);
        CHECK(b.optim.kind == DLT_OPTIM_SGD && b.optim.momentum == 0.8f && b.optim.nesterov == 1 &&
                  b.optim.weight_decay == 1e-4f && b.optim.eps == 1e-7f && b.loss.kind == DLT_LOSS_DICE_CE &&
                  b.sched == DLT_SCHED_STEP && b.sched_step == 7 && b.sched_gamma == 0.3 && b.poly_power == 0.8,
              "resume takes every option not given from the checkpoint");
        CHECK(b.optim.lr == 0.5f, "resume keeps a given option (lr %g)", b.optim.lr);
        dlt_train_config_default(&b);
        dlt_train_config_resume(&b, ~0u, &m);
        CHECK(b.optim.kind == DLT_OPTIM_ADAM && b.sched == DLT_SCHED_CONSTANT, "all given: nothing taken");
        dlt_trainer_free(t);
        dlt_model_free(&m);
        dlt_net_free(net);
    }

    /* determinism across runs and thread counts */
    int64_t len, len2;
    float *ref, *other;
    {
        dlt_net *a = make_net(3), *b = make_net(3);
        dlt_trainer *ta, *tb;
        dlt_trainer_create(a, &tc, 1, &ta);
        dlt_trainer_create(b, &tc, 1, &tb);
        omp_set_num_threads(1);
        steps(ta, 0, 4);
        omp_set_num_threads(2);
        steps(tb, 0, 4);
        ref = snapshot(a, &len);
        other = snapshot(b, &len2);
        CHECK(len == len2 && !memcmp(ref, other, 4 * (size_t)len), "same seed, 1 vs 2 threads: bit-identical after 4 steps");
        free(other);
        dlt_trainer_free(ta), dlt_trainer_free(tb), dlt_net_free(a), dlt_net_free(b);
    }

    /* checkpoint after 2 steps, resume into a fresh net (other seed), 2 more steps */
    {
        dlt_net *a = make_net(3);
        dlt_trainer *ta;
        dlt_trainer_create(a, &tc, 1, &ta);
        steps(ta, 0, 2);
        dlt_rng_u64(dlt_trainer_rng(ta)); /* the tool draws from the trainer's RNG */
        dlt_model m;
        dlt_model_init(&m);
        int rc = dlt_trainer_save(ta, &m);
        char path[] = "/tmp/dlt-ckpt-XXXXXX";
        int fd = mkstemp(path);
        close(fd);
        if (!rc) rc = dlt_model_write(path, &m);
        dlt_model_free(&m);
        CHECK(rc == 0, "checkpoint written (%s)", rc ? dlt_errmsg() : "ok");
        uint64_t next = dlt_rng_u64(dlt_trainer_rng(ta));

        dlt_net *b = make_net(99);
        dlt_trainer *tb;
        dlt_trainer_create(b, &tc, 5, &tb);
        dlt_model_init(&m);
        rc = dlt_model_read(path, &m);
        if (!rc) rc = dlt_trainer_restore(tb, &m);
        CHECK(rc == 0 && dlt_trainer_steps_done(tb) == 2, "checkpoint restored at step 2 (%s)", rc ? dlt_errmsg() : "ok");
        CHECK(m.ntensors > 0 && dlt_model_find(&m, "optim.m.stem.weight") && dlt_model_find(&m, "optim.v.head.weight") &&
                  dlt_model_get_meta(&m, "rng"),
              "checkpoint holds optim.m/v tensors and the rng state");
        CHECK(dlt_rng_u64(dlt_trainer_rng(tb)) == next, "rng continues where it was saved");
        dlt_model_free(&m);
        steps(tb, 2, 4);
        other = snapshot(b, &len2);
        CHECK(len == len2 && !memcmp(ref, other, 4 * (size_t)len), "resumed run bit-identical to the uninterrupted one");
        free(other);

        /* a checkpoint of another network is refused */
        dlt_net_config c;
        dlt_net_config_default(&c, DLT_NET_UNET, 1, C);
        dlt_net_parse_filters(&c, "4,8,16");
        dlt_net_parse_strides(&c, "1,2,2");
        dlt_net *o;
        dlt_trainer *to;
        dlt_net_create(&c, be, 1, &o);
        dlt_trainer_create(o, &tc, 1, &to);
        dlt_model_init(&m);
        dlt_model_read(path, &m);
        rc = dlt_trainer_restore(to, &m);
        CHECK(rc != 0 && strstr(dlt_errmsg(), "differs"), "checkpoint of another network refused: %s", dlt_errmsg());
        dlt_model_free(&m);
        dlt_trainer_free(to), dlt_net_free(o);
        unlink(path);
        dlt_trainer_free(ta), dlt_trainer_free(tb), dlt_net_free(a), dlt_net_free(b);
    }
    free(ref);

    /* overfit one fixed phantom batch */
    {
        momentum = 0.5f; /* running statistics that settle within the run, for the inference check */
        dlt_net *net = make_net(7);
        dlt_trainer *t;
        tc.optim.lr = 1e-2f;
        dlt_trainer_create(net, &tc, 1, &t);
        double loss = 0, first = 0;
        for (int k = 0; k < 60; k++) {
            dlt_trainer_step(t, X[0], Y[0], N, D, H, W, &loss);
            if (!k) first = loss;
        }
        CHECK(loss < 0.03 && first > 0.5, "CE: loss %.3f -> %.4f after 60 steps on one batch", first, loss);
        /* predictions of the trained net (inference mode) match the labels */
        float *pr = malloc(sizeof(float) * N * C * D * H * W);
        dlt_net_predict(net, X[0], N, D, H, W, pr);
        int64_t wrong = 0, sp = D * H * W;
        for (int n = 0; n < N; n++)
            for (int64_t i = 0; i < sp; i++) {
                int best = 0;
                for (int c = 1; c < C; c++)
                    if (pr[(n * C + c) * sp + i] > pr[(n * C + best) * sp + i]) best = c;
                wrong += best != Y[0][n * sp + i];
            }
        CHECK(wrong < N * sp * 3 / 100, "inference-mode predictions: %lld of %lld voxels wrong", (long long)wrong,
              (long long)(N * sp));
        free(pr);
        dlt_trainer_free(t);
        dlt_net_free(net);
        net = make_net(8);
        tc.loss.kind = DLT_LOSS_DICE_CE;
        dlt_trainer_create(net, &tc, 1, &t);
        for (int k = 0; k < 30; k++) {
            dlt_trainer_step(t, X[1], Y[1], N, D, H, W, &loss);
            if (!k) first = loss;
        }
        CHECK(loss < 0.15, "Dice+CE: loss %.3f -> %.4f after 30 steps", first, loss);
        dlt_trainer_free(t);
        dlt_net_free(net);
    }
    dlt_backend_free(be);
    return check_done();
}
