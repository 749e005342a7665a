/* backend/cuda/conv.cu - convolutions and transposed convolutions through cuDNN's
 * (legacy, v7-style) convolution API on channels-last tensors.
 *
 * Geometry (backend/cuda/plan.c): cuDNN pads symmetrically only; TF 'same' with an
 * even kernel (or any asymmetric pad) becomes symmetric padding min(lo,hi)
 * plus an explicitly zero-padded copy of the input in scratch; the
 * backward-data result is then computed on the padded grid and cropped.
 * DLTK's 4^3/stride-2 convs on even sizes are symmetric and take the direct
 * path; 2-wide kernels (stride 1 axes of anisotropic units) take the copy.
 *
 * A transposed convolution is the adjoint of the convolution with the same
 * descriptor: convt_fwd = backward-data, convt_bwd_data = forward,
 * convt_bwd_weights = backward-filter with the roles of x and dy swapped.
 *
 * Precision: fp32 = CUDNN_FMA_MATH (no tensor cores, bit-comparable to the
 * CPU within 1e-4); tf32 = tensor-core math on fp32 data; bf16 = inputs and
 * weights converted to bf16 in scratch, cuDNN in bf16 with fp32
 * accumulation, results converted back to fp32 (activations, gradients and
 * the master weights stay fp32; no loss scaling is needed since bf16 has
 * fp32's exponent range). Weights are transposed to KDHWC per call.
 *
 * Algorithms: per shape (backend/cuda/plan.h key), timed once with cudnnFind (or
 * cuDNN's heuristics with DLT_CUDNN_FIND=0), the best that fits the
 * workspace bound (DLT_CUDA_WORKSPACE_MB, default 1024) is cached. */
#include "backend/cuda/internal.h"

struct conv_entry {
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int algo;
    size_t ws;
};

void cuda_conv_cache_free(dlt_backend *be)
{
    cuda_ctx *x = CTX(be);
    for (int i = 0; i < x->cache.n; i++) {
        conv_entry *e = (conv_entry *)x->cache.payload[i];
        if (!e) continue;
        if (e->xd) cudnnDestroyTensorDescriptor(e->xd);
        if (e->yd) cudnnDestroyTensorDescriptor(e->yd);
        if (e->wd) cudnnDestroyFilterDescriptor(e->wd);
        if (e->cd) cudnnDestroyConvolutionDescriptor(e->cd);
        delete e;
    }
    dlt_cuda_cache_free(&x->cache);
}

static const char *op_name(int op)
{
    return op == DLT_CONV_OP_FWD ? "forward" : op == DLT_CONV_OP_BWD_DATA ? "backward-data" : "backward-filter";
}

