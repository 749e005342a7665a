/* test_front.c - the backend front (lib/backend/front.c): a backend that
 * has memory slots only (its private layout stores every tensor reversed)
 * trains a small U-Net bit-identically to cpu-ref, every op running
 * through the generic fallback; a slot that declines with DLT_EUNSUP falls
 * back, any other error passes through; shapes are checked before a slot
 * is called; tensors of another backend are refused. */
#include <string.h>

#include "check.h"
#include "dlt/train.h"

/* ---- "mem": memory only, values stored back to front ---- */

static int calls; /* how often an op slot of this backend ran */
static int softmax_rc;

static int mem_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
    memset(t, 0, sizeof *t);
    if (!(t->data = calloc((size_t)(n * c * d * h * w), 4))) return dlt_err(DLT_ENOMEM, "mem: out of memory");
    t->n = n, t->c = c, t->d = d, t->h = h, t->w = w, t->be = be, t->fmt = role;
    return 0;
}
static void mem_release(dlt_backend *be, dlt_tensor *t) { free(t->data); }
static int mem_upload(dlt_backend *be, dlt_tensor *t, const void *host)
{
    const int64_t n = dlt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) memcpy((char *)t->data + 4 * (n - 1 - i), (const char *)host + 4 * i, 4);
    return 0;
}
static int mem_download(dlt_backend *be, const dlt_tensor *t, void *host)
{
    const int64_t n = dlt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) memcpy((char *)host + 4 * i, (const char *)t->data + 4 * (n - 1 - i), 4);
    return 0;
}
static int mem_zero(dlt_backend *be, dlt_tensor *t)
{
    memset(t->data, 0, 4 * (size_t)dlt_tensor_numel(t));
    return 0;
}
/* one op slot, to see declining and errors */
static int mem_softmax(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y)
{
    calls++;
    return softmax_rc == DLT_EUNSUP ? dlt_err(DLT_EUNSUP, "mem: softmax declined")
           : softmax_rc            ? dlt_err(softmax_rc, "mem: softmax failed")
                                   : 0;
}

static const dlt_backend_ops mem_ops = {
    .name = "mem",
    .alloc = mem_alloc,
    .release = mem_release,
    .upload = mem_upload,
    .download = mem_download,
    .zero = mem_zero,
    .softmax_fwd = mem_softmax,
};

/* ---- a small U-Net, trained the same way on two backends ---- */

enum { N = 2, D = 8, H = 8, W = 8, C = 3 };

static float *train(dlt_backend *be, int steps)
{
    static float x[N * D * H * W];
    static int32_t y[N * D * H * W];
    for (int i = 0; i < N * D * H * W; i++) {
        y[i] = (i / 7) % C;
        x[i] = (float)y[i] + 0.25f * (float)((i * 2654435761u) % 1000) / 1000.f;
    }
    dlt_net_config c;
    dlt_net_config_default(&c, DLT_NET_UNET, 1, C);
    dlt_net_parse_filters(&c, "4,8");
    dlt_net_parse_strides(&c, "1,2");
    dlt_net *net = NULL;
    dlt_trainer *t = NULL;
    dlt_train_config tc;
    dlt_train_config_default(&tc);
    tc.loss.kind = DLT_LOSS_DICE_CE;
    double loss;
    int rc = dlt_net_create(&c, be, 5, &net);
    if (!rc) rc = dlt_trainer_create(net, &tc, 5, &t);
    for (int s = 0; s < steps && !rc; s++) rc = dlt_trainer_step(t, x, y, N, D, H, W, &loss);
    float *out = NULL;
    if (!rc) {
        int64_t len = 0;
        for (int i = 0; i < dlt_net_nparams(net); i++) len += dlt_tensor_numel(&dlt_net_param(net, i)->value);
        out = calloc((size_t)len + 1, 4);
        out[0] = (float)len;
        int64_t o = 1;
        for (int i = 0; i < dlt_net_nparams(net) && !rc; i++) {
            rc = dlt_tensor_download(&dlt_net_param(net, i)->value, out + o);
            o += dlt_tensor_numel(&dlt_net_param(net, i)->value);
        }
    }
    if (rc) fprintf(stderr, "# %s: %s\n", be->name, dlt_errmsg());
    dlt_trainer_free(t);
    dlt_net_free(net);
    return out;
}

