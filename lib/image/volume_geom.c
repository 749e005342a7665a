/* volume_geom.c - volume geometry: the affine of a header (nibabel's rules),
 * setting a header from an affine, orientation codes and grid comparison. */
#include "volume_int.h"

#include "dlt/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* nibabel's rules (Nifti1Header.get_best_affine): the sform when sform_code
 * is set, else the qform (quaternion, qfac from pixdim[0]), else the
 * "base affine" of ANALYZE: diag(-dx, dy, dz) centred on the volume. Voxel
 * sizes of 0 count as 1 and negative ones as their absolute value, as
 * nibabel's header fixes do. */
void dlt_vhdr_affine(const dlt_vhdr *H, const int64_t dims[3], double A[4][4], double spacing[3])
{
    const nifti_2_header *h = &H->h;
    for (int i = 0; i < 3; i++) {
        double p = h->pixdim[i + 1];
        spacing[i] = isfinite(p) && p != 0 ? fabs(p) : 1.0;
    }
    memset(A, 0, 16 * sizeof(double));
    A[3][3] = 1;
    if (h->sform_code > 0) {
        for (int c = 0; c < 4; c++) {
            A[0][c] = h->srow_x[c];
            A[1][c] = h->srow_y[c];
            A[2][c] = h->srow_z[c];
        }
    } else if (h->qform_code > 0) {
        double qfac = h->pixdim[0] < 0 ? -1.0 : 1.0;
        nifti_dmat44 m = nifti_quatern_to_dmat44(h->quatern_b, h->quatern_c, h->quatern_d, h->qoffset_x, h->qoffset_y,
                                                 h->qoffset_z, spacing[0], spacing[1], spacing[2], qfac);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) A[r][c] = m.m[r][c];
    } else {
        A[0][0] = -spacing[0];
        A[1][1] = spacing[1];
        A[2][2] = spacing[2];
        A[0][3] = (double)(dims[0] - 1) / 2.0 * spacing[0];
        A[1][3] = -(double)(dims[1] - 1) / 2.0 * spacing[1];
        A[2][3] = -(double)(dims[2] - 1) / 2.0 * spacing[2];
    }
}

void dlt_vhdr_round_n1(dlt_vhdr *H)
{
    if (H->version != 1) return;
    nifti_2_header *h = &H->h;
#define RF(x) ((x) = (double)(float)(x))
    for (int i = 0; i < 8; i++) RF(h->pixdim[i]);
    for (int i = 0; i < 4; i++) {
        RF(h->srow_x[i]);
        RF(h->srow_y[i]);
        RF(h->srow_z[i]);
    }
    RF(h->quatern_b);
    RF(h->quatern_c);
    RF(h->quatern_d);
    RF(h->qoffset_x);
    RF(h->qoffset_y);
    RF(h->qoffset_z);
    RF(h->intent_p1);
    RF(h->intent_p2);
    RF(h->intent_p3);
    RF(h->scl_slope);
    RF(h->scl_inter);
    RF(h->cal_min);
    RF(h->cal_max);
    RF(h->slice_duration);
    RF(h->toffset);
#undef RF
}

void dlt_vhdr_set_affine(dlt_vhdr *H, const double A[4][4])
{
    nifti_2_header *h = &H->h;
    nifti_dmat44 R;
    memset(&R, 0, sizeof R);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) R.m[r][c] = A[r][c];
    R.m[3][3] = 1;
    double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(R, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    h->quatern_b = qb;
    h->quatern_c = qc;
    h->quatern_d = qd;
    h->qoffset_x = qx;
    h->qoffset_y = qy;
    h->qoffset_z = qz;
    h->pixdim[0] = qfac < 0 ? -1.0 : 1.0;
    h->pixdim[1] = dx;
    h->pixdim[2] = dy;
    h->pixdim[3] = dz;
    for (int c = 0; c < 4; c++) {
        h->srow_x[c] = A[0][c];
        h->srow_y[c] = A[1][c];
        h->srow_z[c] = A[2][c];
    }
    int q = (int)h->qform_code, s = (int)h->sform_code;
    h->qform_code = q > 0 ? q : s > 0 ? s : NIFTI_XFORM_SCANNER_ANAT;
    h->sform_code = s > 0 ? s : q > 0 ? q : NIFTI_XFORM_SCANNER_ANAT;
    dlt_vhdr_round_n1(H);
}

