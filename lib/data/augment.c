/* augment.c - seeded patch augmentation: flips, 90-degree rotations,
 * intensity changes, elastic warps, rotations and scaling (see
 * dlt/augment.h).
 *
 * RNG positions inside a patch's stream: 0-2 flips, 3 rotation, 4 scale,
 * 5 gamma, 16+c channel offsets, NOISE_POS + i/4 voxel noise (four normals
 * per Philox block), FIELD_POS + ... the elastic field's coarse noise,
 * AUX_POS + 0..9 the nnU-Net transforms (see dlt_aug_draw). */
#include "dlt/augment.h"
#include "dlt/core.h"
#include "dlt/normalize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NOISE_POS (1ull << 40)
#define FIELD_POS (2ull << 40)
#define AUX_POS (3ull << 40)

int dlt_aug_check(const dlt_aug_config *c, const int size[3])
{
    if (c->rot90 && size[0] != size[1])
        return dlt_err(DLT_EINVAL, "--rot90 needs a patch with X == Y (square in-plane), not %dx%d", size[0], size[1]);
    if (!(c->noise >= 0) || !(c->offset >= 0)) return dlt_err(DLT_EINVAL, "noise and offset sigmas must be >= 0");
    if (!(c->scale[0] <= c->scale[1]) || c->scale[0] < 0)
        return dlt_err(DLT_EINVAL, "scale range %g,%g: want 0 <= LO <= HI", c->scale[0], c->scale[1]);
    if (!(c->gamma[0] <= c->gamma[1]) || c->gamma[0] < 0 || (c->gamma[0] == 0 && c->gamma[1] > 0))
        return dlt_err(DLT_EINVAL, "gamma range %g,%g: want 0 < LO <= HI", c->gamma[0], c->gamma[1]);
    if (c->elastic_alpha < 0 || (c->elastic_alpha > 0 && !(c->elastic_sigma > 0)))
        return dlt_err(DLT_EINVAL, "elastic: want ALPHA >= 0 and SIGMA > 0 (voxels)");
    if (c->elastic_alpha > 64)
        return dlt_err(DLT_EINVAL, "elastic: ALPHA %g voxels is absurd (at most 64)", c->elastic_alpha);
    const double *pr[5] = {&c->rotate_p, &c->sscale_p, &c->blur_p, &c->contrast_p, &c->lowres_p};
    for (int i = 0; i < 5; i++)
        if (!(*pr[i] >= 0 && *pr[i] <= 1)) return dlt_err(DLT_EINVAL, "a probability must be in [0, 1], not %g", *pr[i]);
    if (!(c->rotate >= 0 && c->rotate <= 180)) return dlt_err(DLT_EINVAL, "rotate: want 0..180 degrees, not %g", c->rotate);
    if (c->sscale_p > 0 && !(c->sscale[0] > 0 && c->sscale[0] <= c->sscale[1] && c->sscale[1] <= 4))
        return dlt_err(DLT_EINVAL, "spatial scale range %g,%g: want 0 < LO <= HI <= 4", c->sscale[0], c->sscale[1]);
    if (c->blur_p > 0 && !(c->blur[0] > 0 && c->blur[0] <= c->blur[1] && c->blur[1] <= 16))
        return dlt_err(DLT_EINVAL, "blur range %g,%g: want 0 < LO <= HI <= 16 voxels", c->blur[0], c->blur[1]);
    if (c->contrast_p > 0 && !(c->contrast[0] > 0 && c->contrast[0] <= c->contrast[1] && c->contrast[1] <= 100))
        return dlt_err(DLT_EINVAL, "contrast range %g,%g: want 0 < LO <= HI", c->contrast[0], c->contrast[1]);
    if (c->lowres_p > 0 && !(c->lowres[0] > 0 && c->lowres[0] <= c->lowres[1] && c->lowres[1] <= 1))
        return dlt_err(DLT_EINVAL, "low-resolution range %g,%g: want 0 < LO <= HI <= 1", c->lowres[0], c->lowres[1]);
    return 0;
}

static int range_on(const double r[2]) { return !(r[0] == r[1] && (r[0] == 0 || r[0] == 1)); }

