/* test_augment.c - flips and rotations (exact index maps, image/label
 * together), intensity changes, noise statistics, the elastic field
 * (determinism, size of displacements, smoothness) and warps. */
#include "check.h"
#include "dlt/augment.h"
#include "dlt/core.h"

#include <string.h>

/* A patch whose image equals its label: blobs of classes 0..3. */
static void blobs(float *img, uint16_t *lab, const int n[3])
{
    for (int z = 0; z < n[2]; z++)
        for (int y = 0; y < n[1]; y++)
            for (int x = 0; x < n[0]; x++) {
                int64_t i = ((int64_t)z * n[1] + y) * n[0] + x;
                int v = ((x / 5) + 2 * (y / 7) + (z / 4)) % 4;
                lab[i] = (uint16_t)v;
                img[i] = (float)v;
            }
}

/* Label from a hash of the index: no symmetry that a flip could keep. */
static void scramble(float *img, uint16_t *lab, int64_t vox)
{
    for (int64_t i = 0; i < vox; i++) {
        uint32_t h = (uint32_t)i * 2654435761u;
        lab[i] = (uint16_t)(h >> 28);
        img[i] = lab[i];
    }
}

/* Two balls (classes 1, 2) in background 0: few boundary voxels. */
static void balls(float *img, uint16_t *lab, const int n[3])
{
    for (int z = 0; z < n[2]; z++)
        for (int y = 0; y < n[1]; y++)
            for (int x = 0; x < n[0]; x++) {
                int64_t i = ((int64_t)z * n[1] + y) * n[0] + x;
                double a = (x - 12) * (x - 12) + (y - 18) * (y - 18) + (z - 12) * (z - 12);
                double b = (x - 28) * (x - 28) + (y - 18) * (y - 18) + (z - 12) * (z - 12);
                lab[i] = a < 81 ? 1 : b < 64 ? 2 : 0;
                img[i] = lab[i];
            }
}

