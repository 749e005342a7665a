/* backend/cpu/simd/wino_lanes.h - the Winograd loops of simd/wino.c for one
 * block width; included there once per width with WB (8 or 16 lanes)
 * defined, so every vector has a compile-time size. */

#define WF2(f, b) f##_##b
#define WF1(f, b) WF2(f, b)
#define WF(f) WF1(f, WB)

/* one block of WB channel lanes; every block of every operand starts at a
 * multiple of WB floats in a 64-byte aligned buffer, so loads and stores
 * are aligned ones (GCC's generic tuning splits unaligned 32-byte ones and
 * bounces memcpy'd ones through the stack) */
typedef float WF(vec) __attribute__((vector_size(WB * 4)));
#define VEC WF(vec)

/* tiles per register block of the matrix products, one accumulator each
 * (AVX2: 12 of its 16 registers; AVX-512: 12 of 32, enough to hide the
 * FMA latency, and with 24 F(4,3)'s chunk of V, 216 rows, outgrew L2: its
 * 48->16 convolution at 64^3 took 42 ms against 29) */
#define TM 12

static inline VEC WF(ld)(const float *p) { return *(const VEC *)p; }
static inline void WF(st)(float *p, VEC v) { *(VEC *)p = v; }

/* B^T on each axis of the 4x4x4 block at p (planes at stride pz, rows at
 * py, columns at WB floats): point pos = (a*4 + b)*4 + c stored at
 * v + pos*vs. Depth first, through t (in L1), then rows and columns of
 * each plane in registers. */
static inline void WF(in_xform)(const float *p, int64_t pz, int64_t py, float *v, int64_t vs)
{
    VEC t[64];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
        const float *q = p + (i >> 2) * py + (i & 3) * WB;
        const VEC d0 = WF(ld)(q), d1 = WF(ld)(q + pz), d2 = WF(ld)(q + 2 * pz), d3 = WF(ld)(q + 3 * pz);
        t[i] = d0 - d2, t[16 + i] = d1 + d2, t[32 + i] = d2 - d1, t[48 + i] = d1 - d3;
    }
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++) {
        VEC r[16];
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) {
            const VEC *q = t + a * 16 + b * 4;
            r[b * 4 + 0] = q[0] - q[2], r[b * 4 + 1] = q[1] + q[2], r[b * 4 + 2] = q[2] - q[1], r[b * 4 + 3] = q[1] - q[3];
        }
        float *o = v + a * 16 * vs;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const VEC b0 = r[c], b1 = r[4 + c], b2 = r[8 + c], b3 = r[12 + c];
            WF(st)(o + c * vs, b0 - b2), WF(st)(o + (4 + c) * vs, b1 + b2);
            WF(st)(o + (8 + c) * vs, b2 - b1), WF(st)(o + (12 + c) * vs, b1 - b3);
        }
    }
}

/* The 4x4x4 input block at (z0, y0, x0) of one channel block (zeros
 * outside the volume), transformed into v (see in_xform). */
static void WF(in_tile)(const float *x, int64_t D, int64_t H, int64_t W, int64_t z0, int64_t y0, int64_t x0,
                        float *v, int64_t vs)
{
    if (z0 >= 0 && y0 >= 0 && x0 >= 0 && z0 + 4 <= D && y0 + 4 <= H && x0 + 4 <= W) {
        WF(in_xform)(x + ((z0 * H + y0) * W + x0) * WB, H * W * WB, W * WB, v, vs);
        return;
    }
    float buf[64 * WB] __attribute__((aligned(64)));
    const VEC zero = {0};
    int okc[4];
    for (int c = 0; c < 4; c++) okc[c] = x0 + c >= 0 && x0 + c < W;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            const int64_t z = z0 + a, yy = y0 + b;
            float *o = buf + (a * 4 + b) * 4 * WB;
            const int row = z >= 0 && z < D && yy >= 0 && yy < H;
            const float *p = row ? x + (z * H + yy) * W * WB : NULL;
            for (int c = 0; c < 4; c++) WF(st)(o + c * WB, row && okc[c] ? WF(ld)(p + (x0 + c) * WB) : zero);
        }
    WF(in_xform)(buf, 16 * WB, 4 * WB, v, vs);
}