void dlt_aug_draw(const dlt_aug_config *c, uint64_t seed, uint64_t stream, dlt_aug_params *p)
{
    memset(p, 0, sizeof *p);
    p->seed = seed;
    p->stream = stream;
    for (int a = 0; a < 3; a++) p->flip[a] = c->flip[a] && dlt_rng_uniform_at(seed, stream, a) < 0.5f;
    if (c->rot90) p->rot = (int)(dlt_rng_uniform_at(seed, stream, 3) * 4.0f) & 3;
    p->scale = 1.0f;
    if (range_on(c->scale))
        p->scale = (float)(c->scale[0] + (c->scale[1] - c->scale[0]) * dlt_rng_uniform_at(seed, stream, 4));
    p->gamma = 1.0f;
    if (range_on(c->gamma))
        p->gamma = (float)(c->gamma[0] + (c->gamma[1] - c->gamma[0]) * dlt_rng_uniform_at(seed, stream, 5));
    p->noise = (float)c->noise;
    p->offset_sigma = (float)c->offset;
    p->elastic_alpha = (float)c->elastic_alpha;
    p->elastic_sigma = (float)c->elastic_sigma;
    /* each transform: a coin (probability) and its value, always drawn at
     * their own positions, so turning one on changes no other */
    p->sscale = 1.0f, p->contrast = 1.0f, p->lowres = 1.0f;
    if (c->rotate > 0 && dlt_rng_uniform_at(seed, stream, AUX_POS + 3) < c->rotate_p)
        for (int a = 0; a < 3; a++)
            p->angle[a] = (float)((2.0 * dlt_rng_uniform_at(seed, stream, AUX_POS + a) - 1.0) * c->rotate * M_PI / 180.0);
    if (c->sscale_p > 0 && dlt_rng_uniform_at(seed, stream, AUX_POS + 5) < c->sscale_p)
        p->sscale = (float)(c->sscale[0] + (c->sscale[1] - c->sscale[0]) * dlt_rng_uniform_at(seed, stream, AUX_POS + 4));
    if (c->blur_p > 0 && dlt_rng_uniform_at(seed, stream, AUX_POS + 7) < c->blur_p)
        p->blur = (float)(c->blur[0] + (c->blur[1] - c->blur[0]) * dlt_rng_uniform_at(seed, stream, AUX_POS + 6));
    if (c->contrast_p > 0 && dlt_rng_uniform_at(seed, stream, AUX_POS + 9) < c->contrast_p)
        p->contrast =
            (float)(c->contrast[0] + (c->contrast[1] - c->contrast[0]) * dlt_rng_uniform_at(seed, stream, AUX_POS + 8));
    if (c->lowres_p > 0 && dlt_rng_uniform_at(seed, stream, AUX_POS + 11) < c->lowres_p)
        p->lowres = (float)(c->lowres[0] + (c->lowres[1] - c->lowres[0]) * dlt_rng_uniform_at(seed, stream, AUX_POS + 10));
}

/* a rotation by an angle or a spatial scaling (an affine map of the grid) */
static int affine_on(const dlt_aug_params *p)
{
    return p->angle[0] != 0 || p->angle[1] != 0 || p->angle[2] != 0 || (p->sscale > 0 && p->sscale != 1.0f);
}

int dlt_aug_has_field(const dlt_aug_params *p) { return p->elastic_alpha > 0 || affine_on(p); }

int dlt_aug_is_geometric(const dlt_aug_params *p)
{
    return p->flip[0] || p->flip[1] || p->flip[2] || p->rot || dlt_aug_has_field(p);
}

void dlt_aug_work_free(dlt_aug_work *w)
{
    dlt_free(w->f);
    dlt_free(w->u);
    dlt_free(w->field);
    memset(w, 0, sizeof *w);
}

static int grow(void **buf, int64_t *cap, int64_t n, int64_t size, const char *what)
{
    if (n <= *cap) return 0;
    dlt_free(*buf);
    *cap = 0;
    if (!(*buf = dlt_alloc(n, size, what))) return DLT_ENOMEM;
    *cap = n;
    return 0;
}

/* ---- flips and rotations: one gather per row ----
 * Output (x,y,z) reads input (x',y',z'): the rotation by k quarter turns
 * gives (x',y'), then flipped axes are mirrored. Along an output row x' and
 * y' move linearly, so a row is a strided copy from a start index. */
