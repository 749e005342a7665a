/* phantom.c - synthetic abdominal CT with the 13 BTCV organs (dlt/phantom.h).
 *
 * Anatomy lives in "anatomical" millimetres, RAS (x to the patient's right,
 * y anterior, z superior), for an average adult abdomen 280 x 210 mm wide
 * and 192 mm tall. A voxel's world position goes through the subject's
 * transform (field-of-view scale, body size, shift, smooth random
 * deformation) into that space, where the organs are fixed shapes, each
 * itself randomly moved, resized and turned per subject. Organs are tested
 * in priority order (vessels before the organs they cross, small before big),
 * the first that contains the point wins.
 *
 * All random draws for a subject come from one Philox stream (seed, subject)
 * and happen before the voxel loop; image noise is the pure function
 * dlt_rng_normal_at(seed, stream, voxel), so the OpenMP loop gives the same
 * bytes for any thread count. */
#include "dlt/phantom.h"

#include "dlt/core.h"

#include <math.h>
#include <string.h>

static const char *const NAMES[DLT_PHANTOM_NCLASSES] = {
    "background", "spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach",
    "aorta", "inferior vena cava", "portal and splenic vein", "pancreas", "right adrenal gland", "left adrenal gland",
};

enum {
    SPLEEN = 1, KIDNEY_R, KIDNEY_L, GALLBLADDER, ESOPHAGUS, LIVER, STOMACH,
    AORTA, IVC, PORTAL, PANCREAS, ADRENAL_R, ADRENAL_L,
};

const char *dlt_phantom_class_name(int id) { return id >= 0 && id < DLT_PHANTOM_NCLASSES ? NAMES[id] : NULL; }

void dlt_phantom_defaults(dlt_phantom_opts *o)
{
    o->nx = 96;
    o->ny = 96;
    o->nz = 64;
    o->spacing[0] = o->spacing[1] = o->spacing[2] = 3.0;
    o->noise = 20;
    o->seed = 1;
}

/* ---- shapes ---- */

enum { SQ, TUBE };
enum { MAXNODE = 6 };

typedef struct shape {
    int kind, label;
    double c[3], R[3][3], ia[3], e; /* SQ: q = R^T (p - c) / a, inside when sum |q|^e < 1 */
    int n;                          /* TUBE: capsules between n nodes, radius linear along each */
    double p[MAXNODE][3], r[MAXNODE];
    double lo[3], hi[3];            /* bounding box */
} shape;

static double N(dlt_rng *r) { return dlt_rng_normal(r); }

/* Clamp a normal draw to +-2.5 sd so that no subject loses an organ. */
static double Nc(dlt_rng *r)
{
    double x = N(r);
    return x > 2.5 ? 2.5 : x < -2.5 ? -2.5 : x;
}

static void rotation(double R[3][3], double ax, double ay, double az)
{
    double cx = cos(ax), sx = sin(ax), cy = cos(ay), sy = sin(ay), cz = cos(az), sz = sin(az);
    /* R = Rz * Ry * Rx */
    R[0][0] = cz * cy;
    R[0][1] = cz * sy * sx - sz * cx;
    R[0][2] = cz * sy * cx + sz * sx;
    R[1][0] = sz * cy;
    R[1][1] = sz * sy * sx + cz * cx;
    R[1][2] = sz * sy * cx - cz * sx;
    R[2][0] = -sy;
    R[2][1] = cy * sx;
    R[2][2] = cy * cx;
}

/* An ellipsoid or superquadric: centre c, semi-axes a (mm), rotation in
 * degrees about x, y, z, exponent e; varied per subject. Semi-axes never
 * fall below `thin` (to keep small organs a voxel and a half thick). */
