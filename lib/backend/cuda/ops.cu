/* backend/cuda/ops.cu - the memory-bound operations of the table on channels-last
 * tensors: activations (with PReLU), max pooling (kernel = stride),
 * channel zero-padding, concatenation, addition, copy, softmax over
 * channels. One thread per element with grid-stride loops; every index is
 * 64-bit so volumes beyond 2^31 elements are fine. */
#include "backend/cuda/reduce.cuh"

#define FOR_EACH(i, total)                                                                                         \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (total); i += (int64_t)gridDim.x * blockDim.x)

static inline int grid(int64_t n) { return cuda_blocks(n, 256); }

/* Two tensors with the same shape whose bytes mean the same elements. */
static int same_layout(const char *op, const dlt_tensor *a, const dlt_tensor *b)
{
    if (a->fmt == b->fmt) return 0;
    int ta = a->fmt == FMT_NDHWC && a->c > 1 && spatial(a) > 1, tb = b->fmt == FMT_NDHWC && b->c > 1 && spatial(b) > 1;
    if (!ta && !tb) return 0;
    return dlt_err(DLT_EINVAL, "cuda %s: tensors of the same shape have different layouts (roles differ)", op);
}

/* ---- activations ---- */

__global__ void k_act_fwd(const float *__restrict__ x, float *__restrict__ y, int64_t total, int64_t C, int act,
                          float alpha, const float *slope)
{
    FOR_EACH(i, total)
    {
        float v = x[i];
        y[i] = act == DLT_ACT_PRELU ? (v > 0 ? v : slope[i % C] * v) : act_apply(act, alpha, v);
    }
}

/* tmp (when non-NULL) gets dy*x where x <= 0, for the PReLU slope gradient */
__global__ void k_act_bwd(const float *__restrict__ x, const float *__restrict__ dy, float *__restrict__ dx,
                          int64_t total, int64_t C, int act, float alpha, const float *slope, int accum, float *tmp)
{
    FOR_EACH(i, total)
    {
        float v = x[i], g;
        switch (act) {
        case DLT_ACT_RELU: g = v > 0 ? 1.f : 0.f; break;
        case DLT_ACT_LEAKY: g = v > 0 ? 1.f : alpha; break;
        case DLT_ACT_RELU6: g = v > 0 && v < 6 ? 1.f : 0.f; break;
        case DLT_ACT_PRELU: g = v > 0 ? 1.f : slope[i % C]; break;
        default: g = 1.f;
        }
        float d = dy[i] * g;
        dx[i] = accum ? dx[i] + d : d;
        if (tmp) tmp[i] = v > 0 ? 0.f : dy[i] * v;
    }
}

int cuda_act_fwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x, dlt_tensor *y)
{
    RET(same_layout("act_fwd", x, y));
    int64_t total = dlt_tensor_numel(x);
    if (act == DLT_ACT_PRELU) {
        RET(cuda_check_fmt("act_fwd", x, FMT_NDHWC));
    }
    if (total == 0) return 0;
    k_act_fwd<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)x->data, (float *)y->data, total, x->c, act,
                                                        alpha, slope ? (const float *)slope->data : NULL);
    KCHECK("act_fwd");
    return 0;
}

int cuda_act_bwd(dlt_backend *be, int act, float alpha, const dlt_tensor *slope, const dlt_tensor *x,
                 const dlt_tensor *dy, dlt_tensor *dx, int accum, dlt_tensor *dslope)
{
    RET(same_layout("act_bwd", x, dy));
    RET(same_layout("act_bwd", x, dx));
    int64_t total = dlt_tensor_numel(x);
    float *tmp = NULL;
    if (act == DLT_ACT_PRELU) {
        RET(cuda_check_fmt("act_bwd", x, FMT_NDHWC));
        if (dslope) {
            RET(cuda_scratch(be, SCR_IN, total * 4, (void **)&tmp));
        }
    }
    if (total == 0) return 0;
    k_act_bwd<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)x->data, (const float *)dy->data,
                                                        (float *)dx->data, total, x->c, act, alpha,
                                                        slope ? (const float *)slope->data : NULL, accum, tmp);
    KCHECK("act_bwd");
    if (tmp) RET(cuda_channel_sum_add(be, tmp, total / x->c, x->c, (float *)dslope->data));
    return 0;
}