/* Descriptors for the plan, then the algorithm. */
static int build_entry(dlt_backend *be, int op, const dlt_cuda_convplan *p, conv_entry *e)
{
    cuda_ctx *x = CTX(be);
    int bf = x->prec == DLT_PREC_BF16;
    cudnnDataType_t dt = bf ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    int dims[5], str[5];
    DNN_CK(cudnnCreateTensorDescriptor(&e->xd), "descriptor");
    DNN_CK(cudnnCreateTensorDescriptor(&e->yd), "descriptor");
    DNN_CK(cudnnCreateFilterDescriptor(&e->wd), "descriptor");
    DNN_CK(cudnnCreateConvolutionDescriptor(&e->cd), "descriptor");
    RET(dlt_cuda_ndhwc_desc(p->n, p->cin, p->pin[0], p->pin[1], p->pin[2], dims, str));
    DNN_CK(cudnnSetTensorNdDescriptor(e->xd, dt, 5, dims, str), "input descriptor");
    RET(dlt_cuda_ndhwc_desc(p->n, p->cout, p->out[0], p->out[1], p->out[2], dims, str));
    DNN_CK(cudnnSetTensorNdDescriptor(e->yd, dt, 5, dims, str), "output descriptor");
    int fd[5] = {(int)p->cout, (int)(p->cin / p->groups), p->k[0], p->k[1], p->k[2]};
    DNN_CK(cudnnSetFilterNdDescriptor(e->wd, dt, CUDNN_TENSOR_NHWC, 5, fd), "filter descriptor");
    int one[3] = {1, 1, 1};
    DNN_CK(cudnnSetConvolutionNdDescriptor(e->cd, 3, p->sym, p->stride, one, CUDNN_CROSS_CORRELATION,
                                           CUDNN_DATA_FLOAT),
           "convolution descriptor");
    DNN_CK(cudnnSetConvolutionGroupCount(e->cd, (int)p->groups), "group count");
    cudnnMathType_t math = x->prec == DLT_PREC_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    DNN_CK(cudnnSetConvolutionMathType(e->cd, math), "math type");
    int od[5];
    DNN_CK(cudnnGetConvolutionNdForwardOutputDim(e->cd, e->xd, e->wd, 5, od), "output size");
    if (od[0] != p->n || od[1] != p->cout || od[2] != p->out[0] || od[3] != p->out[1] || od[4] != p->out[2])
        return dlt_err(DLT_EDEVICE, "cuda conv: cuDNN's output size %dx%dx%d differs from the plan's %lldx%lldx%lld",
                       od[2], od[3], od[4], (long long)p->out[0], (long long)p->out[1], (long long)p->out[2]);

    enum { MAXA = 16 };
    dlt_cuda_algo_cand cand[MAXA];
    int n = 0;
    cudnnStatus_t s = CUDNN_STATUS_NOT_SUPPORTED;
#define COLLECT(perf)                                                                                            \
    for (int i = 0; i < n && i < MAXA; i++)                                                                      \
        cand[i] = dlt_cuda_algo_cand{(int)perf[i].algo, (int)perf[i].status, perf[i].time, (int64_t)perf[i].memory,  \
                                     (int)perf[i].mathType};
    if (op == DLT_CONV_OP_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[MAXA];
        if (x->find) s = cudnnFindConvolutionForwardAlgorithm(x->dnn, e->xd, e->wd, e->cd, e->yd, MAXA, &n, perf);
        if (s != CUDNN_STATUS_SUCCESS)
            DNN_CK(cudnnGetConvolutionForwardAlgorithm_v7(x->dnn, e->xd, e->wd, e->cd, e->yd, MAXA, &n, perf),
                   "forward algorithm");
        COLLECT(perf);
    } else if (op == DLT_CONV_OP_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAXA];
        if (x->find)
            s = cudnnFindConvolutionBackwardDataAlgorithm(x->dnn, e->wd, e->yd, e->cd, e->xd, MAXA, &n, perf);
        if (s != CUDNN_STATUS_SUCCESS)
            DNN_CK(cudnnGetConvolutionBackwardDataAlgorithm_v7(x->dnn, e->wd, e->yd, e->cd, e->xd, MAXA, &n, perf),
                   "backward-data algorithm");
        COLLECT(perf);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[MAXA];
        if (x->find)
            s = cudnnFindConvolutionBackwardFilterAlgorithm(x->dnn, e->xd, e->yd, e->cd, e->wd, MAXA, &n, perf);
        if (s != CUDNN_STATUS_SUCCESS)
            DNN_CK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(x->dnn, e->xd, e->yd, e->cd, e->wd, MAXA, &n, perf),
                   "backward-filter algorithm");
        COLLECT(perf);
    }
