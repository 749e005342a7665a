/* backend/cpu/simd/table.c - this ISA's copy of the fast path's own loops as one
 * table (see backend/cpu/fast_kern.h) and the backend's constant ops table for
 * this ISA; compiled once per ISA like the rest of lib/backend/cpu/simd. */
#include "backend/cpu/fast.h"

#ifdef FAST_ISA

#define FAST_STR2(x) #x
#define FAST_STR(x) FAST_STR2(x)

static const dlt_backend_ops ops = {
    .name = "cpu",
    .alloc = fast_alloc,
    .release = fast_release,
    .upload = fast_upload,
    .download = fast_download,
    .zero = fast_zero,
    .conv_fwd = fast_conv_fwd,
    .conv_bwd_data = fast_conv_bwd_data,
    .conv_bwd_weights = fast_conv_bwd_weights,
    .convt_fwd = fast_convt_fwd,
    .convt_bwd_data = fast_convt_bwd_data,
    .convt_bwd_weights = fast_convt_bwd_weights,
    .norm_fwd = FAST_K(fast_norm_fwd),
    .norm_bwd = FAST_K(fast_norm_bwd),
    .act_fwd = FAST_K(fast_act_fwd),
    .act_bwd = FAST_K(fast_act_bwd),
    .maxpool_fwd = FAST_K(fast_maxpool_fwd),
    .maxpool_bwd = FAST_K(fast_maxpool_bwd),
    .padc_fwd = FAST_K(fast_padc_fwd),
    .padc_bwd = FAST_K(fast_padc_bwd),
    .concat_fwd = FAST_K(fast_concat_fwd),
    .concat_bwd = FAST_K(fast_concat_bwd),
    .add_fwd = FAST_K(fast_add_fwd),
    .copy = FAST_K(fast_copy),
    .scale = FAST_K(fast_scale),
    .softmax_fwd = FAST_K(fast_softmax_fwd),
    .loss = FAST_K(fast_loss),
    .optim_step = FAST_K(fast_optim_step),
    .destroy = fast_destroy,
    .set_option = fast_set_option,
    .get_info = fast_get_info,
};

const fast_kern FAST_K(fast_kern) = {
    .isa = FAST_STR(FAST_ISA),
    .ops = &ops,
    .vcopy = FAST_K(fast_vcopy),
    .dw_run = FAST_K(fast_dw_run),
    .dw_bwd_weights = FAST_K(fast_dw_bwd_weights),
    .wino_run = FAST_K(fast_wino_run),
    .wino_bw_run = FAST_K(fast_wino_bw_run),
};

#endif