/* For one pos: the product of V[pos] (TM tiles x CI, stored as CIB
 * blocks of [TM][WB]) and U[pos][cob] (CI x WB) into m[t*WB], the first
 * nt tiles kept. Every operand is at a constant offset from v or u. */
static inline void WF(mm)(int64_t CIB, const float *v, const float *u, float *m, int nt)
{
    VEC acc[TM];
#pragma GCC unroll 24
    for (int t = 0; t < TM; t++) acc[t] = (VEC){0};
    for (int64_t cb = 0; cb < CIB; cb++, v += TM * WB, u += WB * WB) {
#pragma GCC unroll 16
        for (int l = 0; l < WB; l++) {
            const VEC uv = WF(ld)(u + l * WB);
#pragma GCC unroll 24
            for (int t = 0; t < TM; t++) acc[t] += v[t * WB + l] * uv;
        }
    }
    for (int t = 0; t < nt; t++) WF(st)(m + t * WB, acc[t]);
}

/* A^T of F(2,3) on one tile's 64 products (m[pos*ms]): the 2x2x2 outputs
 * at (z0, y0, x0) of one channel block, clipped to the volume, plus bias;
 * accum adds. */
static void WF(out_tile)(const float *m, int64_t ms, const float *bias, float *y, int64_t D, int64_t H, int64_t W,
                         int64_t z0, int64_t y0, int64_t x0, int accum)
{
    VEC r[32], s[16], o[8];
    for (int i = 0; i < 16; i++) {
        const VEC m0 = WF(ld)(m + (i * 4 + 0) * ms), m1 = WF(ld)(m + (i * 4 + 1) * ms),
                  m2 = WF(ld)(m + (i * 4 + 2) * ms), m3 = WF(ld)(m + (i * 4 + 3) * ms);
        r[i * 2] = m0 + m1 + m2, r[i * 2 + 1] = m1 - m2 - m3;
    }
    for (int a = 0; a < 4; a++)
        for (int c = 0; c < 2; c++) {
            const VEC *q = r + a * 8 + c;
            s[(a * 2 + 0) * 2 + c] = q[0] + q[2] + q[4];
            s[(a * 2 + 1) * 2 + c] = q[2] - q[4] - q[6];
        }
    const VEC bv = bias ? WF(ld)(bias) : (VEC){0};
    for (int i = 0; i < 4; i++) {
        o[i] = s[i] + s[4 + i] + s[8 + i] + bv;
        o[4 + i] = s[4 + i] - s[8 + i] - s[12 + i] + bv;
    }
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++) {
                const int64_t z = z0 + a, yy = y0 + b, xx = x0 + c;
                if (z >= D || yy >= H || xx >= W) continue;
                float *p = y + ((z * H + yy) * W + xx) * WB;
                const VEC v = o[(a * 2 + b) * 2 + c];
                WF(st)(p, accum ? WF(ld)(p) + v : v);
            }
}

/* F(4,3) on one axis, points 0, 1, -1, 2, -2 and infinity (Lavin and
 * Gray's): B^T (6 -> 6) and A^T (6 -> 4), with the sums they share. */
#define WINO_BT6(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)                                                  \
    do {                                                                                                         \
        const VEC t1_ = (d4) - 4.f * (d2), s1_ = (d3) - 4.f * (d1), t2_ = (d4) - (d2), s2_ = (d3) - (d1);        \
        o0 = 4.f * (d0) - 5.f * (d2) + (d4), o1 = t1_ + s1_, o2 = t1_ - s1_;                                     \
        o3 = t2_ + 2.f * s2_, o4 = t2_ - 2.f * s2_, o5 = 4.f * (d1) - 5.f * (d3) + (d5);                         \
    } while (0)