#undef COLLECT
    cudaGetLastError(); /* a failed Find leaves no sticky error, but clear what it may have set */
    if (n > MAXA) n = MAXA;
    int need = x->prec == DLT_PREC_FP32 ? (int)CUDNN_FMA_MATH : -1;
    int i = dlt_cuda_pick_algo(cand, n, x->ws_limit, need, 1);
    if (i < 0)
        return dlt_err(DLT_EDEVICE,
                       "cuda conv %s: no cuDNN algorithm for input [%lld,%lld,%lld,%lld,%lld], kernel %dx%dx%d, "
                       "stride %dx%dx%d, %lld groups within the %lld MiB workspace bound (DLT_CUDA_WORKSPACE_MB)",
                       op_name(op), (long long)p->n, (long long)p->cin, (long long)p->pin[0], (long long)p->pin[1],
                       (long long)p->pin[2], p->k[0], p->k[1], p->k[2], p->stride[0], p->stride[1], p->stride[2],
                       (long long)p->groups, (long long)(x->ws_limit >> 20));
    e->algo = cand[i].algo;
    e->ws = (size_t)cand[i].memory;
    /* fp32 keeps FMA math whatever the candidate says; otherwise use what was timed */
    if (need < 0) DNN_CK(cudnnSetConvolutionMathType(e->cd, (cudnnMathType_t)cand[i].math_type), "math type");
    dlt_log(DLT_LOG_DEBUG, "cuda conv %s [%lld,%lld,%lldx%lldx%lld] k%dx%dx%d s%dx%dx%d g%lld %s: algo %d, math %d, %.1f MiB, %.3f ms",
            op_name(op), (long long)p->n, (long long)p->cin, (long long)p->pin[0], (long long)p->pin[1],
            (long long)p->pin[2], p->k[0], p->k[1], p->k[2], p->stride[0], p->stride[1], p->stride[2],
            (long long)p->groups, dlt_cuda_precision_name(x->prec), e->algo, cand[i].math_type,
            cand[i].memory / 1048576.0, cand[i].time_ms);
    return 0;
}

static int get_entry(dlt_backend *be, int op, const dlt_cuda_convplan *p, conv_entry **out)
{
    cuda_ctx *x = CTX(be);
    dlt_cuda_conv_key key;
    dlt_cuda_conv_key_make(&key, op, x->prec, p);
    int i = dlt_cuda_cache_find(&x->cache, &key);
    if (i >= 0) {
        *out = (conv_entry *)x->cache.payload[i];
        return 0;
    }
    conv_entry *e = new conv_entry();
    int r = build_entry(be, op, p, e);
    if (r >= 0) r = dlt_cuda_cache_add(&x->cache, &key, e);
    if (r < 0) {
        if (e->xd) cudnnDestroyTensorDescriptor(e->xd);
        if (e->yd) cudnnDestroyTensorDescriptor(e->yd);
        if (e->wd) cudnnDestroyFilterDescriptor(e->wd);
        if (e->cd) cudnnDestroyConvolutionDescriptor(e->cd);
        delete e;
        return r;
    }
    *out = e;
    return 0;
}

/* ---- layout / precision kernels ---- */

template <class T> __device__ inline T to_t(float v);
template <> __device__ inline float to_t<float>(float v) { return v; }
template <> __device__ inline __nv_bfloat16 to_t<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
__device__ inline float from_t(float v) { return v; }
__device__ inline float from_t(__nv_bfloat16 v) { return __bfloat162float(v); }

struct grid5 {
    int64_t n, c, d, h, w;
};

/* dst[n, pd, ph, pw, c] (padded grid P) = src[n, pd-lo0, ph-lo1, pw-lo2, c] (grid S) or 0 */
template <class T>
__global__ void k_pad_in(const float *__restrict__ src, T *__restrict__ dst, grid5 S, grid5 P, int lo0, int lo1,
                         int lo2)
{
    int64_t total = P.n * P.d * P.h * P.w * P.c;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % P.c, r = i / P.c;
        int64_t pw = r % P.w;
        r /= P.w;
        int64_t ph = r % P.h;
        r /= P.h;
        int64_t pd = r % P.d, n = r / P.d;
        int64_t sd = pd - lo0, sh = ph - lo1, sw = pw - lo2;
        float v = 0;
        if (sd >= 0 && sd < S.d && sh >= 0 && sh < S.h && sw >= 0 && sw < S.w)
            v = src[(((n * S.d + sd) * S.h + sh) * S.w + sw) * S.c + c];
        dst[i] = to_t<T>(v);
    }
}

/* dst (grid S, fp32) (+)= src cropped from grid P at offset lo */
template <class T>
__global__ void k_crop_out(const T *__restrict__ src, float *__restrict__ dst, grid5 S, grid5 P, int lo0, int lo1,
                           int lo2, int accum)
{
    int64_t total = S.n * S.d * S.h * S.w * S.c;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % S.c, r = i / S.c;
        int64_t sw = r % S.w;
        r /= S.w;
        int64_t sh = r % S.h;
        r /= S.h;
        int64_t sd = r % S.d, n = r / S.d;
        float v = from_t(src[(((n * P.d + sd + lo0) * P.h + sh + lo1) * P.w + sw + lo2) * P.c + c]);
        dst[i] = accum ? dst[i] + v : v;
    }
}

