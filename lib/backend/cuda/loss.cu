/* backend/cuda/loss.cu - the four losses on channels-last logits [N,C,D,H,W] and
 * int32 labels [N,1,D,H,W]: the value (double: the one device-to-host copy
 * of a training step) and dlogits. Semantics are those of the CPU
 * reference (lib/backend/ref/ref_kern.h, DLTK's losses.py):
 * - CE: mean over the M = N*D*H*W voxels of -log softmax(z)[label];
 * - BALANCED_CE: w_c = (M/C) / (count_c + 1e-8) from the batch's labels,
 *   mean of w_y * -log q with q = p_y raised by FLT_MIN where p_y < FLT_MIN;
 * - DICE: per sample n and class c, D = (2I + s) / (L + P + s); loss = 1 -
 *   mean of D over the kept (n, c) (no class 0 when include_bg=0; only
 *   L > 0 with only_present; none kept: loss 1, zero gradient);
 * - DICE_CE: the sum.
 * Passes: (A, Dice and balanced CE) per-sample class sums I, L, P; (B) one
 * thread turns them into class weights and per-(n, c) Dice coefficients;
 * (C) per voxel the loss terms and dlogits. Per-voxel math is in double,
 * like the reference; sums use double atomics, so the value's last bits may
 * vary from run to run. Labels outside 0..C-1 are counted and reported. */
#include <float.h>

#include "backend/cuda/internal.h"

/* scratch (doubles): head[4] = {CE sum, bad labels, dice loss, kept pairs},
 * then I[N*C], L[N*C], P[N*C], w[C], a[N*C], b[N*C] */
#define ACC_HEAD 4

struct loss_args {
    const float *z;
    const int32_t *lab;
    float *dz;
    int64_t S, C, M;
    int ce, dice, balanced;
    double *head, *I, *L, *P, *w, *a, *b;
};

/* softmax of one voxel's row in double: returns the max and the sum of exp */
__device__ inline void row_softmax(const float *r, int64_t C, double *mx, double *s)
{
    double m = r[0];
    for (int64_t c = 1; c < C; c++) m = fmax(m, (double)r[c]);
    double t = 0;
    for (int64_t c = 0; c < C; c++) t += exp((double)r[c] - m);
    *mx = m;
    *s = t;
}

/* grid (x, N): block row y is sample n; shared I, L, P of that sample */
__global__ void k_loss_stats(loss_args A)
{
    extern __shared__ double sh[]; /* I[C], L[C], P[C] */
    int64_t C = A.C, n = blockIdx.y;
    for (int64_t i = threadIdx.x; i < 3 * C; i += blockDim.x) sh[i] = 0;
    __syncthreads();
    for (int64_t s = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; s < A.S; s += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = n * A.S + s;
        int32_t l = A.lab[v];
        if (l < 0 || l >= C) continue;
        atomicAdd(&sh[C + l], 1.0);
        if (A.dice) {
            const float *r = A.z + v * C;
            double m, t;
            row_softmax(r, C, &m, &t);
            for (int64_t c = 0; c < C; c++) {
                double p = exp((double)r[c] - m) / t;
                atomicAdd(&sh[2 * C + c], p);
                if (c == l) atomicAdd(&sh[c], p);
            }
        }
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < 3 * C; i += blockDim.x)
        if (sh[i] != 0) {
            int64_t which = i / C, c = i % C;
            double *dst = which == 0 ? A.I : which == 1 ? A.L : A.P;
            atomicAdd(&dst[n * C + c], sh[i]);
        }
}

/* one thread: class weights and Dice coefficients (N*C is small) */
__global__ void k_loss_coef(loss_args A, int64_t N, float smooth, int include_bg, int only_present)
{
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    int64_t C = A.C;
    if (A.balanced)
        for (int64_t c = 0; c < C; c++) {
            double cnt = 0;
            for (int64_t n = 0; n < N; n++) cnt += A.L[n * C + c];
            A.w[c] = ((double)A.M / (double)C) / (cnt + 1e-8);
        }
    if (!A.dice) return;
    int64_t K = 0, c0 = include_bg ? 0 : 1;
    double dsum = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = c0; c < C; c++) {
            if (only_present && A.L[n * C + c] == 0) continue;
            K++;
            dsum += (2 * A.I[n * C + c] + smooth) / (A.L[n * C + c] + A.P[n * C + c] + smooth);
        }
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            int64_t j = n * C + c;
            int kept = K > 0 && c >= c0 && !(only_present && A.L[j] == 0);
            double den = A.L[j] + A.P[j] + smooth, D = (2 * A.I[j] + smooth) / den;
            /* dloss/dp = a*[y==c] + b */
            A.a[j] = kept ? -2.0 / den / (double)K : 0.0;
            A.b[j] = kept ? D / den / (double)K : 0.0;
        }
    A.head[2] = K > 0 ? 1.0 - dsum / (double)K : 1.0;
    A.head[3] = (double)K;
}