typedef struct {
    int64_t x0, xx, xy, y0, yx, yy; /* x' = x0 + x*xx + y*xy; y' = y0 + x*yx + y*yy */
} rotmap;

static rotmap make_map(const dlt_aug_params *p, int X, int Y)
{
    int64_t n = X - 1; /* rotations only happen when X == Y */
    rotmap m;
    switch (p->rot) {
    default:
    case 0: m = (rotmap){0, 1, 0, 0, 0, 1}; break;
    case 1: m = (rotmap){0, 0, 1, n, -1, 0}; break;
    case 2: m = (rotmap){n, -1, 0, n, 0, -1}; break;
    case 3: m = (rotmap){n, 0, -1, 0, 1, 0}; break;
    }
    if (p->flip[0]) m = (rotmap){X - 1 - m.x0, -m.xx, -m.xy, m.y0, m.yx, m.yy};
    if (p->flip[1]) m = (rotmap){m.x0, m.xx, m.xy, Y - 1 - m.y0, -m.yx, -m.yy};
    return m;
}

#define GATHER(T, dst, src)                                                                          \
    for (int z = 0; z < Z; z++) {                                                                  \
        int64_t zs = (int64_t)(p->flip[2] ? Z - 1 - z : z) * X * Y;                                \
        for (int y = 0; y < Y; y++) {                                                              \
            T *o = (dst) + ((int64_t)z * Y + y) * X;                                               \
            const T *s = (src) + zs + (m.y0 + (int64_t)y * m.yy) * X + m.x0 + (int64_t)y * m.xy;   \
            if (step == 1) memcpy(o, s, (size_t)X * sizeof(T));                                    \
            else for (int x = 0; x < X; x++) o[x] = s[x * step];                                   \
        }                                                                                          \
    }

int dlt_aug_flip_rotate(const dlt_aug_params *p, float *image, int64_t channels, uint16_t *label,
                        const int size[3], dlt_aug_work *w)
{
    if (!(p->flip[0] || p->flip[1] || p->flip[2] || p->rot)) return 0;
    int X = size[0], Y = size[1], Z = size[2];
    int64_t vox = (int64_t)X * Y * Z;
    rotmap m = make_map(p, X, Y);
    int64_t step = m.xx + m.yx * X;
    if (grow((void **)&w->f, &w->fcap, vox, sizeof(float), "augmentation scratch")) return DLT_ENOMEM;
    for (int64_t c = 0; c < channels; c++) {
        float *img = image + c * vox;
        memcpy(w->f, img, (size_t)vox * sizeof(float));
        GATHER(float, img, w->f)
    }
    if (label) {
        if (grow((void **)&w->u, &w->ucap, vox, sizeof(uint16_t), "augmentation scratch")) return DLT_ENOMEM;
        memcpy(w->u, label, (size_t)vox * sizeof(uint16_t));
        GATHER(uint16_t, label, w->u)
    }
    return 0;
}

/* ---- intensity ---- */

/* Separable Gaussian blur of one channel [Z][Y][X] in place, sigma in
 * voxels, truncated at 3 sigma, the border voxel repeated outside. */
static int blur_channel(float *img, const int size[3], float sigma)
{
    int r = (int)ceilf(3 * sigma), n = size[0] > size[1] ? size[0] : size[1];
    if (size[2] > n) n = size[2];
    float *k = malloc(sizeof(float) * (size_t)(2 * r + 1)), *line = malloc(sizeof(float) * (size_t)n);
    if (!k || !line) {
        free(k);
        free(line);
        return dlt_err(DLT_ENOMEM, "blur: out of memory");
    }
    float sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= sum;
    const int64_t stride[3] = {1, size[0], (int64_t)size[0] * size[1]};
    for (int a = 0; a < 3; a++) {
        int len = size[a];
        int64_t lines = (int64_t)size[0] * size[1] * size[2] / len;
        for (int64_t l = 0; l < lines; l++) {
            /* the first voxel of line l along axis a */
            int64_t o = a == 0 ? l * len : a == 1 ? (l / size[0]) * size[0] * size[1] + l % size[0] : l;
            for (int i = 0; i < len; i++) line[i] = img[o + i * stride[a]];
            for (int i = 0; i < len; i++) {
                float acc = 0;
                for (int j = -r; j <= r; j++) {
                    int q = i + j < 0 ? 0 : i + j >= len ? len - 1 : i + j;
                    acc += k[j + r] * line[q];
                }
                img[o + i * stride[a]] = acc;
            }
        }
    }
    free(k);
    free(line);
    return 0;
}