/* plain weights [O, I, K] -> KDHWC [O, K, I] (K = kd*kh*kw) */
template <class T>
__global__ void k_w_to_khwc(const float *__restrict__ w, T *__restrict__ o, int64_t O, int64_t I, int64_t K)
{
    int64_t total = O * I * K;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < total; j += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = j % I, r = j / I, k = r % K, oo = r / K;
        o[j] = to_t<T>(w[(oo * I + i) * K + k]);
    }
}

/* dw plain [O, I, K] += src KDHWC [O, K, I] */
template <class T>
__global__ void k_dw_add(const T *__restrict__ s, float *__restrict__ dw, int64_t O, int64_t I, int64_t K)
{
    int64_t total = O * I * K;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < total; j += (int64_t)gridDim.x * blockDim.x) {
        int64_t k = j % K, r = j / K, i = r % I, oo = r / I;
        dw[j] += from_t(s[(oo * K + k) * I + i]);
    }
}

__global__ void k_bias_add(float *y, const float *b, int64_t total, int64_t C)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += b[i % C];
}

/* ---- the three cuDNN calls with padding and precision around them ---- */

static grid5 in_grid(const dlt_cuda_convplan *p) { return grid5{p->n, p->cin, p->in[0], p->in[1], p->in[2]}; }
static grid5 pin_grid(const dlt_cuda_convplan *p) { return grid5{p->n, p->cin, p->pin[0], p->pin[1], p->pin[2]}; }
static grid5 out_grid(const dlt_cuda_convplan *p) { return grid5{p->n, p->cout, p->out[0], p->out[1], p->out[2]}; }
static int64_t gnumel(grid5 g) { return g.n * g.c * g.d * g.h * g.w; }

/* src on grid S into slot as grid P (T), padded at extra_lo */
template <class T>
static int prep(dlt_backend *be, int slot, const float *src, grid5 S, grid5 P, const int lo[3], const void **out)
{
    T *d;
    RET(cuda_scratch(be, slot, gnumel(P) * (int64_t)sizeof(T), (void **)&d));
    k_pad_in<T><<<cuda_blocks(gnumel(P), 256), 256, 0, CTX(be)->stream>>>(src, d, S, P, lo[0], lo[1], lo[2]);
    KCHECK("conv input");
    *out = d;
    return 0;
}

template <class T> static int weights(dlt_backend *be, const dlt_cuda_convplan *p, const float *w, const void **out)
{
    int64_t O = p->cout, I = p->cin / p->groups, K = (int64_t)p->k[0] * p->k[1] * p->k[2];
    T *d;
    RET(cuda_scratch(be, SCR_W, O * I * K * (int64_t)sizeof(T), (void **)&d));
    k_w_to_khwc<T><<<cuda_blocks(O * I * K, 256), 256, 0, CTX(be)->stream>>>(w, d, O, I, K);
    KCHECK("conv weights");
    *out = d;
    return 0;
}

static int workspace(dlt_backend *be, const conv_entry *e, void **ws)
{
    *ws = NULL;
    if (e->ws == 0) return 0;
    return cuda_scratch(be, SCR_WS, (int64_t)e->ws, ws);
}

template <class T>
static int core_fwd(dlt_backend *be, const dlt_cuda_convplan *p, const float *X, const float *w, float *Y, int accum)
{
    cuda_ctx *x = CTX(be);
    const int zero3[3] = {0, 0, 0};
    const int bf = sizeof(T) == 2;
    const void *xin = X, *wk;
    if (p->explicit_pad || bf) RET(prep<T>(be, SCR_IN, X, in_grid(p), pin_grid(p), p->extra_lo, &xin));
    RET(weights<T>(be, p, w, &wk));
    conv_entry *e;
    RET(get_entry(be, DLT_CONV_OP_FWD, p, &e));
    void *ws, *yout = Y;
    RET(workspace(be, e, &ws));
    if (bf) RET(cuda_scratch(be, SCR_OUT, gnumel(out_grid(p)) * (int64_t)sizeof(T), &yout));
    float alpha = 1.f, beta = accum && !bf ? 1.f : 0.f;
    DNN_CK(cudnnConvolutionForward(x->dnn, &alpha, e->xd, xin, e->wd, wk, e->cd, (cudnnConvolutionFwdAlgo_t)e->algo, ws,
                                   e->ws, &beta, e->yd, yout),
           "convolution forward");
    if (bf) {
        grid5 o = out_grid(p);
        k_crop_out<T><<<cuda_blocks(gnumel(o), 256), 256, 0, x->stream>>>((const T *)yout, Y, o, o, zero3[0], 0, 0,
                                                                           accum);
        KCHECK("conv output");
    }
    return 0;
}