static void sq_make(shape *s, dlt_rng *r, int label, double cx, double cy, double cz, double ax, double ay, double az,
                    double rx, double ry, double rz, double e, double thin)
{
    memset(s, 0, sizeof *s);
    s->kind = SQ;
    s->label = label;
    s->e = e;
    double c[3] = {cx, cy, cz}, a[3] = {ax, ay, az};
    for (int i = 0; i < 3; i++) {
        s->c[i] = c[i] + 5.0 * Nc(r);
        double ai = a[i] * exp(0.08 * Nc(r));
        if (ai < thin) ai = thin;
        s->ia[i] = 1.0 / ai;
        a[i] = ai;
    }
    const double d = M_PI / 180;
    rotation(s->R, (rx + 6 * Nc(r)) * d, (ry + 6 * Nc(r)) * d, (rz + 6 * Nc(r)) * d);
    for (int i = 0; i < 3; i++) {
        double h = 0;
        for (int j = 0; j < 3; j++) h += fabs(s->R[i][j]) * a[j];
        s->lo[i] = s->c[i] - h;
        s->hi[i] = s->c[i] + h;
    }
}

/* A tube through n nodes {x, y, z, radius}, nodes moved a little per subject. */
static void tube_make(shape *s, dlt_rng *r, int label, int n, const double (*node)[4], double thin)
{
    memset(s, 0, sizeof *s);
    s->kind = TUBE;
    s->label = label;
    s->n = n;
    double rs = exp(0.1 * Nc(r));
    for (int i = 0; i < 3; i++) {
        s->lo[i] = 1e30;
        s->hi[i] = -1e30;
    }
    for (int k = 0; k < n; k++) {
        s->r[k] = node[k][3] * rs < thin ? thin : node[k][3] * rs;
        for (int i = 0; i < 3; i++) {
            s->p[k][i] = node[k][i] + 4.0 * Nc(r);
            if (s->p[k][i] - s->r[k] < s->lo[i]) s->lo[i] = s->p[k][i] - s->r[k];
            if (s->p[k][i] + s->r[k] > s->hi[i]) s->hi[i] = s->p[k][i] + s->r[k];
        }
    }
}

/* Normalised "radius squared": < 1 inside, 0 at the centre (or axis);
 * a large value when outside the bounding box. */
static double shape_f(const shape *s, const double p[3])
{
    for (int i = 0; i < 3; i++)
        if (p[i] < s->lo[i] || p[i] > s->hi[i]) return 1e30;
    if (s->kind == SQ) {
        double d[3] = {p[0] - s->c[0], p[1] - s->c[1], p[2] - s->c[2]}, f = 0;
        for (int j = 0; j < 3; j++) {
            double q = (s->R[0][j] * d[0] + s->R[1][j] * d[1] + s->R[2][j] * d[2]) * s->ia[j];
            f += s->e == 2 ? q * q : pow(fabs(q), s->e);
        }
        return s->e == 2 ? f : pow(f, 2 / s->e);
    }
    double best = 1e30;
    for (int k = 0; k + 1 < s->n; k++) {
        const double *a = s->p[k], *b = s->p[k + 1];
        double ab[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]}, ap[3] = {p[0] - a[0], p[1] - a[1], p[2] - a[2]};
        double L = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
        double t = L > 0 ? (ab[0] * ap[0] + ab[1] * ap[1] + ab[2] * ap[2]) / L : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        double q[3] = {ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]};
        double rad = s->r[k] + t * (s->r[k + 1] - s->r[k]);
        double f = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2]) / (rad * rad);
        if (f < best) best = f;
    }
    return best;
}

/* ---- smooth noise: normals on a coarse grid, trilinear in between ---- */

typedef struct grid {
    int n[3];
    double lo[3], step;
    float *v;
} grid;

static int grid_make(grid *g, dlt_rng *r, double step)
{
    const double lo[3] = {-180, -180, -140}, hi[3] = {180, 180, 140};
    g->step = step;
    int64_t total = 1;
    for (int i = 0; i < 3; i++) {
        g->lo[i] = lo[i];
        g->n[i] = (int)ceil((hi[i] - lo[i]) / step) + 2;
        total *= g->n[i];
    }
    g->v = dlt_alloc(total, sizeof(float), "phantom noise grid");
    if (!g->v) return DLT_ENOMEM;
    for (int64_t i = 0; i < total; i++) g->v[i] = (float)N(r);
    return 0;
}