/* Simulated low resolution of one channel in place (nnU-Net): down to
 * round(n * f) voxels per axis by nearest neighbour, back up linearly. */
static int low_resolution(float *img, const int size[3], float f)
{
    int64_t n[3] = {size[0], size[1], size[2]}, m[3];
    double sn[3], sh[3], su[3], shu[3];
    for (int a = 0; a < 3; a++) {
        m[a] = (int64_t)lround(n[a] * (double)f);
        if (m[a] < 1) m[a] = 1;
        /* the same extent: small voxel i's centre lies at big index (i + 0.5) * n/m - 0.5 */
        sn[a] = (double)n[a] / (double)m[a], sh[a] = 0.5 * sn[a] - 0.5;
        su[a] = (double)m[a] / (double)n[a], shu[a] = 0.5 * su[a] - 0.5;
    }
    float *small = dlt_alloc(m[0] * m[1] * m[2], sizeof(float), "low resolution");
    if (!small) return DLT_ENOMEM;
    int rc = dlt_resample_f32(img, n, small, m, sn, sh, DLT_INTERP_NEAREST);
    if (!rc) rc = dlt_resample_f32(small, m, img, n, su, shu, DLT_INTERP_LINEAR);
    dlt_free(small);
    return rc;
}

int dlt_aug_intensity(const dlt_aug_params *p, float *image, int64_t channels, const int size[3])
{
    int64_t vox = (int64_t)size[0] * size[1] * size[2];
    for (int64_t c = 0; c < channels; c++) {
        float *img = image + c * vox;
        if (p->blur > 0) {
            int rc = blur_channel(img, size, p->blur);
            if (rc) return rc;
        }
        if (p->gamma != 1.0f) {
            float lo = img[0], hi = img[0];
            for (int64_t i = 1; i < vox; i++) {
                if (img[i] < lo) lo = img[i];
                if (img[i] > hi) hi = img[i];
            }
            float r = hi - lo;
            if (r > 0)
                for (int64_t i = 0; i < vox; i++) img[i] = lo + r * powf((img[i] - lo) / r, p->gamma);
        }
        if (p->scale != 1.0f)
            for (int64_t i = 0; i < vox; i++) img[i] *= p->scale;
        if (p->contrast > 0 && p->contrast != 1.0f) {
            double m = 0;
            float lo = img[0], hi = img[0];
            for (int64_t i = 0; i < vox; i++) {
                m += img[i];
                lo = img[i] < lo ? img[i] : lo;
                hi = img[i] > hi ? img[i] : hi;
            }
            float mean = (float)(m / (double)vox);
            for (int64_t i = 0; i < vox; i++) {
                float v = (img[i] - mean) * p->contrast + mean;
                img[i] = v < lo ? lo : v > hi ? hi : v;
            }
        }
        if (p->lowres > 0 && p->lowres < 1.0f) {
            int rc = low_resolution(img, size, p->lowres);
            if (rc) return rc;
        }
        float add = p->offset_sigma > 0 ? p->offset_sigma * dlt_rng_normal_at(p->seed, p->stream, 16 + (uint64_t)c) : 0;
        if (add != 0)
            for (int64_t i = 0; i < vox; i++) img[i] += add;
    }
    if (p->noise > 0) {
        int64_t n = channels * vox;
        for (int64_t i = 0; i < n; i += 4) {
            uint32_t o[4];
            dlt_philox4x32(p->seed, p->stream, NOISE_POS + (uint64_t)i / 4, o);
            float z[4];
            for (int h = 0; h < 2; h++) {
                float u1 = ((o[2 * h] >> 8) + 1.0f) * (1.0f / 16777217.0f);
                float u2 = (o[2 * h + 1] >> 8) * (float)(2.0 * M_PI / 16777216.0);
                float r = sqrtf(-2.0f * logf(u1));
                z[2 * h] = r * cosf(u2);
                z[2 * h + 1] = r * sinf(u2);
            }
            for (int j = 0; j < 4 && i + j < n; j++) image[i + j] += p->noise * z[j];
        }
    }
    return 0;
}

