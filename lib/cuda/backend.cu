/* cuda/backend.cu - the CUDA backend: device selection, the allocation
 * pool, scratch, upload/download (NCDHW <-> NDHWC), and the operation table
 * (the ops themselves live in conv.cu, norm.cu, ops.cu, loss.cu, optim.cu).
 * See cuda/internal.h for layouts and memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/internal.h"

extern "C" {
#include "dlt/philox.h"
}

int cuda_fail(cudaError_t e, const char *what)
{
    cudaGetLastError(); /* clear a non-sticky error so later calls can go on */
    if (e == cudaErrorMemoryAllocation)
        return dlt_err(DLT_ENOMEM, "cuda: %s: out of GPU memory: use a smaller --batch or inference window", what);
    return dlt_err(DLT_EDEVICE, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

/* ---- pool ---- */

static void pool_drop_cached(cuda_ctx *x)
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
            pool_drop_cached(x);
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
            pool_drop_cached(x);
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

/* ---- checks: shapes and owners are the front's (lib/backend_front.c);
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

static int be_alloc(dlt_backend *be, dlt_tensor *t, int role, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
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

static void be_release(dlt_backend *be, dlt_tensor *t)
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

static int be_upload(dlt_backend *be, dlt_tensor *t, const void *host)
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

static int be_download(dlt_backend *be, const dlt_tensor *t, void *host)
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

static int be_zero(dlt_backend *be, dlt_tensor *t)
{
    int64_t numel = dlt_tensor_numel(t);
    if (numel == 0) return 0;
    CUDA_CK(cudaMemsetAsync(t->data, 0, (size_t)(numel * 4), CTX(be)->stream), "zero");
    return 0;
}

static int be_sync(dlt_backend *be)
{
    CUDA_CK(cudaStreamSynchronize(CTX(be)->stream), "sync (a fault in an earlier kernel also shows here)");
    return 0;
}

static int be_set_option(dlt_backend *be, const char *key, const char *value)
{
    if (!strcmp(key, "precision")) {
        int p = dlt_cuda_parse_precision(value);
        if (p < 0) return dlt_err(DLT_EINVAL, "cuda: precision must be fp32, tf32 or bf16, not '%s'", value);
        CTX(be)->prec = p;
        return 0;
    }
    if (!strcmp(key, "find")) { /* "1": timed cudnnFind per shape, "0": heuristics */
        CTX(be)->find = value && value[0] == '1';
        return 0;
    }
    return dlt_err(DLT_EINVAL, "cuda: unknown option '%s'", key);
}

static void be_destroy(dlt_backend *be)
{
    cuda_ctx *x = CTX(be);
    if (x) {
        cudaStreamSynchronize(x->stream);
        cuda_dist_free(be);
        cuda_conv_cache_free(be);
        pool_drop_cached(x);
        free(x->freel);
        for (int i = 0; i < SCR_N; i++)
            if (x->scr[i]) cudaFree(x->scr[i]);
        if (x->h_out) cudaFreeHost(x->h_out);
        if (x->dnn) cudnnDestroy(x->dnn);
        if (x->stream) cudaStreamDestroy(x->stream);
        free(x);
        be->ctx = NULL;
    }
}

/* The table, in dlt_backend_ops order (C++17 takes designated initialisers
 * in declaration order only). No slot is empty today; one left NULL would
 * run on the reference backend through the front. */
static const dlt_backend_ops cuda_ops = {
    .name = "cuda",
    .alloc = be_alloc,
    .release = be_release,
    .upload = be_upload,
    .download = be_download,
    .zero = be_zero,
    .sync = be_sync,
    .conv_fwd = cuda_conv_fwd,
    .conv_bwd_data = cuda_conv_bwd_data,
    .conv_bwd_weights = cuda_conv_bwd_weights,
    .convt_fwd = cuda_convt_fwd,
    .convt_bwd_data = cuda_convt_bwd_data,
    .convt_bwd_weights = cuda_convt_bwd_weights,
    .norm_fwd = cuda_norm_fwd,
    .norm_bwd = cuda_norm_bwd,
    .act_fwd = cuda_act_fwd,
    .act_bwd = cuda_act_bwd,
    .maxpool_fwd = cuda_maxpool_fwd,
    .maxpool_bwd = cuda_maxpool_bwd,
    .padc_fwd = cuda_padc_fwd,
    .padc_bwd = cuda_padc_bwd,
    .concat_fwd = cuda_concat_fwd,
    .concat_bwd = cuda_concat_bwd,
    .add_fwd = cuda_add_fwd,
    .copy = cuda_copy,
    .softmax_fwd = cuda_softmax_fwd,
    .loss = cuda_loss,
    .optim_step = cuda_optim_step,
    .destroy = be_destroy,
    .set_option = be_set_option,
    .get_info = NULL,
    .dist_attach = cuda_dist_attach,
    .dist_average = cuda_dist_average,
};

/* ---- creation ---- */