/* ---- max pooling, kernel = stride, NDHWC ---- */

struct pool_geo {
    int64_t C, D, H, W, Do, Ho, Wo;
    int kd, kh, kw;
};

/* Output element i -> index of the first maximum of its window (scan order
 * d, h, w as the CPU reference loops). */
__device__ inline int64_t pool_argmax(const float *x, const pool_geo &g, int64_t i)
{
    int64_t c = i % g.C, r = i / g.C;
    int64_t ow = r % g.Wo;
    r /= g.Wo;
    int64_t oh = r % g.Ho;
    r /= g.Ho;
    int64_t od = r % g.Do, n = r / g.Do;
    int64_t best = -1;
    float bv = 0;
    for (int a = 0; a < g.kd; a++)
        for (int b = 0; b < g.kh; b++)
            for (int e = 0; e < g.kw; e++) {
                int64_t j = (((n * g.D + od * g.kd + a) * g.H + oh * g.kh + b) * g.W + ow * g.kw + e) * g.C + c;
                float v = x[j];
                if (best < 0 || v > bv) best = j, bv = v;
            }
    return best;
}

__global__ void k_pool_fwd(const float *__restrict__ x, float *__restrict__ y, int64_t total, pool_geo g)
{
    FOR_EACH(i, total) y[i] = x[pool_argmax(x, g, i)];
}

__global__ void k_pool_bwd(const float *__restrict__ x, const float *__restrict__ dy, float *__restrict__ dx,
                           int64_t total, pool_geo g, int accum)
{
    FOR_EACH(i, total)
    {
        int64_t am = pool_argmax(x, g, i);
        int64_t c = i % g.C, r = i / g.C;
        int64_t ow = r % g.Wo;
        r /= g.Wo;
        int64_t oh = r % g.Ho;
        r /= g.Ho;
        int64_t od = r % g.Do, n = r / g.Do;
        for (int a = 0; a < g.kd; a++)
            for (int b = 0; b < g.kh; b++)
                for (int e = 0; e < g.kw; e++) {
                    int64_t j = (((n * g.D + od * g.kd + a) * g.H + oh * g.kh + b) * g.W + ow * g.kw + e) * g.C + c;
                    float v = j == am ? dy[i] : 0.f;
                    dx[j] = accum ? dx[j] + v : v;
                }
    }
}

static int pool_setup(const char *op, const int k[3], const dlt_tensor *x, const dlt_tensor *y, pool_geo *g)
{
    RET(cuda_check_fmt(op, x, FMT_NDHWC));
    RET(cuda_check_fmt(op, y, FMT_NDHWC));
    *g = pool_geo{x->c, x->d, x->h, x->w, y->d, y->h, y->w, k[0], k[1], k[2]};
    return 0;
}

int cuda_maxpool_fwd(dlt_backend *be, const int k[3], const dlt_tensor *x, dlt_tensor *y)
{
    pool_geo g;
    RET(pool_setup("maxpool_fwd", k, x, y, &g));
    int64_t total = dlt_tensor_numel(y);
    if (total == 0) return 0;
    k_pool_fwd<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)x->data, (float *)y->data, total, g);
    KCHECK("maxpool_fwd");
    return 0;
}

int cuda_maxpool_bwd(dlt_backend *be, const int k[3], const dlt_tensor *x, const dlt_tensor *y, const dlt_tensor *dy,
                     dlt_tensor *dx, int accum)
{
    pool_geo g;
    RET(pool_setup("maxpool_bwd", k, x, y, &g));
    int64_t total = dlt_tensor_numel(y);
    if (total == 0) return 0;
    k_pool_bwd<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)x->data, (const float *)dy->data,
                                                         (float *)dx->data, total, g, accum);
    KCHECK("maxpool_bwd");
    return 0;
}

/* ---- channel ops: rows of C contiguous channels ---- */

/* y[r, c] = c in [lo, lo+Cx) ? x[r, c-lo] : 0 */
__global__ void k_padc_fwd(const float *__restrict__ x, float *__restrict__ y, int64_t total, int64_t Cx, int64_t Cy,
                           int lo)
{
    FOR_EACH(i, total)
    {
        int64_t c = i % Cy, r = i / Cy, cs = c - lo;
        y[i] = cs >= 0 && cs < Cx ? x[r * Cx + cs] : 0.f;
    }
}