/* ---- elastic ---- */

/* Separable valid convolution along one axis of a [n2][n1][n0] grid
 * (axis 0 fastest) with kernel k[2R+1]: the axis shrinks by 2R. */
static void conv_axis(const float *in, float *out, const int64_t n[3], int axis, const double *k, int R)
{
    int64_t m[3] = {n[0], n[1], n[2]};
    m[axis] -= 2 * R;
    int64_t st = axis == 0 ? 1 : axis == 1 ? n[0] : n[0] * n[1];
    for (int64_t z = 0; z < m[2]; z++)
        for (int64_t y = 0; y < m[1]; y++)
            for (int64_t x = 0; x < m[0]; x++) {
                const float *s = in + (z * n[1] + y) * n[0] + x;
                double acc = 0;
                for (int t = 0; t <= 2 * R; t++) acc += k[t] * s[t * st];
                out[(z * m[1] + y) * m[0] + x] = (float)acc;
            }
}

int dlt_aug_elastic_field(double alpha, double sigma, const int size[3], uint64_t seed, uint64_t stream,
                          float *disp, float *maxabs)
{
    if (!(sigma > 0) || !(alpha >= 0)) return dlt_err(DLT_EINVAL, "elastic field: need alpha >= 0, sigma > 0");
    double s = sigma >= 2 ? sigma / 2 : 1; /* coarse spacing in voxels */
    double sc = sigma / s;                 /* kernel width on the coarse grid */
    int R = (int)ceil(3 * sc);
    double k[2 * 64 + 1], sum = 0, sq = 0;
    if (R > 64) R = 64;
    for (int t = -R; t <= R; t++) sum += k[t + R] = exp(-0.5 * t * t / (sc * sc));
    for (int t = 0; t <= 2 * R; t++) {
        k[t] /= sum;
        sq += k[t] * k[t];
    }
    /* variance of smoothed unit white noise is (sum k^2)^3 */
    double gain = alpha / pow(sq, 1.5);

    int64_t nc[3], ne[3];
    for (int a = 0; a < 3; a++) {
        nc[a] = (int64_t)ceil((size[a] - 1) / s) + 2; /* +1 node so i0+1 always exists */
        ne[a] = nc[a] + 2 * R;
    }
    int64_t ncoarse = nc[0] * nc[1] * nc[2], next = ne[0] * ne[1] * ne[2];
    float *a = dlt_alloc(next, sizeof(float), "elastic field"), *b = dlt_alloc(next, sizeof(float), "elastic field");
    float *row = dlt_alloc(nc[0], sizeof(float), "elastic field");
    if (!a || !b || !row) {
        dlt_free(a);
        dlt_free(b);
        dlt_free(row);
        return DLT_ENOMEM;
    }
    int X = size[0], Y = size[1], Z = size[2];
    int64_t vox = (int64_t)X * Y * Z;
    float mx = 0;
    /* x's coarse cell and weight, the same for every row */
    int *xi = malloc(sizeof(int) * (size_t)X);
    float *xw = malloc(sizeof(float) * (size_t)X);
    if (!xi || !xw) {
        free(xi);
        free(xw);
        dlt_free(a);
        dlt_free(b);
        dlt_free(row);
        return dlt_err(DLT_ENOMEM, "elastic field: out of memory");
    }
    for (int x = 0; x < X; x++) {
        double ux = x / s;
        xi[x] = (int)ux;
        xw[x] = (float)(ux - xi[x]);
    }
    for (int comp = 0; comp < 3; comp++) {
        uint64_t base = FIELD_POS + (uint64_t)comp * (uint64_t)next; /* uses next/2 positions */
        for (int64_t i = 0; i < next; i += 2) {
            uint32_t o[4];
            dlt_philox4x32(seed, stream, base + (uint64_t)i / 2, o);
            double u1 = ((o[0] >> 8) + 1.0) / 16777217.0, u2 = (o[1] >> 8) * (2.0 * M_PI / 16777216.0);
            double r = sqrt(-2.0 * log(u1));
            a[i] = (float)(r * cos(u2));
            if (i + 1 < next) a[i + 1] = (float)(r * sin(u2));
        }
        int64_t n0[3] = {ne[0], ne[1], ne[2]};
        conv_axis(a, b, n0, 0, k, R);
        int64_t n1[3] = {nc[0], ne[1], ne[2]};
        conv_axis(b, a, n1, 1, k, R);
        int64_t n2[3] = {nc[0], nc[1], ne[2]};
        conv_axis(a, b, n2, 2, k, R);
        for (int64_t i = 0; i < ncoarse; i++) b[i] *= (float)gain;
        /* trilinear to the voxels: bilinear in (y,z) per coarse row, then linear in x */
        float *d = disp + comp * vox;
        for (int z = 0; z < Z; z++) {
            double uz = z / s;
            int64_t iz = (int64_t)uz;
            float wz = (float)(uz - iz);
            for (int y = 0; y < Y; y++) {
                double uy = y / s;
                int64_t iy = (int64_t)uy;
                float wy = (float)(uy - iy);
                const float *r00 = b + (iz * nc[1] + iy) * nc[0], *r01 = r00 + nc[0];
                const float *r10 = r00 + nc[0] * nc[1], *r11 = r10 + nc[0];
                for (int64_t i = 0; i < nc[0]; i++)
                    row[i] = (1 - wz) * ((1 - wy) * r00[i] + wy * r01[i]) + wz * ((1 - wy) * r10[i] + wy * r11[i]);
                float *o = d + ((int64_t)z * Y + y) * X;
                for (int x = 0; x < X; x++) {
                    float v = (1 - xw[x]) * row[xi[x]] + xw[x] * row[xi[x] + 1];
                    o[x] = v;
                    float av = fabsf(v);
                    mx = av > mx ? av : mx;
                }
            }
        }
    }
    free(xi);
    free(xw);
    dlt_free(a);
    dlt_free(b);
    dlt_free(row);
    if (maxabs) *maxabs = mx;
    return 0;
}

