/* backend/cuda/memory.cu - the CUDA backend's memory: the allocation pool
 * (size classes, kept across steps), scratch slots, tensors and their
 * upload/download (plain NCDHW on the host <-> NDHWC on the device), and
 * the layout check the ops share. See backend/cuda/internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/internal.h"

int cuda_fail(cudaError_t e, const char *what)
{
    cudaGetLastError(); /* clear a non-sticky error so later calls can go on */
    if (e == cudaErrorMemoryAllocation)
        return dlt_err(DLT_ENOMEM, "cuda: %s: out of GPU memory: use a smaller --batch or inference window", what);
    return dlt_err(DLT_EDEVICE, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

/* ---- pool ---- */

void cuda_pool_drop(cuda_ctx *x)
{
    for (int i = 0; i < x->nfree; i++) {
        cudaFree(x->freel[i].p);
        x->held -= x->freel[i].bytes;
    }
    x->nfree = 0;
}

static int pool_get(dlt_backend *be, int64_t bytes, const char *what, void **p, int64_t *cls_out)
{
    cuda_ctx *x = CTX(be);
    int64_t cls = dlt_cuda_pool_class(bytes);
    *cls_out = cls;
    for (int i = 0; i < x->nfree; i++)
        if (x->freel[i].bytes == cls) {
            *p = x->freel[i].p;
            x->freel[i] = x->freel[--x->nfree];
            goto got;
        }
    {
        cudaError_t e = cudaMalloc(p, (size_t)cls);
        if (e == cudaErrorMemoryAllocation) { /* give back what the pool caches, then try once more */
            cudaGetLastError();
            cudaStreamSynchronize(x->stream);
            cuda_pool_drop(x);
            e = cudaMalloc(p, (size_t)cls);
        }
        if (e == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            size_t fr = 0, tot = 0;
            cudaMemGetInfo(&fr, &tot);
            return dlt_cuda_oom(what, cls, x->held, (int64_t)fr, (int64_t)tot);
        }
        if (e != cudaSuccess) return cuda_fail(e, what);
        x->held += cls;
    }
got:
    x->live += cls;
    if (x->live > x->peak_live) x->peak_live = x->live;
    return 0;
}

static void pool_put(dlt_backend *be, void *p, int64_t cls)
{
    cuda_ctx *x = CTX(be);
    if (!p) return;
    x->live -= cls;
    if (x->nfree == x->capfree) {
        int cap = x->capfree ? 2 * x->capfree : 64;
        pool_block *n = (pool_block *)realloc(x->freel, (size_t)cap * sizeof *n);
        if (!n) { /* cannot cache it: give it back to the driver */
            cudaFree(p);
            x->held -= cls;
            return;
        }
        x->freel = n;
        x->capfree = cap;
    }
    x->freel[x->nfree].p = p;
    x->freel[x->nfree].bytes = cls;
    x->nfree++;
}

int cuda_scratch(dlt_backend *be, int slot, int64_t bytes, void **p)
{
    cuda_ctx *x = CTX(be);
    if (bytes < 256) bytes = 256;
    if (x->scr_bytes[slot] < bytes) {
        static const char *names[SCR_N] = {"cuDNN workspace", "padded/converted input", "converted gradient",
                                           "convolution weights (KDHWC)", "convolution output",
                                           "upload/download staging", "reduction partials"};
        if (x->scr[slot]) {
            CUDA_CK(cudaStreamSynchronize(x->stream), "sync before growing scratch");
            cudaFree(x->scr[slot]);
            x->held -= x->scr_bytes[slot];
            x->scr[slot] = NULL;
            x->scr_bytes[slot] = 0;
        }
        int64_t cls = dlt_cuda_pool_class(bytes + bytes / 8); /* headroom against regrowing for +1 voxel */
        cudaError_t e = cudaMalloc(&x->scr[slot], (size_t)cls);
        if (e == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            cuda_pool_drop(x);
            e = cudaMalloc(&x->scr[slot], (size_t)cls);
        }
        if (e == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            x->scr[slot] = NULL;
            size_t fr = 0, tot = 0;
            cudaMemGetInfo(&fr, &tot);
            char what[96];
            snprintf(what, sizeof what, "scratch for %s", names[slot]);
            return dlt_cuda_oom(what, cls, x->held, (int64_t)fr, (int64_t)tot);
        }
        if (e != cudaSuccess) return cuda_fail(e, names[slot]);
        x->scr_bytes[slot] = cls;
        x->held += cls;
    }
    *p = x->scr[slot];
    return 0;
}

/* ---- checks: shapes and owners are the front's (lib/backend/front.c);
 * what is left is this backend's layouts ---- */

int cuda_check_fmt(const char *op, const dlt_tensor *t, int fmt)
{
    if (!t->be || strcmp(t->be->name, "cuda"))
        return dlt_err(DLT_EINVAL, "cuda %s: tensor belongs to backend %s", op, t->be ? t->be->name : "(none)");
    if (t->fmt != fmt)
        return dlt_err(DLT_EINVAL, "cuda %s: tensor has layout %d, expected %d (allocated with another role?)", op,
                       t->fmt, fmt);
    return 0;
}

/* ---- memory ops ---- */

int cuda_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
    memset(t, 0, sizeof *t);
    int64_t numel = dlt_mul_checked(dlt_mul_checked(dlt_mul_checked(n, c), dlt_mul_checked(d, h)), w);
    if (numel < 0 || dlt_mul_checked(numel, 4) < 0)
        return dlt_err(DLT_EINVAL, "cuda: bad tensor shape [%lld,%lld,%lld,%lld,%lld]", (long long)n, (long long)c,
                       (long long)d, (long long)h, (long long)w);
    t->n = n, t->c = c, t->d = d, t->h = h, t->w = w;
    t->be = be;
    t->fmt = role == DLT_T_ACT ? FMT_NDHWC : role == DLT_T_LABEL ? FMT_LABEL : FMT_PLAIN;
    if (numel == 0) return 0;
    char what[128];
    dlt_cuda_alloc_name(what, sizeof what, role, n, c, d, h, w);
    int64_t cls;
    RET(pool_get(be, numel * 4, what, &t->data, &cls));
    t->priv = (void *)(intptr_t)cls;
    /* zeroed like the CPU's calloc, so no op ever reads garbage */
    CUDA_CK(cudaMemsetAsync(t->data, 0, (size_t)(numel * 4), CTX(be)->stream), "clear new tensor");
    return 0;
}

