/* backend/cuda/plan.c - host-side planning of the CUDA backend (see backend/cuda/plan.h).
 * Plain C with no CUDA headers, so it is tested without a GPU. */
#include "backend/cuda/plan.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dlt_cuda_parse_precision(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "fp32")) return DLT_PREC_FP32;
    if (!strcmp(s, "tf32")) return DLT_PREC_TF32;
    if (!strcmp(s, "bf16")) return DLT_PREC_BF16;
    return -1;
}

const char *dlt_cuda_precision_name(int prec)
{
    return prec == DLT_PREC_TF32 ? "tf32" : prec == DLT_PREC_BF16 ? "bf16" : "fp32";
}

int dlt_cuda_conv_plan(const dlt_conv_desc *c, int64_t n, int64_t cin, const int64_t in[3], int64_t cout,
                       const int64_t out[3], dlt_cuda_convplan *p)
{
    memset(p, 0, sizeof *p);
    int g = c->groups > 0 ? c->groups : 1;
    if (n <= 0 || cin <= 0 || cout <= 0) return dlt_err(DLT_ESHAPE, "conv: empty tensor (n %lld, cin %lld, cout %lld)",
                                                        (long long)n, (long long)cin, (long long)cout);
    if (cin % g || cout % g)
        return dlt_err(DLT_ESHAPE, "conv: %lld input and %lld output channels not divisible by %d groups",
                       (long long)cin, (long long)cout, g);
    p->n = n;
    p->cin = cin;
    p->cout = cout;
    p->groups = g;
    for (int i = 0; i < 3; i++) {
        int k = c->k[i], s = c->stride[i], lo = c->pad_lo[i], hi = c->pad_hi[i];
        if (k <= 0 || s <= 0 || lo < 0 || hi < 0)
            return dlt_err(DLT_EINVAL, "conv: bad descriptor (axis %d: kernel %d, stride %d, pad %d,%d)", i, k, s, lo,
                           hi);
        int64_t span = in[i] + lo + hi - k;
        int64_t want = span < 0 ? 0 : span / s + 1;
        if (in[i] <= 0 || out[i] != want)
            return dlt_err(DLT_ESHAPE,
                           "conv: output size %lld on axis %d does not match input %lld, kernel %d, stride %d, "
                           "padding %d+%d (expected %lld)",
                           (long long)out[i], i, (long long)in[i], k, s, lo, hi, (long long)want);
        p->k[i] = k;
        p->stride[i] = s;
        p->sym[i] = lo < hi ? lo : hi;
        p->extra_lo[i] = lo - p->sym[i];
        p->extra_hi[i] = hi - p->sym[i];
        p->in[i] = in[i];
        p->out[i] = out[i];
        p->pin[i] = in[i] + p->extra_lo[i] + p->extra_hi[i];
        if (p->extra_lo[i] || p->extra_hi[i]) p->explicit_pad = 1;
    }
    if (p->explicit_pad) p->pad_elems = n * p->pin[0] * p->pin[1] * p->pin[2] * cin;
    return 0;
}

int dlt_cuda_ndhwc_desc(int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, int dims[5], int strides[5])
{
    int64_t dd[5] = {n, c, d, h, w};
    int64_t ss[5] = {d * h * w * c, 1, h * w * c, w * c, c};
    int64_t total = n * d * h * w * c;
    if (total > INT_MAX)
        return dlt_err(DLT_EUNSUP,
                       "cuda: tensor [%lld,%lld,%lld,%lld,%lld] has more than 2^31 elements, beyond cuDNN's "
                       "limit: use a smaller batch or inference window",
                       (long long)n, (long long)c, (long long)d, (long long)h, (long long)w);
    for (int i = 0; i < 5; i++) {
        if (dd[i] <= 0) return dlt_err(DLT_ESHAPE, "cuda: empty tensor dimension %d", i);
        dims[i] = (int)dd[i];
        strides[i] = (int)ss[i];
    }
    return 0;
}

