/* test_cuda_host.c - the host side of the CUDA backend, on machines without
 * a GPU: convolution planning (asymmetric TF 'same' padding turned into
 * symmetric padding plus an explicit copy, checked against a direct 1-D
 * convolution and its adjoint), channels-last descriptor strides,
 * algorithm choice under the workspace bound, the per-shape cache, pool
 * size classes, precision names, error texts, the single Philox source
 * shared with the GPU, and that dlt_cuda_create fails cleanly without a GPU.
 * The planning code (lib/backend/cuda/plan.c) is plain C; without CUDA it is not in
 * libdlt, so it is compiled into this test directly. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dlt/backend.h"
#include "dlt/core.h"
#include "dlt/philox.h"

#ifdef DLT_HAVE_CUDA
#include "backend/backends.h"
#include "backend/cuda/plan.h"
#else
#include "../../lib/backend/cuda/plan.c"
#endif

/* repository root from this file's path (tests/unit/test_cuda_host.c) */
static const char *root(void)
{
    static char buf[4096];
    const char *env = getenv("DLT_ROOT");
    if (env) return env;
    snprintf(buf, sizeof buf, "%s", __FILE__);
    char *p = strstr(buf, "tests/unit/test_cuda_host.c");
    if (!p) return ".";
    if (p == buf) return ".";
    p[-1] = 0;
    return buf;
}

static char *slurp(const char *rel)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", root(), rel);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

/* ---- Philox ---- */
static void test_philox(void)
{
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = { /* Random123 known answers for philox4x32-10 */
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        uint64_t lo = kat[i].ctr[0] | (uint64_t)kat[i].ctr[1] << 32, hi = kat[i].ctr[2] | (uint64_t)kat[i].ctr[3] << 32;
        uint64_t key = kat[i].key[0] | (uint64_t)kat[i].key[1] << 32;
        uint32_t o[4];
        dlt_philox4x32_hd(key, hi, lo, o);
        ok &= !memcmp(o, kat[i].out, sizeof o);
    }
    CHECK(ok, "philox.h: Random123 known answers");
    int same = 1;
    for (uint64_t i = 0; i < 2000; i++) {
        uint32_t a[4], b[4];
        dlt_philox4x32_hd(i * 0x9E3779B97F4A7C15ull, i >> 3, i * 77, a);
        dlt_philox4x32(i * 0x9E3779B97F4A7C15ull, i >> 3, i * 77, b);
        same &= !memcmp(a, b, sizeof a);
        same &= dlt_philox_uniform_at(5, i, i * 3) == dlt_rng_uniform_at(5, i, i * 3);
    }
    CHECK(same, "lib/core/rng.c and dlt/philox.h give identical bits");
    char *cu = slurp("lib/backend/cuda/backend.cu");
    if (!cu) {
        SKIP("lib/backend/cuda/backend.cu not readable from %s", root());
    } else {
        CHECK(strstr(cu, "#include \"dlt/philox.h\"") && strstr(cu, "dlt_philox_uniform_at(seed"),
              "the GPU kernel calls the same dlt/philox.h functions");
        free(cu);
    }
    /* no second copy of the round constants anywhere in lib/ but philox.h */
    const char *files[] = {"lib/core/rng.c", "lib/backend/cuda/backend.cu", "lib/backend/cuda/ops.cu", "lib/backend/cuda/loss.cu",
                           "lib/backend/cuda/optim.cu", "lib/backend/cuda/norm.cu", "lib/backend/cuda/conv.cu",
                           "lib/backend/cuda/memory.cu"};
    int single = 1, seen = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *s = slurp(files[i]);
        if (!s) continue;
        seen++;
        if (strstr(s, "D2511F53") || strstr(s, "d2511f53")) single = 0;
        free(s);
    }
    if (seen)
        CHECK(single, "Philox round constants appear only in dlt/philox.h (one source for host and GPU)");
    else
        SKIP("sources not found");
}

/* ---- convolution planning: a 1-D model of what the GPU does ---- */

