/* cuda/loss.cu - the four losses of dlt/backend.h on channels-last logits
 * [N,C,D,H,W] and int32 labels [N,1,D,H,W]: value (double, the one
 * device-to-host copy of a training step) and dlogits.
 *
 * Passes: (A) per-class sums over the batch: label counts (balanced CE,
 * Dice), and for Dice sum(p) and sum(p*y); (B) one small block turns them
 * into class weights and the Dice coefficients; (C) per voxel the loss
 * terms and dlogits. Sums are in double (atomics: the last bits of the
 * value may differ from run to run; the gradients do not depend on order
 * beyond that). Labels outside 0..C-1 are counted and reported. */
#include "cuda/internal.h"

/* accumulator block in SCR_RED (doubles):
 * [0] weighted CE sum, [1] invalid labels, [2] dice loss, [3] classes in the Dice average,
 * then cnt[C], I[C], P[C] (double), then w[C], a[C], b[C] (float) */
#define ACC_HEAD 4

struct loss_args {
    const float *z;
    const int32_t *lab;
    float *dz;
    int64_t vox, C;
    int ce, dice, balanced;
    double *acc;      /* head + cnt + I + P */
    const float *w, *a, *b;
    float invM;
};

__device__ inline float row_max(const float *r, int64_t C)
{
    float m = r[0];
    for (int64_t c = 1; c < C; c++) m = fmaxf(m, r[c]);
    return m;
}

__global__ void k_loss_stats(loss_args L)
{
    extern __shared__ double sh[]; /* cnt[C], I[C], P[C] */
    int64_t C = L.C;
    for (int64_t i = threadIdx.x; i < 3 * C; i += blockDim.x) sh[i] = 0;
    __syncthreads();
    for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < L.vox; v += (int64_t)gridDim.x * blockDim.x) {
        int32_t l = L.lab[v];
        if (l < 0 || l >= C) continue;
        atomicAdd(&sh[l], 1.0);
        if (L.dice) {
            const float *r = L.z + v * C;
            float m = row_max(r, C), s = 0;
            for (int64_t c = 0; c < C; c++) s += expf(r[c] - m);
            float inv = 1.f / s;
            for (int64_t c = 0; c < C; c++) {
                float p = expf(r[c] - m) * inv;
                atomicAdd(&sh[2 * C + c], (double)p);
                if (c == l) atomicAdd(&sh[C + c], (double)p);
            }
        }
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < 3 * C; i += blockDim.x)
        if (sh[i] != 0) atomicAdd(&L.acc[ACC_HEAD + i], sh[i]);
}

/* One block: class weights (balanced CE) and Dice coefficients. */
__global__ void k_loss_coef(double *acc, int64_t C, double M, int dice, int balanced, float smooth, int include_bg,
                            int only_present, float *w, float *a, float *b)
{
    const double *cnt = acc + ACC_HEAD, *I = cnt + C, *P = I + C;
    if (threadIdx.x != 0) return;
    if (balanced)
        for (int64_t c = 0; c < C; c++) w[c] = cnt[c] > 0 ? (float)(M / ((double)C * cnt[c])) : 0.f;
    if (!dice) return;
    int K = 0;
    double sum = 0;
    for (int64_t c = 0; c < C; c++) {
        int in = (include_bg || c > 0) && (!only_present || cnt[c] > 0);
        K += in;
    }
    for (int64_t c = 0; c < C; c++) {
        int in = (include_bg || c > 0) && (!only_present || cnt[c] > 0);
        double den = P[c] + cnt[c] + smooth, num = 2 * I[c] + smooth;
        if (in) sum += num / den;
        a[c] = in ? (float)(-2.0 / K / den) : 0.f;
        b[c] = in ? (float)(num / K / (den * den)) : 0.f;
    }
    acc[2] = K ? 1.0 - sum / K : 0.0;
    acc[3] = K;
}