__global__ void k_padc_bwd(const float *__restrict__ dy, float *__restrict__ dx, int64_t total, int64_t Cx,
                           int64_t Cy, int lo, int accum)
{
    FOR_EACH(i, total)
    {
        int64_t c = i % Cx, r = i / Cx;
        float v = dy[r * Cy + c + lo];
        dx[i] = accum ? dx[i] + v : v;
    }
}

static int chan_check(const char *op, const dlt_tensor *a, const dlt_tensor *y, int64_t cy)
{
    RET(cuda_check_fmt(op, a, FMT_NDHWC));
    RET(cuda_check_fmt(op, y, FMT_NDHWC));
    if (a->n != y->n || a->d != y->d || a->h != y->h || a->w != y->w || y->c != cy)
        return dlt_err(DLT_ESHAPE, "cuda %s: shapes do not fit ([%lld,%lld,%lld,%lld,%lld] -> %lld channels, have %lld)",
                       op, (long long)a->n, (long long)a->c, (long long)a->d, (long long)a->h, (long long)a->w,
                       (long long)cy, (long long)y->c);
    return 0;
}

int cuda_padc_fwd(dlt_backend *be, int lo, int hi, const dlt_tensor *x, dlt_tensor *y)
{
    if (lo < 0 || hi < 0) return dlt_err(DLT_EINVAL, "cuda padc_fwd: negative padding");
    RET(chan_check("padc_fwd", x, y, x->c + lo + hi));
    int64_t total = dlt_tensor_numel(y);
    if (total == 0) return 0;
    k_padc_fwd<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)x->data, (float *)y->data, total, x->c, y->c,
                                                         lo);
    KCHECK("padc_fwd");
    return 0;
}

int cuda_padc_bwd(dlt_backend *be, int lo, int hi, const dlt_tensor *dy, dlt_tensor *dx, int accum)
{
    if (lo < 0 || hi < 0) return dlt_err(DLT_EINVAL, "cuda padc_bwd: negative padding");
    RET(chan_check("padc_bwd", dx, dy, dx->c + lo + hi));
    int64_t total = dlt_tensor_numel(dx);
    if (total == 0) return 0;
    k_padc_bwd<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)dy->data, (float *)dx->data, total, dx->c,
                                                         dy->c, lo, accum);
    KCHECK("padc_bwd");
    return 0;
}

__global__ void k_concat_fwd(const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ y,
                             int64_t total, int64_t Ca, int64_t Cb)
{
    int64_t Cy = Ca + Cb;
    FOR_EACH(i, total)
    {
        int64_t c = i % Cy, r = i / Cy;
        y[i] = c < Ca ? a[r * Ca + c] : b[r * Cb + c - Ca];
    }
}

/* dst[r, c] (+)= dy[r, c + off] for dst of Cd channels */
__global__ void k_slice_chan(const float *__restrict__ dy, float *__restrict__ dst, int64_t total, int64_t Cd,
                             int64_t Cy, int64_t off, int accum)
{
    FOR_EACH(i, total)
    {
        int64_t c = i % Cd, r = i / Cd;
        float v = dy[r * Cy + c + off];
        dst[i] = accum ? dst[i] + v : v;
    }
}

int cuda_concat_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    RET(chan_check("concat_fwd", a, y, a->c + b->c));
    RET(chan_check("concat_fwd", b, y, a->c + b->c));
    int64_t total = dlt_tensor_numel(y);
    if (total == 0) return 0;
    k_concat_fwd<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)a->data, (const float *)b->data,
                                                           (float *)y->data, total, a->c, b->c);
    KCHECK("concat_fwd");
    return 0;
}