int dlt_cuda_pick_algo(const dlt_cuda_algo_cand *c, int n, int64_t ws_limit, int need_math, int allow_other_math)
{
    for (int i = 0; i < n; i++)
        if (c[i].status == 0 && c[i].memory <= ws_limit && (need_math < 0 || c[i].math_type == need_math)) return i;
    if (need_math >= 0 && allow_other_math)
        for (int i = 0; i < n; i++)
            if (c[i].status == 0 && c[i].memory <= ws_limit) return i;
    return -1;
}

int64_t dlt_cuda_ws_limit(void)
{
    const char *e = getenv("DLT_CUDA_WORKSPACE_MB");
    if (e && *e) {
        char *end;
        long long mb = strtoll(e, &end, 10);
        if (*end == 0 && mb >= 0 && mb < (1LL << 24)) return (int64_t)mb << 20;
    }
    return (int64_t)1024 << 20;
}

void dlt_cuda_conv_key_make(dlt_cuda_conv_key *key, int op, int prec, const dlt_cuda_convplan *p)
{
    memset(key, 0, sizeof *key); /* padding bytes too: keys are compared with memcmp */
    key->op = op;
    key->prec = prec;
    key->n = p->n;
    key->cin = p->cin;
    key->cout = p->cout;
    key->groups = p->groups;
    for (int i = 0; i < 3; i++) {
        key->pin[i] = p->pin[i];
        key->out[i] = p->out[i];
        key->k[i] = p->k[i];
        key->stride[i] = p->stride[i];
        key->sym[i] = p->sym[i];
    }
}

int dlt_cuda_cache_find(const dlt_cuda_algo_cache *c, const dlt_cuda_conv_key *key)
{
    /* A network has a few dozen distinct shapes: a linear scan is enough. */
    for (int i = 0; i < c->n; i++)
        if (!memcmp(&c->keys[i], key, sizeof *key)) return i;
    return -1;
}

int dlt_cuda_cache_add(dlt_cuda_algo_cache *c, const dlt_cuda_conv_key *key, void *payload)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        dlt_cuda_conv_key *k = realloc(c->keys, (size_t)cap * sizeof *k);
        if (!k) return dlt_err(DLT_ENOMEM, "cuda: algorithm cache");
        c->keys = k;
        void **pl = realloc(c->payload, (size_t)cap * sizeof *pl);
        if (!pl) return dlt_err(DLT_ENOMEM, "cuda: algorithm cache");
        c->payload = pl;
        c->cap = cap;
    }
    c->keys[c->n] = *key;
    c->payload[c->n] = payload;
    return c->n++;
}

void dlt_cuda_cache_free(dlt_cuda_algo_cache *c)
{
    free(c->keys);
    free(c->payload);
    memset(c, 0, sizeof *c);
}

int64_t dlt_cuda_pool_class(int64_t bytes)
{
    const int64_t small = 512, big = (int64_t)2 << 20;
    if (bytes <= small) return small;
    if (bytes <= ((int64_t)1 << 20)) return (bytes + small - 1) / small * small;
    return (bytes + big - 1) / big * big;
}

const char *dlt_cuda_alloc_name(char *buf, int size, int role, int64_t n, int64_t c, int64_t d, int64_t h,
                                int64_t w)
{
    static const char *names[] = {"activation", "weight", "vector", "label"};
    const char *r = role >= 0 && role < 4 ? names[role] : "buffer";
    snprintf(buf, (size_t)size, "%s [%lld,%lld,%lld,%lld,%lld]", r, (long long)n, (long long)c, (long long)d,
             (long long)h, (long long)w);
    return buf;
}

int dlt_cuda_oom(const char *what, int64_t bytes, int64_t held, int64_t dev_free, int64_t dev_total)
{
    const double mib = 1048576.0;
    return dlt_err(DLT_ENOMEM,
                   "cuda: out of GPU memory allocating %s (%.1f MiB; dlt holds %.1f MiB, the device has %.1f MiB "
                   "free of %.1f MiB): use a smaller --batch or inference window",
                   what, bytes / mib, held / mib, dev_free / mib, dev_total / mib);
}