#define WINO_AT6(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)                                                          \
    do {                                                                                                         \
        const VEC a_ = (m1) + (m2), b_ = (m1) - (m2), c_ = (m3) + (m4), d_ = (m3) - (m4);                        \
        o0 = (m0) + a_ + c_, o1 = b_ + 2.f * d_, o2 = a_ + 4.f * c_, o3 = b_ + 8.f * d_ + (m5);                  \
    } while (0)

/* F(4,3)'s B^T along depth of the 36 columns of the 6x6x6 block at p
 * (planes at stride pz, rows at py, columns at WB floats): t[a*36 + b*6
 * + c] for depth point a, row b, column c. */
static inline void WF(in_cols4)(const float *p, int64_t pz, int64_t py, VEC *t)
{
#pragma GCC unroll 36
    for (int i = 0; i < 36; i++) {
        const float *q = p + (i / 6) * py + (i % 6) * WB;
        WINO_BT6(WF(ld)(q), WF(ld)(q + pz), WF(ld)(q + 2 * pz), WF(ld)(q + 3 * pz), WF(ld)(q + 4 * pz),
                 WF(ld)(q + 5 * pz), t[i], t[36 + i], t[72 + i], t[108 + i], t[144 + i], t[180 + i]);
    }
}

/* The same for a block at (z0, y0, x0) crossing the volume's edge: zeros
 * outside it, read in place (a third of a 64^3 volume's tiles touch an
 * edge; copying them into a padded block first cost half as much again
 * as the transform). */
static void WF(in_cols4_edge)(const float *x, int64_t D, int64_t H, int64_t W, int64_t z0, int64_t y0, int64_t x0,
                              VEC *t)
{
    const VEC zero = {0};
    const int64_t pz = H * W * WB;
    int okz[6];
    for (int k = 0; k < 6; k++) okz[k] = z0 + k >= 0 && z0 + k < D;
    for (int i = 0; i < 36; i++) {
        const int64_t yy = y0 + i / 6, xx = x0 + i % 6;
        if (yy < 0 || yy >= H || xx < 0 || xx >= W) {
            for (int k = 0; k < 6; k++) t[k * 36 + i] = zero;
            continue;
        }
        const float *q = x + (yy * W + xx) * WB;
        VEC d[6];
        for (int k = 0; k < 6; k++) d[k] = okz[k] ? WF(ld)(q + (z0 + k) * pz) : zero;
        WINO_BT6(d[0], d[1], d[2], d[3], d[4], d[5], t[i], t[36 + i], t[72 + i], t[108 + i], t[144 + i], t[180 + i]);
    }
}

/* B^T along rows and columns of t (from in_cols4): point pos = (a*6 +
 * b)*6 + c of the tile stored at v + pos*vs. */
static inline void WF(in_planes4)(const VEC *t, float *v, int64_t vs)
{
#pragma GCC unroll 1
    for (int a = 0; a < 6; a++) {
        VEC r[36];
        const VEC *q = t + a * 36;
#pragma GCC unroll 6
        for (int c = 0; c < 6; c++)
            WINO_BT6(q[c], q[6 + c], q[12 + c], q[18 + c], q[24 + c], q[30 + c], r[c], r[6 + c], r[12 + c],
                     r[18 + c], r[24 + c], r[30 + c]);
        float *o = v + a * 36 * vs;
#pragma GCC unroll 6
        for (int b = 0; b < 6; b++) {
            VEC o0, o1, o2, o3, o4, o5;
            const VEC *e = r + b * 6;
            WINO_BT6(e[0], e[1], e[2], e[3], e[4], e[5], o0, o1, o2, o3, o4, o5);
            float *ob = o + b * 6 * vs;
            WF(st)(ob, o0), WF(st)(ob + vs, o1), WF(st)(ob + 2 * vs, o2);
            WF(st)(ob + 3 * vs, o3), WF(st)(ob + 4 * vs, o4), WF(st)(ob + 5 * vs, o5);
        }
    }
}

