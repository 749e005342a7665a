/* test_phantom.c - the synthetic CT generator (dlt/phantom.h): determinism
 * (same subject, same voxels, whatever the thread count), subjects differ,
 * every organ present (also on a coarse grid), organ HU where they belong,
 * small organs small, geometry LPS at the asked spacing, bad options. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/phantom.h"

#include <omp.h>
#include <string.h>

static int64_t counts(const dlt_volume *l, int64_t c[DLT_PHANTOM_NCLASSES])
{
    memset(c, 0, DLT_PHANTOM_NCLASSES * sizeof c[0]);
    int64_t n = l->nx * l->ny * l->nz, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (l->label[i] < DLT_PHANTOM_NCLASSES) c[l->label[i]]++;
        else bad++;
    }
    return bad;
}

int main(void)
{
    dlt_phantom_opts o;
    dlt_phantom_defaults(&o);
    CHECK(o.nx == 96 && o.ny == 96 && o.nz == 64 && o.spacing[0] == 3 && o.seed == 1, "defaults 96x96x64 at 3 mm");
    CHECK(!strcmp(dlt_phantom_class_name(1), "spleen") && !strcmp(dlt_phantom_class_name(10), "portal and splenic vein") &&
              !strcmp(dlt_phantom_class_name(13), "left adrenal gland") && dlt_phantom_class_name(14) == NULL,
          "BTCV class names");

    dlt_volume a, al, b, bl;
    double t0 = dlt_now();
    int rc = dlt_phantom_make(&o, 0, &a, &al);
    double dt = dlt_now() - t0;
    if (!CHECK(rc == 0, "make subject 0 (%.2f s)", dt)) return check_done();
    int64_t n = a.nx * a.ny * a.nz;
    char code[4];
    dlt_volume_orientation(&a, code);
    CHECK(!strcmp(code, "LPS") && a.spacing[0] == 3 && a.spacing[2] == 3 && dlt_volume_same_grid(&a, &al, 1e-9) == 0,
          "LPS grid at 3 mm, image and label on the same grid");
    int64_t c[DLT_PHANTOM_NCLASSES];
    CHECK(counts(&al, c) == 0, "labels in 0..13");
    int all = 1;
    for (int k = 1; k < DLT_PHANTOM_NCLASSES; k++) all &= c[k] > 0;
    CHECK(all, "all 13 organs present");
    CHECK(c[6] > c[1] && c[1] > c[4] && c[12] < 400 && c[13] < 400 && c[12] > 20 && c[13] > 20,
          "sizes: liver > spleen > gallbladder; adrenals small (%lld, %lld voxels)", (long long)c[12], (long long)c[13]);
    /* mean HU per class, and integer HU in the CT range */
    double sum[DLT_PHANTOM_NCLASSES] = {0};
    int integral = 1;
    for (int64_t i = 0; i < n; i++) {
        sum[al.label[i]] += a.data[i];
        integral &= a.data[i] == (float)(int)a.data[i] && a.data[i] >= -1024 && a.data[i] <= 3071;
    }
    CHECK(integral, "HU are integers in [-1024, 3071]");
    double liver = sum[6] / c[6], spleen = sum[1] / c[1], aorta = sum[8] / c[8], gb = sum[4] / c[4];
    CHECK(liver > 70 && liver < 140 && spleen > 70 && spleen < 150 && aorta > 100 && gb < 40,
          "organ HU: liver %.0f spleen %.0f aorta %.0f gallbladder %.0f", liver, spleen, aorta, gb);
    CHECK(a.data[0] <= -900, "air outside the body (%g)", a.data[0]);

    /* same subject, same voxels, with one thread or several */
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    rc = dlt_phantom_make(&o, 0, &b, &bl);
    omp_set_num_threads(nt > 1 ? nt : 2);
    CHECK(rc == 0 && !memcmp(a.data, b.data, (size_t)n * 4) && !memcmp(al.label, bl.label, (size_t)n * 2),
          "same subject, same voxels (1 thread vs %d)", nt > 1 ? nt : 2);
    dlt_volume_free(&b);
    dlt_volume_free(&bl);
    rc = dlt_phantom_make(&o, 1, &b, &bl);
    int64_t diff = 0;
    for (int64_t i = 0; i < n; i++) diff += al.label[i] != bl.label[i];
    CHECK(rc == 0 && diff > n / 100, "subjects differ (%lld label voxels)", (long long)diff);
    dlt_volume_free(&b);
    dlt_volume_free(&bl);
    o.seed = 2;
    rc = dlt_phantom_make(&o, 0, &b, &bl);
    CHECK(rc == 0 && memcmp(a.data, b.data, (size_t)n * 4) != 0, "seeds differ");
    dlt_volume_free(&b);
    dlt_volume_free(&bl);

    /* a coarse, anisotropic grid still holds every organ */
    o.seed = 1;
    o.nx = 48;
    o.ny = 40;
    o.nz = 24;
    o.spacing[0] = o.spacing[1] = 5;
    o.spacing[2] = 6;
    o.noise = 0;
    all = 1;
    for (int s = 0; s < 4; s++) {
        rc = dlt_phantom_make(&o, s, &b, &bl);
        counts(&bl, c);
        for (int k = 1; k < DLT_PHANTOM_NCLASSES; k++) all &= rc == 0 && c[k] > 0;
        if (s == 0) CHECK(rc == 0 && b.nx == 48 && b.nz == 24 && b.spacing[2] == 6, "size and spacing options");
        dlt_volume_free(&b);
        dlt_volume_free(&bl);
    }
    CHECK(all, "48x40x24 at 5x5x6 mm: all organs in 4 subjects");

    o.nx = 0;
    CHECK(dlt_phantom_make(&o, 0, &b, &bl) == DLT_EINVAL && !b.data, "bad size refused");
    o.nx = 8;
    o.spacing[1] = -1;
    CHECK(dlt_phantom_make(&o, 0, &b, &bl) == DLT_EINVAL, "bad spacing refused");
    dlt_volume_free(&a);
    dlt_volume_free(&al);
    return check_done();
}