void dlt_volume_orientation(const dlt_volume *v, char code[4])
{
    nifti_dmat44 R;
    memset(&R, 0, sizeof R);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) R.m[r][c] = v->affine[r][c];
    int ic[3] = {0, 0, 0};
    nifti_dmat44_to_orientation(R, &ic[0], &ic[1], &ic[2]);
    for (int a = 0; a < 3; a++) {
        switch (ic[a]) {
        case NIFTI_L2R: code[a] = 'R'; break;
        case NIFTI_R2L: code[a] = 'L'; break;
        case NIFTI_P2A: code[a] = 'A'; break;
        case NIFTI_A2P: code[a] = 'P'; break;
        case NIFTI_I2S: code[a] = 'S'; break;
        case NIFTI_S2I: code[a] = 'I'; break;
        default: code[a] = '?'; break;
        }
    }
    code[3] = 0;
}

static void appendf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t n, const char *fmt, ...)
{
    size_t l = strlen(buf);
    if (l + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, n - l, fmt, ap);
    va_end(ap);
}

int dlt_volume_same_grid(const dlt_volume *a, const dlt_volume *b, double tol)
{
    char msg[900] = "";
    const char *sep = "";
    if (a->nx != b->nx || a->ny != b->ny || a->nz != b->nz) {
        appendf(msg, sizeof msg, "dims %lldx%lldx%lld vs %lldx%lldx%lld", (long long)a->nx, (long long)a->ny, (long long)a->nz,
                (long long)b->nx, (long long)b->ny, (long long)b->nz);
        sep = "; ";
    }
    double sa[3], sb[3], ua[3][3], ub[3][3];
    for (int c = 0; c < 3; c++) {
        sa[c] = sqrt(a->affine[0][c] * a->affine[0][c] + a->affine[1][c] * a->affine[1][c] + a->affine[2][c] * a->affine[2][c]);
        sb[c] = sqrt(b->affine[0][c] * b->affine[0][c] + b->affine[1][c] * b->affine[1][c] + b->affine[2][c] * b->affine[2][c]);
        for (int r = 0; r < 3; r++) {
            ua[c][r] = sa[c] > 0 ? a->affine[r][c] / sa[c] : 0;
            ub[c][r] = sb[c] > 0 ? b->affine[r][c] / sb[c] : 0;
        }
    }
    if (fabs(sa[0] - sb[0]) > tol || fabs(sa[1] - sb[1]) > tol || fabs(sa[2] - sb[2]) > tol) {
        appendf(msg, sizeof msg, "%sspacing %g,%g,%g vs %g,%g,%g mm", sep, sa[0], sa[1], sa[2], sb[0], sb[1], sb[2]);
        sep = "; ";
    }
    double d = 0;
    for (int r = 0; r < 3; r++) d += (a->affine[r][3] - b->affine[r][3]) * (a->affine[r][3] - b->affine[r][3]);
    if (sqrt(d) > tol) {
        appendf(msg, sizeof msg, "%sorigin (%g,%g,%g) vs (%g,%g,%g) mm", sep, a->affine[0][3], a->affine[1][3], a->affine[2][3],
                b->affine[0][3], b->affine[1][3], b->affine[2][3]);
        sep = "; ";
    }
    /* A direction difference matters by how far it moves the far corner. */
    int64_t na[3] = {a->nx, a->ny, a->nz};
    for (int c = 0; c < 3; c++) {
        double e = 0;
        for (int r = 0; r < 3; r++) e += (ua[c][r] - ub[c][r]) * (ua[c][r] - ub[c][r]);
        if (sqrt(e) * (double)na[c] * sa[c] > tol) {
            appendf(msg, sizeof msg, "%sdirection of axis %c (%.4g,%.4g,%.4g) vs (%.4g,%.4g,%.4g)", sep, "ijk"[c], ua[c][0],
                    ua[c][1], ua[c][2], ub[c][0], ub[c][1], ub[c][2]);
            sep = "; ";
        }
    }
    if (msg[0]) return dlt_err(DLT_ESHAPE, "grids differ: %s", msg);
    return 0;
}
