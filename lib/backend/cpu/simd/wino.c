/* backend/cpu/simd/wino.c - 3x3x3 convolutions of stride 1 and padding 1 by
 * Winograd's minimal filtering F(m x m x m, 3x3x3) (Lavin and Gray 2016, in
 * 3-D): each m^3 block of outputs comes from the (m+2)^3 block of inputs
 * around it with (m+2)^3 multiplications per pair of channels instead of
 * 27 m^3: m = 2, 64 instead of 216 (3.4x fewer); m = 4, 216 instead of
 * 1728 (8x fewer, fp32 error about 2e-5 instead of 1e-6); the rest are
 * additions in the transforms. oneDNN 2.6 has
 * Winograd only for 2-D and only on AVX-512, so it runs these directly,
 * and they are 87% of the DLTK U-Net's arithmetic. Compiled once per ISA
 * (backend/cpu/fast_kern.h); the transformed weights come from
 * backend/cpu/fast_wino.c.
 *
 * Layouts: activations blocked (nCdhw<B>c, padded lanes zero, which the
 * transforms keep zero); transformed weights U[pos][cob][ci][B] (pos: the
 * P = (m+2)^3 points of a transformed tile; ci: all padded input channels;
 * cob: an output block of B channels). Work: the m^3 output tiles of all
 * samples, flattened, in chunks of one register block (TM tiles); per
 * chunk the input transform into V[pos][ci block][tile][B] (in cache), then
 * per output block the P products (tiles x ci) * (ci x B) into
 * M[pos][tile][B] and the output transform into y. The products' operands
 * all sit at constant offsets from two pointers, so GCC keeps TM
 * accumulators in registers and broadcasts V from memory. Each output is
 * computed by one thread in a fixed order, so results do not depend on the
 * thread count.
 *
 * The weight gradient (fast_wino_bw_run) is the adjoint: per tile the same
 * input transform V and the output gradient's A-transform M, per point
 * pos the product V[pos]^T M[pos] (CI x CO) summed over tiles, then G^T
 * back to 3x3x3 taps: again 64 instead of 216 multiplications per tile
 * and channel pair. Every thread sums its share of the tiles (chunks of TB
 * tiles, in L2) into its own partial sums, which are added in thread
 * order at the end. */
#include <omp.h>
#include <string.h>

#include "backend/cpu/fast.h"

#define WB 16
#include "backend/cpu/simd/wino_lanes.h"
#undef WB
#define WB 8
#include "backend/cpu/simd/wino_lanes.h"
#undef WB

int FAST_K(fast_wino_run)(fast_ctx *cx, int m, int64_t N, int64_t CIB, int64_t COB, int64_t D, int64_t H, int64_t W,
                          const float *x, const float *U, const float *bias, float *y, int accum)
{
    const int B = cx->blk;
    if (B != 16 && B != 8) return dlt_err(DLT_EUNSUP, "cpu: Winograd convolution on %d-channel blocks", B);
    if (m != 2 && m != 4) return dlt_err(DLT_EUNSUP, "cpu: Winograd F(%d,3)", m);
    const int64_t CI = CIB * B, P = (m + 2) * (m + 2) * (m + 2);
    const int64_t per = P * (B == 16 ? vrow_16(CI) + mrow_16() : vrow_8(CI) + mrow_8());
    float *scratch = fast_tmp(cx, 2, (size_t)(per * cx->nthr) * 4);
    if (!scratch) return DLT_ENOMEM;
    if (B == 16) run_16(cx->nthr, m, N, CIB, COB, D, H, W, x, U, bias, y, accum, scratch);
    else run_8(cx->nthr, m, N, CIB, COB, D, H, W, x, U, bias, y, accum, scratch);
    return 0;
}

int FAST_K(fast_wino_bw_run)(fast_ctx *cx, int64_t N, int64_t CI, int64_t CO, int64_t D, int64_t H, int64_t W,
                             const float *x, const float *dy, float *dw, float *db)
{
    const int B = cx->blk;
    if (B != 16 && B != 8) return dlt_err(DLT_EUNSUP, "cpu: Winograd weight gradient on %d-channel blocks", B);
    const int64_t CIB = (CI + B - 1) / B, COB = (CO + B - 1) / B, CIP = CIB * B, COP = COB * B;
    const int64_t ntiles = N * ((D + 1) / 2) * ((H + 1) / 2) * ((W + 1) / 2);
    const int nthr = B == 16 ? bw_threads_16(cx->nthr, ntiles, CIP, COP) : bw_threads_8(cx->nthr, ntiles, CIP, COP);
    const int64_t per = B == 16 ? bw_per_16(CIP, COP) : bw_per_8(CIP, COP);
    float *scratch = fast_tmp(cx, 2, (size_t)(per * nthr) * 4);
    if (!scratch) return DLT_ENOMEM;
    /* the columns of the products are vectors of the side with more blocks */
    const int cvec = CIB >= COB;
    if (B == 16) {
        const int team = run_bw_16(nthr, N, CIB, COB, D, H, W, x, dy, cvec, scratch);
        bw_out_16(team, CIB, COB, CI, CO, cvec, scratch, dw, db);
    } else {
        const int team = run_bw_8(nthr, N, CIB, COB, D, H, W, x, dy, cvec, scratch);
        bw_out_8(team, CIB, COB, CI, CO, cvec, scratch, dw, db);
    }
    return 0;
}
