/* backend/cuda/backend.cu - the CUDA backend: device selection, options,
 * the constant operation table and the Philox fill of cuda.h. Memory is
 * memory.cu's; the ops live in conv.cu, norm.cu, ops.cu, loss.cu,
 * optim.cu. See backend/cuda/internal.h for layouts and memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/internal.h"

extern "C" {
#include "dlt/philox.h"
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
        cuda_pool_drop(x);
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
 * in declaration order only). A NULL slot runs on the reference backend
 * through the front (lib/backend/front.c), tensors copied through the host. */
static const dlt_backend_ops cuda_ops = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .release = cuda_release,
    .upload = cuda_upload,
    .download = cuda_download,
    .zero = cuda_zero,
    .sync = cuda_sync,
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
    .scale = cuda_scale,
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

/* ---- extras (backend/cuda/cuda.h) ---- */

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