/* The 6x6x6 input block at (z0, y0, x0) of one channel block (zeros
 * outside the volume), transformed: point pos = (a*6 + b)*6 + c at v +
 * pos*vs. */
static void WF(in_tile4)(const float *x, int64_t D, int64_t H, int64_t W, int64_t z0, int64_t y0, int64_t x0,
                         float *v, int64_t vs)
{
    VEC t[216];
    if (z0 >= 0 && y0 >= 0 && x0 >= 0 && z0 + 6 <= D && y0 + 6 <= H && x0 + 6 <= W)
        WF(in_cols4)(x + ((z0 * H + y0) * W + x0) * WB, H * W * WB, W * WB, t);
    else
        WF(in_cols4_edge)(x, D, H, W, z0, y0, x0, t);
    WF(in_planes4)(t, v, vs);
}

/* A^T of F(4,3) on one tile's 216 products (m[pos*ms]): the 4x4x4
 * outputs at (z0, y0, x0), clipped to the volume, plus bias; accum adds. */
static void WF(out_tile4)(const float *m, int64_t ms, const float *bias, float *y, int64_t D, int64_t H, int64_t W,
                          int64_t z0, int64_t y0, int64_t x0, int accum)
{
    VEC r[144], s[96];
#pragma GCC unroll 2
    for (int i = 0; i < 36; i++) {
        const float *q = m + i * 6 * ms;
        WINO_AT6(WF(ld)(q), WF(ld)(q + ms), WF(ld)(q + 2 * ms), WF(ld)(q + 3 * ms), WF(ld)(q + 4 * ms),
                 WF(ld)(q + 5 * ms), r[i * 4], r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3]);
    }
#pragma GCC unroll 4
    for (int a = 0; a < 6; a++)
        for (int c = 0; c < 4; c++) {
            const VEC *q = r + a * 24 + c;
            VEC *o = s + a * 16 + c;
            WINO_AT6(q[0], q[4], q[8], q[12], q[16], q[20], o[0], o[4], o[8], o[12]);
        }
    const VEC bv = bias ? WF(ld)(bias) : (VEC){0};
    const int64_t nz = D - z0 < 4 ? D - z0 : 4, ny = H - y0 < 4 ? H - y0 : 4, nx = W - x0 < 4 ? W - x0 : 4;
    for (int i = 0; i < 16; i++) {
        const int b = i >> 2, c = i & 3;
        if (b >= ny || c >= nx) continue;
        VEC o[4];
        WINO_AT6(s[i], s[16 + i], s[32 + i], s[48 + i], s[64 + i], s[80 + i], o[0], o[1], o[2], o[3]);
        for (int a = 0; a < nz; a++) {
            float *p = y + (((z0 + a) * H + y0 + b) * W + x0 + c) * WB;
            const VEC v = o[a] + bv;
            WF(st)(p, accum ? WF(ld)(p) + v : v);
        }
    }
}

/* Floats between the rows of V (one pos: TM tiles x CI) and of M (one
 * pos: TM tiles x WB): padded by a cache line, because rows a multiple of
 * 4 KiB long (12 tiles x 256 channels) would put all the rows of a tile
 * into one L1 set. */
static inline int64_t WF(vrow)(int64_t CI) { return TM * CI + 16; }
static inline int64_t WF(mrow)(void) { return TM * WB + 16; }

/* Tile g of the flattened tiles (TS per sample, TH x TW per plane): its
 * sample and the corner of its m x m x m outputs. */
static inline void WF(tile_at)(int m, int64_t g, int64_t TS, int64_t TH, int64_t TW, int64_t *n, int64_t *z,
                               int64_t *y, int64_t *x)
{
    const int64_t r = g % TS;
    *n = g / TS, *z = m * (r / (TH * TW)), *y = m * (r / TW % TH), *x = m * (r % TW);
}