/* direct 1-D conv with asymmetric zero padding (the contract) */
static void conv1d_ref(const double *x, int in, const double *w, int k, int s, int lo, double *y, int out)
{
    for (int o = 0; o < out; o++) {
        double a = 0;
        for (int t = 0; t < k; t++) {
            int i = o * s + t - lo;
            if (i >= 0 && i < in) a += x[i] * w[t];
        }
        y[o] = a;
    }
}

/* what cuDNN computes on the planned grid: symmetric padding `sym` over the
 * explicitly padded input (pin long, x at offset extra_lo) */
static void conv1d_planned(const double *x, int in, const double *w, const dlt_cuda_convplan *p, double *y)
{
    int pin = (int)p->pin[0], s = p->stride[0], k = p->k[0], sym = p->sym[0];
    double *xp = calloc((size_t)pin, sizeof *xp);
    for (int i = 0; i < in; i++) xp[i + p->extra_lo[0]] = x[i];
    int out = (pin + 2 * sym - k) / s + 1;
    for (int o = 0; o < out; o++) {
        double a = 0;
        for (int t = 0; t < k; t++) {
            int i = o * s + t - sym;
            if (i >= 0 && i < pin) a += xp[i] * w[t];
        }
        y[o] = a;
    }
    free(xp);
}

/* backward data on the padded grid, then cropped (the planned adjoint) */
static void conv1d_planned_adj(const double *dy, const double *w, const dlt_cuda_convplan *p, double *dx, int in)
{
    int pin = (int)p->pin[0], s = p->stride[0], k = p->k[0], sym = p->sym[0], out = (int)p->out[0];
    double *dxp = calloc((size_t)pin, sizeof *dxp);
    for (int o = 0; o < out; o++)
        for (int t = 0; t < k; t++) {
            int i = o * s + t - sym;
            if (i >= 0 && i < pin) dxp[i] += dy[o] * w[t];
        }
    for (int i = 0; i < in; i++) dx[i] = dxp[i + p->extra_lo[0]];
    free(dxp);
}