int main(void)
{
    /* exact maps on a 3x3x2 patch: value = index */
    {
        int n[3] = {3, 3, 2};
        float a[18];
        uint16_t l[18];
        dlt_aug_work w = {0};
        dlt_aug_params p;
        memset(&p, 0, sizeof p);
        for (int i = 0; i < 18; i++) a[i] = (float)(l[i] = (uint16_t)i);
        p.flip[0] = 1;
        dlt_aug_flip_rotate(&p, a, 1, l, n, &w);
        CHECK(a[0] == 2 && a[1] == 1 && a[2] == 0 && a[3] == 5 && l[9] == 11, "flip x reverses rows");
        dlt_aug_flip_rotate(&p, a, 1, l, n, &w);
        int id = 1;
        for (int i = 0; i < 18; i++) id &= a[i] == i && l[i] == i;
        CHECK(id, "flip x twice is the identity");
        memset(&p, 0, sizeof p);
        p.flip[2] = 1;
        dlt_aug_flip_rotate(&p, a, 1, l, n, &w);
        CHECK(a[0] == 9 && a[9] == 0 && l[17] == 8, "flip z swaps slices");
        dlt_aug_flip_rotate(&p, a, 1, l, n, &w);
        memset(&p, 0, sizeof p);
        p.rot = 1;
        dlt_aug_flip_rotate(&p, a, 1, l, n, &w);
        /* out(x,y) = in(y, 2-x): out(0,0) = in(0,2) = 6; out(2,0) = in(0,0) = 0 */
        CHECK(a[0] == 6 && a[2] == 0 && a[8] == 2 && l[0] == 6, "rot90 by one quarter turn");
        for (int t = 0; t < 3; t++) dlt_aug_flip_rotate(&p, a, 1, l, n, &w);
        id = 1;
        for (int i = 0; i < 18; i++) id &= a[i] == i && l[i] == i;
        CHECK(id, "four quarter turns are the identity");
        dlt_aug_work_free(&w);
    }

    /* every flip/rotation combination keeps image == label, 2 channels */
    {
        int n[3] = {16, 16, 8};
        int64_t vox = 16 * 16 * 8;
        float *img = dlt_alloc(2 * vox, 4, "t");
        uint16_t *lab = dlt_alloc(vox, 2, "t");
        dlt_aug_work w = {0};
        int ok = 1, moved = 0;
        for (int combo = 0; combo < 32; combo++) {
            scramble(img, lab, vox);
            for (int64_t i = 0; i < vox; i++) img[vox + i] = 10 * img[i];
            dlt_aug_params p;
            memset(&p, 0, sizeof p);
            for (int a = 0; a < 3; a++) p.flip[a] = combo >> a & 1;
            p.rot = combo >> 3;
            dlt_aug_flip_rotate(&p, img, 2, lab, n, &w);
            for (int64_t i = 0; i < vox; i++) ok &= img[i] == lab[i] && img[vox + i] == 10 * lab[i];
            uint16_t ref[16 * 16 * 8];
            float tmp[16 * 16 * 8];
            scramble(tmp, ref, vox);
            moved += memcmp(ref, lab, sizeof ref) != 0;
        }
        CHECK(ok, "flips and rotations move image channels and label together");
        /* 31 non-trivial combinations, but flip x + flip y + half turn is the identity */
        CHECK(moved == 30, "each non-identity combination changes the patch (%d of 30)", moved);
        dlt_aug_work_free(&w);
        dlt_free(img);
        dlt_free(lab);
    }

    /* draws: pure in (seed, stream), flips roughly half the time */
    {
        dlt_aug_config c;
        memset(&c, 0, sizeof c);
        c.flip[0] = c.flip[1] = c.flip[2] = 1;
        c.rot90 = 1;
        c.scale[0] = 0.9, c.scale[1] = 1.1;
        c.gamma[0] = 0.7, c.gamma[1] = 1.5;
        dlt_aug_params p, q;
        int nflip = 0, rots[4] = {0}, same = 1, inrange = 1;
        for (int s = 0; s < 4000; s++) {
            dlt_aug_draw(&c, 5, (uint64_t)s, &p);
            dlt_aug_draw(&c, 5, (uint64_t)s, &q);
            same &= memcmp(&p, &q, sizeof p) == 0;
            nflip += p.flip[1];
            rots[p.rot]++;
            inrange &= p.scale >= 0.9f && p.scale <= 1.1f && p.gamma >= 0.7f && p.gamma <= 1.5f;
        }
        CHECK(same, "same seed and stream, same draw");
        CHECK(nflip > 1800 && nflip < 2200, "flip y in %d of 4000 draws", nflip);
        CHECK(rots[0] > 850 && rots[1] > 850 && rots[2] > 850 && rots[3] > 850, "rotations uniform (%d %d %d %d)",
              rots[0], rots[1], rots[2], rots[3]);
        CHECK(inrange, "scale and gamma within their ranges");
        int sz[3] = {8, 4, 4};
        CHECK(dlt_aug_check(&c, sz) == DLT_EINVAL, "rot90 refused on a non-square patch: %s", dlt_errmsg());
        c.gamma[0] = 2;
        sz[1] = 8;
        CHECK(dlt_aug_check(&c, sz) == DLT_EINVAL, "reversed gamma range refused");
    }

    /* intensity: scale, offset, gamma endpoints, noise statistics */
    {
        int n[3] = {32, 32, 32};
        int64_t vox = 32 * 32 * 32;
        float *img = dlt_alloc(2 * vox, 4, "t");
        for (int64_t i = 0; i < 2 * vox; i++) img[i] = (float)(i % 101) / 100.0f;
        dlt_aug_params p;
        memset(&p, 0, sizeof p);
        p.scale = 2;
        p.gamma = 1;
        dlt_aug_intensity(&p, img, 2, n);
        CHECK(img[100] == 2.0f && img[vox + 5] == 2.0f * ((vox + 5) % 101) / 100.0f, "scale multiplies");
        p.scale = 1;
        p.gamma = 2;
        dlt_aug_intensity(&p, img, 2, n);
        CHECK(img[0] == 0.0f && img[100] == 2.0f && fabsf(img[50] - 0.5f) < 1e-5f, "gamma keeps min and max, bends between");
        p.gamma = 1;
        p.offset_sigma = 1;
        p.seed = 3;
        p.stream = 9;
        float before0 = img[0], before1 = img[vox + 7], before2 = img[1];
        dlt_aug_intensity(&p, img, 2, n);
        float d0 = img[0] - before0, d1 = img[vox + 7] - before1;
        CHECK(d0 != 0 && d1 != 0 && d0 != d1 && fabsf((img[1] - before2) - d0) < 1e-5f, "offset per channel");
        memset(img, 0, (size_t)(2 * vox) * 4);
        memset(&p, 0, sizeof p);
        p.scale = p.gamma = 1;
        p.noise = 0.5f;
        p.seed = 1;
        p.stream = 2;
        dlt_aug_intensity(&p, img, 2, n);
        double m = 0, v = 0;
        for (int64_t i = 0; i < 2 * vox; i++) m += img[i];
        m /= 2 * vox;
        for (int64_t i = 0; i < 2 * vox; i++) v += (img[i] - m) * (img[i] - m);
        v = sqrt(v / (2 * vox));
        CHECK(fabs(m) < 0.01 && fabs(v - 0.5) < 0.01, "noise mean %.4f sd %.4f (want 0, 0.5)", m, v);
        float keep = img[777];
        memset(img, 0, (size_t)(2 * vox) * 4);
        dlt_aug_intensity(&p, img, 2, n);
        CHECK(img[777] == keep, "noise is reproducible");
        dlt_free(img);
    }

    /* elastic field */
    {
        int n[3] = {40, 36, 24};
        int64_t vox = 40 * 36 * 24;
        float *d = dlt_alloc(3 * vox, 4, "t"), *e = dlt_alloc(3 * vox, 4, "t");
        float mx;
        double sd = 0, step = 0;
        int reps = 8, okmax = 1;
        for (int r = 0; r < reps; r++) {
            CHECK(dlt_aug_elastic_field(3.0, 8.0, n, 11, (uint64_t)r, d, &mx) == 0, "field %d", r);
            float m2 = 0;
            double s2 = 0, st = 0;
            for (int64_t i = 0; i < 3 * vox; i++) {
                s2 += d[i] * d[i];
                if (fabsf(d[i]) > m2) m2 = fabsf(d[i]);
                if (i % n[0]) st += (d[i] - d[i - 1]) * (d[i] - d[i - 1]);
            }
            okmax &= m2 == mx;
            sd += sqrt(s2 / (3 * vox)) / reps;
            step += sqrt(st / (3 * vox)) / reps;
        }
        CHECK(okmax, "maxabs is the largest component");
        CHECK(sd > 2.0 && sd < 4.0, "displacement sd %.2f voxels (alpha 3)", sd);
        CHECK(step < 0.15 * sd, "field is smooth: neighbour step %.3f vs sd %.2f", step, sd);
        dlt_aug_elastic_field(3.0, 8.0, n, 11, 3, d, NULL);
        dlt_aug_elastic_field(3.0, 8.0, n, 11, 3, e, NULL);
        CHECK(memcmp(d, e, (size_t)(3 * vox) * 4) == 0, "field is reproducible");
        dlt_aug_elastic_field(3.0, 8.0, n, 11, 4, e, NULL);
        CHECK(memcmp(d, e, (size_t)(3 * vox) * 4) != 0, "another stream, another field");

        /* zero field with an origin: an exact shifted copy */
        float *src = dlt_alloc(vox, 4, "t"), *out = dlt_alloc(vox, 4, "t");
        uint16_t *sl = dlt_alloc(vox, 2, "t"), *ol = dlt_alloc(vox, 2, "t");
        blobs(src, sl, n);
        memset(d, 0, (size_t)(3 * vox) * 4);
        int small[3] = {30, 30, 20}, origin[3] = {5, 3, 2};
        dlt_aug_warp(src, sl, 1, n, origin, d, out, ol, small);
        int ok = 1;
        for (int z = 0; z < 20; z++)
            for (int y = 0; y < 30; y++)
                for (int x = 0; x < 30; x++) {
                    int64_t i = ((int64_t)z * 30 + y) * 30 + x, j = ((int64_t)(z + 2) * 36 + y + 3) * 40 + x + 5;
                    ok &= out[i] == src[j] && ol[i] == sl[j];
                }
        CHECK(ok, "warp with a zero field copies the box at the origin");

        /* a real warp keeps image and label aligned: round(image) == label
         * except near class boundaries */
        dlt_aug_params p;
        memset(&p, 0, sizeof p);
        p.elastic_alpha = 2;
        p.elastic_sigma = 6;
        p.seed = 1;
        p.stream = 77;
        dlt_aug_work w = {0};
        balls(src, sl, n);
        dlt_aug_elastic_patch(&p, src, 1, sl, n, &w);
        int64_t agree = 0, changed = 0;
        for (int64_t i = 0; i < vox; i++) agree += (int)lrintf(src[i]) == sl[i];
        balls(out, ol, n);
        for (int64_t i = 0; i < vox; i++) changed += ol[i] != sl[i];
        CHECK(agree > 0.97 * vox, "elastic: round(image) == label at %.1f%% of voxels", 100.0 * agree / vox);
        CHECK(changed > 0.02 * vox, "elastic: the warp moved labels (%.1f%% changed)", 100.0 * changed / vox);
        dlt_aug_work_free(&w);
        dlt_free(src);
        dlt_free(out);
        dlt_free(sl);
        dlt_free(ol);
        dlt_free(d);
        dlt_free(e);
    }
    /* ---- nnU-Net's transforms ---- */
    {
        /* rotation 90 degrees about z: output v reads c + R (v - c), so the
         * voxel at c + (2,0,0) appears at c + R^-1 (2,0,0) = c + (0,-2,0);
         * 9^3 patch, c = 4 */
        int n[3] = {9, 9, 9};
        int64_t vox = 729;
        float img[729], disp[3 * 729], mx;
        uint16_t lab[729], out[729];
        float outi[729];
        memset(img, 0, sizeof img);
        memset(lab, 0, sizeof lab);
        lab[(4 * 9 + 4) * 9 + 6] = 5, img[(4 * 9 + 4) * 9 + 6] = 1;
        dlt_aug_params p;
        memset(&p, 0, sizeof p);
        p.sscale = 1, p.scale = 1, p.gamma = 1, p.contrast = 1;
        CHECK(!dlt_aug_has_field(&p) && !dlt_aug_is_geometric(&p), "no angle, scale 1: no field");
        p.angle[2] = (float)(M_PI / 2);
        CHECK(dlt_aug_has_field(&p) && dlt_aug_is_geometric(&p), "an angle: a field");
        dlt_aug_spatial_field(&p, n, disp, &mx);
        static const int zero[3] = {0, 0, 0};
        dlt_aug_warp(img, lab, 1, n, zero, disp, outi, out, n);
        int at = (4 * 9 + 2) * 9 + 4, moved = 1;
        for (int64_t i = 0; i < vox; i++) moved &= out[i] == (i == at ? 5 : 0);
        CHECK(moved && fabsf(outi[at] - 1) < 1e-5, "rotation by 90 degrees about z moves (6,4,4) to (4,2,4)");
        CHECK(fabsf(mx - 8) < 1e-4, "its largest displacement component is a corner's, 8 voxels (%g)", mx);
        /* about x by 90: (y,z) -> R(y,z) = (-z, y); source c + (0,2,0) appears at c + (0,0,-2) */
        memset(&p.angle, 0, sizeof p.angle);
        p.angle[0] = (float)(M_PI / 2);
        memset(lab, 0, sizeof lab);
        lab[(4 * 9 + 6) * 9 + 4] = 5;
        dlt_aug_spatial_field(&p, n, disp, NULL);
        dlt_aug_warp(img, lab, 1, n, zero, disp, outi, out, n);
        CHECK(out[(2 * 9 + 4) * 9 + 4] == 5, "rotation by 90 degrees about x moves (4,6,4) to (4,4,2)");
        /* spatial scale 2: v reads c + 2 (v - c): source c + (4,0,0) appears at c + (2,0,0) */
        memset(&p.angle, 0, sizeof p.angle);
        p.sscale = 2;
        memset(lab, 0, sizeof lab);
        lab[(4 * 9 + 4) * 9 + 8] = 5;
        dlt_aug_spatial_field(&p, n, disp, &mx);
        dlt_aug_warp(img, lab, 1, n, zero, disp, outi, out, n);
        CHECK(out[(4 * 9 + 4) * 9 + 6] == 5 && fabsf(mx - 4) < 1e-5, "spatial scale 2 moves (8,4,4) to (6,4,4); reach 4 (%g)", mx);

        /* draws: each transform with its probability, angles in range, and
         * turning one on changes no other draw */
        dlt_aug_config c;
        memset(&c, 0, sizeof c);
        c.flip[0] = 1;
        c.rotate = 30, c.rotate_p = 0.2;
        c.sscale[0] = 0.7, c.sscale[1] = 1.4, c.sscale_p = 0.2;
        c.blur[0] = 0.5, c.blur[1] = 1, c.blur_p = 0.2;
        c.contrast[0] = 0.75, c.contrast[1] = 1.25, c.contrast_p = 0.15;
        int n_rot = 0, n_sc = 0, n_bl = 0, n_co = 0, inrange = 1, same_flip = 1;
        dlt_aug_config c0;
        memset(&c0, 0, sizeof c0);
        c0.flip[0] = 1;
        for (uint64_t k = 0; k < 10000; k++) {
            dlt_aug_params q, q0;
            dlt_aug_draw(&c, 3, k, &q);
            dlt_aug_draw(&c0, 3, k, &q0);
            same_flip &= q.flip[0] == q0.flip[0];
            n_rot += q.angle[0] != 0;
            n_sc += q.sscale != 1;
            n_bl += q.blur > 0;
            n_co += q.contrast != 1;
            for (int a = 0; a < 3; a++) inrange &= fabsf(q.angle[a]) <= (float)(M_PI / 6) + 1e-6f;
            inrange &= q.sscale == 1 || (q.sscale >= 0.7f && q.sscale <= 1.4f);
            inrange &= q.blur == 0 || (q.blur >= 0.5f && q.blur <= 1);
            inrange &= q.contrast == 1 || (q.contrast >= 0.75f && q.contrast <= 1.25f);
        }
        CHECK(abs(n_rot - 2000) < 200 && abs(n_sc - 2000) < 200 && abs(n_bl - 2000) < 200 && abs(n_co - 1500) < 200,
              "each transform drawn at its probability (rotate %d, scale %d, blur %d of 10000; contrast %d)", n_rot,
              n_sc, n_bl, n_co);
        CHECK(inrange, "drawn values within their ranges");
        CHECK(same_flip, "the new transforms change no flip draw");
        c.rotate_p = 1.5;
        CHECK(dlt_aug_check(&c, n) == DLT_EINVAL, "probability 1.5 refused: %s", dlt_errmsg());
        c.rotate_p = 0.2, c.sscale[0] = 0;
        CHECK(dlt_aug_check(&c, n) == DLT_EINVAL, "spatial scale 0 refused: %s", dlt_errmsg());

        /* blur: a constant stays, a spike keeps its mass and spreads with
         * variance sigma^2 along each axis */
        dlt_aug_params b;
        memset(&b, 0, sizeof b);
        b.scale = b.gamma = b.contrast = b.sscale = 1;
        b.blur = 1;
        for (int64_t i = 0; i < vox; i++) img[i] = 3;
        dlt_aug_intensity(&b, img, 1, n);
        int flat = 1;
        for (int64_t i = 0; i < vox; i++) flat &= fabsf(img[i] - 3) < 1e-5f;
        CHECK(flat, "blur keeps a constant image");
        memset(img, 0, sizeof img);
        img[(4 * 9 + 4) * 9 + 4] = 1;
        dlt_aug_intensity(&b, img, 1, n);
        double mass = 0, var = 0;
        for (int x = 0; x < 9; x++)
            for (int64_t yz = 0; yz < 81; yz++) {
                mass += img[yz * 9 + x];
                var += img[yz * 9 + x] * (x - 4) * (x - 4);
            }
        CHECK(fabs(mass - 1) < 1e-4 && fabs(var - 1) < 0.05, "blur sigma 1: mass 1 (%g), variance along x 1 (%g)", mass, var);
        /* contrast: mean kept where nothing clips, range kept always */
        b.blur = 0, b.contrast = 1.2f;
        for (int64_t i = 0; i < vox; i++) img[i] = (float)(i % 7);
        double m0 = 0, m1 = 0;
        for (int64_t i = 0; i < vox; i++) m0 += img[i];
        dlt_aug_intensity(&b, img, 1, n);
        float lo = 1e9f, hi = -1e9f;
        for (int64_t i = 0; i < vox; i++) m1 += img[i], lo = fminf(lo, img[i]), hi = fmaxf(hi, img[i]);
        CHECK(lo >= 0 && hi <= 6 && fabs(img[3] - ((3 - m0 / vox) * 1.2 + m0 / vox)) < 1e-4,
              "contrast 1.2 about the mean, clipped to the range [%g, %g]", lo, hi);
        b.contrast = 0.5f;
        for (int64_t i = 0; i < vox; i++) img[i] = (float)(i % 7);
        dlt_aug_intensity(&b, img, 1, n);
        m1 = 0;
        for (int64_t i = 0; i < vox; i++) m1 += img[i];
        CHECK(fabs(m1 - m0) < 1e-2, "contrast 0.5 keeps the mean (%g vs %g)", m1 / vox, m0 / vox);
        /* low resolution: a constant stays; a checkerboard loses contrast
         * but stays within its range */
        b.contrast = 1, b.lowres = 0.5f;
        for (int64_t i = 0; i < vox; i++) img[i] = 2;
        dlt_aug_intensity(&b, img, 1, n);
        flat = 1;
        for (int64_t i = 0; i < vox; i++) flat &= fabsf(img[i] - 2) < 1e-6f;
        CHECK(flat, "low resolution keeps a constant image");
        for (int z = 0; z < 9; z++)
            for (int y = 0; y < 9; y++)
                for (int x = 0; x < 9; x++) img[(z * 9 + y) * 9 + x] = (float)((x + y + z) & 1);
        dlt_aug_intensity(&b, img, 1, n);
        double v2 = 0, mm = 0;
        lo = 1e9f, hi = -1e9f;
        for (int64_t i = 0; i < vox; i++) mm += img[i];
        mm /= vox;
        for (int64_t i = 0; i < vox; i++) v2 += (img[i] - mm) * (img[i] - mm), lo = fminf(lo, img[i]), hi = fmaxf(hi, img[i]);
        CHECK(v2 / vox < 0.2 && lo >= 0 && hi <= 1, "low resolution 0.5 smooths a checkerboard (variance %g of 0.25) within [0,1]",
              v2 / vox);
        dlt_aug_config lc;
        memset(&lc, 0, sizeof lc);
        lc.lowres[0] = 0.5, lc.lowres[1] = 1.5, lc.lowres_p = 0.25;
        CHECK(dlt_aug_check(&lc, n) == DLT_EINVAL, "low resolution above 1 refused: %s", dlt_errmsg());
    }
    return check_done();
}