/* The whole convolution by F(m,3), m = 2 or 4 (P = (m+2)^3 points per
 * tile): see simd/wino.c. scratch holds nthr * P * (V, M) rows. */
static void WF(run)(int nthr, int m, int64_t N, int64_t CIB, int64_t COB, int64_t D, int64_t H, int64_t W,
                    const float *x, const float *U, const float *bias, float *y, int accum, float *scratch)
{
    const int P = (m + 2) * (m + 2) * (m + 2);
    const int64_t CI = CIB * WB, TD = (D + m - 1) / m, TH = (H + m - 1) / m, TW = (W + m - 1) / m;
    const int64_t TS = TD * TH * TW, ntiles = N * TS, nchunk = (ntiles + TM - 1) / TM, S = D * H * W;
    const int64_t vr = WF(vrow)(CI), mr = WF(mrow)();
#pragma omp parallel num_threads(nthr)
    {
        float *V = scratch + (int64_t)omp_get_thread_num() * P * (vr + mr), *M = V + P * vr;
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < nchunk; ch++) {
            const int64_t t0 = ch * TM, nt = t0 + TM <= ntiles ? TM : ntiles - t0;
            /* tiles past the end: zeros, so the products read defined values */
            for (int64_t t = nt; t < TM; t++)
                for (int p = 0; p < P; p++)
                    for (int64_t cb = 0; cb < CIB; cb++) memset(V + p * vr + (cb * TM + t) * WB, 0, WB * 4);
            /* one input block's tiles after another: a tile's stores
             * touch P lines of V, which stay in L1 for its neighbour
             * (which fills the rest of them) */
            for (int64_t cb = 0; cb < CIB; cb++)
                for (int64_t t = 0; t < nt; t++) {
                    int64_t n, z, yy, xx;
                    WF(tile_at)(m, t0 + t, TS, TH, TW, &n, &z, &yy, &xx);
                    const float *xc = x + (n * CIB + cb) * S * WB;
                    float *vc = V + (cb * TM + t) * WB;
                    if (m == 4) WF(in_tile4)(xc, D, H, W, z - 1, yy - 1, xx - 1, vc, vr);
                    else WF(in_tile)(xc, D, H, W, z - 1, yy - 1, xx - 1, vc, vr);
                }
            for (int64_t ob = 0; ob < COB; ob++) {
                for (int p = 0; p < P; p++)
                    WF(mm)(CIB, V + p * vr, U + (p * COB + ob) * CI * WB, M + p * mr, (int)nt);
                for (int64_t t = 0; t < nt; t++) {
                    int64_t n, z, yy, xx;
                    WF(tile_at)(m, t0 + t, TS, TH, TW, &n, &z, &yy, &xx);
                    const float *bo = bias ? bias + ob * WB : NULL;
                    float *yo = y + (n * COB + ob) * S * WB;
                    if (m == 4) WF(out_tile4)(M + t * WB, mr, bo, yo, D, H, W, z, yy, xx, accum);
                    else WF(out_tile)(M + t * WB, mr, bo, yo, D, H, W, z, yy, xx, accum);
                }
            }
        }
    }
}


/* ------------------------------------------------------------ weight gradient */

/* A of F(2,3) on each axis (the adjoint of out_tile's A^T): the output
 * gradient's 2x2x2 block at (z0, y0, x0) of one channel block (zeros
 * outside the volume) as 64 points at m + pos*ms; their sum (the point
 * (1,1,1), whose row of A is all ones) added to *bsum for the bias. */