static double grid_at(const grid *g, const double p[3])
{
    int i0[3];
    double w[3];
    for (int a = 0; a < 3; a++) {
        double u = (p[a] - g->lo[a]) / g->step;
        if (u < 0) u = 0;
        if (u > g->n[a] - 1.001) u = g->n[a] - 1.001;
        i0[a] = (int)u;
        w[a] = u - i0[a];
    }
    double s = 0;
    for (int c = 0; c < 8; c++) {
        int dx = c & 1, dy = (c >> 1) & 1, dz = (c >> 2) & 1;
        double wt = (dx ? w[0] : 1 - w[0]) * (dy ? w[1] : 1 - w[1]) * (dz ? w[2] : 1 - w[2]);
        s += wt * g->v[((int64_t)(i0[2] + dz) * g->n[1] + i0[1] + dy) * g->n[0] + i0[0] + dx];
    }
    return s;
}

/* ---- a subject ---- */

enum { NWAVE = 3, MAXSHAPE = 16 };

typedef struct subject {
    double fov_scale;         /* anatomical mm per world mm */
    double body[3];           /* body size factors (x, y, z) */
    double shift[3];
    double wk[3][NWAVE][3], wph[3][NWAVE], wamp[3][NWAVE]; /* deformation waves per axis */
    double fat, wall;         /* subcutaneous fat and muscle wall thickness, mm */
    int nsh;
    shape sh[MAXSHAPE];       /* in priority order */
    double hu[DLT_PHANTOM_NCLASSES], tex[DLT_PHANTOM_NCLASSES];
    int eso_air;
    grid texture, bowel;
} subject;

static const double A0 = 140, B0 = 105; /* body semi-axes, mm */

