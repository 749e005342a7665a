/* backend/cuda/reduce.cuh - per-channel sums over channels-last rows, the
 * building block of batch/instance norm, bias gradients and PReLU slopes.
 *
 * Data is [groups][R rows][C channels] (NDHWC: batch norm has one group of
 * N*D*H*W rows; instance norm N groups of D*H*W rows). Stage 1
 * (k_chan_partial): a grid of (chunks, ceil(C/32), groups) blocks of 32x8
 * threads; lane x is a channel (consecutive channels are consecutive
 * addresses, so a warp reads 128 contiguous bytes), lane y strides over the
 * chunk's rows; K values per element are summed in double and written as
 * partial[((g*chunks + chunk)*C + c)*K + k]. Stage 2 is op-specific and
 * sums the `chunks` partials of each (g, c). Deterministic: fixed order. */
#ifndef DLT_CUDA_REDUCE_CUH
#define DLT_CUDA_REDUCE_CUH

#include "backend/cuda/internal.h"

#define RED_TX 32
#define RED_TY 8

/* Enough chunks to fill the GPU, few enough that stage 2 is cheap. */
static inline int red_chunks(int64_t rows, int64_t groups, int64_t C)
{
    int64_t ctile = (C + RED_TX - 1) / RED_TX;
    int64_t want = (132 * 8) / (groups * ctile);
    if (want < 1) want = 1;
    int64_t maxc = (rows + 63) / 64;
    if (want > maxc) want = maxc;
    if (want > 1024) want = 1024;
    return want < 1 ? 1 : (int)want;
}

/* F: __device__ void operator()(int64_t g, int64_t row_global, int64_t c, double v[K]) const */
template <int K, class F>
__global__ void k_chan_partial(F f, int64_t R, int64_t C, int chunks, double *__restrict__ partial)
{
    int64_t c = (int64_t)blockIdx.y * RED_TX + threadIdx.x;
    int64_t g = blockIdx.z;
    int64_t per = (R + chunks - 1) / chunks;
    int64_t r0 = (int64_t)blockIdx.x * per, r1 = r0 + per < R ? r0 + per : R;
    double acc[K];
    for (int k = 0; k < K; k++) acc[k] = 0;
    if (c < C)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += RED_TY) {
            double v[K];
            f(g, g * R + r, c, v);
            for (int k = 0; k < K; k++) acc[k] += v[k];
        }
    __shared__ double sh[RED_TY][RED_TX][K];
    for (int k = 0; k < K; k++) sh[threadIdx.y][threadIdx.x][k] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int y = 0; y < RED_TY; y++) s += sh[y][threadIdx.x][k];
            partial[((g * chunks + blockIdx.x) * C + c) * K + k] = s;
        }
    }
}

/* Stage 1 launch; partial must hold groups*chunks*C*K doubles. */
template <int K, class F>
static inline void chan_partial(cudaStream_t st, F f, int64_t groups, int64_t R, int64_t C, int chunks,
                                double *partial)
{
    dim3 grid((unsigned)chunks, (unsigned)((C + RED_TX - 1) / RED_TX), (unsigned)groups);
    dim3 block(RED_TX, RED_TY);
    k_chan_partial<K, F><<<grid, block, 0, st>>>(f, R, C, chunks, partial);
}

/* Sum of the chunks of (g, c, k). */
template <int K>
__device__ inline double chan_total(const double *partial, int64_t g, int64_t c, int k, int chunks, int64_t C)
{
    double s = 0;
    for (int i = 0; i < chunks; i++) s += partial[((g * chunks + i) * C + c) * K + k];
    return s;
}

/* Fused activation (the norm's and the plain act's) and its derivative
 * written from the *output* y, as norm_bwd only keeps y. */
__device__ inline float act_apply(int act, float alpha, float z)
{
    switch (act) {
    case DLT_ACT_RELU: return z > 0 ? z : 0.f;
    case DLT_ACT_LEAKY: return z > 0 ? z : alpha * z;
    case DLT_ACT_RELU6: return z > 0 ? (z < 6 ? z : 6.f) : 0.f;
    default: return z;
    }
}
__device__ inline float act_grad_from_y(int act, float alpha, float y)
{
    switch (act) {
    case DLT_ACT_RELU: return y > 0 ? 1.f : 0.f;
    case DLT_ACT_LEAKY: return y > 0 ? 1.f : alpha;
    case DLT_ACT_RELU6: return y > 0 && y < 6 ? 1.f : 0.f;
    default: return 1.f;
    }
}

#endif