static void WF(dy_tile)(const float *dy, int64_t D, int64_t H, int64_t W, int64_t z0, int64_t y0, int64_t x0,
                        float *m, int64_t ms, float *bsum)
{
    const VEC zero = {0};
    VEC e[8], r[16], s[32];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++) {
                const int64_t z = z0 + a, yy = y0 + b, xx = x0 + c;
                e[(a * 2 + b) * 2 + c] = z < D && yy < H && xx < W ? WF(ld)(dy + ((z * H + yy) * W + xx) * WB) : zero;
            }
    /* (e0, e1) -> (e0, e0 + e1, e0 - e1, -e1) on x, then y, then z */
    for (int i = 0; i < 4; i++) {
        const VEC e0 = e[i * 2], e1 = e[i * 2 + 1];
        r[i * 4] = e0, r[i * 4 + 1] = e0 + e1, r[i * 4 + 2] = e0 - e1, r[i * 4 + 3] = -e1;
    }
    for (int a = 0; a < 2; a++)
        for (int c = 0; c < 4; c++) {
            const VEC e0 = r[(a * 2) * 4 + c], e1 = r[(a * 2 + 1) * 4 + c];
            VEC *o = s + a * 16 + c;
            o[0] = e0, o[4] = e0 + e1, o[8] = e0 - e1, o[12] = -e1;
        }
    for (int i = 0; i < 16; i++) {
        const VEC e0 = s[i], e1 = s[16 + i];
        WF(st)(m + i * ms, e0), WF(st)(m + (16 + i) * ms, e0 + e1);
        WF(st)(m + (32 + i) * ms, e0 - e1), WF(st)(m + (48 + i) * ms, -e1);
    }
    WF(st)(bsum, WF(ld)(bsum) + WF(ld)(m + 21 * ms));
}

/* One register block of C += A^T B over nt rows: RI rows of C (broadcast
 * from A's rows of NR floats) by RC vectors of its columns (from B's rows
 * of NC floats); C's rows are NC floats. Named by RC. */
