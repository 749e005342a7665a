/* backend/cuda/norm.cu - batch and instance normalisation with the fused
 * activation (dlt/backend.h norm_fwd/norm_bwd), and per-channel sums.
 * Statistics are summed in double over channels-last rows (reduce.cuh), so
 * results agree with the CPU reference to float rounding. */
#include "backend/cuda/reduce.cuh"

namespace {

struct f_moments {
    const float *x;
    int64_t C;
    __device__ void operator()(int64_t, int64_t r, int64_t c, double v[2]) const
    {
        double a = x[r * C + c];
        v[0] = a;
        v[1] = a * a;
    }
};

struct f_chan {
    const float *x;
    int64_t C;
    __device__ void operator()(int64_t, int64_t r, int64_t c, double v[1]) const { v[0] = x[r * C + c]; }
};

/* dz = dy * act'(y); sums of dz and dz*xhat */
struct f_bwd {
    const float *x, *y, *dy, *mean, *rstd;
    int64_t C;
    int act;
    float alpha;
    __device__ void operator()(int64_t g, int64_t r, int64_t c, double v[2]) const
    {
        int64_t i = r * C + c;
        double dz = (double)dy[i] * act_grad_from_y(act, alpha, y[i]);
        double xh = ((double)x[i] - mean[g * C + c]) * (double)rstd[g * C + c];
        v[0] = dz;
        v[1] = dz * xh;
    }
};

} // namespace

/* Stage 2 of the moments: mean/rstd per (g, c); batch training also updates
 * the running statistics (TF momentum, unbiased running variance). */
__global__ void k_stats_final(const double *partial, int chunks, int64_t G, int64_t C, int64_t R, float eps,
                              float *mean, float *rstd, float *rmean, float *rvar, float momentum)
{
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= G * C) return;
    int64_t g = i / C, c = i % C;
    double s1 = chan_total<2>(partial, g, c, 0, chunks, C), s2 = chan_total<2>(partial, g, c, 1, chunks, C);
    double m = s1 / R, var = s2 / R - m * m;
    if (var < 0) var = 0;
    mean[i] = (float)m;
    rstd[i] = (float)(1.0 / sqrt(var + (double)eps));
    if (rmean) {
        double unb = R > 1 ? var * R / (R - 1) : var;
        rmean[c] = (float)(momentum * (double)rmean[c] + (1.0 - momentum) * m);
        rvar[c] = (float)(momentum * (double)rvar[c] + (1.0 - momentum) * unb);
    }
}

__global__ void k_running_to_stats(const float *rmean, const float *rvar, float eps, int64_t C, float *mean,
                                   float *rstd)
{
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    mean[c] = rmean[c];
    rstd[c] = (float)(1.0 / sqrt((double)rvar[c] + (double)eps));
}

__global__ void k_norm_apply(const float *__restrict__ x, const float *mean, const float *rstd, const float *gamma,
                             const float *beta, int64_t total, int64_t C, int64_t RC, int act, float alpha,
                             float *__restrict__ y)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, gc = (i / RC) * C + c;
        float z = (x[i] - mean[gc]) * rstd[gc];
        if (gamma) z = z * gamma[c] + beta[c];
        y[i] = act_apply(act, alpha, z);
    }
}

/* Stage 2 of backward: per (g,c) the two sums -> coefficients in place
 * (coef[2*gc] = S1/R, coef[2*gc+1] = S2/R), and parameter gradients summed
 * over groups (one thread per channel, fixed order). */
__global__ void k_bwd_final(const double *partial, int chunks, int64_t G, int64_t C, int64_t R, double *coef,
                            float *dgamma, float *dbeta)
{
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    double tg = 0, tb = 0;
    for (int64_t g = 0; g < G; g++) {
        double s1 = chan_total<2>(partial, g, c, 0, chunks, C), s2 = chan_total<2>(partial, g, c, 1, chunks, C);
        coef[2 * (g * C + c)] = s1 / R;
        coef[2 * (g * C + c) + 1] = s2 / R;
        tb += s1;
        tg += s2;
    }
    if (dgamma) dgamma[c] += (float)tg;
    if (dbeta) dbeta[c] += (float)tb;
}

__global__ void k_norm_dx(const float *__restrict__ x, const float *__restrict__ y, const float *__restrict__ dy,
                          const float *mean, const float *rstd, const float *gamma, const double *coef, int64_t total,
                          int64_t C, int64_t RC, int act, float alpha, int accum, float *__restrict__ dx)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, gc = (i / RC) * C + c;
        /* in double: dz - mean(dz) - xhat*mean(dz*xhat) cancels */
        double dz = (double)dy[i] * act_grad_from_y(act, alpha, y[i]);
        double xh = ((double)x[i] - mean[gc]) * (double)rstd[gc];
        double g = gamma ? gamma[c] : 1.0;
        double v = g * rstd[gc] * (dz - coef[2 * gc] - xh * coef[2 * gc + 1]);
        dx[i] = accum ? (float)(dx[i] + v) : (float)v;
    }
}

