/* test_ref_conv.c - the reference convolution and transposed convolution:
 * TF 'same' padding, forward against a brute-force loop, backward (data,
 * weights, bias) against central finite differences in float64, the
 * transposed conv as the exact adjoint, and the float backend against the
 * double kernels, over several kernels, strides, groups and sizes. */
#include <string.h>

#include "check.h"
#include "backend/backends.h"
#include "refcheck.h"

typedef struct {
    dlt_conv_desc cd;
    dlt_shape xs, ws, ys;
    double *x, *w, *b, *r; /* r: the upstream gradient defining L = <r, y> */
    double *y;
} conv_case;

static double conv_L(void *ctx)
{
    conv_case *c = ctx;
    dlt_ref_conv_fwd_d(&c->cd, c->xs, c->x, c->w, c->b, c->ys, c->y);
    return rc_dot(dlt_shape_numel(c->ys), c->r, c->y);
}

/* Direct definition: y[n,co,o] = b + sum_{ci in group, k} w * x[o*s + k - pad_lo]. */
static void brute_conv(const conv_case *c, double *y)
{
    const dlt_conv_desc *cd = &c->cd;
    int g = cd->groups;
    int64_t cig = c->xs.c / g, cog = c->ys.c / g;
    for (int64_t n = 0; n < c->ys.n; n++)
        for (int64_t co = 0; co < c->ys.c; co++)
            for (int64_t od = 0; od < c->ys.d; od++)
                for (int64_t oh = 0; oh < c->ys.h; oh++)
                    for (int64_t ow = 0; ow < c->ys.w; ow++) {
                        double s = c->b ? c->b[co] : 0;
                        for (int64_t ci = 0; ci < cig; ci++)
                            for (int a = 0; a < cd->k[0]; a++)
                                for (int b = 0; b < cd->k[1]; b++)
                                    for (int e = 0; e < cd->k[2]; e++) {
                                        int64_t id = od * cd->stride[0] + a - cd->pad_lo[0];
                                        int64_t ih = oh * cd->stride[1] + b - cd->pad_lo[1];
                                        int64_t iw = ow * cd->stride[2] + e - cd->pad_lo[2];
                                        if (id < 0 || ih < 0 || iw < 0 || id >= c->xs.d || ih >= c->xs.h ||
                                            iw >= c->xs.w)
                                            continue;
                                        int64_t cin = (co / cog) * cig + ci;
                                        s += c->w[(((co * cig + ci) * cd->k[0] + a) * cd->k[1] + b) * cd->k[2] + e] *
                                             c->x[(((n * c->xs.c + cin) * c->xs.d + id) * c->xs.h + ih) * c->xs.w + iw];
                                    }
                        y[(((n * c->ys.c + co) * c->ys.d + od) * c->ys.h + oh) * c->ys.w + ow] = s;
                    }
}