int main(void)
{
    dlt_backend *ref = NULL, *mem = dlt_backend_new(&mem_ops, NULL);
    dlt_backend_create("cpu-ref", &ref);

    /* a backend of memory slots alone trains like the reference */
    softmax_rc = DLT_EUNSUP;
    float *a = train(ref, 3), *b = train(mem, 3);
    CHECK(a && b && a[0] == b[0] && !memcmp(a, b, 4 * ((size_t)a[0] + 1)),
          "memory-only backend: 3 training steps bit-identical to cpu-ref");
    free(a), free(b);

    /* one tensor pair for the slot cases */
    dlt_tensor x, y, r;
    float h[24], p[24];
    for (int i = 0; i < 24; i++) h[i] = (float)(i % 5) - 2.f;
    dlt_tensor_alloc(mem, &x, DLT_T_ACT, 2, 3, 1, 2, 2);
    dlt_tensor_alloc(mem, &y, DLT_T_ACT, 2, 3, 1, 2, 2);
    dlt_tensor_alloc(ref, &r, DLT_T_ACT, 2, 3, 1, 2, 2);
    dlt_tensor_upload(&x, h);

    calls = 0, softmax_rc = DLT_EUNSUP;
    int rc = dlt_op_softmax_fwd(mem, &x, &y);
    dlt_tensor_download(&y, p);
    double sum = 0;
    for (int c = 0; c < 3; c++) sum += p[c * 4];
    CHECK(!rc && calls == 1 && fabs(sum - 1) < 1e-6, "a declining slot runs once, then the fallback (sum %g)", sum);

    float q[24];
    rc = dlt_op_scale(mem, -0.5f, &x);
    dlt_tensor_download(&x, q);
    int same = 1;
    for (int i = 0; i < 24; i++) same &= q[i] == -0.5f * h[i];
    CHECK(!rc && same, "an empty slot (scale) runs on the reference, values exact");
    CHECK(dlt_op_scale(mem, NAN, &x) == DLT_EINVAL, "scale by NaN refused: %s", dlt_errmsg());
    dlt_tensor_upload(&x, h);

    calls = 0, softmax_rc = DLT_EDEVICE;
    rc = dlt_op_softmax_fwd(mem, &x, &y);
    CHECK(rc == DLT_EDEVICE && calls == 1 && strstr(dlt_errmsg(), "softmax failed"),
          "any other error passes through: %s", dlt_errmsg());

    calls = 0, softmax_rc = 0;
    dlt_tensor small;
    dlt_tensor_alloc(mem, &small, DLT_T_ACT, 2, 3, 1, 2, 1);
    rc = dlt_op_softmax_fwd(mem, &x, &small);
    CHECK(rc == DLT_ESHAPE && calls == 0 && strstr(dlt_errmsg(), "softmax_fwd"),
          "shapes checked before the slot: %s", dlt_errmsg());
    rc = dlt_op_softmax_fwd(mem, &x, &r);
    CHECK(rc == DLT_EINVAL && calls == 0 && strstr(dlt_errmsg(), "another backend"),
          "a tensor of another backend refused: %s", dlt_errmsg());
    dlt_conv_desc cd = {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, 0};
    dlt_tensor w;
    dlt_tensor_alloc(mem, &w, DLT_T_WEIGHT, 3, 2, 3, 3, 3);
    rc = dlt_op_conv_fwd(mem, &cd, &x, &w, NULL, &y);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "weight shape"), "conv weights checked: %s", dlt_errmsg());
    dlt_norm_desc nd = {DLT_NORM_INSTANCE, 1e-3f, 0.99f, 0, DLT_ACT_PRELU, 0.f};
    rc = dlt_op_norm_fwd(mem, &nd, 1, &x, NULL, NULL, NULL, NULL, NULL, NULL, &y);
    CHECK(rc == DLT_EUNSUP && strstr(dlt_errmsg(), "PReLU"), "fused PReLU refused by the front: %s", dlt_errmsg());
    dlt_tensor_release(&small);
    CHECK(dlt_tensor_alloc(mem, &small, DLT_T_ACT, 1, 0, 1, 1, 1) == DLT_ESHAPE, "an empty tensor is refused: %s",
          dlt_errmsg());

    dlt_tensor_release(&x), dlt_tensor_release(&y), dlt_tensor_release(&r), dlt_tensor_release(&w);
    dlt_backend_free(mem);
    dlt_backend_free(ref);
    return check_done();
}