int cuda_concat_bwd(dlt_backend *be, const dlt_tensor *dy, dlt_tensor *da, int accum_a, dlt_tensor *db, int accum_b)
{
    int64_t ca = da ? da->c : dy->c - (db ? db->c : 0);
    if (da) RET(chan_check("concat_bwd", da, dy, dy->c));
    if (db) RET(chan_check("concat_bwd", db, dy, dy->c));
    if (da && db && da->c + db->c != dy->c)
        return dlt_err(DLT_ESHAPE, "cuda concat_bwd: %lld + %lld channels != %lld", (long long)da->c,
                       (long long)db->c, (long long)dy->c);
    cudaStream_t st = CTX(be)->stream;
    if (da && dlt_tensor_numel(da)) {
        k_slice_chan<<<grid(dlt_tensor_numel(da)), 256, 0, st>>>((const float *)dy->data, (float *)da->data,
                                                                 dlt_tensor_numel(da), da->c, dy->c, 0, accum_a);
        KCHECK("concat_bwd a");
    }
    if (db && dlt_tensor_numel(db)) {
        k_slice_chan<<<grid(dlt_tensor_numel(db)), 256, 0, st>>>((const float *)dy->data, (float *)db->data,
                                                                 dlt_tensor_numel(db), db->c, dy->c, ca, accum_b);
        KCHECK("concat_bwd b");
    }
    return 0;
}

/* ---- elementwise ---- */

__global__ void k_add(const float *__restrict__ a, const float *__restrict__ b, float *y, int64_t total)
{
    FOR_EACH(i, total) y[i] = a[i] + b[i];
}

__global__ void k_acc(const float *__restrict__ s, float *d, int64_t total)
{
    FOR_EACH(i, total) d[i] += s[i];
}

int cuda_add_fwd(dlt_backend *be, const dlt_tensor *a, const dlt_tensor *b, dlt_tensor *y)
{
    RET(same_layout("add_fwd", a, b));
    RET(same_layout("add_fwd", a, y));
    int64_t total = dlt_tensor_numel(y);
    if (total == 0) return 0;
    k_add<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)a->data, (const float *)b->data, (float *)y->data,
                                                    total);
    KCHECK("add_fwd");
    return 0;
}

int cuda_copy(dlt_backend *be, const dlt_tensor *src, dlt_tensor *dst, int accum)
{
    RET(same_layout("copy", src, dst));
    int64_t total = dlt_tensor_numel(src);
    if (total == 0 || (!accum && src->data == dst->data)) return 0;
    if (!accum) {
        CUDA_CK(cudaMemcpyAsync(dst->data, src->data, (size_t)total * 4, cudaMemcpyDeviceToDevice, CTX(be)->stream),
                "copy");
        return 0;
    }
    k_acc<<<grid(total), 256, 0, CTX(be)->stream>>>((const float *)src->data, (float *)dst->data, total);
    KCHECK("copy accum");
    return 0;
}

/* x *= alpha: elementwise, so any layout (weighting a loss's gradient) */
__global__ void k_scale(float *x, int64_t total, float alpha)
{
    FOR_EACH(i, total) x[i] *= alpha;
}

int cuda_scale(dlt_backend *be, float alpha, dlt_tensor *x)
{
    int64_t total = dlt_tensor_numel(x);
    if (total == 0) return 0;
    k_scale<<<grid(total), 256, 0, CTX(be)->stream>>>((float *)x->data, total, alpha);
    KCHECK("scale");
    return 0;
}

/* ---- softmax over channels: one thread per voxel (C is small: classes) ---- */

__global__ void k_softmax(const float *__restrict__ x, float *__restrict__ y, int64_t vox, int64_t C)
{
    FOR_EACH(v, vox)
    {
        const float *r = x + v * C;
        float m = r[0];
        for (int64_t c = 1; c < C; c++) m = fmaxf(m, r[c]);
        float s = 0;
        for (int64_t c = 0; c < C; c++) s += expf(r[c] - m);
        float inv = 1.f / s;
        for (int64_t c = 0; c < C; c++) y[v * C + c] = expf(r[c] - m) * inv;
    }
}

int cuda_softmax_fwd(dlt_backend *be, const dlt_tensor *x, dlt_tensor *y)
{
    RET(cuda_check_fmt("softmax_fwd", x, FMT_NDHWC));
    RET(cuda_check_fmt("softmax_fwd", y, FMT_NDHWC));
    int64_t vox = x->n * spatial(x);
    if (vox * x->c == 0) return 0;
    k_softmax<<<grid(vox), 256, 0, CTX(be)->stream>>>((const float *)x->data, (float *)y->data, vox, x->c);
    KCHECK("softmax_fwd");
    return 0;
}