static void run_case(const char *name, int n, int cin, int cout, int groups, const int in[3], const int k[3],
                     const int s[3], int bias, uint64_t seed)
{
    conv_case c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 3; i++) c.cd.k[i] = k[i], c.cd.stride[i] = s[i];
    c.cd.groups = groups;
    c.cd.bias = bias;
    int64_t in64[3] = {in[0], in[1], in[2]}, out[3];
    dlt_conv_same(&c.cd, in64, out);
    c.xs = (dlt_shape){n, cin, in[0], in[1], in[2]};
    c.ws = (dlt_shape){cout, cin / groups, k[0], k[1], k[2]};
    c.ys = (dlt_shape){n, cout, out[0], out[1], out[2]};
    int64_t nx = dlt_shape_numel(c.xs), nw = dlt_shape_numel(c.ws), ny = dlt_shape_numel(c.ys);
    c.x = rc_rand(nx, seed);
    c.w = rc_rand(nw, seed + 1);
    c.b = bias ? rc_rand(cout, seed + 2) : NULL;
    c.r = rc_rand(ny, seed + 3);
    c.y = calloc(ny, sizeof(double));
    double *yb = calloc(ny, sizeof(double));

    /* forward against the brute-force definition */
    dlt_ref_conv_fwd_d(&c.cd, c.xs, c.x, c.w, c.b, c.ys, c.y);
    brute_conv(&c, yb);
    double e = 0;
    for (int64_t i = 0; i < ny; i++) e = fmax(e, fabs(c.y[i] - yb[i]));
    CHECK(e < 1e-12, "%s: forward equals the direct definition (max abs err %.2g)", name, e);

    /* backward: dx, dw, db vs finite differences of L = <r, conv(x)> */
    double *dx = calloc(nx, sizeof(double)), *dw = calloc(nw, sizeof(double)), *db = calloc(cout, sizeof(double));
    dlt_ref_conv_bwd_data_d(&c.cd, c.ys, c.r, c.w, c.xs, dx, 0);
    dlt_ref_conv_bwd_weights_d(&c.cd, c.xs, c.x, c.ys, c.r, dw, bias ? db : NULL);
    double ex = rc_fd_check(conv_L, &c, c.x, nx, dx, 1e-4);
    double ew = rc_fd_check(conv_L, &c, c.w, nw, dw, 1e-4);
    CHECK(ex < 1e-6, "%s: bwd_data matches finite differences (rel err %.2g)", name, ex);
    CHECK(ew < 1e-6, "%s: bwd_weights matches finite differences (rel err %.2g)", name, ew);
    if (bias) {
        double eb = rc_fd_check(conv_L, &c, c.b, cout, db, 1e-4);
        CHECK(eb < 1e-6, "%s: bias gradient matches finite differences (rel err %.2g)", name, eb);
    }
    /* accumulation: bwd_data with accum adds */
    double *dx2 = malloc(sizeof(double) * nx);
    for (int64_t i = 0; i < nx; i++) dx2[i] = 1.0;
    dlt_ref_conv_bwd_data_d(&c.cd, c.ys, c.r, c.w, c.xs, dx2, 1);
    e = 0;
    for (int64_t i = 0; i < nx; i++) e = fmax(e, fabs(dx2[i] - 1.0 - dx[i]));
    CHECK(e < 1e-12, "%s: bwd_data accum=1 adds to the gradient", name);

    /* the float backend against the double kernels (transposed conv included) */
    dlt_backend *be;
    dlt_cpu_ref_create(&be);
    dlt_tensor tx, tw, tb, ty, tdx, tdw, tdb, tr;
    dlt_tensor_alloc(be, &tx, DLT_T_ACT, n, cin, in[0], in[1], in[2]);
    dlt_tensor_alloc(be, &tw, DLT_T_WEIGHT, cout, cin / groups, k[0], k[1], k[2]);
    dlt_tensor_alloc(be, &tb, DLT_T_VEC, cout, 1, 1, 1, 1);
    dlt_tensor_alloc(be, &ty, DLT_T_ACT, n, cout, out[0], out[1], out[2]);
    dlt_tensor_alloc(be, &tr, DLT_T_ACT, n, cout, out[0], out[1], out[2]);
    dlt_tensor_alloc(be, &tdx, DLT_T_ACT, n, cin, in[0], in[1], in[2]);
    dlt_tensor_alloc(be, &tdw, DLT_T_WEIGHT, cout, cin / groups, k[0], k[1], k[2]);
    dlt_tensor_alloc(be, &tdb, DLT_T_VEC, cout, 1, 1, 1, 1);
    float *f = malloc(4 * (size_t)(nx + nw + ny + cout));
#define UP(t, src, cnt)                                                                                            \
    do {                                                                                                           \
        for (int64_t i_ = 0; i_ < (cnt); i_++) f[i_] = (float)(src)[i_];                                           \
        dlt_tensor_upload(&(t), f);                                                                                   \
    } while (0)
    UP(tx, c.x, nx);
    UP(tw, c.w, nw);
    if (bias) UP(tb, c.b, cout);
    UP(tr, c.r, ny);
    dlt_ref_conv_fwd_d(&c.cd, c.xs, c.x, c.w, c.b, c.ys, c.y); /* c.y was left by the last perturbation */
    int rc = dlt_op_conv_fwd(be, &c.cd, &tx, &tw, bias ? &tb : NULL, &ty);
    dlt_tensor_download(&ty, f);
    e = 0;
    for (int64_t i = 0; i < ny; i++) e = fmax(e, check_relerr(f[i], c.y[i], 1e-2));
    CHECK(rc == 0 && e < 1e-5, "%s: float backend conv_fwd agrees with double (rel %.2g)", name, e);
    rc = dlt_op_conv_bwd_data(be, &c.cd, &tr, &tw, &tdx, 0);
    dlt_tensor_download(&tdx, f);
    e = 0;
    for (int64_t i = 0; i < nx; i++) e = fmax(e, check_relerr(f[i], dx[i], 1e-2));
    CHECK(rc == 0 && e < 1e-5, "%s: float backend conv_bwd_data agrees (rel %.2g)", name, e);
    rc = dlt_op_conv_bwd_weights(be, &c.cd, &tx, &tr, &tdw, bias ? &tdb : NULL);
    dlt_tensor_download(&tdw, f);
    e = 0;
    for (int64_t i = 0; i < nw; i++) e = fmax(e, check_relerr(f[i], dw[i], 1e-2));
    CHECK(rc == 0 && e < 1e-5, "%s: float backend conv_bwd_weights agrees (rel %.2g)", name, e);

    /* transposed conv = adjoint: convt_fwd(r) = bwd_data(r); convt_bwd_data(x-shaped) = conv_fwd */
    rc = dlt_op_convt_fwd(be, &c.cd, &tr, &tw, NULL, &tdx);
    dlt_tensor_download(&tdx, f);
    e = 0;
    for (int64_t i = 0; i < nx; i++) e = fmax(e, check_relerr(f[i], dx[i], 1e-2));
    CHECK(rc == 0 && e < 1e-5, "%s: convt_fwd is the adjoint of conv_fwd (rel %.2g)", name, e);
    rc = dlt_op_convt_bwd_data(be, &c.cd, &tx, &tw, &ty, 0);
    dlt_tensor_download(&ty, f);
    dlt_ref_conv_fwd_d(&c.cd, c.xs, c.x, c.w, NULL, c.ys, c.y);
    e = 0;
    for (int64_t i = 0; i < ny; i++) e = fmax(e, check_relerr(f[i], c.y[i], 1e-2));
    CHECK(rc == 0 && e < 1e-5, "%s: convt_bwd_data is conv_fwd (rel %.2g)", name, e);
    dlt_tensor_zero(&tdw);
    rc = dlt_op_convt_bwd_weights(be, &c.cd, &tr, &tx, &tdw, NULL);
    dlt_tensor_download(&tdw, f);
    e = 0;
    for (int64_t i = 0; i < nw; i++) e = fmax(e, check_relerr(f[i], dw[i], 1e-2));
    CHECK(rc == 0 && e < 1e-5, "%s: convt_bwd_weights pairs the same tensors (rel %.2g)", name, e);

    /* shape errors are errors */
    rc = dlt_op_conv_fwd(be, &c.cd, &tx, &tw, NULL, &tx);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "conv_fwd"), "%s: wrong output shape refused: %s", name,
          dlt_errmsg());

    dlt_tensor_release(&tx), dlt_tensor_release(&tw), dlt_tensor_release(&tb), dlt_tensor_release(&ty);
    dlt_tensor_release(&tr), dlt_tensor_release(&tdx), dlt_tensor_release(&tdw), dlt_tensor_release(&tdb);
    dlt_backend_free(be);
    free(f), free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(yb), free(dx), free(dx2), free(dw),
        free(db);
}

