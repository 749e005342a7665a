/* test_fast_net.c - whole networks on the fast path against the reference:
 * the same seed builds the same weights on both backends; then one Adam
 * training step (CE loss) of a small U-Net (filters 16,32,64, strides
 * 1,2,2, 14 classes, batch 2) and of an anisotropic FCN must give the same
 * loss and the same weights and running statistics (normwise relative error
 * per tensor <= 1e-4), and inference the same probabilities. */
#include <stdio.h>

#include "fastcheck.h"
#include "dlt/net.h"
#include "dlt/train.h"

#ifndef STEPS
#define STEPS 1
#endif

/* max |a - b| (*scale gets max |b|) over parameter i's value or gradient */
static double tensor_diff(dlt_net *a, dlt_net *b, int i, int grad, double *scale)
{
    dlt_param *pa = dlt_net_param(a, i), *pb = dlt_net_param(b, i);
    const dlt_tensor *ta = grad ? &pa->grad : &pa->value, *tb = grad ? &pb->grad : &pb->value;
    int64_t n = dlt_tensor_numel(ta);
    float *x = malloc(4 * (size_t)n), *y = malloc(4 * (size_t)n);
    ta->be->download(ta->be, ta, x);
    tb->be->download(tb->be, tb, y);
    double md = 0, mx = 0;
    for (int64_t j = 0; j < n; j++) {
        double d = fabs((double)x[j] - y[j]);
        md = d > md || isnan(d) ? d : md;
        mx = fabs(y[j]) > mx ? fabs(y[j]) : mx;
    }
    free(x), free(y);
    *scale = mx;
    return md;
}

static void step_case(const char *name, int kind, const char *filters, const char *strides, int X, int Y, int Z)
{
    dlt_net_config c;
    dlt_net_config_default(&c, kind, 1, 14);
    dlt_net_parse_filters(&c, filters);
    dlt_net_parse_strides(&c, strides);
    dlt_net *nf = NULL, *nr = NULL;
    int rc = dlt_net_create(&c, ft_fast, 7, &nf);
    rc = rc ? rc : dlt_net_create(&c, ft_ref, 7, &nr);
    CHECK(rc == 0, "%s: built on both backends (%s)", name, rc ? dlt_errmsg() : "ok");
    if (rc) return;
    const int N = 2;
    const int64_t nvox = (int64_t)X * Y * Z;
    float *x = malloc(4 * (size_t)(N * nvox));
    int32_t *lab = malloc(4 * (size_t)(N * nvox));
    ft_fill(x, N * nvox, 99, -2.f, 2.f);
    dlt_rng g;
    dlt_rng_init(&g, 3, 1);
    for (int64_t i = 0; i < N * nvox; i++) lab[i] = (int32_t)dlt_rng_below(&g, 14);
    dlt_train_config tc;
    dlt_train_config_default(&tc);
    dlt_trainer *tf = NULL, *tr = NULL;
    rc = dlt_trainer_create(nf, &tc, 1, &tf);
    rc = rc ? rc : dlt_trainer_create(nr, &tc, 1, &tr);
    double lf = 0, lr = 0;
    for (int s = 0; s < STEPS && !rc; s++) {
        rc = dlt_trainer_step(tf, x, lab, N, Z, Y, X, &lf);
        rc = rc ? rc : dlt_trainer_step(tr, x, lab, N, Z, Y, X, &lr);
        CHECK(rc == 0, "%s: training step %d runs (%s)", name, s + 1, rc ? dlt_errmsg() : "ok");
        CHECK(fabs(lf - lr) <= 1e-4 * fabs(lr), "%s: step %d loss %.7f vs %.7f", name, s + 1, lf, lr);
    }
    if (!rc) {
        /* gradients of the last step: per tensor, normwise */
        double worst = 0, wmax = 0, dmax = 0, sc;
        int wi = 0, di = 0;
        for (int i = 0; i < dlt_net_nparams(nf); i++) {
            if (!dlt_net_param(nf, i)->trainable) continue;
            double e = tensor_diff(nf, nr, i, 1, &sc) / (sc > 1e-30 ? sc : 1e-30);
            if (e > worst) worst = e, wi = i;
        }
        CHECK(worst <= FT_TOL, "%s: every parameter gradient agrees (worst %s, rel err %.2g)", name,
              dlt_net_param(nf, wi)->name, worst);
        /* weights and buffers after the step(s), on the scale of the network's
         * weights: Adam's first step lr*g/(|g|+eps) turns a gradient near eps
         * into a full lr-sized move, so a tensor of lr-sized values (a beta
         * fresh from zero) carries the gradients' float noise times lr/eps */
        for (int i = 0; i < dlt_net_nparams(nf); i++) {
            double d = tensor_diff(nf, nr, i, 0, &sc);
            if (sc > wmax) wmax = sc;
            if (d > dmax) dmax = d, di = i;
        }
        CHECK(dmax <= FT_TOL * wmax, "%s: all %d weights and buffers agree after %d step(s) (worst %s: %.2g of max |w| %.3g)",
              name, dlt_net_nparams(nf), STEPS, dlt_net_param(nf, di)->name, dmax / wmax, wmax);
        float *pf = malloc(4 * (size_t)(14 * nvox)), *pr = malloc(4 * (size_t)(14 * nvox));
        rc = dlt_net_predict(nf, x, 1, Z, Y, X, pf);
        rc = rc ? rc : dlt_net_predict(nr, x, 1, Z, Y, X, pr);
        double e = 0;
        for (int64_t i = 0; i < 14 * nvox; i++) e = fmax(e, fabs((double)pf[i] - pr[i]));
        CHECK(rc == 0 && e <= FT_TOL, "%s: inference probabilities agree (max abs diff %.2g)", name, e);
        free(pf), free(pr);
    }
    dlt_trainer_free(tf), dlt_trainer_free(tr);
    dlt_net_free(nf), dlt_net_free(nr);
    free(x), free(lab);
}

int main(void)
{
    if (ft_init()) {
        SKIP("no oneDNN fast path in this build (%s)", dlt_errmsg());
        return check_done();
    }
    step_case("U-Net 16,32,64 strides 1,2,2", DLT_NET_UNET, "16,32,64", "1,2,2", 16, 16, 16);
    step_case("U-Net 8,16 (8 filters: padded to 16 lanes)", DLT_NET_UNET, "8,16", "1,2", 8, 8, 8);
    step_case("FCN 16,32 strides 1,1x2x2", DLT_NET_FCN, "16,32", "1,2x2x1", 12, 8, 6);
    ft_done();
    return check_done();
}