void cuda_release(dlt_backend *be, dlt_tensor *t)
{
    if (!t || !t->data) return;
    pool_put(be, t->data, (int64_t)(intptr_t)t->priv);
    t->data = NULL;
    t->priv = NULL;
}

/* NCDHW (plain) <-> NDHWC, S = D*H*W */
__global__ void k_to_ndhwc(const float *__restrict__ in, float *__restrict__ out, int64_t N, int64_t C, int64_t S)
{
    int64_t total = N * C * S;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, r = i / C, s = r % S, n = r / S;
        out[i] = in[(n * C + c) * S + s];
    }
}

__global__ void k_to_ncdhw(const float *__restrict__ in, float *__restrict__ out, int64_t N, int64_t C, int64_t S)
{
    int64_t total = N * C * S;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t s = i % S, r = i / S, c = r % C, n = r / C;
        out[i] = in[(n * S + s) * C + c];
    }
}

static int needs_transpose(const dlt_tensor *t) { return t->fmt == FMT_NDHWC && t->c > 1 && spatial(t) > 1; }

int cuda_upload(dlt_backend *be, dlt_tensor *t, const void *host)
{
    cuda_ctx *x = CTX(be);
    int64_t numel = dlt_tensor_numel(t), bytes = numel * 4;
    if (numel == 0) return 0;
    if (!needs_transpose(t)) {
        CUDA_CK(cudaMemcpyAsync(t->data, host, (size_t)bytes, cudaMemcpyHostToDevice, x->stream), "upload");
        return 0;
    }
    void *st;
    RET(cuda_scratch(be, SCR_STAGE, bytes, &st));
    CUDA_CK(cudaMemcpyAsync(st, host, (size_t)bytes, cudaMemcpyHostToDevice, x->stream), "upload");
    k_to_ndhwc<<<cuda_blocks(numel, 256), 256, 0, x->stream>>>((const float *)st, (float *)t->data, t->n, t->c,
                                                               spatial(t));
    KCHECK("to_ndhwc");
    return 0;
}

int cuda_download(dlt_backend *be, const dlt_tensor *t, void *host)
{
    cuda_ctx *x = CTX(be);
    int64_t numel = dlt_tensor_numel(t), bytes = numel * 4;
    if (numel == 0) return 0;
    const void *src = t->data;
    if (needs_transpose(t)) {
        void *st;
        RET(cuda_scratch(be, SCR_STAGE, bytes, &st));
        k_to_ncdhw<<<cuda_blocks(numel, 256), 256, 0, x->stream>>>((const float *)t->data, (float *)st, t->n, t->c,
                                                                   spatial(t));
        KCHECK("to_ncdhw");
        src = st;
    }
    CUDA_CK(cudaMemcpyAsync(host, src, (size_t)bytes, cudaMemcpyDeviceToHost, x->stream), "download");
    CUDA_CK(cudaStreamSynchronize(x->stream), "download (a fault in an earlier kernel also shows here)");
    return 0;
}

int cuda_zero(dlt_backend *be, dlt_tensor *t)
{
    int64_t numel = dlt_tensor_numel(t);
    if (numel == 0) return 0;
    CUDA_CK(cudaMemsetAsync(t->data, 0, (size_t)(numel * 4), CTX(be)->stream), "zero");
    return 0;
}

int cuda_sync(dlt_backend *be)
{
    CUDA_CK(cudaStreamSynchronize(CTX(be)->stream), "sync (a fault in an earlier kernel also shows here)");
    return 0;
}

extern "C" void dlt_cuda_mem_stats(dlt_backend *be, int64_t *held, int64_t *peak_live)
{
    *held = CTX(be)->held;
    *peak_live = CTX(be)->peak_live;
}