static inline void axis_weights(float pos, int n, int *i0, int *i1, float *w)
{
    if (pos <= 0) pos = 0;
    if (pos >= n - 1) pos = (float)(n - 1);
    int i = (int)pos;
    if (i > n - 2) i = n - 2 < 0 ? 0 : n - 2;
    *i0 = i;
    *i1 = i + 1 < n ? i + 1 : i;
    *w = pos - i;
}

void dlt_aug_warp(const float *src, const uint16_t *srclab, int64_t channels, const int srcsize[3],
                  const int origin[3], const float *disp, float *dst, uint16_t *dstlab, const int size[3])
{
    int X = size[0], Y = size[1], Z = size[2];
    int SX = srcsize[0], SY = srcsize[1], SZ = srcsize[2];
    int64_t vox = (int64_t)X * Y * Z, svox = (int64_t)SX * SY * SZ;
    const float *dx = disp, *dy = disp + vox, *dz = disp + 2 * vox;
    for (int z = 0; z < Z; z++)
        for (int y = 0; y < Y; y++) {
            int64_t r = ((int64_t)z * Y + y) * X;
            for (int x = 0; x < X; x++) {
                int64_t i = r + x;
                float px = x + origin[0] + dx[i], py = y + origin[1] + dy[i], pz = z + origin[2] + dz[i];
                int x0, x1, y0, y1, z0, z1;
                float wx, wy, wz;
                if (px >= 0 && py >= 0 && pz >= 0 && px < SX - 1 && py < SY - 1 && pz < SZ - 1) {
                    /* inside the box (always, when the caller's margin covers the field) */
                    x0 = (int)px, y0 = (int)py, z0 = (int)pz;
                    x1 = x0 + 1, y1 = y0 + 1, z1 = z0 + 1;
                    wx = px - x0, wy = py - y0, wz = pz - z0;
                } else {
                    axis_weights(px, SX, &x0, &x1, &wx);
                    axis_weights(py, SY, &y0, &y1, &wy);
                    axis_weights(pz, SZ, &z0, &z1, &wz);
                }
                int64_t o00 = ((int64_t)z0 * SY + y0) * SX, o01 = ((int64_t)z0 * SY + y1) * SX;
                int64_t o10 = ((int64_t)z1 * SY + y0) * SX, o11 = ((int64_t)z1 * SY + y1) * SX;
                for (int64_t c = 0; c < channels; c++) {
                    const float *s = src + c * svox;
                    float a = (1 - wx) * s[o00 + x0] + wx * s[o00 + x1];
                    float b = (1 - wx) * s[o01 + x0] + wx * s[o01 + x1];
                    float e = (1 - wx) * s[o10 + x0] + wx * s[o10 + x1];
                    float f = (1 - wx) * s[o11 + x0] + wx * s[o11 + x1];
                    dst[c * vox + i] = (1 - wz) * ((1 - wy) * a + wy * b) + wz * ((1 - wy) * e + wy * f);
                }
                if (dstlab) {
                    int nx = wx < 0.5f ? x0 : x1, ny = wy < 0.5f ? y0 : y1, nz = wz < 0.5f ? z0 : z1;
                    dstlab[i] = srclab[((int64_t)nz * SY + ny) * SX + nx];
                }
            }
        }
}