template <class T>
static int core_bwd_data(dlt_backend *be, const dlt_cuda_convplan *p, const float *DY, const float *w, float *DX,
                         int accum)
{
    cuda_ctx *x = CTX(be);
    const int zero3[3] = {0, 0, 0};
    const int bf = sizeof(T) == 2;
    const void *dyin = DY, *wk;
    if (bf) RET(prep<T>(be, SCR_IN2, DY, out_grid(p), out_grid(p), zero3, &dyin));
    RET(weights<T>(be, p, w, &wk));
    conv_entry *e;
    RET(get_entry(be, DLT_CONV_OP_BWD_DATA, p, &e));
    void *ws, *dxout = DX;
    RET(workspace(be, e, &ws));
    int via = p->explicit_pad || bf;
    if (via) RET(cuda_scratch(be, SCR_OUT, gnumel(pin_grid(p)) * (int64_t)sizeof(T), &dxout));
    float alpha = 1.f, beta = accum && !via ? 1.f : 0.f;
    DNN_CK(cudnnConvolutionBackwardData(x->dnn, &alpha, e->wd, wk, e->yd, dyin, e->cd,
                                        (cudnnConvolutionBwdDataAlgo_t)e->algo, ws, e->ws, &beta, e->xd, dxout),
           "convolution backward data");
    if (via) {
        grid5 s = in_grid(p);
        k_crop_out<T><<<cuda_blocks(gnumel(s), 256), 256, 0, x->stream>>>(
            (const T *)dxout, DX, s, pin_grid(p), p->extra_lo[0], p->extra_lo[1], p->extra_lo[2], accum);
        KCHECK("conv input gradient");
    }
    return 0;
}

template <class T>
static int core_bwd_filter(dlt_backend *be, const dlt_cuda_convplan *p, const float *X, const float *DY, float *dw)
{
    cuda_ctx *x = CTX(be);
    const int zero3[3] = {0, 0, 0};
    const int bf = sizeof(T) == 2;
    const void *xin = X, *dyin = DY;
    if (p->explicit_pad || bf) RET(prep<T>(be, SCR_IN, X, in_grid(p), pin_grid(p), p->extra_lo, &xin));
    if (bf) RET(prep<T>(be, SCR_IN2, DY, out_grid(p), out_grid(p), zero3, &dyin));
    conv_entry *e;
    RET(get_entry(be, DLT_CONV_OP_BWD_FILTER, p, &e));
    int64_t O = p->cout, I = p->cin / p->groups, K = (int64_t)p->k[0] * p->k[1] * p->k[2];
    void *ws, *dwk;
    RET(workspace(be, e, &ws));
    RET(cuda_scratch(be, SCR_W, O * I * K * (int64_t)sizeof(T), &dwk));
    float alpha = 1.f, beta = 0.f;
    DNN_CK(cudnnConvolutionBackwardFilter(x->dnn, &alpha, e->xd, xin, e->yd, dyin, e->cd,
                                          (cudnnConvolutionBwdFilterAlgo_t)e->algo, ws, e->ws, &beta, e->wd, dwk),
           "convolution backward filter");
    k_dw_add<T><<<cuda_blocks(O * I * K, 256), 256, 0, x->stream>>>((const T *)dwk, dw, O, I, K);
    KCHECK("conv weight gradient");
    return 0;
}

/* ---- checks and the table's entry points ---- */

/* Plan for a conv whose input is `big` and output `small` (a transposed
 * conv passes them swapped); the front checked the shapes. */
