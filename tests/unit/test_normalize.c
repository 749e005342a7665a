/* test_normalize.c - intensity steps (DLTK semantics), percentiles against
 * sorting, resampling (identity, linear and B-spline exactness, label round
 * trip), crop-or-pad offsets and round trip, reorientation and its inverse,
 * plan text form, description truncation, patch refusal. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/normalize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void stats(const float *x, int64_t n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int64_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(ss / n);
}

int main(void)
{
    dlt_rng r;
    dlt_rng_init(&r, 11, 0);
    enum { N = 1000 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = (float)(300 * dlt_rng_normal(&r) + 40);

    /* ---- intensity ---- */
    memcpy(y, x, sizeof x);
    dlt_norm_whiten(y, N, NULL);
    double m, s;
    stats(y, N, &m, &s);
    CHECK(fabs(m) < 1e-5 && fabs(s - 1) < 1e-5, "whiten: mean 0, std 1 (%g %g)", m, s);
    {
        uint8_t mask[N];
        for (int i = 0; i < N; i++) mask[i] = i % 3 == 0;
        memcpy(y, x, sizeof x);
        dlt_norm_whiten(y, N, mask);
        float sel[N];
        int k = 0, outside_zero = 1;
        for (int i = 0; i < N; i++) {
            if (mask[i]) sel[k++] = y[i];
            else outside_zero &= y[i] == 0;
        }
        stats(sel, k, &m, &s);
        CHECK(fabs(m) < 1e-5 && fabs(s - 1) < 1e-5 && outside_zero, "whiten with mask: stats inside, 0 outside");
        memset(mask, 0, sizeof mask);
        CHECK(dlt_norm_whiten(y, N, mask) == DLT_EINVAL, "whiten with an empty mask fails");
    }
    {
        float c[4] = {3, 3, 3, 3};
        dlt_norm_whiten(c, 4, NULL);
        CHECK(c[0] == 0 && c[3] == 0, "whiten of a constant gives zeros (DLTK)");
        float d[4] = {3, 3, 3, 3};
        dlt_norm_one_one(d, 4);
        CHECK(d[0] == -1, "one-one of a constant gives -1 (DLTK)");
    }
    memcpy(y, x, sizeof x);
    dlt_norm_zero_one(y, N);
    {
        float lo = 1, hi = 0;
        for (int i = 0; i < N; i++) lo = fminf(lo, y[i]), hi = fmaxf(hi, y[i]);
        CHECK(lo == 0 && fabsf(hi - 1) < 1e-6f, "zero-one spans [0,1]");
        dlt_norm_one_one(y, N);
        lo = 1, hi = 0;
        for (int i = 0; i < N; i++) lo = fminf(lo, y[i]), hi = fmaxf(hi, y[i]);
        CHECK(lo == -1 && fabsf(hi - 1) < 1e-6f, "one-one spans [-1,1]");
    }
    {
        float c[5] = {-2000, -1000, -100, 800, 3000};
        dlt_norm_ct(c, 5, -1000, 800, 0);
        CHECK(c[0] == 0 && c[1] == 0 && fabsf(c[2] - 0.5f) < 1e-6f && c[3] == 1 && c[4] == 1, "ct window to [0,1]");
        float d[3] = {-1000, -100, 900};
        dlt_norm_ct(d, 3, -1000, 800, 1);
        CHECK(d[0] == -1 && fabsf(d[1]) < 1e-6f && d[2] == 1, "ct window to [-1,1]");
    }
    {
        /* percentiles against a sorted copy, with many ties and a NaN */
        float v[N], srt[N];
        for (int i = 0; i < N; i++) v[i] = (float)(int)(10 * dlt_rng_uniform(&r));
        v[7] = NAN;
        int k = 0;
        for (int i = 0; i < N; i++)
            if (!isnan(v[i])) srt[k++] = v[i];
        qsort(srt, k, sizeof(float), cmpf);
        double p[4] = {99.5, 0, 37.3, 100}, q[4];
        CHECK(dlt_norm_percentiles(v, N, p, 4, q) == 0, "percentiles computed");
        int ok = 1;
        for (int t = 0; t < 4; t++) {
            double pos = p[t] / 100 * (k - 1), f = floor(pos);
            double ref = srt[(int)f] + (pos - f) * ((int)f + 1 < k ? srt[(int)f + 1] - srt[(int)f] : 0);
            ok &= fabs(q[t] - ref) < 1e-9;
        }
        CHECK(ok, "percentiles equal numpy's linear rule on a sorted copy");
        for (int i = 0; i < N; i++) v[i] = (float)dlt_rng_normal(&r);
        memcpy(srt, v, sizeof v);
        qsort(srt, N, sizeof(float), cmpf);
        double p2 = 2, q2;
        dlt_norm_percentiles(v, N, &p2, 1, &q2);
        double pos = 0.02 * (N - 1);
        double ref = srt[19] + (pos - 19) * (srt[20] - srt[19]);
        CHECK(fabs(q2 - ref) < 1e-6, "2nd percentile of normals (%g vs %g)", q2, ref);
        double bad = 101;
        CHECK(dlt_norm_percentiles(v, N, &bad, 1, &q2) == DLT_EINVAL, "percentile > 100 refused");
    }

    /* ---- resampling ---- */
    {
        int64_t n[3] = {40, 9, 7}, mm[3] = {36, 9, 7};
        int64_t nv = n[0] * n[1] * n[2];
        float *a = malloc(sizeof(float) * nv), *b = malloc(sizeof(float) * nv);
        for (int64_t i = 0; i < nv; i++) a[i] = (float)dlt_rng_normal(&r);
        /* B-spline interpolates: sampling at integer positions returns the data */
        double scale[3] = {1, 1, 1}, shift[3] = {2, 0, 0};
        dlt_resample_f32(a, n, b, mm, scale, shift, DLT_INTERP_BSPLINE);
        double e = 0;
        for (int64_t k = 0; k < 7; k++)
            for (int64_t j = 0; j < 9; j++)
                for (int64_t i = 0; i < 36; i++) e = fmax(e, fabs(b[(k * 9 + j) * 36 + i] - a[(k * 9 + j) * 40 + i + 2]));
        CHECK(e < 1e-4, "B-spline at integer positions reproduces the data (err %g)", e);
        /* B-spline and linear reproduce a linear ramp in the interior */
        for (int64_t k = 0; k < 7; k++)
            for (int64_t j = 0; j < 9; j++)
                for (int64_t i = 0; i < 40; i++) a[(k * 9 + j) * 40 + i] = (float)(0.5 * i + 2 * j - k);
        int64_t m2[3] = {20, 9, 7};
        double sc2[3] = {0.5, 1, 1}, sh2[3] = {10.25, 0, 0};
        float ramp[20 * 63];
        for (int interp = 1; interp <= 3; interp += 2) {
            dlt_resample_f32(a, n, ramp, m2, sc2, sh2, interp);
            e = 0;
            for (int64_t k = 0; k < 7; k++)
                for (int64_t j = 0; j < 9; j++)
                    for (int64_t i = 0; i < 20; i++)
                        e = fmax(e, fabs(ramp[(k * 9 + j) * 20 + i] - (0.5 * (10.25 + 0.5 * i) + 2 * j - k)));
            CHECK(e < 2e-3, "%s reproduces a ramp inside the volume (err %g)", interp == 1 ? "linear" : "B-spline", e);
        }
        /* all three axes at once: trilinear sample between 8 voxels */
        int64_t m3[3] = {1, 1, 1};
        double sc3[3] = {1, 1, 1}, sh3[3] = {3.25, 4.5, 2.75};
        float out1;
        for (int64_t i = 0; i < nv; i++) a[i] = (float)dlt_rng_normal(&r);
        dlt_resample_f32(a, n, &out1, m3, sc3, sh3, DLT_INTERP_LINEAR);
        double ref = 0;
        for (int dz = 0; dz < 2; dz++)
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++)
                    ref += (dx ? 0.25 : 0.75) * (dy ? 0.5 : 0.5) * (dz ? 0.75 : 0.25) * a[((2 + dz) * 9 + 4 + dy) * 40 + 3 + dx];
        CHECK(fabs(out1 - ref) < 1e-5, "trilinear weights (%g vs %g)", out1, ref);
        free(a);
        free(b);
    }
    {
        /* labels: 2x up then down with the extent-centre grid is exact */
        int64_t n[3] = {7, 6, 5}, up[3], back[3];
        double sp[3] = {1, 1, 1}, half[3] = {0.5, 0.5, 0.5}, sc[3], sh[3];
        uint16_t l[210], u[1680], d[210];
        for (int i = 0; i < 210; i++) l[i] = (uint16_t)(dlt_rng_below(&r, 4));
        dlt_resample_grid(n, sp, half, up, sc, sh);
        CHECK(up[0] == 14 && up[1] == 12 && up[2] == 10 && sc[0] == 0.5 && sh[0] == -0.25, "2x grid: dims, scale, shift");
        dlt_resample_u16(l, n, u, up, sc, sh);
        dlt_resample_grid(up, half, sp, back, sc, sh);
        CHECK(back[0] == 7 && sh[0] == 0.5, "back grid");
        dlt_resample_u16(u, up, d, back, sc, sh);
        CHECK(memcmp(l, d, sizeof l) == 0, "nearest labels: 2x and back is exact");
    }

    /* ---- crop or pad ---- */
    {
        int64_t n[3] = {6, 5, 4}, t[3] = {9, 3, 4}, off[3];
        dlt_crop_pad_offsets(n, t, off);
        CHECK(off[0] == -1 && off[1] == 1 && off[2] == 0, "DLTK offsets: pad 1 before (of 3), crop 1");
        float a[120], b[108], c[120];
        for (int i = 0; i < 120; i++) a[i] = (float)i + 1;
        dlt_crop_pad_f32(a, n, b, t, off, 0);
        CHECK(b[0] == 0 && b[1] == a[6] && b[6] == a[11] && b[7] == 0 && b[8] == 0, "pad values and placement");
        int64_t t2[3] = {6, 7, 4}, off2[3];
        dlt_crop_pad_offsets(n, t2, off2);
        float p[168], q[120];
        dlt_crop_pad_f32(a, n, p, t2, off2, 0);
        int64_t off3[3];
        dlt_crop_pad_offsets(t2, n, off3);
        dlt_crop_pad_f32(p, t2, q, n, off3, 0);
        CHECK(memcmp(a, q, sizeof a) == 0, "pad then crop back is exact");
        (void)c;
    }

    /* ---- reorientation ---- */
    {
        double A[4][4] = {{-2, 0, 0, 10}, {0, 0, 3, -5}, {0, 1.5, 0, 7}, {0, 0, 0, 1}}; /* LSA */
        char code[4];
        dlt_affine_orientation(A, code);
        CHECK(strcmp(code, "LSA") == 0, "orientation code LSA (%s)", code);
        int64_t n[3] = {4, 3, 2};
        dlt_reorient ro, back;
        CHECK(dlt_reorient_plan(A, n, "ras", &ro) == 0, "plan to RAS");
        dlt_affine_orientation(ro.affine, code);
        CHECK(strcmp(code, "RAS") == 0 && ro.m[0] == 4 && ro.m[1] == 2 && ro.m[2] == 3, "result is RAS with permuted dims");
        /* voxel corner (0,0,0) of the output is the input's (3,0,0) */
        CHECK(fabs(ro.affine[0][3] - (10 - 2 * 3)) < 1e-12 && ro.affine[0][0] == 2 && ro.affine[1][1] == 3 && ro.affine[2][2] == 1.5,
              "reoriented affine");
        float a[24], b[24], c[24];
        for (int i = 0; i < 24; i++) a[i] = (float)i;
        dlt_reorient_f32(a, n, b, &ro);
        /* world position of output voxel (1,1,2) equals that of its source */
        int64_t src[3];
        int64_t p[3] = {1, 1, 2};
        for (int j = 0; j < 3; j++) src[ro.perm[j]] = ro.flip[j] ? n[ro.perm[j]] - 1 - p[j] : p[j];
        CHECK(b[(2 * 2 + 1) * 4 + 1] == a[(src[2] * 3 + src[1]) * 4 + src[0]], "data follows the permutation");
        int ok = 1;
        for (int row = 0; row < 3; row++) {
            double w1 = ro.affine[row][3], w2 = A[row][3];
            for (int j = 0; j < 3; j++) w1 += ro.affine[row][j] * p[j], w2 += A[row][j] * src[j];
            ok &= fabs(w1 - w2) < 1e-12;
        }
        CHECK(ok, "same world position before and after");
        CHECK(dlt_reorient_plan(ro.affine, ro.m, "LSA", &back) == 0, "plan back");
        dlt_reorient_f32(b, ro.m, c, &back);
        ok = memcmp(a, c, sizeof a) == 0 && back.m[0] == 4 && back.m[1] == 3 && back.m[2] == 2;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) ok &= back.affine[i][j] == A[i][j];
        CHECK(ok, "reorienting back is exact (data and affine)");
        CHECK(dlt_reorient_plan(A, n, "RRS", &ro) == DLT_EINVAL && dlt_reorient_plan(A, n, "RAX", &ro) == DLT_EINVAL,
              "bad codes refused");
    }

    /* ---- plans ---- */
    {
        dlt_norm_plan p;
        memset(&p, 0, sizeof p);
        CHECK(dlt_norm_plan_add(&p, "ct", "-1000,800") == 0 && dlt_norm_plan_add(&p, "spacing", "2,2,2.5:bspline") == 0 &&
                  dlt_norm_plan_add(&p, "whiten", "nonzero") == 0 && dlt_norm_plan_add(&p, "reorient", "lps") == 0 &&
                  dlt_norm_plan_add(&p, "size", "64,64,32") == 0 && dlt_norm_plan_add(&p, "clip-pct", "0.5,99.5") == 0,
              "plan steps added");
        char buf[256];
        dlt_norm_describe(&p, buf, sizeof buf);
        CHECK(strcmp(buf, "ct=-1000,800;spacing=2,2,2.5:bspline;whiten=nonzero;reorient=LPS;size=64,64,32;clip-pct=0.5,99.5") == 0,
              "describe: %s", buf);
        dlt_norm_plan q;
        char buf2[256];
        CHECK(dlt_norm_plan_parse(&q, buf) == 0 && dlt_norm_describe(&q, buf2, sizeof buf2) > 0 && strcmp(buf, buf2) == 0,
              "parse(describe(plan)) round trip");
        CHECK(dlt_norm_plan_whole_volume(&p)->kind == DLT_NORM_SPACING, "spacing needs the whole volume");
        dlt_norm_plan bad;
        memset(&bad, 0, sizeof bad);
        CHECK(dlt_norm_plan_add(&bad, "ct", "800,-1000") == DLT_EINVAL && strstr(dlt_errmsg(), "greater"), "ct HI <= LO refused");
        CHECK(dlt_norm_plan_add(&bad, "clip-pct", "1,101") == DLT_EINVAL, "percentile 101 refused");
        CHECK(dlt_norm_plan_add(&bad, "spacing", "1,0,1") == DLT_EINVAL, "zero spacing refused");
        CHECK(dlt_norm_plan_add(&bad, "spacing", "1,1,1:cubic") == DLT_EINVAL, "unknown interpolation refused");
        CHECK(dlt_norm_plan_add(&bad, "reorient", "RAL") == DLT_EINVAL && strstr(dlt_errmsg(), "same axis"), "RAL refused");
        CHECK(dlt_norm_plan_add(&bad, "frobnicate", NULL) == DLT_EINVAL, "unknown step refused");
        CHECK(dlt_norm_plan_add(&bad, "zscore", "10,0") == DLT_EINVAL && dlt_norm_plan_add(&bad, "zscore", "1") == DLT_EINVAL,
              "zscore with STD 0, or one value, refused");
        /* zscore: fixed (dataset) statistics, nine digits in the text */
        dlt_norm_plan z;
        CHECK(dlt_norm_plan_parse(&z, "clip=-100,300;zscore=82.123456789,136.5") == 0, "clip + zscore parsed");
        dlt_norm_describe(&z, buf, sizeof buf);
        CHECK(!strcmp(buf, "clip=-100,300;zscore=82.1234568,136.5"), "zscore described: %s", buf);
        dlt_volume zv;
        double I4[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
        dlt_volume_new(&zv, 3, 1, 1, 1, 0, I4);
        zv.data[0] = -500, zv.data[1] = 82.123456789f, zv.data[2] = 400;
        CHECK(dlt_norm_apply_volume(&z, &zv, NULL) == 0 && fabsf(zv.data[0] - (float)((-100 - 82.1234568) / 136.5)) < 1e-6f &&
                  fabsf(zv.data[1]) < 1e-6f && fabsf(zv.data[2] - (float)((300 - 82.1234568) / 136.5)) < 1e-6f,
              "clip then (x - mean) / std: %g %g %g", zv.data[0], zv.data[1], zv.data[2]);
        dlt_volume_free(&zv);
        CHECK(dlt_norm_plan_parse(&bad, "dlt:ct=-1000,800;...") == DLT_EINVAL, "truncated record refused by parse");

        char d[80];
        dlt_norm_descrip("scanner junk", &q, d, sizeof d);
        CHECK(strlen(d) <= 79 && strncmp(d, "dlt:ct=-1000,800;spacing=2,2,2.5:bspline;", 41) == 0 &&
                  strcmp(d + strlen(d) - 4, ";...") == 0,
              "description cut at a step boundary: %s", d);
        dlt_norm_plan small;
        dlt_norm_plan_parse(&small, "zero-one");
        dlt_norm_descrip("dlt:ct=-1000,800", &small, d, sizeof d);
        CHECK(strcmp(d, "dlt:ct=-1000,800;zero-one") == 0, "description appends to an earlier dlt record: %s", d);

        /* patches: intensity per channel, whole-volume steps refused */
        float img[2 * 8];
        for (int i = 0; i < 16; i++) img[i] = (float)(i < 8 ? i : 100 + 2 * i);
        dlt_patch pt;
        memset(&pt, 0, sizeof pt);
        strcpy(pt.id, "s1");
        pt.size[0] = 2, pt.size[1] = 2, pt.size[2] = 2;
        pt.channels = 2;
        pt.image = img;
        CHECK(dlt_norm_apply_patch(&small, &pt) == 0 && img[0] == 0 && img[7] == 1 && img[8] == 0 && img[15] == 1,
              "zero-one per channel on a patch");
        CHECK(dlt_norm_apply_patch(&p, &pt) == DLT_EUNSUP && strstr(dlt_errmsg(), "spacing"), "spacing refused on a patch: %s",
              dlt_errmsg());
    }

    /* ---- volumes (hand-filled) ---- */
    {
        dlt_volume v;
        double A[4][4] = {{1, 0, 0, -3.5}, {0, 1, 0, -2.5}, {0, 0, 2, -3}, {0, 0, 0, 1}};
        CHECK(dlt_volume_new(&v, 8, 6, 4, 1, 0, A) == 0 && v.spacing[2] == 2, "volume made");
        for (int i = 0; i < 192; i++) v.data[i] = (float)i;
        double sp[3] = {2, 2, 2};
        CHECK(dlt_volume_resample(&v, sp, DLT_INTERP_LINEAR) == 0 && v.nx == 4 && v.ny == 3 && v.nz == 4, "resample dims");
        /* extent centre kept: old centre (3.5, 2.5, 1.5) -> world (0, 0, 0) */
        double cx = v.affine[0][3] + v.affine[0][0] * 1.5, cy = v.affine[1][3] + v.affine[1][1] * 1.0,
               cz = v.affine[2][3] + v.affine[2][2] * 1.5;
        CHECK(fabs(cx) < 1e-6 && fabs(cy) < 1e-6 && fabs(cz) < 1e-6 && v.affine[0][0] == 2 && v.spacing[0] == 2,
              "resampled affine keeps the extent centre");
        int64_t size[3] = {6, 3, 5};
        double o0 = v.affine[0][3];
        CHECK(dlt_volume_crop_pad(&v, size) == 0 && v.nx == 6 && v.nz == 5 && fabs(v.affine[0][3] - (o0 - 2)) < 1e-12,
              "crop-pad moves the origin by the offset");
        dlt_volume_free(&v);
    }
    {
        /* a plan on a volume with a mask that follows a reorientation */
        dlt_volume v, mk;
        double A[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
        dlt_volume_new(&v, 8, 6, 4, 2, 0, A);
        for (int i = 0; i < 2 * 192; i++) v.data[i] = (float)(50 * dlt_rng_normal(&r) + 7);
        dlt_volume_like(&mk, &v, 1, 1);
        for (int k = 1; k < 3; k++)
            for (int j = 0; j < 4; j++)
                for (int i = 2; i < 7; i++) mk.label[(k * 6 + j) * 8 + i] = 1;
        dlt_norm_plan p;
        dlt_norm_plan_parse(&p, "reorient=LPS;whiten=mask");
        CHECK(dlt_norm_apply_volume(&p, &v, &mk) == 0, "reorient + masked whiten: %s", dlt_errmsg());
        /* in LPS the mask box x in [2,6] becomes [1,5], y [0,3] becomes [2,5] */
        int ok = 1, cnt = 0;
        double sum = 0, ss = 0;
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 6; j++)
                    for (int i = 0; i < 8; i++) {
                        float x = v.data[c * 192 + (k * 6 + j) * 8 + i];
                        int in = k >= 1 && k < 3 && j >= 2 && i >= 1 && i <= 5;
                        if (!in) ok &= x == 0;
                        else if (c == 1) cnt++, sum += x, ss += x * x;
                    }
        CHECK(ok && cnt == 40 && fabs(sum / cnt) < 1e-5 && fabs(ss / cnt - 1) < 1e-4, "mask followed the reorientation (%d)", cnt);
        CHECK(dlt_norm_apply_volume(&p, &v, NULL) == DLT_EINVAL, "whiten=mask without a mask fails");
        dlt_norm_plan q;
        dlt_norm_plan_parse(&q, "ct=0,1");
        CHECK(dlt_norm_apply_volume(&q, &mk, NULL) == DLT_EINVAL && strstr(dlt_errmsg(), "label"), "intensity step on a label refused");
        dlt_norm_plan_parse(&q, "spacing=0.5,0.5,0.5:bspline");
        CHECK(dlt_norm_apply_volume(&q, &mk, NULL) == 0 && mk.nx == 16 && mk.label && dlt_norm_apply_volume(&p, &v, &mk) == DLT_ESHAPE,
              "label resampled (nearest whatever the step says); a mask on another grid refused");
        dlt_volume_free(&v);
        dlt_volume_free(&mk);
    }
    return check_done();
}
