/* cpu/simd/table.c - this ISA's copy of the fast path's own loops as one
 * table (see cpu/fast_kern.h); compiled once per ISA like the rest of
 * lib/cpu/simd. */
#include "cpu/fast.h"

#if defined(DLT_HAVE_DNNL) && defined(FAST_ISA)

#define FAST_STR2(x) #x
#define FAST_STR(x) FAST_STR2(x)

const fast_kern FAST_K(fast_kern) = {
    .isa = FAST_STR(FAST_ISA),
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
    .softmax_fwd = FAST_K(fast_softmax_fwd),
    .optim_step = FAST_K(fast_optim_step),
    .vcopy = FAST_K(fast_vcopy),
    .loss = FAST_K(fast_loss),
    .dw_run = FAST_K(fast_dw_run),
    .dw_bwd_weights = FAST_K(fast_dw_bwd_weights),
};

#endif