static int subject_make(subject *S, const dlt_phantom_opts *o, dlt_rng *r)
{
    memset(S, 0, sizeof *S);
    double fov[3] = {o->nx * o->spacing[0], o->ny * o->spacing[1], o->nz * o->spacing[2]};
    double s = fov[0] / 288;
    if (fov[1] / 288 < s) s = fov[1] / 288;
    if (fov[2] / 192 < s) s = fov[2] / 192;
    S->fov_scale = 1 / s;
    double vmax = o->spacing[0] > o->spacing[1] ? o->spacing[0] : o->spacing[1];
    if (o->spacing[2] > vmax) vmax = o->spacing[2];
    double thin = 0.75 * vmax * S->fov_scale; /* half a thickness: 1.5 voxels in all */

    S->body[0] = exp(0.06 * Nc(r));
    S->body[1] = exp(0.07 * Nc(r));
    S->body[2] = exp(0.04 * Nc(r));
    for (int i = 0; i < 3; i++) S->shift[i] = 4 * Nc(r);
    for (int a = 0; a < 3; a++)
        for (int m = 0; m < NWAVE; m++) {
            double lambda = 180 + 220 * dlt_rng_uniform(r), k = 2 * M_PI / lambda;
            double d[3] = {N(r), N(r), N(r)}, n = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) + 1e-9;
            for (int i = 0; i < 3; i++) S->wk[a][m][i] = k * d[i] / n;
            S->wph[a][m] = 2 * M_PI * dlt_rng_uniform(r);
            S->wamp[a][m] = 4.0 * Nc(r);
        }
    S->fat = 12 + 12 * dlt_rng_uniform(r);
    S->wall = 10 + 5 * dlt_rng_uniform(r);

    shape *sh = S->sh;
    int n = 0;
    /* priority order: vessels, then small organs, then large ones */
    static const double aorta[4][4] = {{-16, -34, -130, 11}, {-15, -33, -20, 11.5}, {-13, -30, 60, 12}, {-10, -28, 130, 12.5}};
    tube_make(&sh[n++], r, AORTA, 4, aorta, thin);
    static const double ivc[4][4] = {{20, -30, -130, 11}, {23, -28, -10, 12}, {25, -20, 45, 12.5}, {22, -10, 80, 11}};
    tube_make(&sh[n++], r, IVC, 4, ivc, thin);
    static const double portal[5][4] = {{-80, -28, 42, 4.5}, {-48, -22, 28, 5}, {-8, -10, 20, 6}, {25, -2, 28, 7}, {45, 4, 40, 6}};
    tube_make(&sh[n++], r, PORTAL, 5, portal, thin);
    sq_make(&sh[n++], r, ADRENAL_R, 40, -42, 44, 3.5, 13, 17, 0, 0, 25, 2, thin);
    sq_make(&sh[n++], r, ADRENAL_L, -38, -36, 32, 3.5, 13, 16, 0, 0, -25, 2, thin);
    sq_make(&sh[n++], r, GALLBLADDER, 42, 42, 8, 14, 15, 30, 30, 0, 15, 2, thin);
    sq_make(&sh[n++], r, KIDNEY_R, 68, -46, -18, 23, 27, 50, 0, 10, 20, 2, thin);
    sq_make(&sh[n++], r, KIDNEY_L, -68, -44, -2, 23, 27, 50, 0, -10, -20, 2, thin);
    static const double eso[4][4] = {{-6, -36, 130, 8}, {-10, -32, 85, 8}, {-22, -12, 62, 8.5}, {-35, 8, 52, 9}};
    tube_make(&sh[n++], r, ESOPHAGUS, 4, eso, thin);
    static const double pancreas[4][4] = {{30, 0, 2, 15}, {8, 8, 10, 12}, {-25, 2, 20, 10}, {-62, -14, 32, 8}};
    tube_make(&sh[n++], r, PANCREAS, 4, pancreas, thin);
    sq_make(&sh[n++], r, SPLEEN, -82, -30, 45, 22, 42, 45, 0, 0, -30, 2, thin);
    sq_make(&sh[n++], r, STOMACH, -50, 22, 32, 38, 30, 42, 0, -20, 0, 2, thin);
    sq_make(&sh[n++], r, LIVER, 55, 5, 38, 58, 72, 56, 0, 0, 0, 2.6, thin);
    sq_make(&sh[n++], r, LIVER, -8, 45, 62, 45, 25, 26, 0, 0, 10, 2.2, thin);
    S->nsh = n;

    /* portal venous phase HU; enhancement varies with contrast timing */
    static const double hu[DLT_PHANTOM_NCLASSES] = {0, 120, 175, 175, 10, 45, 105, 55, 175, 140, 165, 95, 60, 60};
    static const double tex[DLT_PHANTOM_NCLASSES] = {0, 6, 8, 8, 3, 5, 8, 5, 4, 6, 5, 14, 5, 5};
    double g = exp(0.1 * Nc(r));
    for (int c = 1; c < DLT_PHANTOM_NCLASSES; c++) {
        int enh = c != GALLBLADDER && c != ESOPHAGUS && c != STOMACH;
        S->hu[c] = (enh ? 40 + (hu[c] - 40) * g : hu[c]) + 6 * Nc(r);
        S->tex[c] = tex[c];
    }
    S->eso_air = dlt_rng_uniform(r) < 0.5;
    int rc = grid_make(&S->texture, r, 11);
    if (!rc) rc = grid_make(&S->bowel, r, 21);
    return rc;
}

static void subject_free(subject *S)
{
    dlt_free(S->texture.v);
    dlt_free(S->bowel.v);
}