static int plan_for(const char *op, const dlt_conv_desc *c, const dlt_tensor *in, const dlt_tensor *out,
                    const dlt_tensor *w, dlt_cuda_convplan *p)
{
    RET(cuda_check_fmt(op, in, FMT_NDHWC));
    RET(cuda_check_fmt(op, out, FMT_NDHWC));
    RET(cuda_check_fmt(op, w, FMT_PLAIN));
    int64_t a[3] = {in->d, in->h, in->w}, b[3] = {out->d, out->h, out->w};
    int r = dlt_cuda_conv_plan(c, in->n, in->c, a, out->c, b, p);
    if (r < 0) return dlt_err_prefix(r, "cuda %s", op);
    return 0;
}

#define BY_PREC(be, call)                                                                                          \
    (CTX(be)->prec == DLT_PREC_BF16 ? call<__nv_bfloat16> : call<float>)

int cuda_conv_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                  const dlt_tensor *b, dlt_tensor *y)
{
    dlt_cuda_convplan p;
    RET(plan_for("conv_fwd", c, x, y, w, &p));
    RET(BY_PREC(be, core_fwd)(be, &p, (const float *)x->data, (const float *)w->data, (float *)y->data, 0));
    if (b) {
        int64_t n = dlt_tensor_numel(y);
        k_bias_add<<<cuda_blocks(n, 256), 256, 0, CTX(be)->stream>>>((float *)y->data, (const float *)b->data, n, y->c);
        KCHECK("bias");
    }
    return 0;
}

int cuda_conv_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                       dlt_tensor *dx, int accum)
{
    dlt_cuda_convplan p;
    RET(plan_for("conv_bwd_data", c, dx, dy, w, &p));
    return BY_PREC(be, core_bwd_data)(be, &p, (const float *)dy->data, (const float *)w->data, (float *)dx->data,
                                      accum);
}

int cuda_conv_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                          dlt_tensor *dw, dlt_tensor *db)
{
    dlt_cuda_convplan p;
    RET(plan_for("conv_bwd_weights", c, x, dy, dw, &p));
    RET(BY_PREC(be, core_bwd_filter)(be, &p, (const float *)x->data, (const float *)dy->data, (float *)dw->data));
    if (db) RET(cuda_channel_sum_add(be, (const float *)dy->data, dlt_tensor_numel(dy) / dy->c, dy->c,
                                     (float *)db->data));
    return 0;
}

int cuda_convt_fwd(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *w,
                   const dlt_tensor *b, dlt_tensor *y)
{
    dlt_cuda_convplan p;
    RET(plan_for("convt_fwd", c, y, x, w, &p));
    RET(BY_PREC(be, core_bwd_data)(be, &p, (const float *)x->data, (const float *)w->data, (float *)y->data, 0));
    if (b) {
        int64_t n = dlt_tensor_numel(y);
        k_bias_add<<<cuda_blocks(n, 256), 256, 0, CTX(be)->stream>>>((float *)y->data, (const float *)b->data, n, y->c);
        KCHECK("bias");
    }
    return 0;
}

int cuda_convt_bwd_data(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *dy, const dlt_tensor *w,
                        dlt_tensor *dx, int accum)
{
    dlt_cuda_convplan p;
    RET(plan_for("convt_bwd_data", c, dy, dx, w, &p));
    return BY_PREC(be, core_fwd)(be, &p, (const float *)dy->data, (const float *)w->data, (float *)dx->data, accum);
}

int cuda_convt_bwd_weights(dlt_backend *be, const dlt_conv_desc *c, const dlt_tensor *x, const dlt_tensor *dy,
                           dlt_tensor *dw, dlt_tensor *db)
{
    dlt_cuda_convplan p;
    RET(plan_for("convt_bwd_weights", c, dy, x, dw, &p));
    RET(BY_PREC(be, core_bwd_filter)(be, &p, (const float *)dy->data, (const float *)x->data, (float *)dw->data));
    if (db) RET(cuda_channel_sum_add(be, (const float *)dy->data, dlt_tensor_numel(dy) / dy->c, dy->c,
                                     (float *)db->data));
    return 0;
}