static void test_plan(void)
{
    dlt_cuda_convplan p;
    int64_t in[3] = {64, 64, 64}, out[3];
    dlt_conv_desc c = {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, 0};
    out[0] = out[1] = out[2] = 64;
    CHECK(dlt_cuda_conv_plan(&c, 2, 16, in, 32, out, &p) == 0 && !p.explicit_pad && p.sym[0] == 1 &&
              p.pin[2] == 64 && p.pad_elems == 0,
          "3^3 'same': symmetric, no copy");
    dlt_conv_desc c4 = {{4, 4, 4}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, 1, 0};
    out[0] = out[1] = out[2] = 32;
    CHECK(dlt_cuda_conv_plan(&c4, 2, 16, in, 32, out, &p) == 0 && !p.explicit_pad && p.sym[1] == 1,
          "4^3 stride 2 on 64: symmetric (DLTK's strided unit)");
    /* anisotropic unit: stride 1,2,2 -> kernel 2,4,4: TF pads 0 before, 1 after on the first axis */
    dlt_conv_desc ca = {{2, 4, 4}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, 1, 0};
    int64_t ina[3] = {16, 64, 64}, outa[3] = {16, 32, 32};
    CHECK(dlt_cuda_conv_plan(&ca, 2, 8, ina, 16, outa, &p) == 0 && p.explicit_pad && p.sym[0] == 0 &&
              p.extra_lo[0] == 0 && p.extra_hi[0] == 1 && p.pin[0] == 17 && p.pin[1] == 64 &&
              p.pad_elems == 2LL * 17 * 64 * 64 * 8,
          "kernel 2 'same': explicit one-voxel pad after, padded buffer sized");
    /* odd input, even kernel: 63 -> 32 with pads 1,2 */
    dlt_conv_desc co = {{4, 4, 4}, {2, 2, 2}, {1, 1, 1}, {2, 2, 2}, 1, 0};
    int64_t ino[3] = {63, 63, 63}, outo[3] = {32, 32, 32};
    CHECK(dlt_cuda_conv_plan(&co, 1, 1, ino, 1, outo, &p) == 0 && p.sym[0] == 1 && p.extra_hi[0] == 1 &&
              p.pin[0] == 64,
          "odd input: symmetric 1 plus one explicit voxel");
    int64_t bad[3] = {31, 32, 32};
    CHECK(dlt_cuda_conv_plan(&c4, 2, 16, in, 32, bad, &p) == DLT_ESHAPE && strstr(dlt_errmsg(), "expected 32"),
          "wrong output size: ESHAPE naming the expected size (%s)", dlt_errmsg());
    dlt_conv_desc cg = c;
    cg.groups = 3;
    out[0] = out[1] = out[2] = 64;
    CHECK(dlt_cuda_conv_plan(&cg, 1, 16, in, 16, out, &p) == DLT_ESHAPE, "channels not divisible by groups");
    dlt_conv_desc cn = c;
    cn.pad_lo[0] = -1;
    CHECK(dlt_cuda_conv_plan(&cn, 1, 16, in, 16, out, &p) == DLT_EINVAL, "negative padding refused");
    dlt_conv_desc cd = {{4, 4, 4}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, 16, 0};
    int64_t big[3] = {64, 64, 64}, small[3] = {32, 32, 32};
    CHECK(dlt_cuda_conv_plan(&cd, 1, 16, big, 16, small, &p) == 0 && p.groups == 16,
          "depthwise (transposed upsampling geometry)");

    /* exhaustive 1-D equivalence of the planned computation with the contract */
    dlt_rng r;
    dlt_rng_init(&r, 42, 0);
    int cases = 0, fwd_ok = 1, adj_ok = 1, plan_ok = 1;
    for (int k = 1; k <= 5; k++)
        for (int s = 1; s <= 3; s++)
            for (int lo = 0; lo <= 3; lo++)
                for (int hi = 0; hi <= 3; hi++)
                    for (int n = 1; n <= 9; n++) {
                        int span = n + lo + hi - k;
                        if (span < 0) continue;
                        int o = span / s + 1;
                        dlt_conv_desc d = {{k, 1, 1}, {s, 1, 1}, {lo, 0, 0}, {hi, 0, 0}, 1, 0};
                        int64_t i3[3] = {n, 1, 1}, o3[3] = {o, 1, 1};
                        if (dlt_cuda_conv_plan(&d, 1, 1, i3, 1, o3, &p) != 0) {
                            plan_ok = 0;
                            continue;
                        }
                        if ((p.pin[0] + 2 * p.sym[0] - k) / s + 1 != o) plan_ok = 0;
                        double x[16], w[8], y1[16], y2[16], dy[16], dx[16];
                        for (int i = 0; i < n; i++) x[i] = dlt_rng_uniform(&r) - 0.5;
                        for (int i = 0; i < k; i++) w[i] = dlt_rng_uniform(&r) - 0.5;
                        for (int i = 0; i < o; i++) dy[i] = dlt_rng_uniform(&r) - 0.5;
                        conv1d_ref(x, n, w, k, s, lo, y1, o);
                        conv1d_planned(x, n, w, &p, y2);
                        for (int i = 0; i < o; i++) fwd_ok &= fabs(y1[i] - y2[i]) < 1e-12;
                        conv1d_planned_adj(dy, w, &p, dx, n);
                        double a = 0, b = 0; /* <conv x, dy> == <x, adj dy> */
                        for (int i = 0; i < o; i++) a += y1[i] * dy[i];
                        for (int i = 0; i < n; i++) b += x[i] * dx[i];
                        adj_ok &= fabs(a - b) < 1e-12;
                        cases++;
                    }
    CHECK(plan_ok, "plan accepted every valid geometry and cuDNN's size formula agrees (%d cases)", cases);
    CHECK(fwd_ok, "padded copy + symmetric padding == asymmetric padding (forward, %d cases)", cases);
    CHECK(adj_ok, "backward-data on the padded grid, cropped, is the exact adjoint (%d cases)", cases);
}

static void test_desc(void)
{
    int d[5], s[5];
    CHECK(dlt_cuda_ndhwc_desc(2, 16, 8, 9, 10, d, s) == 0 && d[0] == 2 && d[1] == 16 && d[2] == 8 && d[4] == 10 &&
              s[1] == 1 && s[4] == 16 && s[3] == 160 && s[2] == 9 * 160 && s[0] == 8 * 9 * 160,
          "NDHWC strides in NCDHW dimension order");
    CHECK(dlt_cuda_ndhwc_desc(64, 32, 256, 256, 256, d, s) == DLT_EUNSUP && strstr(dlt_errmsg(), "smaller batch"),
          "more than 2^31 elements: clear refusal (%s)", dlt_errmsg());
    CHECK(dlt_cuda_ndhwc_desc(1, 0, 4, 4, 4, d, s) != 0, "empty dimension refused");
}

