/* test_sample.c - the sampler on hand-made subjects: extraction with each
 * padding mode, class indices, record order and shuffle, class-balanced and
 * foreground proportions, placement rules, purity of record k (what --skip
 * relies on) and image/label alignment through augmentation. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/sample.h"

#include <stdlib.h>
#include <string.h>

/* A subject of nx*ny*nz voxels, image = 1000*z + 100*y + x (channel 0) and,
 * with two channels, its negative; labels from lab(x,y,z). */
static void make_subject(dlt_subject *s, const char *id, int nx, int ny, int nz, int channels,
                         int (*lab)(int, int, int))
{
    memset(s, 0, sizeof *s);
    s->id = strdup(id);
    s->dim[0] = nx, s->dim[1] = ny, s->dim[2] = nz;
    s->channels = channels;
    int64_t vox = (int64_t)nx * ny * nz;
    s->chan = calloc((size_t)channels, sizeof(float *));
    for (int c = 0; c < channels; c++) s->chan[c] = malloc(sizeof(float) * (size_t)vox);
    if (lab) s->label = malloc(2 * (size_t)vox);
    for (int z = 0; z < nz; z++)
        for (int y = 0; y < ny; y++)
            for (int x = 0; x < nx; x++) {
                int64_t i = ((int64_t)z * ny + y) * nx + x;
                for (int c = 0; c < channels; c++) s->chan[c][i] = (c ? -1.0f : 1.0f) * (1000 * z + 100 * y + x);
                if (lab) s->label[i] = (uint16_t)lab(x, y, z);
            }
}

/* (the sampler allocates patch buffers with dlt_alloc, as the reader does) */
static void patch_free(dlt_patch *p)
{
    dlt_free(p->image);
    dlt_free(p->label);
    memset(p, 0, sizeof *p);
}

static void drop_subject(dlt_subject *s)
{
    for (int c = 0; c < s->channels; c++) free(s->chan[c]);
    free(s->chan);
    free(s->label);
    free(s->id);
    dlt_subject_index_free(s);
}

/* class 1: a small cube; class 2: one plane; class 0: the rest */
static int lab3(int x, int y, int z) { return (x >= 2 && x < 5 && y >= 2 && y < 5 && z >= 2 && z < 5) ? 1 : z == 9 ? 2 : 0; }
static int labeq(int x, int y, int z) { return (x / 3 + y / 4 + z / 5) % 3; }

static dlt_sample_config base_config(int sampler, int px, int py, int pz)
{
    dlt_sample_config c;
    memset(&c, 0, sizeof c);
    c.sampler = sampler;
    c.patch[0] = px, c.patch[1] = py, c.patch[2] = pz;
    c.per_volume = 1;
    c.seed = 42;
    c.nclasses = 3;
    c.fg_fraction = 0.33;
    return c;
}

