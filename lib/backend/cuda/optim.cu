/* backend/cuda/optim.cu - optimiser steps (dlt/backend.h optim_step), elementwise
 * over one parameter tensor in fp32 (the master weights; also under
 * --precision bf16). Adam as PyTorch writes it (bias corrections folded
 * into the step size and into the denominator: p -= lr/bc1 * m /
 * (sqrt(v)/sqrt(bc2) + eps)); SGD with momentum buffer (first step's buffer
 * = gradient, as PyTorch) and Nesterov; weight decay is L2 added to the
 * gradient. Parameters and states share a layout (plain), so any role works
 * as long as the four tensors have the same shape. */
#include <math.h>

#include "backend/cuda/internal.h"

__global__ void k_adam(float *__restrict__ p, const float *__restrict__ g, float *__restrict__ m,
                       float *__restrict__ v, int64_t n, float lr_bc1, float b1, float b2, float inv_sqrt_bc2,
                       float eps, float wd)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float gi = g[i] + wd * p[i];
        float mi = b1 * m[i] + (1.f - b1) * gi;
        float vi = b2 * v[i] + (1.f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr_bc1 * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

__global__ void k_sgd(float *__restrict__ p, const float *__restrict__ g, float *__restrict__ m, int64_t n, float lr,
                      float mu, int nesterov, float wd)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float gi = g[i] + wd * p[i], d = gi;
        if (m) {
            float b = mu * m[i] + gi;
            m[i] = b;
            d = nesterov ? gi + mu * b : b;
        }
        p[i] -= lr * d;
    }
}

int cuda_optim_step(dlt_backend *be, const dlt_optim_desc *od, dlt_tensor *p, const dlt_tensor *g, dlt_tensor *m,
                    dlt_tensor *v)
{
    cudaStream_t st = CTX(be)->stream;
    int64_t n = dlt_tensor_numel(p);
    if (p->fmt != g->fmt || (m && m->fmt != p->fmt) || (v && v->fmt != p->fmt)) {
        int t = p->fmt == FMT_NDHWC && p->c > 1 && spatial(p) > 1;
        if (t) return dlt_err(DLT_EINVAL, "cuda optim_step: parameter and state have different layouts");
    }
    if (n == 0) return 0;
    if (od->kind == DLT_OPTIM_ADAM) {
        if (!m || !v) return dlt_err(DLT_EINVAL, "cuda optim_step: Adam needs both moment tensors");
        if (od->t < 1) return dlt_err(DLT_EINVAL, "cuda optim_step: Adam step count must start at 1");
        double bc1 = 1.0 - pow((double)od->beta1, (double)od->t), bc2 = 1.0 - pow((double)od->beta2, (double)od->t);
        k_adam<<<cuda_blocks(n, 256), 256, 0, st>>>((float *)p->data, (const float *)g->data, (float *)m->data,
                                                    (float *)v->data, n, (float)(od->lr / bc1), od->beta1, od->beta2,
                                                    (float)(1.0 / sqrt(bc2)), od->eps, od->weight_decay);
        KCHECK("adam");
        return 0;
    }
    if (od->kind == DLT_OPTIM_SGD) {
        float *mb = od->momentum != 0 && m ? (float *)m->data : NULL;
        if (od->momentum != 0 && !m) return dlt_err(DLT_EINVAL, "cuda optim_step: SGD momentum needs a buffer");
        k_sgd<<<cuda_blocks(n, 256), 256, 0, st>>>((float *)p->data, (const float *)g->data, mb, n, od->lr,
                                                   od->momentum, od->nesterov, od->weight_decay);
        KCHECK("sgd");
        return 0;
    }
    return dlt_err(DLT_EINVAL, "cuda optim_step: unknown optimiser %d", od->kind);
}
