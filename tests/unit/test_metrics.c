/* test_metrics.c - the distance transform against brute force, surface
 * metrics on hand-computed cubes (isotropic and anisotropic), empty and
 * absent classes, summary statistics, class names. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/metrics.h"

#include <math.h>
#include <string.h>

#define IDX(i, j, k) (((k) * n[1] + (j)) * n[0] + (i))

static void cube(uint16_t *v, const int64_t n[3], int lab, int x0, int x1, int y0, int y1, int z0, int z1)
{
    for (int k = z0; k <= z1; k++)
        for (int j = y0; j <= y1; j++)
            for (int i = x0; i <= x1; i++) v[IDX(i, j, k)] = (uint16_t)lab;
}

int main(void)
{
    /* EDT: random sparse features, anisotropic spacing, against brute force. */
    {
        int64_t n[3] = {11, 7, 5};
        double sp[3] = {0.7, 1.3, 2.1};
        int64_t nv = n[0] * n[1] * n[2];
        uint8_t feat[385];
        float d2[385];
        dlt_rng r;
        dlt_rng_init(&r, 5, 0);
        for (int64_t i = 0; i < nv; i++) feat[i] = dlt_rng_uniform(&r) < 0.04;
        feat[17] = 1;
        dlt_edt_sq(feat, n, sp, d2);
        double maxerr = 0;
        for (int64_t k = 0; k < n[2]; k++)
            for (int64_t j = 0; j < n[1]; j++)
                for (int64_t i = 0; i < n[0]; i++) {
                    double best = INFINITY;
                    for (int64_t c = 0; c < n[2]; c++)
                        for (int64_t b = 0; b < n[1]; b++)
                            for (int64_t a = 0; a < n[0]; a++)
                                if (feat[IDX(a, b, c)]) {
                                    double dx = (i - a) * sp[0], dy = (j - b) * sp[1], dz = (k - c) * sp[2];
                                    double d = dx * dx + dy * dy + dz * dz;
                                    if (d < best) best = d;
                                }
                    double e = fabs(best - d2[IDX(i, j, k)]);
                    if (e > maxerr) maxerr = e;
                }
        CHECK(maxerr < 1e-4, "EDT equals brute force (anisotropic), max err %g", maxerr);
        memset(feat, 0, sizeof feat);
        dlt_edt_sq(feat, n, sp, d2);
        CHECK(isinf(d2[0]) && isinf(d2[nv - 1]), "EDT without features is infinite");
    }

    /* Surfaces: a 4^3 cube has 56 surface voxels; at the border too. */
    {
        int64_t n[3] = {6, 6, 6};
        uint8_t m[216], s[216];
        memset(m, 0, sizeof m);
        for (int k = 1; k <= 4; k++)
            for (int j = 1; j <= 4; j++)
                for (int i = 1; i <= 4; i++) m[IDX(i, j, k)] = 1;
        dlt_surface(m, n, s);
        int c = 0;
        for (int i = 0; i < 216; i++) c += s[i];
        CHECK(c == 56, "4^3 cube has 56 surface voxels (%d)", c);
        memset(m, 1, sizeof m);
        dlt_surface(m, n, s);
        c = 0;
        for (int i = 0; i < 216; i++) c += s[i];
        CHECK(c == 216 - 64, "full volume: the image border is surface (%d)", c);
    }

    /* Cube [2,5]^3 against the same cube shifted by one voxel in x. By hand:
     * overlap 48 of 64 each -> Dice 0.75; each surface has 56 voxels, of
     * which 20 are at distance 1 (one x face, 16, and the 4 face-interior
     * voxels of the opposite face) and 36 at 0 -> ASSD 20/56; HD95 over the
     * 112 distances (72 zeros, 40 ones) = 1. With x spacing 2 mm: the 16
     * face voxels are 2 mm away, the 4 others 1 mm (a y or z face is one
     * voxel away) -> sums 36 -> ASSD 36/56; distances 72 x 0, 8 x 1,
     * 32 x 2 -> HD95 = 2. */
    {
        int64_t n[3] = {10, 10, 10};
        static uint16_t a[1000], b[1000];
        cube(a, n, 1, 2, 5, 2, 5, 2, 5);
        cube(b, n, 1, 3, 6, 2, 5, 2, 5);
        int labels[3] = {1, 2, 0};
        dlt_class_metrics m[3];
        double sp1[3] = {1, 1, 1}, sp2[3] = {2, 1, 1};
        CHECK(dlt_metrics_compute(a, b, n, sp1, labels, 2, 1, NULL, m) == 0, "metrics computed");
        CHECK(fabs(m[0].dice - 0.75) < 1e-12 && fabs(m[0].precision - 0.75) < 1e-12 && fabs(m[0].recall - 0.75) < 1e-12,
              "shifted cube: Dice/precision/recall 0.75 (%g %g %g)", m[0].dice, m[0].precision, m[0].recall);
        CHECK(fabs(m[0].hd95 - 1.0) < 1e-9, "shifted cube: HD95 1 mm (%g)", m[0].hd95);
        CHECK(fabs(m[0].assd - 20.0 / 56.0) < 1e-9, "shifted cube: ASSD 20/56 mm (%g)", m[0].assd);
        CHECK(fabs(m[0].vol_pred_ml - 0.064) < 1e-12, "volume 64 voxels of 1 mm^3 = 0.064 ml");
        CHECK(m[1].absent && isnan(m[1].dice) && isnan(m[1].hd95), "class absent in both is marked absent");
        dlt_metrics_compute(a, b, n, sp2, labels, 1, 1, NULL, m);
        CHECK(fabs(m[0].hd95 - 2.0) < 1e-9, "anisotropic shifted cube: HD95 2 mm (%g)", m[0].hd95);
        CHECK(fabs(m[0].assd - 36.0 / 56.0) < 1e-9, "anisotropic shifted cube: ASSD 36/56 mm (%g)", m[0].assd);
        CHECK(fabs(m[0].vol_ref_ml - 0.128) < 1e-12, "anisotropic volume 0.128 ml");
        dlt_metrics_compute(a, a, n, sp2, labels, 1, 1, NULL, m);
        CHECK(m[0].dice == 1 && m[0].hd95 == 0 && m[0].assd == 0, "against itself: Dice 1, 0 mm");
        /* background class 0 works too */
        dlt_metrics_compute(a, a, n, sp2, labels + 2, 1, 1, NULL, m);
        CHECK(m[0].dice == 1 && m[0].hd95 == 0, "class 0 against itself");
        /* prediction empty for class 1 */
        static uint16_t z[1000];
        dlt_metrics_compute(z, b, n, sp1, labels, 1, 1, NULL, m);
        CHECK(m[0].dice == 0 && m[0].precision == 0 && m[0].recall == 0 && isinf(m[0].hd95) && isinf(m[0].assd) && !m[0].absent,
              "empty prediction: Dice 0, distances inf");
        dlt_metrics_compute(z, b, n, sp1, labels, 1, 0, NULL, m);
        CHECK(m[0].dice == 0 && isnan(m[0].hd95), "distances skipped when not asked");
        /* NSD by hand (the same cubes): per side 36 distances of 0 and 20 of
         * 1 mm; with x spacing 2: 36 x 0, 4 x 1, 16 x 2 mm. */
        double t05[2] = {0.5, 0.5}, t1[2] = {1, 0}, t2[1] = {2};
        dlt_metrics_compute(a, b, n, sp1, labels, 2, 1, t05, m);
        CHECK(fabs(m[0].nsd - 72.0 / 112.0) < 1e-12, "NSD at 0.5 mm: 72/112 (%g)", m[0].nsd);
        CHECK(m[1].absent && isnan(m[1].nsd), "NSD of an absent class is NAN");
        dlt_metrics_compute(a, b, n, sp1, labels, 1, 1, t1, m);
        CHECK(m[0].nsd == 1, "NSD at 1 mm: a distance equal to the tolerance counts (%g)", m[0].nsd);
        dlt_metrics_compute(a, b, n, sp2, labels, 1, 1, t1, m);
        CHECK(fabs(m[0].nsd - 80.0 / 112.0) < 1e-12, "anisotropic NSD at 1 mm: 80/112 (%g)", m[0].nsd);
        dlt_metrics_compute(a, b, n, sp2, labels, 1, 1, t2, m);
        CHECK(m[0].nsd == 1, "anisotropic NSD at 2 mm: 1 (%g)", m[0].nsd);
        dlt_metrics_compute(a, b, n, sp2, labels, 1, 1, NULL, m);
        CHECK(isnan(m[0].nsd), "no tolerance, no NSD");
        dlt_metrics_compute(a, b, n, sp2, labels, 2, 1, t1, m);
        CHECK(!isnan(m[0].nsd) && isnan(m[1].nsd), "a tolerance of 0 skips that class");
        dlt_metrics_compute(z, b, n, sp1, labels, 1, 1, t2, m);
        CHECK(m[0].nsd == 0, "empty prediction: NSD 0 (%g)", m[0].nsd);
        dlt_metrics_compute(z, b, n, sp1, labels, 1, 0, t2, m);
        CHECK(isnan(m[0].nsd), "NSD skipped with the distances");
        /* two classes at once, label 2 far away */
        cube(a, n, 2, 8, 9, 8, 9, 8, 9);
        cube(b, n, 2, 8, 9, 8, 9, 7, 8);
        dlt_metrics_compute(a, b, n, sp1, labels, 2, 1, NULL, m);
        CHECK(fabs(m[0].dice - 0.75) < 1e-12 && fabs(m[1].dice - 0.5) < 1e-12, "two classes: Dice 0.75 and 0.5");
        CHECK(fabs(m[1].hd95 - 1.0) < 1e-9 && fabs(m[1].assd - 0.5) < 1e-9, "2x2x2 cube shifted by 1 in z: HD95 1, ASSD 0.5 (%g %g)",
              m[1].hd95, m[1].assd);
    }

    /* On volumes: the grid is checked first. */
    {
        double A[4][4] = {{2, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
        dlt_volume a, b, c;
        dlt_volume_new(&a, 10, 10, 10, 1, 1, A);
        dlt_volume_like(&b, &a, 1, 1);
        int64_t n[3] = {10, 10, 10};
        cube(a.label, n, 1, 2, 5, 2, 5, 2, 5);
        cube(b.label, n, 1, 3, 6, 2, 5, 2, 5);
        int l = 1;
        dlt_class_metrics m;
        CHECK(dlt_metrics_volumes(&a, &b, 1e-3, &l, 1, 1, NULL, &m) == 0 && fabs(m.assd - 36.0 / 56.0) < 1e-9 && m.hd95 == 2,
              "on volumes: spacing from the grid");
        A[1][3] = 0.5;
        dlt_volume_new(&c, 10, 10, 10, 1, 1, A);
        CHECK(dlt_metrics_volumes(&a, &c, 1e-3, &l, 1, 1, NULL, &m) == DLT_ESHAPE && strstr(dlt_errmsg(), "origin"),
              "different origin refused: %s", dlt_errmsg());
        dlt_volume_free(&a);
        dlt_volume_free(&b);
        dlt_volume_free(&c);
    }

    /* Percentile and stats. */
    {
        double x[5] = {5, 1, 4, 2, 3};
        CHECK(fabs(dlt_percentile_sort(x, 5, 95) - 4.8) < 1e-12, "95th percentile of 1..5 = 4.8");
        double y[5] = {1, NAN, 2, 3, 6};
        dlt_stats s;
        dlt_stats_compute(y, 5, &s);
        CHECK(s.n == 4 && s.mean == 3 && s.median == 2.5 && s.min == 1 && s.max == 6 && fabs(s.std - sqrt(14.0 / 3)) < 1e-12,
              "stats skip NaN; sample std");
        double w[2] = {1, INFINITY};
        dlt_stats_compute(w, 2, &s);
        CHECK(isinf(s.mean) && s.max == INFINITY && s.min == 1, "stats with inf");
        dlt_stats_compute(y + 1, 1, &s);
        CHECK(s.n == 0 && isnan(s.mean), "stats of nothing");
    }

    /* Class names. */
    {
        dlt_class_names cn;
        CHECK(dlt_class_names_parse("[\"background\", \"anterior\",\"post\\\"erior\"]", &cn) == 0 && cn.n == 3 &&
                  strcmp(dlt_class_names_get(&cn, 1), "anterior") == 0 && strcmp(dlt_class_names_get(&cn, 2), "post\"erior") == 0,
              "class names from a JSON array");
        dlt_class_names_free(&cn);
        CHECK(dlt_class_names_parse("bg, liver,spleen", &cn) == 0 && cn.n == 3 && strcmp(dlt_class_names_get(&cn, 2), "spleen") == 0 &&
                  !dlt_class_names_get(&cn, 3),
              "class names from a comma list");
        dlt_class_names_free(&cn);
        CHECK(dlt_class_names_parse("[\"a\" \"b\"]", &cn) != 0, "malformed JSON names refused");
    }
    return check_done();
}