int main(void)
{
    /* TF 'same' padding */
    dlt_conv_desc cd = {.k = {4, 3, 1}, .stride = {2, 1, 1}, .groups = 1};
    int64_t in[3] = {8, 5, 7}, out[3];
    dlt_conv_same(&cd, in, out);
    CHECK(out[0] == 4 && cd.pad_lo[0] == 1 && cd.pad_hi[0] == 1, "same: k4 s2 on 8 -> 4, pad 1+1");
    CHECK(out[1] == 5 && cd.pad_lo[1] == 1 && cd.pad_hi[1] == 1, "same: k3 s1 -> pad 1+1");
    CHECK(out[2] == 7 && cd.pad_lo[2] == 0 && cd.pad_hi[2] == 0, "same: k1 -> no pad");
    in[0] = 7;
    dlt_conv_same(&cd, in, out);
    CHECK(out[0] == 4 && cd.pad_lo[0] == 1 && cd.pad_hi[0] == 2, "same: k4 s2 on 7 -> 4, pad 1+2 (extra after)");
    cd.k[0] = 2, cd.stride[0] = 4, in[0] = 9;
    dlt_conv_same(&cd, in, out);
    CHECK(out[0] == 3 && cd.pad_lo[0] == 0 && cd.pad_hi[0] == 1, "same: k2 s4 on 9 -> 3, pad 0+1");
    cd.k[0] = 1, cd.stride[0] = 3, in[0] = 9;
    dlt_conv_same(&cd, in, out);
    CHECK(out[0] == 3 && cd.pad_lo[0] == 0 && cd.pad_hi[0] == 0, "same: k1 s3: no padding");

    run_case("k3 s1", 2, 3, 4, 1, (int[]){5, 4, 6}, (int[]){3, 3, 3}, (int[]){1, 1, 1}, 0, 10);
    run_case("k4 s2 even", 1, 2, 3, 1, (int[]){6, 4, 8}, (int[]){4, 4, 4}, (int[]){2, 2, 2}, 1, 20);
    run_case("k4 s2 odd", 2, 2, 2, 1, (int[]){5, 7, 3}, (int[]){4, 4, 4}, (int[]){2, 2, 2}, 0, 30);
    run_case("anisotropic k3x4x4 s1x2x2", 1, 3, 2, 1, (int[]){4, 6, 6}, (int[]){3, 4, 4}, (int[]){1, 2, 2}, 1, 40);
    run_case("k1 head", 2, 4, 3, 1, (int[]){3, 2, 5}, (int[]){1, 1, 1}, (int[]){1, 1, 1}, 1, 50);
    run_case("groups 2", 1, 4, 6, 2, (int[]){4, 3, 5}, (int[]){3, 2, 3}, (int[]){1, 1, 2}, 1, 60);
    run_case("depthwise k4 s2", 2, 3, 3, 3, (int[]){4, 4, 6}, (int[]){4, 4, 4}, (int[]){2, 2, 2}, 0, 70);
    run_case("k5 s3", 1, 2, 2, 1, (int[]){7, 6, 8}, (int[]){5, 3, 5}, (int[]){3, 1, 3}, 0, 80);
    return check_done();
}