static void test_algo(void)
{
    enum { FMA = 3, TENSOR = 1 };
    dlt_cuda_algo_cand c[4] = {
        {5, 0, 0.1f, (int64_t)2 << 30, TENSOR}, /* fastest but 2 GiB */
        {1, 3, 0.2f, 0, FMA},                   /* failed */
        {2, 0, 0.3f, (int64_t)100 << 20, TENSOR},
        {0, 0, 0.9f, 0, FMA},
    };
    int64_t lim = (int64_t)1 << 30;
    CHECK(dlt_cuda_pick_algo(c, 4, lim, -1, 0) == 2, "first successful candidate within the workspace bound");
    CHECK(dlt_cuda_pick_algo(c, 4, (int64_t)4 << 30, -1, 0) == 0, "larger bound: the fastest");
    CHECK(dlt_cuda_pick_algo(c, 4, lim, FMA, 0) == 3, "fp32 insists on FMA math");
    CHECK(dlt_cuda_pick_algo(c, 3, lim, FMA, 0) == -1 && dlt_cuda_pick_algo(c, 3, lim, FMA, 1) == 2,
          "no FMA candidate: none, or any fitting one when allowed");
    CHECK(dlt_cuda_pick_algo(c, 4, 0, -1, 0) == 3, "zero workspace bound: only workspace-free algorithms");
    unsetenv("DLT_CUDA_WORKSPACE_MB");
    int64_t def = dlt_cuda_ws_limit();
    setenv("DLT_CUDA_WORKSPACE_MB", "64", 1);
    int64_t l64 = dlt_cuda_ws_limit();
    setenv("DLT_CUDA_WORKSPACE_MB", "lots", 1);
    int64_t bad = dlt_cuda_ws_limit();
    unsetenv("DLT_CUDA_WORKSPACE_MB");
    CHECK(def == (int64_t)1024 << 20 && l64 == (int64_t)64 << 20 && bad == def,
          "workspace bound: 1 GiB default, DLT_CUDA_WORKSPACE_MB overrides, garbage ignored");
}

static void test_cache(void)
{
    dlt_cuda_algo_cache cache = {0};
    dlt_cuda_convplan p1, p2;
    int64_t in[3] = {32, 32, 32}, out[3] = {32, 32, 32};
    dlt_conv_desc c = {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, 0};
    dlt_cuda_conv_plan(&c, 2, 16, in, 16, out, &p1);
    dlt_cuda_conv_plan(&c, 4, 16, in, 16, out, &p2);
    dlt_cuda_conv_key k1, k1b, k2, k3, k4;
    dlt_cuda_conv_key_make(&k1, DLT_CONV_OP_FWD, DLT_PREC_FP32, &p1);
    dlt_cuda_conv_key_make(&k1b, DLT_CONV_OP_FWD, DLT_PREC_FP32, &p1);
    dlt_cuda_conv_key_make(&k2, DLT_CONV_OP_FWD, DLT_PREC_FP32, &p2);
    dlt_cuda_conv_key_make(&k3, DLT_CONV_OP_BWD_DATA, DLT_PREC_FP32, &p1);
    dlt_cuda_conv_key_make(&k4, DLT_CONV_OP_FWD, DLT_PREC_BF16, &p1);
    int a = dlt_cuda_cache_add(&cache, &k1, (void *)1);
    int ok = a == 0 && dlt_cuda_cache_find(&cache, &k1b) == 0;
    ok &= dlt_cuda_cache_find(&cache, &k2) < 0 && dlt_cuda_cache_find(&cache, &k3) < 0 &&
          dlt_cuda_cache_find(&cache, &k4) < 0;
    CHECK(ok, "algorithm cache: same shape hits; batch, op or precision change misses");
    for (int i = 0; i < 100; i++) {
        dlt_cuda_convplan q;
        int64_t o2[3] = {32, 32, 32};
        dlt_cuda_conv_plan(&c, 1 + i, 16, in, 16, o2, &q);
        dlt_cuda_conv_key kk;
        dlt_cuda_conv_key_make(&kk, DLT_CONV_OP_FWD, DLT_PREC_TF32, &q);
        dlt_cuda_cache_add(&cache, &kk, (void *)(intptr_t)(i + 2));
    }
    dlt_cuda_convplan q;
    dlt_cuda_conv_plan(&c, 50, 16, in, 16, out, &q);
    dlt_cuda_conv_key kk;
    dlt_cuda_conv_key_make(&kk, DLT_CONV_OP_FWD, DLT_PREC_TF32, &q);
    int i = dlt_cuda_cache_find(&cache, &kk);
    CHECK(cache.n == 101 && i >= 0 && cache.payload[i] == (void *)51, "cache grows and finds its payloads");
    dlt_cuda_cache_free(&cache);
    CHECK(cache.n == 0 && !cache.keys, "cache freed");
}