int main(void)
{
    dlt_subject a, b;
    make_subject(&a, "a", 4, 3, 2, 2, lab3);
    /* ---- extraction ---- */
    {
        float img[2 * 6 * 3 * 2];
        uint16_t lab[6 * 3 * 2];
        int size[3] = {6, 3, 2}, corner[3] = {-1, 0, 0};
        dlt_sample_extract(&a, corner, size, DLT_PAD_ZERO, img, lab);
        CHECK(img[0] == 0 && img[1] == 0 && img[4] == 3 && img[5] == 0 && img[7] == 100 && img[18 + 1] == 1000 &&
                  img[36 + 7] == -100,
              "pad zero: row copied, outside zero, both channels");
        dlt_sample_extract(&a, corner, size, DLT_PAD_EDGE, img, lab);
        CHECK(img[0] == 0 && img[5] == 3 && img[6] == 100 && img[11] == 103, "pad edge repeats the border voxel");
        dlt_sample_extract(&a, corner, size, DLT_PAD_REFLECT, img, lab);
        /* x = -1 -> 1; x = 4 -> 2 (numpy reflect) */
        CHECK(img[0] == 1 && img[1] == 0 && img[5] == 2, "pad reflect mirrors without repeating the edge");
        int c2[3] = {-3, -2, 1};
        float big[2 * 9 * 5 * 3];
        int s2[3] = {9, 5, 3};
        dlt_sample_extract(&a, c2, s2, DLT_PAD_REFLECT, big, NULL);
        /* x=-3 -> period 6: 3; y=-2 -> 2; z=1+0 -> 1 */
        CHECK(big[0] == 1000 + 200 + 3 && big[45 * 2] == 1000 + 200 + 3 && big[135] == -1203, "reflect far outside (periodic mirror)");
        int inside[3] = {1, 1, 0}, s3[3] = {2, 2, 2};
        float in[2 * 8];
        dlt_sample_extract(&a, inside, s3, DLT_PAD_ZERO, in, NULL);
        CHECK(in[0] == 101 && in[3] == 202 && in[7] == 1202 && in[8] == -101, "inside: plain copy");
    }
    drop_subject(&a);

    /* ---- class index ---- */
    make_subject(&a, "a", 10, 10, 10, 1, lab3);
    CHECK(dlt_subject_index(&a, 2, 1, NULL) == DLT_EINVAL && strstr(dlt_errmsg(), "label value 2"),
          "label beyond the class count refused: %s", dlt_errmsg());
    CHECK(dlt_subject_index(&a, 3, 1, NULL) == 0, "index built");
    CHECK(a.count[0] == 1000 - 27 - 100 && a.count[1] == 27 && a.count[2] == 100, "class counts");
    CHECK(a.index[0] == NULL && a.index[1] && a.index[2], "no index for the big class (rejection)");
    int okidx = 1;
    for (int i = 0; i < 27; i++) okidx &= a.label[a.index[1][i]] == 1;
    CHECK(okidx, "index lists the class's voxels");
    int64_t bi, bl, bx;
    dlt_subject_bytes(&a, &bi, &bl, &bx);
    CHECK(bi == 4000 && bl == 2000 && bx == 4 * 127, "memory accounting (%lld %lld %lld)", (long long)bi,
          (long long)bl, (long long)bx);

    /* ---- balanced: exact proportions per epoch, centres on the class ---- */
    {
        dlt_sample_config c = base_config(DLT_SAMPLER_BALANCED, 4, 4, 4);
        c.per_volume = 30;
        dlt_sampler s;
        CHECK(dlt_sampler_init(&s, &c, &a, 1) == 0, "balanced sampler init");
        int hist[3] = {0}, centre_ok = 1, perepoch = 1;
        dlt_patch p;
        memset(&p, 0, sizeof p);
        for (int e = 0; e < 10; e++) {
            int h[3] = {0};
            for (int j = 0; j < 30; j++) {
                dlt_sample_plan pl;
                dlt_sampler_plan(&s, e * 30 + j, &pl);
                h[pl.cls]++;
                hist[pl.cls]++;
                dlt_sampler_record(&s, e * 30 + j, &p);
                /* centre voxel (2,2,2) of the patch carries the class aimed at */
                centre_ok &= p.label[(2 * 4 + 2) * 4 + 2] == pl.cls;
            }
            perepoch &= h[0] == 10 && h[1] == 10 && h[2] == 10;
        }
        CHECK(perepoch, "balanced: 10/10/10 per epoch of 30");
        CHECK(centre_ok, "balanced: the patch centre has the class aimed at");
        dlt_sampler_free(&s);
        double w[3] = {1, 2, 1};
        c.class_weights = w;
        c.per_volume = 40;
        dlt_sampler_init(&s, &c, &a, 1);
        memset(hist, 0, sizeof hist);
        for (int k = 0; k < 400; k++) {
            dlt_sample_plan pl;
            dlt_sampler_plan(&s, k, &pl);
            hist[pl.cls]++;
        }
        CHECK(hist[0] == 100 && hist[1] == 200 && hist[2] == 100, "class weights 1,2,1: %d %d %d", hist[0], hist[1],
              hist[2]);
        dlt_sampler_free(&s);
        patch_free(&p);
    }

    /* ---- foreground: the forced fraction ---- */
    {
        dlt_sample_config c = base_config(DLT_SAMPLER_FOREGROUND, 4, 4, 4);
        c.per_volume = 100;
        c.fg_fraction = 0.33;
        dlt_sampler s;
        dlt_sampler_init(&s, &c, &a, 1);
        int forced = 0, fgok = 1;
        dlt_patch p;
        memset(&p, 0, sizeof p);
        for (int k = 0; k < 100; k++) {
            dlt_sample_plan pl;
            dlt_sampler_plan(&s, k, &pl);
            if (pl.cls > 0) {
                forced++;
                dlt_sampler_record(&s, k, &p);
                int any = 0;
                for (int i = 0; i < 64; i++) any |= p.label[i] > 0;
                fgok &= any;
            }
        }
        CHECK(forced == 33, "foreground: 33 of 100 forced (%d)", forced);
        CHECK(fgok, "foreground: forced patches contain foreground");
        dlt_sampler_free(&s);
        patch_free(&p);
    }

    /* ---- random placement, order, shuffle ---- */
    make_subject(&b, "b", 6, 20, 3, 1, labeq);
    {
        dlt_subject two[2] = {a, b};
        dlt_sample_config c = base_config(DLT_SAMPLER_RANDOM, 5, 5, 5);
        c.per_volume = 3;
        dlt_sampler s;
        CHECK(dlt_sampler_init(&s, &c, two, 2) == 0, "random sampler init");
        int order = 1, place = 1;
        for (int k = 0; k < 60; k++) {
            dlt_sample_plan pl;
            dlt_sampler_plan(&s, k, &pl);
            order &= pl.subject == (k % 6) / 3 && pl.slot == k % 3 && pl.epoch == k / 6;
            const dlt_subject *t = &two[pl.subject];
            for (int ax = 0; ax < 3; ax++) {
                int n = (int)t->dim[ax];
                if (n >= 5) place &= pl.corner[ax] >= 0 && pl.corner[ax] + 5 <= n;
                else place &= pl.corner[ax] <= 0 && pl.corner[ax] + 5 >= n;
            }
        }
        CHECK(order, "unshuffled: subjects in order, per_volume records each");
        CHECK(place, "random: inside the volume, or the volume inside the patch");
        dlt_sampler_free(&s);
        c.shuffle = 1;
        dlt_sampler_init(&s, &c, two, 2);
        int balanced = 1, differs = 0;
        for (int e = 0; e < 20; e++) {
            int n[2] = {0}, slots = 0;
            for (int j = 0; j < 6; j++) {
                dlt_sample_plan pl;
                dlt_sampler_plan(&s, e * 6 + j, &pl);
                n[pl.subject]++;
                slots |= 1 << (pl.subject * 3 + pl.slot);
                differs += pl.subject != j / 3;
            }
            balanced &= n[0] == 3 && n[1] == 3 && slots == 63;
        }
        CHECK(balanced, "shuffle: every slot once per epoch");
        CHECK(differs > 20, "shuffle: subjects interleave (%d moved)", differs);
        dlt_sampler_free(&s);

        /* record k is pure: a fresh sampler asked for k directly agrees */
        c.aug.flip[0] = c.aug.flip[2] = 1;
        c.aug.noise = 0.1;
        dlt_sampler s1, s2;
        dlt_sampler_init(&s1, &c, two, 2);
        dlt_sampler_init(&s2, &c, two, 2);
        dlt_patch p1, p2;
        memset(&p1, 0, sizeof p1);
        memset(&p2, 0, sizeof p2);
        for (int k = 0; k < 20; k++) dlt_sampler_record(&s1, k, &p1);
        dlt_sampler_record(&s2, 19, &p2);
        CHECK(memcmp(p1.image, p2.image, 125 * 4) == 0 && memcmp(p1.label, p2.label, 125 * 2) == 0 &&
                  !strcmp(p1.id, p2.id) && !memcmp(p1.corner, p2.corner, sizeof p1.corner),
              "record 19 alone equals record 19 after 0..18");
        dlt_sampler_record(&s2, 18, &p2);
        CHECK(memcmp(p1.image, p2.image, 125 * 4) != 0, "records differ");
        dlt_sampler_free(&s1);
        dlt_sampler_free(&s2);
        patch_free(&p1);
        patch_free(&p2);

        /* pad none: refuses a volume smaller than the patch */
        c = base_config(DLT_SAMPLER_RANDOM, 5, 5, 5);
        c.pad = DLT_PAD_NONE;
        CHECK(dlt_sampler_init(&s, &c, two, 2) == DLT_ESHAPE && strstr(dlt_errmsg(), "b: volume 6x20x3"),
              "pad none: %s", dlt_errmsg());
        dlt_sampler_free(&s);
        /* the samplers above re-indexed the copies in two[]: a and b take
         * them back (their own index pointers were freed through the copies;
         * ASan found this) */
        a = two[0];
        b = two[1];
        /* centred patches are shifted inside with pad none */
        c = base_config(DLT_SAMPLER_BALANCED, 6, 6, 6);
        c.pad = DLT_PAD_NONE;
        c.per_volume = 30;
        dlt_sampler_init(&s, &c, &a, 1);
        int in = 1;
        for (int k = 0; k < 60; k++) {
            dlt_sample_plan pl;
            dlt_sampler_plan(&s, k, &pl);
            for (int ax = 0; ax < 3; ax++) in &= pl.corner[ax] >= 0 && pl.corner[ax] + 6 <= 10;
        }
        CHECK(in, "pad none: centred patches stay inside");
        dlt_sampler_free(&s);
    }

    /* ---- a class absent everywhere; channel mismatch ---- */
    {
        dlt_sample_config c = base_config(DLT_SAMPLER_BALANCED, 4, 4, 4);
        c.nclasses = 5;
        dlt_sampler s;
        CHECK(dlt_sampler_init(&s, &c, &a, 1) == 0 && s.nmissing == 2 && s.missing_classes[0] == 3 &&
                  s.missing_classes[1] == 4,
              "balanced: classes 3 and 4 reported absent");
        dlt_sampler_free(&s);
        dlt_subject m;
        make_subject(&m, "m", 10, 10, 10, 2, lab3);
        dlt_subject two[2] = {a, m};
        CHECK(dlt_sampler_init(&s, &c, two, 2) == DLT_ESHAPE && strstr(dlt_errmsg(), "m: 2 channels"),
              "channel mismatch: %s", dlt_errmsg());
        dlt_sampler_free(&s);
        two[1].channels = 2;
        drop_subject(&two[1]);
        a = two[0];
    }

    /* ---- augmentation through the sampler keeps image and label aligned:
     * a subject whose image equals its label ---- */
    {
        dlt_subject e;
        make_subject(&e, "eq", 30, 30, 30, 1, labeq);
        for (int64_t i = 0; i < 27000; i++) e.chan[0][i] = e.label[i];
        dlt_sample_config c = base_config(DLT_SAMPLER_BALANCED, 16, 16, 12);
        c.aug.flip[0] = c.aug.flip[1] = c.aug.flip[2] = 1;
        c.aug.rot90 = 1;
        c.per_volume = 5;
        dlt_sampler s;
        dlt_sampler_init(&s, &c, &e, 1);
        dlt_patch p;
        memset(&p, 0, sizeof p);
        int exact = 1;
        for (int k = 0; k < 20; k++) {
            dlt_sampler_record(&s, k, &p);
            for (int i = 0; i < 16 * 16 * 12; i++) exact &= p.image[i] == p.label[i];
        }
        CHECK(exact, "flips + rot90 through the sampler: image == label");
        dlt_sampler_free(&s);
        c.aug.elastic_alpha = 2;
        c.aug.elastic_sigma = 5;
        dlt_sampler_init(&s, &c, &e, 1);
        int64_t agree = 0, n = 0;
        for (int k = 0; k < 20; k++) {
            dlt_sampler_record(&s, k, &p);
            for (int i = 0; i < 16 * 16 * 12; i++, n++) agree += (int)lrintf(p.image[i]) == p.label[i];
        }
        CHECK(agree > 0.85 * n, "elastic through the sampler: round(image) == label at %.1f%%", 100.0 * agree / n);
        dlt_sampler_free(&s);
        /* nnU-Net's rotation and scaling on every patch, resampled from a
         * box of the volume: aligned, and the patches differ from plain ones */
        dlt_sample_config c2 = base_config(DLT_SAMPLER_BALANCED, 16, 16, 12);
        c2.per_volume = 5;
        dlt_sampler plain;
        dlt_sampler_init(&plain, &c2, &e, 1);
        c2.aug.rotate = 30, c2.aug.rotate_p = 1;
        c2.aug.sscale[0] = 0.7, c2.aug.sscale[1] = 1.4, c2.aug.sscale_p = 1;
        dlt_sampler_init(&s, &c2, &e, 1);
        dlt_patch q;
        memset(&q, 0, sizeof q);
        agree = 0, n = 0;
        int64_t differ = 0;
        for (int k = 0; k < 20; k++) {
            dlt_sampler_record(&s, k, &p);
            dlt_sampler_record(&plain, k, &q);
            for (int i = 0; i < 16 * 16 * 12; i++, n++) {
                agree += (int)lrintf(p.image[i]) == p.label[i];
                differ += p.label[i] != q.label[i];
            }
        }
        CHECK(agree > 0.85 * n && differ > 0.05 * n,
              "rotation + spatial scaling through the sampler: round(image) == label at %.1f%%, %.1f%% of labels moved",
              100.0 * agree / n, 100.0 * differ / n);
        dlt_sampler_free(&s);
        dlt_sampler_free(&plain);
        patch_free(&q);
        patch_free(&p);
        drop_subject(&e);
    }
    drop_subject(&a);
    drop_subject(&b);
    return check_done();
}