#define WINO_GB(RC, RI)                                                                                          \
    static void WF(gb##RC)(const float *a, const float *b, float *c, int64_t nt, int64_t NR, int64_t NC)         \
    {                                                                                                            \
        VEC acc[RI][RC];                                                                                         \
        _Pragma("GCC unroll 16") for (int i = 0; i < RI; i++)                                                    \
            _Pragma("GCC unroll 4") for (int j = 0; j < RC; j++) acc[i][j] = WF(ld)(c + i * NC + j * WB);       \
        for (int64_t t = 0; t < nt; t++, a += NR, b += NC) {                                                    \
            VEC bv[RC];                                                                                          \
            _Pragma("GCC unroll 4") for (int j = 0; j < RC; j++) bv[j] = WF(ld)(b + j * WB);                     \
            _Pragma("GCC unroll 16") for (int i = 0; i < RI; i++)                                                \
                _Pragma("GCC unroll 4") for (int j = 0; j < RC; j++) acc[i][j] += a[i] * bv[j];                  \
        }                                                                                                        \
        _Pragma("GCC unroll 16") for (int i = 0; i < RI; i++)                                                    \
            _Pragma("GCC unroll 4") for (int j = 0; j < RC; j++) WF(st)(c + i * NC + j * WB, acc[i][j]);        \
    }
/* rows x vectors: WB x 1, WB/2 x 2, WB/2 x 3, WB/4 x 4 (on 16 lanes 16 or
 * 24 accumulators of AVX-512's 32 registers, on 8 lanes 8 or 12 of
 * AVX2's 16) */
WINO_GB(1, WB)
WINO_GB(2, WB / 2)
WINO_GB(3, WB / 2)
WINO_GB(4, WB / 4)
#undef WINO_GB

/* C (NR x NC) += A^T B, A nt x NR and B nt x NC; NR a multiple of WB, NC
 * of WB * rc. */
static void WF(gemm_tn)(const float *a, const float *b, float *c, int64_t nt, int64_t NR, int64_t NC, int rc)
{
    for (int64_t j = 0; j < NC; j += rc * WB) {
        const float *bj = b + j;
        float *cj = c + j;
        switch (rc) {
        case 1: for (int64_t i = 0; i < NR; i += WB) WF(gb1)(a + i, bj, cj + i * NC, nt, NR, NC); break;
        case 2: for (int64_t i = 0; i < NR; i += WB / 2) WF(gb2)(a + i, bj, cj + i * NC, nt, NR, NC); break;
        case 3: for (int64_t i = 0; i < NR; i += WB / 2) WF(gb3)(a + i, bj, cj + i * NC, nt, NR, NC); break;
        default: for (int64_t i = 0; i < NR; i += WB / 4) WF(gb4)(a + i, bj, cj + i * NC, nt, NR, NC);
        }
    }
}

/* Tiles per chunk of the weight gradient: V and M of a chunk (64 points x
 * TB tiles x channels) stay in L2 while the products read them. */
#define TB 32

/* Floats of one thread's scratch for the weight gradient: V (64 rows of
 * TB x CIP, padded as vrow), M (64 rows of TB x COP) and its partial sums
 * C (64 x CIP x COP) and bias (COP). */
static inline int64_t WF(bw_per)(int64_t CIP, int64_t COP)
{
    return 64 * (TB * CIP + 16) + 64 * (TB * COP + 16) + 64 * CIP * COP + COP;
}

/* Threads for the weight gradient, each with its own partial sums: no
 * more than there are chunks of tiles, nor than fit in 256 MB (64 x CI x
 * CO floats each: 4 MB at 128 x 128, so a many-core machine with wide
 * layers would otherwise hold gigabytes). */
static inline int WF(bw_threads)(int nthr, int64_t ntiles, int64_t CIP, int64_t COP)
{
    const int64_t nchunk = (ntiles + TB - 1) / TB, bytes = WF(bw_per)(CIP, COP) * 4, cap = (int64_t)256 << 20;
    int64_t n = nthr < nchunk ? nthr : nchunk;
    if (n * bytes > cap) n = cap / bytes;
    return n < 1 ? 1 : (int)n;
}

/* The weight gradient's products, every thread over its share of the
 * tiles: C[pos] += V[pos]^T M[pos] (cvec: C[pos] is CO x CI, M^T V) into
 * its own partial sums, the bias gradient beside them. See simd/wino.c.
 * Returns how many threads ran (OpenMP may give fewer than asked), i.e.
 * how many partial sums there are. */
static int WF(run_bw)(int nthr, int64_t N, int64_t CIB, int64_t COB, int64_t D, int64_t H, int64_t W,
                       const float *x, const float *dy, int cvec, float *scratch)
{
    const int64_t CIP = CIB * WB, COP = COB * WB, TD = (D + 1) / 2, TH = (H + 1) / 2, TW = (W + 1) / 2;
    const int64_t TS = TD * TH * TW, ntiles = N * TS, nchunk = (ntiles + TB - 1) / TB, S = D * H * W;
    const int64_t vr = TB * CIP + 16, mr = TB * COP + 16, per = WF(bw_per)(CIP, COP);
    /* C's columns are vectors of the operand with more blocks */
    const int64_t NR = cvec ? COP : CIP, NC = cvec ? CIP : COP, ncv = NC / WB;
    const int rc = ncv % 4 == 0 ? 4 : ncv % 3 == 0 ? 3 : ncv % 2 == 0 ? 2 : 1;
    int team = 1;
#pragma omp parallel num_threads(nthr)
    {
        if (omp_get_thread_num() == 0) team = omp_get_num_threads();
        float *V = scratch + (int64_t)omp_get_thread_num() * per, *M = V + 64 * vr, *C = M + 64 * mr;
        float *bsum = C + 64 * CIP * COP;
        memset(C, 0, (size_t)(64 * CIP * COP + COP) * 4);
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < nchunk; ch++) {
            const int64_t t0 = ch * TB, nt = t0 + TB <= ntiles ? TB : ntiles - t0;
            for (int64_t t = 0; t < nt; t++) {
                int64_t n, z, yy, xx;
                WF(tile_at)(2, t0 + t, TS, TH, TW, &n, &z, &yy, &xx);
                for (int64_t cb = 0; cb < CIB; cb++)
                    WF(in_tile)(x + (n * CIB + cb) * S * WB, D, H, W, z - 1, yy - 1, xx - 1, V + t * CIP + cb * WB,
                                vr);
                for (int64_t ob = 0; ob < COB; ob++)
                    WF(dy_tile)(dy + (n * COB + ob) * S * WB, D, H, W, z, yy, xx, M + t * COP + ob * WB, mr,
                                bsum + ob * WB);
            }
            for (int p = 0; p < 64; p++) {
                const float *vp = V + p * vr, *mp = M + p * mr;
                WF(gemm_tn)(cvec ? mp : vp, cvec ? vp : mp, C + p * CIP * COP, nt, NR, NC, rc);
            }
        }
    }
    return team;
}