extern "C" int dlt_cuda_create(dlt_backend **out)
{
    *out = NULL;
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return dlt_err(DLT_EDEVICE, "no usable CUDA device: %s%s", cudaGetErrorString(e),
                       e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice ? " (no NVIDIA GPU or driver found)"
                                                                                   : "");
    }
    if (ndev < 1) return dlt_err(DLT_EDEVICE, "no usable CUDA device: no device found");
    int dev = 0;
    const char *ed = getenv("DLT_CUDA_DEVICE");
    if (ed && *ed) dev = atoi(ed);
    else { /* one rank per GPU: the launcher's local rank picks it when several are visible */
        const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
        if (!lr) lr = getenv("SLURM_LOCALID");
        if (!lr) lr = getenv("MPI_LOCALRANKID");
        if (lr && *lr && atoi(lr) >= 0) dev = atoi(lr) % ndev;
    }
    if (dev < 0 || dev >= ndev)
        return dlt_err(DLT_EDEVICE, "no usable CUDA device: DLT_CUDA_DEVICE=%s but %d device(s) found", ed, ndev);
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, dev);
    if (e != cudaSuccess) return dlt_err(DLT_EDEVICE, "no usable CUDA device: %s", cudaGetErrorString(e));
    if (prop.major < 9)
        return dlt_err(DLT_EDEVICE,
                       "no usable CUDA device: %s has compute capability %d.%d, this build targets sm_90 and "
                       "newer (rebuild with NVFLAGS naming your GPU's architecture)",
                       prop.name, prop.major, prop.minor);
    if (cudnnGetVersion() / 10000 != CUDNN_MAJOR)
        return dlt_err(DLT_EDEVICE, "no usable CUDA device: cuDNN library %zu does not match the headers (%d.%d)",
                       cudnnGetVersion(), CUDNN_MAJOR, CUDNN_MINOR);
    e = cudaSetDevice(dev);
    if (e != cudaSuccess) return dlt_err(DLT_EDEVICE, "no usable CUDA device: %s", cudaGetErrorString(e));

    cuda_ctx *x = (cuda_ctx *)calloc(1, sizeof *x);
    dlt_backend *be = x ? dlt_backend_new(&cuda_ops, x) : NULL;
    if (!be) {
        free(x);
        return dlt_err(DLT_ENOMEM, "cuda: backend state");
    }
    x->device = dev;
    snprintf(x->devname, sizeof x->devname, "%s", prop.name);
    x->ws_limit = dlt_cuda_ws_limit();
    x->find = 1;
    const char *ef = getenv("DLT_CUDNN_FIND");
    if (ef && *ef == '0') x->find = 0;
    const char *ep = getenv("DLT_PRECISION");
    if (ep && *ep) {
        x->prec = dlt_cuda_parse_precision(ep);
        if (x->prec < 0) {
            dlt_backend_free(be);
            return dlt_err(DLT_EINVAL, "cuda: DLT_PRECISION must be fp32, tf32 or bf16, not '%s'", ep);
        }
    }
    e = cudaStreamCreateWithFlags(&x->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        dlt_backend_free(be);
        return dlt_err(DLT_EDEVICE, "no usable CUDA device: creating a stream: %s", cudaGetErrorString(e));
    }
    cudnnStatus_t s = cudnnCreate(&x->dnn);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetStream(x->dnn, x->stream);
    if (s != CUDNN_STATUS_SUCCESS) {
        dlt_backend_free(be);
        return dlt_err(DLT_EDEVICE, "no usable CUDA device: cuDNN: %s", cudnnGetErrorString(s));
    }
    e = cudaMallocHost((void **)&x->h_out, 64 * sizeof(double));
    if (e != cudaSuccess) {
        dlt_backend_free(be);
        return cuda_fail(e, "pinned host buffer");
    }

    dlt_log(DLT_LOG_VERBOSE, "cuda: %s (sm_%d%d, %.1f GiB), cuDNN %zu, convolutions in %s, workspace bound %lld MiB",
            x->devname, prop.major, prop.minor, prop.totalGlobalMem / 1073741824.0, cudnnGetVersion(),
            dlt_cuda_precision_name(x->prec), (long long)(x->ws_limit >> 20));
    *out = be;
    return 0;
}

/* ---- extras (cuda/cuda.h) ---- */

__global__ void k_philox(uint64_t seed, uint64_t stream, int64_t n, float *u, float *z)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        u[i] = dlt_philox_uniform_at(seed, stream, (uint64_t)i);
        double u1, u2;
        dlt_philox_normal_uniforms(seed, stream, (uint64_t)i, &u1, &u2);
        z[i] = (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2));
    }
}

extern "C" int dlt_cuda_philox_fill(dlt_backend *be, uint64_t seed, uint64_t stream, int64_t n, float *uniform,
                                    float *normal)
{
    cuda_ctx *x = CTX(be);
    if (n <= 0) return 0;
    float *d;
    RET(cuda_scratch(be, SCR_STAGE, 2 * n * 4, (void **)&d));
    k_philox<<<cuda_blocks(n, 256), 256, 0, x->stream>>>(seed, stream, n, d, d + n);
    KCHECK("philox");
    CUDA_CK(cudaMemcpyAsync(uniform, d, (size_t)n * 4, cudaMemcpyDeviceToHost, x->stream), "philox download");
    CUDA_CK(cudaMemcpyAsync(normal, d + n, (size_t)n * 4, cudaMemcpyDeviceToHost, x->stream), "philox download");
    CUDA_CK(cudaStreamSynchronize(x->stream), "philox");
    return 0;
}

extern "C" void dlt_cuda_mem_stats(dlt_backend *be, int64_t *held, int64_t *peak_live)
{
    *held = CTX(be)->held;
    *peak_live = CTX(be)->peak_live;
}