/* World (mm) -> anatomical (mm). */
static void to_anat(const subject *S, const double w[3], double p[3])
{
    double q[3];
    for (int i = 0; i < 3; i++) q[i] = w[i] * S->fov_scale / S->body[i] + S->shift[i];
    for (int a = 0; a < 3; a++) {
        double d = 0;
        for (int m = 0; m < NWAVE; m++)
            d += S->wamp[a][m] * sin(S->wk[a][m][0] * q[0] + S->wk[a][m][1] * q[1] + S->wk[a][m][2] * q[2] + S->wph[a][m]);
        p[a] = q[a] + d;
    }
}

/* HU and label at an anatomical point. */
static double tissue(const subject *S, const double p[3], int *label)
{
    *label = 0;
    double x = p[0], y = p[1], z = p[2];
    double rx = fabs(x) / A0, ry = fabs(y) / B0;
    double rr = pow(pow(rx, 2.4) + pow(ry, 2.4), 1 / 2.4);
    if (rr > 1) return -1000;
    double depth = (1 - rr) * 0.5 * (A0 + B0);
    double t = grid_at(&S->texture, p);
    int cavity = depth >= S->fat + S->wall;
    if (cavity) {
        for (int k = 0; k < S->nsh; k++) {
            const shape *s = &S->sh[k];
            double f = shape_f(s, p);
            if (f >= 1) {
                /* adrenals lie in fat: a pad around them keeps them visible */
                if ((s->label == ADRENAL_R || s->label == ADRENAL_L) && f < 3.2) return -90 + 8 * t;
                continue;
            }
            int c = s->label;
            *label = c;
            double h = S->hu[c] + S->tex[c] * t;
            if (c == KIDNEY_R || c == KIDNEY_L) {
                if (f < 0.15) h = 0;             /* renal sinus */
                else if (f < 0.55) h = 0.65 * h; /* medulla */
            } else if (c == STOMACH && f < 0.6) {
                h = p[1] - s->c[1] > 0.45 / s->ia[1] ? -850 : 18 + 3 * t; /* air rises anteriorly */
            } else if (c == ESOPHAGUS && S->eso_air && f < 0.12) {
                h = -700;
            }
            return h;
        }
    }
    /* spine: vertebral body with discs, canal, posterior elements, muscles */
    double vx = x / 20, vy = (y + 62) / 17, v = vx * vx + vy * vy;
    double zz = fmod(z + 400, 32);
    if (v < 1) return zz < 6 ? 90 + 5 * t : v > 0.7 ? 650 + 30 * t : 260 + 30 * t;
    double cy = (y + 87) / 8;
    if (x * x / 64 + cy * cy < 1) return 15;
    double py = (y + 98) / 8;
    if (zz > 8 && zz < 28 && x * x / 625 + py * py < 1) return 450 + 30 * t;
    for (int sgn = -1; sgn <= 1; sgn += 2) {
        double mx = (x - sgn * 32) / 22, my = (y + 88) / 17;
        if (mx * mx + my * my < 1) return 55 + 6 * t;
    }
    /* ribs: oblique bands at the inner edge of the wall, upper abdomen */
    if (z > -25 && depth > S->fat + S->wall - 7 && depth < S->fat + S->wall + 3 && !(y > 30 && fabs(x) < 40) &&
        fmod(z + 0.35 * y + 400, 26) < 8)
        return 480 + 40 * t;
    if (depth < S->fat) return -100 + 8 * t;
    if (!cavity) return 55 + 6 * t;
    /* psoas muscles, lower abdomen */
    if (z < 20) {
        double rad = 6 + (20 - z) * 0.15;
        if (rad > 18) rad = 18;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            double dx = x - sgn * 38, dy = y + 48;
            if (dx * dx + dy * dy < rad * rad) return 50 + 6 * t;
        }
    }
    /* bowel loops in the peritoneal cavity, fat elsewhere */
    if (y > -28) {
        double b = grid_at(&S->bowel, p);
        if (b > 1.5) return -600;
        if (b > 0.3) return 35 + 10 * t;
    }
    return -95 + 8 * t;
}

