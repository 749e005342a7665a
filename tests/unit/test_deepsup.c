/* test_deepsup.c - deep supervision (dlt_net_config.deep_sup) on cpu-ref:
 * the auxiliary heads (names, shapes, last in the parameter order, the
 * other parameters initialised as without them), auxiliary logits on the
 * decoder grids (anisotropic strides too), inference untouched (the same
 * logits as the network without heads), the backward through the heads
 * (linear in the output gradients; a finite difference where the path is
 * linear), the trainer's weighted loss (nnU-Net's
 * weights 1, 1/2, 1/4 normalised) and a model file round trip. */
#include <string.h>

#include "check.h"
#include "dlt/train.h"

static dlt_backend *be;

static dlt_net *make(int deep_sup, const char *filters, const char *strides, int classes)
{
    dlt_net_config c;
    dlt_net_config_default(&c, DLT_NET_UNET, 1, classes);
    dlt_net_parse_filters(&c, filters);
    dlt_net_parse_strides(&c, strides);
    c.deep_sup = deep_sup;
    dlt_net *net = NULL;
    if (dlt_net_create(&c, be, 3, &net)) fprintf(stderr, "# %s\n", dlt_errmsg());
    return net;
}

static float *host(const dlt_tensor *t)
{
    float *h = malloc(4 * (size_t)dlt_tensor_numel(t));
    dlt_tensor_download(t, h);
    return h;
}

/* L = <g0, logits> + <g1, aux 0>, both training-mode forwards (batch
 * statistics: a smooth function of the weights). */
static double functional(dlt_net *net, const float *x, const float *g0, const float *g1, int N, int Z, int Y, int X)
{
    const dlt_tensor *lg;
    if (dlt_net_forward(net, x, N, Z, Y, X, 1, &lg)) return NAN;
    float *a = host(lg), *b = host(dlt_net_aux_logits(net, 0));
    double s = 0;
    for (int64_t i = 0; i < dlt_tensor_numel(lg); i++) s += (double)g0[i] * a[i];
    for (int64_t i = 0; i < dlt_tensor_numel(dlt_net_aux_logits(net, 0)); i++) s += (double)g1[i] * b[i];
    free(a), free(b);
    return s;
}