int dlt_aug_spatial_field(const dlt_aug_params *p, const int size[3], float *disp, float *maxabs)
{
    int X = size[0], Y = size[1], Z = size[2];
    int64_t vox = (int64_t)X * Y * Z;
    int rc;
    if (p->elastic_alpha > 0) {
        if ((rc = dlt_aug_elastic_field(p->elastic_alpha, p->elastic_sigma, size, p->seed, p->stream, disp, NULL)))
            return rc;
    } else
        memset(disp, 0, sizeof(float) * (size_t)(3 * vox));
    if (affine_on(p)) {
        double cx = cos(p->angle[0]), sx = sin(p->angle[0]), cy = cos(p->angle[1]), sy = sin(p->angle[1]);
        double cz = cos(p->angle[2]), sz = sin(p->angle[2]), s = p->sscale > 0 ? p->sscale : 1;
        /* A = s Rz Ry Rx - I */
        double A[3][3] = {{cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx},
                          {sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx},
                          {-sy, cy * sx, cy * cx}};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) A[i][j] = s * A[i][j] - (i == j);
        double c[3] = {(X - 1) / 2.0, (Y - 1) / 2.0, (Z - 1) / 2.0};
        for (int z = 0; z < Z; z++)
            for (int y = 0; y < Y; y++)
                for (int x = 0; x < X; x++) {
                    int64_t i = ((int64_t)z * Y + y) * X + x;
                    double d[3] = {x - c[0], y - c[1], z - c[2]};
                    for (int k = 0; k < 3; k++) disp[k * vox + i] += (float)(A[k][0] * d[0] + A[k][1] * d[1] + A[k][2] * d[2]);
                }
    }
    if (maxabs) {
        float mx = 0;
        for (int64_t i = 0; i < 3 * vox; i++) mx = fabsf(disp[i]) > mx ? fabsf(disp[i]) : mx;
        *maxabs = mx;
    }
    return 0;
}

int dlt_aug_elastic_patch(const dlt_aug_params *p, float *image, int64_t channels, uint16_t *label,
                          const int size[3], dlt_aug_work *w)
{
    if (!dlt_aug_has_field(p)) return 0;
    int64_t vox = (int64_t)size[0] * size[1] * size[2];
    int rc;
    if ((rc = grow((void **)&w->field, &w->fieldcap, 3 * vox, sizeof(float), "elastic field"))) return rc;
    if ((rc = dlt_aug_spatial_field(p, size, w->field, NULL))) return rc;
    if (grow((void **)&w->f, &w->fcap, channels * vox, sizeof(float), "augmentation scratch")) return DLT_ENOMEM;
    if (label && grow((void **)&w->u, &w->ucap, vox, sizeof(uint16_t), "augmentation scratch")) return DLT_ENOMEM;
    memcpy(w->f, image, (size_t)(channels * vox) * sizeof(float));
    if (label) memcpy(w->u, label, (size_t)vox * sizeof(uint16_t));
    static const int zero[3] = {0, 0, 0};
    dlt_aug_warp(w->f, label ? w->u : NULL, channels, size, zero, w->field, image, label, size);
    return 0;
}