/* G^T of F(2,3) on each axis of the summed products of one register row:
 * u (64 points, WB columns of C each) -> g (27 taps). */
static inline void WF(gt_xform)(const VEC *u, VEC *g)
{
    VEC s[48], r[36];
    for (int i = 0; i < 16; i++) {
        const VEC u0 = u[i * 4], u1 = u[i * 4 + 1], u2 = u[i * 4 + 2], u3 = u[i * 4 + 3], h = .5f * (u1 + u2);
        s[i * 3] = u0 + h, s[i * 3 + 1] = .5f * (u1 - u2), s[i * 3 + 2] = h + u3;
    }
    for (int a = 0; a < 4; a++)
        for (int c = 0; c < 3; c++) {
            const VEC *q = s + a * 12 + c, h = .5f * (q[3] + q[6]);
            r[(a * 3 + 0) * 3 + c] = q[0] + h, r[(a * 3 + 1) * 3 + c] = .5f * (q[3] - q[6]);
            r[(a * 3 + 2) * 3 + c] = h + q[9];
        }
    for (int i = 0; i < 9; i++) {
        const VEC h = .5f * (r[9 + i] + r[18 + i]);
        g[i] = r[i] + h, g[9 + i] = .5f * (r[9 + i] - r[18 + i]), g[18 + i] = h + r[27 + i];
    }
}

/* The nthr partial sums added in thread order (so the result depends
 * on the thread count only, like oneDNN's), transformed back by G^T and
 * added to dw[CO][CI][3][3][3]; the bias gradient to db (NULL: none). */
static void WF(bw_out)(int nthr, int64_t CIB, int64_t COB, int64_t CI, int64_t CO, int cvec, const float *scratch,
                       float *dw, float *db)
{
    const int64_t CIP = CIB * WB, COP = COB * WB, per = WF(bw_per)(CIP, COP);
    const int64_t coff = 64 * (TB * CIP + 16) + 64 * (TB * COP + 16), NR = cvec ? COP : CIP, NC = cvec ? CIP : COP;
    const int64_t R = cvec ? CO : CI, NCR = cvec ? CI : CO;
#pragma omp parallel for collapse(2) num_threads(nthr) schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t cb = 0; cb < NC / WB; cb++) {
            VEC u[64], g[27];
            for (int p = 0; p < 64; p++) {
                VEC a = {0};
                for (int th = 0; th < nthr; th++) a += WF(ld)(scratch + th * per + coff + (p * NR + r) * NC + cb * WB);
                u[p] = a;
            }
            WF(gt_xform)(u, g);
            for (int l = 0; l < WB && cb * WB + l < NCR; l++) {
                const int64_t c = cb * WB + l, co = cvec ? r : c, ci = cvec ? c : r;
                float *o = dw + (co * CI + ci) * 27;
                for (int k = 0; k < 27; k++) o[k] += g[k][l];
            }
        }
    if (db)
        for (int64_t co = 0; co < CO; co++) {
            float a = 0;
            for (int th = 0; th < nthr; th++) a += scratch[th * per + coff + 64 * CIP * COP + co];
            db[co] += a;
        }
}

#undef TB
#undef WINO_BT6
#undef WINO_AT6

#undef VEC
#undef TM
#undef WF
#undef WF1
#undef WF2