int main(void)
{
    dlt_backend_create("cpu-ref", &be);

    /* ---- building ---- */
    dlt_net *plain = make(0, "16,32,64,128", "1,2,2,2", 14), *ds = make(2, "16,32,64,128", "1,2,2,2", 14);
    CHECK(plain && ds, "U-Net with and without deep supervision 2 build");
    if (!plain || !ds) return check_done();
    CHECK(dlt_net_count_trainable(ds) == 2287024 + 14 * 32 + 14 * 64, "two heads add 14x32 + 14x64 weights (%lld)",
          (long long)dlt_net_count_trainable(ds));
    const int np = dlt_net_nparams(plain);
    dlt_param *h0 = dlt_net_param(ds, np), *h1 = dlt_net_param(ds, np + 1);
    CHECK(dlt_net_nparams(ds) == np + 2 && !strcmp(h0->name, "ds.0.weight") && h0->value.n == 14 &&
              h0->value.c == 32 && !strcmp(h1->name, "ds.1.weight") && h1->value.c == 64,
          "heads last: ds.0.weight [14,32,1,1,1], ds.1.weight [14,64,1,1,1]");
    int same = 1;
    for (int i = 0; i < np; i++) {
        dlt_param *a = dlt_net_param(plain, i), *b = dlt_net_param(ds, i);
        float *ha = host(&a->value), *hb = host(&b->value);
        same &= !strcmp(a->name, b->name) && !memcmp(ha, hb, 4 * (size_t)dlt_tensor_numel(&a->value));
        free(ha), free(hb);
    }
    CHECK(same, "every other parameter keeps its name, place and initial value");
    dlt_net_free(plain), dlt_net_free(ds);

    dlt_net_config c;
    dlt_net_config_default(&c, DLT_NET_UNET, 1, 3);
    c.deep_sup = 3;
    CHECK(dlt_net_config_check(&c) == DLT_EINVAL && strstr(dlt_errmsg(), "0..2"), "deep supervision 3 of 4 scales "
          "refused: %s", dlt_errmsg());
    dlt_net_config_default(&c, DLT_NET_FCN, 1, 3);
    c.deep_sup = 1;
    CHECK(dlt_net_config_check(&c) == DLT_EUNSUP, "FCN with deep supervision refused: %s", dlt_errmsg());

    /* ---- forward: grids, and inference as without the heads ---- */
    enum { N = 2, X = 8, Y = 8, Z = 4, C = 3 };
    float x[N * X * Y * Z];
    for (int i = 0; i < N * X * Y * Z; i++) x[i] = (float)((i * 7919) % 23) / 23.0f - 0.5f;
    plain = make(0, "4,6,8,8", "1,2x2x1,2,2", C), ds = make(2, "4,6,8,8", "1,2x2x1,2,2", C);
    const dlt_tensor *lg;
    int rc = dlt_net_forward(ds, x, N, Z, Y, X, 1, &lg);
    const dlt_tensor *a0 = dlt_net_aux_logits(ds, 0), *a1 = dlt_net_aux_logits(ds, 1);
    CHECK(!rc && a0 && a1 && a0->c == C && a0->w == 4 && a0->h == 4 && a0->d == 4 && a1->w == 2 && a1->h == 2 &&
              a1->d == 2 && !dlt_net_aux_logits(ds, 2),
          "aux logits on the decoder grids: 4x4x4 and 2x2x2 (X,Y,Z) for strides 1,2x2x1,2,2 of 8x8x4");
    float pa[N * C * X * Y * Z], pb[N * C * X * Y * Z];
    rc = rc ? rc : dlt_net_forward(plain, x, N, Z, Y, X, 1, &lg); /* the same running statistics */
    rc = rc ? rc : dlt_net_predict(plain, x, N, Z, Y, X, pa);
    rc = rc ? rc : dlt_net_predict(ds, x, N, Z, Y, X, pb);
    CHECK(!rc && !memcmp(pa, pb, sizeof pa) && !dlt_net_aux_logits(ds, 0),
          "inference skips the heads: the probabilities of the network without them, bit for bit");
    dlt_net_free(plain);

    /* ---- backward through the heads ----
     * (a) L = <g1, aux0> alone: linear in the head and in the last conv of
     * the decoder unit it reads (dec.1.0.conv1 -> add -> ds.0), so a finite
     * difference is exact up to rounding there; (b) backward is linear in
     * (dlogits, daux): the gradients of (g0, g1) are those of (g0, none)
     * plus those of (0, g1), for every parameter. A float finite difference
     * through the whole network is no check (max-pool ties and activation
     * kinks); the ops' own gradients are checked in float64 elsewhere. */
    {
        const int na = N * C * X * Y * Z, nb = N * C * 4 * 4 * 4;
        float *g0 = malloc(4 * (size_t)na), *g1 = malloc(4 * (size_t)nb), *zero = calloc((size_t)na, 4);
        for (int i = 0; i < na; i++) g0[i] = (float)((i * 31) % 17) / 17.0f - 0.5f;
        for (int i = 0; i < nb; i++) g1[i] = (float)((i * 13) % 11) / 11.0f - 0.5f;
        dlt_tensor t0, t1, tz;
        dlt_net_forward(ds, x, N, Z, Y, X, 1, &lg);
        a0 = dlt_net_aux_logits(ds, 0);
        dlt_tensor_alloc(be, &t0, DLT_T_ACT, lg->n, lg->c, lg->d, lg->h, lg->w);
        dlt_tensor_alloc(be, &tz, DLT_T_ACT, lg->n, lg->c, lg->d, lg->h, lg->w);
        dlt_tensor_alloc(be, &t1, DLT_T_ACT, a0->n, a0->c, a0->d, a0->h, a0->w);
        dlt_tensor_upload(&t0, g0), dlt_tensor_upload(&t1, g1), dlt_tensor_upload(&tz, zero);
        const dlt_tensor *with[2] = {&t1, NULL};
        const int np2 = dlt_net_nparams(ds);
        float **G[3];
        const dlt_tensor *dl[3] = {&t0, &t0, &tz};
        const dlt_tensor *const *da[3] = {with, NULL, with};
        rc = 0;
        for (int r = 0; r < 3 && !rc; r++) { /* (g0, g1), (g0, none), (0, g1) */
            G[r] = calloc((size_t)np2, sizeof(float *));
            rc = dlt_net_forward(ds, x, N, Z, Y, X, 1, &lg);
            rc = rc ? rc : dlt_net_zero_grad(ds);
            rc = rc ? rc : dlt_net_backward_aux(ds, dl[r], da[r]);
            for (int i = 0; i < np2 && !rc; i++)
                if (dlt_net_param(ds, i)->trainable) G[r][i] = host(&dlt_net_param(ds, i)->grad);
        }
        CHECK(!rc, "backward with an auxiliary gradient runs (%s)", rc ? dlt_errmsg() : "ok");
        double worst = 0;
        for (int i = 0; i < np2 && !rc; i++) {
            if (!G[0][i]) continue;
            const int64_t n = dlt_tensor_numel(&dlt_net_param(ds, i)->value);
            double mx = 1e-6;
            for (int64_t j = 0; j < n; j++) mx = fmax(mx, fabs(G[0][i][j]));
            for (int64_t j = 0; j < n; j++)
                worst = fmax(worst, fabs((double)G[0][i][j] - G[1][i][j] - G[2][i][j]) / mx);
        }
        CHECK(!rc && worst < 1e-5, "gradients are linear in (dlogits, daux): g(g0,g1) = g(g0,-) + g(0,g1) "
              "(worst %.2g of a tensor's max)", worst);
        const char *names[] = {"ds.0.weight", "dec.1.0.conv1.weight"};
        for (int k = 0; k < 2 && !rc; k++) {
            const int pi = (int)(dlt_net_find_param(ds, names[k]) - dlt_net_param(ds, 0));
            dlt_param *p = dlt_net_param(ds, pi);
            float *w = host(&p->value);
            double e = 0;
            for (int j = 0; j < 3; j++) {
                const int64_t i = (j * 37 + 5) % dlt_tensor_numel(&p->value);
                const float keep = w[i], hstep = 1e-2f;
                w[i] = keep + hstep, dlt_tensor_upload(&p->value, w);
                double lp = functional(ds, x, zero, g1, N, Z, Y, X);
                w[i] = keep - hstep, dlt_tensor_upload(&p->value, w);
                double lm = functional(ds, x, zero, g1, N, Z, Y, X);
                w[i] = keep, dlt_tensor_upload(&p->value, w);
                double fd = (lp - lm) / (2 * hstep);
                e = fmax(e, fabs(fd - G[2][pi][i]) / fmax(fabs(fd), 1e-2));
            }
            CHECK(e < 1e-3, "%s: the auxiliary loss's gradient matches a finite difference (worst rel err %.2g)",
                  names[k], e);
            free(w);
        }
        for (int r = 0; r < 3; r++) {
            for (int i = 0; i < np2; i++) free(G[r][i]);
            free(G[r]);
        }
        dlt_tensor_release(&t0), dlt_tensor_release(&t1), dlt_tensor_release(&tz);
        free(g0), free(g1), free(zero);
    }

    /* ---- the trainer's loss: (L0 + L1/2 + L2/4) / 1.75 on subsampled labels ---- */
    {
        int32_t lab[N * X * Y * Z], l1[N * 4 * 4 * 4], l2[N * 2 * 2 * 2];
        for (int i = 0; i < N * X * Y * Z; i++) lab[i] = (i / 3 + i / 17) % C;
        /* centre voxel of each block: x 2q+1, y 2q+1, z q (stride 1 in z at the first scale) */
        for (int n = 0; n < N; n++)
            for (int z = 0; z < 4; z++)
                for (int y = 0; y < 4; y++)
                    for (int xx = 0; xx < 4; xx++)
                        l1[((n * 4 + z) * 4 + y) * 4 + xx] = lab[((n * Z + z) * Y + 2 * y + 1) * X + 2 * xx + 1];
        for (int n = 0; n < N; n++)
            for (int z = 0; z < 2; z++)
                for (int y = 0; y < 2; y++)
                    for (int xx = 0; xx < 2; xx++)
                        l2[((n * 2 + z) * 2 + y) * 2 + xx] = lab[((n * Z + 2 * z + 1) * Y + 4 * y + 2) * X + 4 * xx + 2];
        dlt_train_config tc;
        dlt_train_config_default(&tc);
        tc.loss.kind = DLT_LOSS_DICE_CE;
        double L[3] = {0};
        const int32_t *labs[3] = {lab, l1, l2};
        rc = dlt_net_forward(ds, x, N, Z, Y, X, 1, &lg);
        for (int k = 0; k < 3 && !rc; k++) {
            const dlt_tensor *o = k ? dlt_net_aux_logits(ds, k - 1) : lg;
            dlt_tensor lt;
            rc = dlt_tensor_alloc(be, &lt, DLT_T_LABEL, o->n, 1, o->d, o->h, o->w);
            rc = rc ? rc : dlt_tensor_upload(&lt, labs[k]);
            rc = rc ? rc : dlt_op_loss(be, &tc.loss, o, &lt, &L[k], NULL);
            dlt_tensor_release(&lt);
        }
        dlt_trainer *t = NULL;
        double got = 0, want = (L[0] + L[1] / 2 + L[2] / 4) / 1.75;
        rc = rc ? rc : dlt_trainer_create(ds, &tc, 1, &t);
        rc = rc ? rc : dlt_trainer_step(t, x, lab, N, Z, Y, X, &got);
        CHECK(!rc && fabs(got - want) < 1e-6 * want, "trainer loss = nnU-Net's weighted mean: %.9g, want %.9g "
              "(main %.4g, aux %.4g, %.4g)", got, want, L[0], L[1], L[2]);
        dlt_model m;
        dlt_model_init(&m);
        dlt_net *back = NULL;
        rc = dlt_trainer_save(t, &m);
        rc = rc ? rc : dlt_net_load(&m, be, &back);
        CHECK(!rc && back && dlt_net_get_config(back)->deep_sup == 2 && dlt_net_find_param(back, "ds.1.weight") &&
                  !strcmp(dlt_model_get_meta(&m, "deep_supervision"), "2"),
              "model file round trip keeps deep supervision 2 and its heads");
        dlt_net_free(back);
        dlt_model_free(&m);
        dlt_trainer_free(t);
    }
    dlt_net_free(ds);
    dlt_backend_free(be);
    return check_done();
}