int dlt_phantom_make(const dlt_phantom_opts *o, int64_t index, dlt_volume *img, dlt_volume *lab)
{
    memset(img, 0, sizeof *img);
    memset(lab, 0, sizeof *lab);
    if (o->nx < 1 || o->ny < 1 || o->nz < 1 || index < 0)
        return dlt_err(DLT_EINVAL, "phantom: bad size %lldx%lldx%lld", (long long)o->nx, (long long)o->ny, (long long)o->nz);
    for (int i = 0; i < 3; i++)
        if (!(o->spacing[i] > 0 && o->spacing[i] < 1000)) return dlt_err(DLT_EINVAL, "phantom: bad spacing %g", o->spacing[i]);
    if (!(o->noise >= 0 && o->noise < 1e4)) return dlt_err(DLT_EINVAL, "phantom: bad noise %g", o->noise);
    const uint64_t stream = 0x50480000ull + 2 * (uint64_t)index;
    dlt_rng r;
    dlt_rng_init(&r, o->seed, stream);
    /* LPS voxel axes, centred on world (0,0,0) */
    double A[4][4] = {{-o->spacing[0], 0, 0, o->spacing[0] * (double)(o->nx - 1) / 2},
                      {0, -o->spacing[1], 0, o->spacing[1] * (double)(o->ny - 1) / 2},
                      {0, 0, o->spacing[2], -o->spacing[2] * (double)(o->nz - 1) / 2},
                      {0, 0, 0, 1}};
    int rc = dlt_volume_new(img, o->nx, o->ny, o->nz, 1, 0, A);
    if (!rc) rc = dlt_volume_new(lab, o->nx, o->ny, o->nz, 1, 1, A);
    subject S;
    memset(&S, 0, sizeof S);
    if (!rc) rc = subject_make(&S, o, &r);
    int64_t nx = o->nx, ny = o->ny, nz = o->nz, nxy = nx * ny;
    float *tmp = rc ? NULL : dlt_alloc(nxy * nz, sizeof(float), "phantom");
    if (!rc && !tmp) rc = DLT_ENOMEM;
    if (rc) {
        subject_free(&S);
        dlt_volume_free(img);
        dlt_volume_free(lab);
        return rc;
    }
    float *im = img->data;
    uint16_t *lb = lab->label;
    const double (*Af)[4] = (const double (*)[4])img->affine;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++) {
                double w[3], p[3];
                for (int a = 0; a < 3; a++) w[a] = Af[a][0] * i + Af[a][1] * j + Af[a][2] * k + Af[a][3];
                to_anat(&S, w, p);
                int l;
                im[k * nxy + j * nx + i] = (float)tissue(&S, p, &l);
                lb[k * nxy + j * nx + i] = (uint16_t)l;
            }
    /* the scanner's blur: [1 2 1]/4 along each axis (im -> tmp -> im -> tmp) */
    int64_t step[3] = {1, nx, nxy}, len[3] = {nx, ny, nz};
    for (int a = 0; a < 3; a++) {
        float *src = a % 2 == 0 ? im : tmp, *dst = a % 2 == 0 ? tmp : im;
#pragma omp parallel for schedule(static)
        for (int64_t v = 0; v < nxy * nz; v++) {
            int64_t c = v / step[a] % len[a];
            float l = src[c > 0 ? v - step[a] : v], rgt = src[c + 1 < len[a] ? v + step[a] : v];
            dst[v] = 0.25f * l + 0.5f * src[v] + 0.25f * rgt;
        }
    }
    /* add noise, round to whole HU */
    const uint64_t nstream = stream + 1;
#pragma omp parallel for schedule(static)
    for (int64_t v = 0; v < nxy * nz; v++) {
        double h = tmp[v] + o->noise * dlt_rng_normal_at(o->seed, nstream, (uint64_t)v);
        h = nearbyint(h);
        im[v] = (float)(h < -1024 ? -1024 : h > 3071 ? 3071 : h);
    }
    dlt_free(tmp);
    subject_free(&S);
    return 0;
}