/* Every channel's chunk sums (batch norm: one group) totalled into chunk
 * 0, in place: thread c reads and writes only channel c's slots. */
__global__ void k_collapse2(double *partial, int chunks, int64_t C)
{
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s0 = chan_total<2>(partial, 0, c, 0, chunks, C), s1 = chan_total<2>(partial, 0, c, 1, chunks, C);
    partial[c * 2] = s0;
    partial[c * 2 + 1] = s1;
}

/* dbeta += this process's sum dz, dgamma += its sum dz*xhat (collapsed) */
__global__ void k_own_param_grads(const double *partial, int64_t C, float *dgamma, float *dbeta)
{
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    if (dbeta) dbeta[c] += (float)partial[c * 2];
    if (dgamma) dgamma[c] += (float)partial[c * 2 + 1];
}

/* Synchronised batch norm (be->reduce set): the per-channel sums of this
 * process, and its row count *R, become those of all processes, as one
 * chunk (*chunks = 1). The sums go through the host: 2*C doubles a layer.
 * Backward passes dgamma/dbeta: they get this process's own sums first
 * (the trainer averages parameter gradients over the processes). */
static int sync_sums(dlt_backend *be, double *partial, int *chunks, int64_t C, int64_t *R, float *dgamma,
                     float *dbeta)
{
    cudaStream_t st = CTX(be)->stream;
    k_collapse2<<<cuda_blocks(C, 128), 128, 0, st>>>(partial, *chunks, C);
    KCHECK("norm sync collapse");
    if (dgamma || dbeta) {
        k_own_param_grads<<<cuda_blocks(C, 128), 128, 0, st>>>(partial, C, dgamma, dbeta);
        KCHECK("norm sync parameter gradients");
    }
    double *h = (double *)malloc(sizeof(double) * (size_t)(2 * C + 1));
    if (!h) return dlt_err(DLT_ENOMEM, "cuda: out of memory");
    h[0] = (double)*R;
    cudaError_t e = cudaMemcpyAsync(h + 1, partial, sizeof(double) * 2 * C, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    int rc = e == cudaSuccess ? dlt_reduce_sum(&be->reduce, h, 2 * C + 1)
                              : dlt_err(DLT_EDEVICE, "cuda: batch-norm sums to the host: %s", cudaGetErrorString(e));
    if (!rc) {
        e = cudaMemcpyAsync(partial, h + 1, sizeof(double) * 2 * C, cudaMemcpyHostToDevice, st);
        if (e == cudaSuccess) e = cudaStreamSynchronize(st);
        if (e != cudaSuccess) rc = dlt_err(DLT_EDEVICE, "cuda: batch-norm sums to the device: %s", cudaGetErrorString(e));
    }
    *R = (int64_t)h[0];
    *chunks = 1;
    free(h);
    return rc;
}

static int norm_check(const char *op, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y)
{
    RET(cuda_check_fmt(op, x, FMT_NDHWC));
    RET(cuda_check_fmt(op, y, FMT_NDHWC));
    return 0;
}

int cuda_norm_fwd(dlt_backend *be, const dlt_norm_desc *nd, int training, const dlt_tensor *x,
                  const dlt_tensor *gamma, const dlt_tensor *beta, dlt_tensor *rmean, dlt_tensor *rvar,
                  dlt_tensor *smean, dlt_tensor *srstd, dlt_tensor *y)
{
    cudaStream_t st = CTX(be)->stream;
    RET(norm_check("norm_fwd", nd, x, y));
    int inst = nd->kind == DLT_NORM_INSTANCE;
    int64_t C = x->c, S = spatial(x), G = inst ? x->n : 1, R = inst ? S : x->n * S, total = dlt_tensor_numel(x);
    if (total == 0) return 0;
    int use_gamma = nd->affine && gamma && beta;
    int batch_stats = inst || training;
    if (!batch_stats && (!rmean || !rvar))
        return dlt_err(DLT_EINVAL, "cuda norm_fwd: inference-mode batch norm needs running statistics");
    int chunks = red_chunks(R, G, C);
    int64_t pbytes = G * chunks * C * 2 * (int64_t)sizeof(double);
    char *scr;
    RET(cuda_scratch(be, SCR_RED, pbytes + 2 * G * C * 4, (void **)&scr));
    double *partial = (double *)scr;
    float *mean = smean ? (float *)smean->data : (float *)(scr + pbytes);
    float *rstd = srstd ? (float *)srstd->data : (float *)(scr + pbytes) + G * C;
    if (batch_stats) {
        chan_partial<2>(st, f_moments{(const float *)x->data, C}, G, R, C, chunks, partial);
        KCHECK("norm moments");
        if (!inst && training && be->reduce.sum) RET(sync_sums(be, partial, &chunks, C, &R, NULL, NULL));
        int upd = !inst && training && rmean && rvar;
        k_stats_final<<<cuda_blocks(G * C, 128), 128, 0, st>>>(partial, chunks, G, C, R, nd->eps, mean, rstd,
                                                               upd ? (float *)rmean->data : NULL,
                                                               upd ? (float *)rvar->data : NULL, nd->momentum);
        KCHECK("norm stats");
    } else {
        k_running_to_stats<<<cuda_blocks(C, 128), 128, 0, st>>>((const float *)rmean->data, (const float *)rvar->data,
                                                                nd->eps, C, mean, rstd);
        KCHECK("norm running stats");
    }
    k_norm_apply<<<cuda_blocks(total, 256), 256, 0, st>>>(
        (const float *)x->data, mean, rstd, use_gamma ? (const float *)gamma->data : NULL,
        use_gamma ? (const float *)beta->data : NULL, total, C, inst ? S * C : total, nd->act, nd->alpha,
        (float *)y->data);
    KCHECK("norm apply");
    return 0;
}

int cuda_norm_bwd(dlt_backend *be, const dlt_norm_desc *nd, const dlt_tensor *x, const dlt_tensor *y,
                  const dlt_tensor *dy, const dlt_tensor *gamma, const dlt_tensor *smean, const dlt_tensor *srstd,
                  dlt_tensor *dx, int accum, dlt_tensor *dgamma, dlt_tensor *dbeta)
{
    cudaStream_t st = CTX(be)->stream;
    RET(norm_check("norm_bwd", nd, x, y));
    RET(cuda_check_fmt("norm_bwd", dy, FMT_NDHWC));
    int inst = nd->kind == DLT_NORM_INSTANCE;
    int64_t C = x->c, S = spatial(x), G = inst ? x->n : 1, R = inst ? S : x->n * S, total = dlt_tensor_numel(x);
    if (total == 0) return 0;
    if (!smean || !srstd) return dlt_err(DLT_EINVAL, "cuda norm_bwd: needs the statistics saved by norm_fwd");
    int use_gamma = nd->affine && gamma;
    int chunks = red_chunks(R, G, C);
    int64_t pbytes = G * chunks * C * 2 * (int64_t)sizeof(double);
    char *scr;
    RET(cuda_scratch(be, SCR_RED, pbytes + 2 * G * C * 8, (void **)&scr));
    double *partial = (double *)scr;
    double *coef = (double *)(scr + pbytes);
    const float *mean = (const float *)smean->data, *rstd = (const float *)srstd->data;
    chan_partial<2>(st,
                    f_bwd{(const float *)x->data, (const float *)y->data, (const float *)dy->data, mean, rstd, C,
                          nd->act, nd->alpha},
                    G, R, C, chunks, partial);
    KCHECK("norm bwd sums");
    float *dg = nd->affine && dgamma ? (float *)dgamma->data : NULL, *db = nd->affine && dbeta ? (float *)dbeta->data : NULL;
    const int sync = !inst && be->reduce.sum;
    if (sync) RET(sync_sums(be, partial, &chunks, C, &R, dg, db)); /* dg, db now done */
    int pg = nd->affine;
    k_bwd_final<<<cuda_blocks(C, 128), 128, 0, st>>>(partial, chunks, G, C, R, coef, pg && !sync ? dg : NULL,
                                                     pg && !sync ? db : NULL);
    KCHECK("norm bwd final");
    k_norm_dx<<<cuda_blocks(total, 256), 256, 0, st>>>(
        (const float *)x->data, (const float *)y->data, (const float *)dy->data, mean, rstd,
        use_gamma ? (const float *)gamma->data : NULL, coef, total, C, inst ? S * C : total, nd->act, nd->alpha,
        accum, (float *)dx->data);
    KCHECK("norm dx");
    return 0;
}

/* acc[c] += sum over rows of x[r*C + c] */
__global__ void k_chan_sum_final(const double *partial, int chunks, int64_t C, float *acc)
{
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c < C) acc[c] += (float)chan_total<1>(partial, 0, c, 0, chunks, C);
}

int cuda_channel_sum_add(dlt_backend *be, const float *x, int64_t rows, int64_t C, float *acc)
{
    cudaStream_t st = CTX(be)->stream;
    if (rows * C == 0) return 0;
    int chunks = red_chunks(rows, 1, C);
    double *partial;
    RET(cuda_scratch(be, SCR_RED, chunks * C * (int64_t)sizeof(double), (void **)&partial));
    chan_partial<1>(st, f_chan{x, C}, 1, rows, C, chunks, partial);
    KCHECK("channel sum");
    k_chan_sum_final<<<cuda_blocks(C, 128), 128, 0, st>>>(partial, chunks, C, acc);
    KCHECK("channel sum final");
    return 0;
}