__global__ void k_loss_main(loss_args A)
{
    int64_t C = A.C, n = blockIdx.y;
    double local = 0, bad = 0;
    for (int64_t s = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; s < A.S; s += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = n * A.S + s;
        const float *r = A.z + v * C;
        float *d = A.dz + v * C;
        int32_t l = A.lab[v];
        if (l < 0 || l >= C) {
            bad += 1;
            for (int64_t c = 0; c < C; c++) d[c] = 0;
            continue;
        }
        double m, t;
        row_softmax(r, C, &m, &t);
        double wv = 1, rr = 1, nl = 0;
        if (A.ce) {
            nl = log(t) + m - (double)r[l];
            if (A.balanced) {
                wv = A.w[l];
                double py = exp((double)r[l] - m) / t;
                if (py < FLT_MIN) {
                    double q = py + FLT_MIN;
                    nl = -log(q);
                    rr = py / q;
                }
            }
            local += wv * nl;
        }
        const double *an = A.a + n * C, *bn = A.b + n * C;
        double dot = 0;
        if (A.dice)
            for (int64_t c = 0; c < C; c++) dot += exp((double)r[c] - m) / t * ((c == l ? an[c] : 0.0) + bn[c]);
        for (int64_t c = 0; c < C; c++) {
            double p = exp((double)r[c] - m) / t, g = 0;
            if (A.ce) g += wv * rr * (p - (c == l ? 1.0 : 0.0)) / (double)A.M;
            if (A.dice) g += p * ((c == l ? an[c] : 0.0) + bn[c] - dot);
            d[c] = (float)g;
        }
    }
    /* warp, then block; one atomic per block */
    for (int o = 16; o > 0; o >>= 1) {
        local += __shfl_down_sync(0xffffffffu, local, o);
        bad += __shfl_down_sync(0xffffffffu, bad, o);
    }
    __shared__ double ws[32][2];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) ws[wid][0] = local, ws[wid][1] = bad;
    __syncthreads();
    if (threadIdx.x == 0) {
        double tl = 0, tb = 0;
        for (int i = 0; i < (int)(blockDim.x + 31) / 32; i++) tl += ws[i][0], tb += ws[i][1];
        if (tl != 0) atomicAdd(&A.head[0], tl);
        if (tb != 0) atomicAdd(&A.head[1], tb);
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
    int kind = ld->kind;
    int64_t N = logits->n, C = logits->c, S = spatial(logits);
    if (C > 1024) return dlt_err(DLT_EUNSUP, "cuda loss: %lld classes (at most 1024)", (long long)C);
    if (N * S == 0 || C == 0) return dlt_err(DLT_ESHAPE, "cuda loss: empty logits");
    if (N > 65535) return dlt_err(DLT_EUNSUP, "cuda loss: batch of %lld (at most 65535)", (long long)N);
    int ce = kind != DLT_LOSS_DICE, dice = kind == DLT_LOSS_DICE || kind == DLT_LOSS_DICE_CE,
        balanced = kind == DLT_LOSS_BALANCED_CE;
    int64_t nd = ACC_HEAD + 5 * N * C + C;
    double *acc;
    RET(cuda_scratch(be, SCR_RED, nd * 8, (void **)&acc));
    CUDA_CK(cudaMemsetAsync(acc, 0, (size_t)(nd * 8), st), "loss accumulators");
    loss_args A;
    A.z = (const float *)logits->data;
    A.lab = (const int32_t *)labels->data;
    A.dz = (float *)dlogits->data;
    A.S = S, A.C = C, A.M = N * S;
    A.ce = ce, A.dice = dice, A.balanced = balanced;
    A.head = acc;
    A.I = acc + ACC_HEAD;
    A.L = A.I + N * C;
    A.P = A.L + N * C;
    A.w = A.P + N * C;
    A.a = A.w + C;
    A.b = A.a + N * C;
    int bx = cuda_blocks(S, 256);
    if (bx * N > 132 * 64) bx = (int)((132 * 64 + N - 1) / N);
    dim3 grid((unsigned)bx, (unsigned)N);
    if (dice || balanced) {
        k_loss_stats<<<grid, 256, (size_t)(3 * C * 8), st>>>(A);
        KCHECK("loss class sums");
        k_loss_coef<<<1, 32, 0, st>>>(A, N, ld->smooth, ld->include_bg, ld->only_present);
        KCHECK("loss coefficients");
    }
    k_loss_main<<<grid, 256, 0, st>>>(A);
    KCHECK("loss");
    CUDA_CK(cudaMemcpyAsync(x->h_out, acc, ACC_HEAD * sizeof(double), cudaMemcpyDeviceToHost, st), "loss value");
    CUDA_CK(cudaStreamSynchronize(st), "loss (a fault in an earlier kernel also shows here)");
    if (x->h_out[1] > 0)
        return dlt_err(DLT_EINVAL, "cuda loss: %.0f labels outside the %lld classes", x->h_out[1], (long long)C);
    double v = 0;
    if (ce) v += x->h_out[0] / (double)(N * S);
    if (dice) v += x->h_out[2];
    *value = v;
    return 0;
}