static void test_pool_and_messages(void)
{
    CHECK(dlt_cuda_pool_class(1) == 512 && dlt_cuda_pool_class(512) == 512 && dlt_cuda_pool_class(513) == 1024 &&
              dlt_cuda_pool_class(1 << 20) == (1 << 20) && dlt_cuda_pool_class((1 << 20) + 1) == (2 << 20) &&
              dlt_cuda_pool_class((int64_t)3 << 20) == (int64_t)4 << 20,
          "pool size classes: 512 B steps to 1 MiB, then 2 MiB steps");
    int mono = 1;
    for (int64_t b = 1; b < (64 << 20); b = b * 3 / 2 + 7) {
        int64_t c = dlt_cuda_pool_class(b);
        mono &= c >= b && c - b < (2 << 20) && dlt_cuda_pool_class(c) == c;
    }
    CHECK(mono, "a class holds its request, wastes under 2 MiB, and is its own class");
    CHECK(dlt_cuda_parse_precision("fp32") == DLT_PREC_FP32 && dlt_cuda_parse_precision("tf32") == DLT_PREC_TF32 &&
              dlt_cuda_parse_precision("bf16") == DLT_PREC_BF16 && dlt_cuda_parse_precision("fp16") == -1 &&
              dlt_cuda_parse_precision(NULL) == -1 && !strcmp(dlt_cuda_precision_name(DLT_PREC_BF16), "bf16"),
          "precision names");
    char name[128];
    dlt_cuda_alloc_name(name, sizeof name, DLT_T_ACT, 8, 32, 64, 64, 64);
    CHECK(!strcmp(name, "activation [8,32,64,64,64]"), "allocation named by role and shape (%s)", name);
    int r = dlt_cuda_oom(name, (int64_t)256 << 20, (int64_t)70 << 30, (int64_t)100 << 20, (int64_t)80 << 30);
    const char *m = dlt_errmsg();
    CHECK(r == DLT_ENOMEM && strstr(m, "activation [8,32,64,64,64]") && strstr(m, "256.0 MiB") &&
              strstr(m, "smaller --batch"),
          "out of memory names the allocation and suggests a smaller batch (%s)", m);
}

static void test_create(void)
{
#ifdef DLT_HAVE_CUDA
    dlt_backend *be = (dlt_backend *)1;
    int r = dlt_cuda_create(&be);
    if (r == 0) {
        CHECK(be && !strcmp(be->name, "cuda") && be->ops->set_option, "dlt_cuda_create: a GPU is present");
        CHECK(dlt_backend_set_option(be, "precision", "bf16") == 0 &&
                  dlt_backend_set_option(be, "precision", "fp8") == DLT_EINVAL,
              "precision option");
        dlt_backend_free(be);
    } else {
        CHECK(r == DLT_EDEVICE && be == NULL && !strncmp(dlt_errmsg(), "no usable CUDA device: ", 23),
              "no GPU: DLT_EDEVICE \"%s\"", dlt_errmsg());
    }
#else
    SKIP("built without CUDA");
#endif
}

int main(void)
{
    test_philox();
    test_plan();
    test_desc();
    test_algo();
    test_cache();
    test_pool_and_messages();
    test_create();
    return check_done();
}