__global__ void k_loss_main(loss_args L)
{
    int64_t C = L.C;
    double local = 0, bad = 0;
    for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < L.vox; v += (int64_t)gridDim.x * blockDim.x) {
        const float *r = L.z + v * C;
        float *d = L.dz + v * C;
        int32_t l = L.lab[v];
        if (l < 0 || l >= C) {
            bad += 1;
            for (int64_t c = 0; c < C; c++) d[c] = 0;
            continue;
        }
        float m = row_max(r, C), s = 0;
        for (int64_t c = 0; c < C; c++) s += expf(r[c] - m);
        float inv = 1.f / s, wl = L.balanced ? L.w[l] : 1.f;
        if (L.ce) local += (double)wl * ((double)logf(s) - (double)(r[l] - m));
        float gd = 0; /* sum_c p_c g_c of the Dice gradient */
        if (L.dice)
            for (int64_t c = 0; c < C; c++) gd += expf(r[c] - m) * inv * ((c == l ? L.a[c] : 0.f) + L.b[c]);
        for (int64_t c = 0; c < C; c++) {
            float p = expf(r[c] - m) * inv, g = 0;
            if (L.ce) g += wl * (p - (c == l ? 1.f : 0.f)) * L.invM;
            if (L.dice) g += p * ((c == l ? L.a[c] : 0.f) + L.b[c] - gd);
            d[c] = g;
        }
    }
    /* warp then block reduction, one atomic per block */
    for (int o = 16; o > 0; o >>= 1) {
        local += __shfl_down_sync(0xffffffffu, local, o);
        bad += __shfl_down_sync(0xffffffffu, bad, o);
    }
    __shared__ double ws[32][2];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) ws[wid][0] = local, ws[wid][1] = bad;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0, tb = 0;
        for (int i = 0; i < (int)(blockDim.x + 31) / 32; i++) t += ws[i][0], tb += ws[i][1];
        if (t != 0) atomicAdd(&L.acc[0], t);
        if (tb != 0) atomicAdd(&L.acc[1], tb);
    }
}

int cuda_loss(dlt_backend *be, const dlt_loss_desc *ld, const dlt_tensor *logits, const dlt_tensor *labels,
              double *value, dlt_tensor *dlogits)
{
    cuda_ctx *x = CTX(be);
    cudaStream_t st = x->stream;
    RET(cuda_check_fmt("loss", logits, FMT_NDHWC));
    RET(cuda_check_fmt("loss", dlogits, FMT_NDHWC));
    RET(cuda_check_fmt("loss", labels, FMT_LABEL));
    RET(cuda_same_shape("loss", logits, dlogits));
    if (labels->n != logits->n || labels->c != 1 || labels->d != logits->d || labels->h != logits->h ||
        labels->w != logits->w)
        return dlt_err(DLT_ESHAPE, "cuda loss: labels [%lld,%lld,%lld,%lld,%lld] do not match logits",
                       (long long)labels->n, (long long)labels->c, (long long)labels->d, (long long)labels->h,
                       (long long)labels->w);
    int kind = ld->kind;
    if (kind < DLT_LOSS_CE || kind > DLT_LOSS_DICE_CE) return dlt_err(DLT_EINVAL, "cuda loss: unknown kind %d", kind);
    int64_t C = logits->c, vox = logits->n * spatial(logits);
    if (C > 1024) return dlt_err(DLT_EUNSUP, "cuda loss: %lld classes (at most 1024)", (long long)C);
    if (vox == 0 || C == 0) return dlt_err(DLT_ESHAPE, "cuda loss: empty logits");
    int ce = kind != DLT_LOSS_DICE, dice = kind == DLT_LOSS_DICE || kind == DLT_LOSS_DICE_CE,
        balanced = kind == DLT_LOSS_BALANCED_CE;
    int64_t nacc = ACC_HEAD + 3 * C;
    char *scr;
    RET(cuda_scratch(be, SCR_RED, nacc * 8 + 3 * C * 4, (void **)&scr));
    double *acc = (double *)scr;
    float *w = (float *)(acc + nacc), *a = w + C, *b = a + C;
    CUDA_CK(cudaMemsetAsync(acc, 0, (size_t)(nacc * 8 + 3 * C * 4), st), "loss accumulators");
    loss_args L = {(const float *)logits->data, (const int32_t *)labels->data, (float *)dlogits->data, vox, C, ce,
                   dice, balanced, acc, w, a, b, (float)(1.0 / (double)vox)};
    int blocks = cuda_blocks(vox, 256);
    if (dice || balanced) {
        k_loss_stats<<<blocks, 256, (size_t)(3 * C * 8), st>>>(L);
        KCHECK("loss stats");
        k_loss_coef<<<1, 32, 0, st>>>(acc, C, (double)vox, dice, balanced, ld->smooth, ld->include_bg,
                                      ld->only_present, w, a, b);
        KCHECK("loss coefficients");
    }
    k_loss_main<<<blocks, 256, 0, st>>>(L);
    KCHECK("loss");
    CUDA_CK(cudaMemcpyAsync(x->h_out, acc, 4 * sizeof(double), cudaMemcpyDeviceToHost, st), "loss value");
    CUDA_CK(cudaStreamSynchronize(st), "loss (a fault in an earlier kernel also shows here)");
    if (x->h_out[1] > 0)
        return dlt_err(DLT_EINVAL, "cuda loss: %.0f labels outside 0..%lld", x->h_out[1], (long long)(C - 1));
    double v = 0;
    if (ce) v += x->h_out[0] / (double)vox;
    if (dice) v += x->h_out[2];
    *value = v;
    return 0;
}
