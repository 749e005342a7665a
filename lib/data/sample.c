/* sample.c - the sampler: record index -> subject, placement, augmentation
 * (see dlt/sample.h for the order of records and the samplers).
 *
 * RNG streams (all keyed by the seed): record k uses stream 4k (placement)
 * and 4k+1 (augmentation); epoch e's slot permutation uses stream 4e+2;
 * subject s in epoch e uses stream 4(e*S+s)+3 for its stratification. None
 * depends on what was drawn before, so any record can be made directly. */
#include "dlt/core.h"
#include "dlt/sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dlt_sampler_init(dlt_sampler *s, const dlt_sample_config *cfg, dlt_subject *subj, int nsubj)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->subj = subj;
    s->nsubj = nsubj;
    s->perm_epoch = -1;
    const int *P = cfg->patch;
    if (nsubj < 1) return dlt_err(DLT_EINVAL, "no subjects");
    if (cfg->sampler < 0 || cfg->sampler > 2) return dlt_err(DLT_EINVAL, "unknown sampler %d", cfg->sampler);
    if (cfg->pad < 0 || cfg->pad > 3) return dlt_err(DLT_EINVAL, "unknown pad mode %d", cfg->pad);
    if (P[0] < 1 || P[1] < 1 || P[2] < 1) return dlt_err(DLT_EINVAL, "bad patch size");
    if (cfg->per_volume < 1) return dlt_err(DLT_EINVAL, "per-volume count must be >= 1");
    if (!(cfg->fg_fraction >= 0 && cfg->fg_fraction <= 1))
        return dlt_err(DLT_EINVAL, "foreground fraction %g is not in [0,1]", cfg->fg_fraction);
    if ((int64_t)nsubj * cfg->per_volume > (int64_t)UINT32_MAX)
        return dlt_err(DLT_EINVAL, "subjects x per-volume is too large");
    int rc = dlt_aug_check(&cfg->aug, P);
    if (rc) return rc;
    if (cfg->nclasses < 1 || cfg->nclasses > 65536) return dlt_err(DLT_EINVAL, "bad class count %d", cfg->nclasses);
    if (cfg->class_weights) {
        double sum = 0;
        for (int c = 0; c < cfg->nclasses; c++) {
            if (!(cfg->class_weights[c] >= 0)) return dlt_err(DLT_EINVAL, "class weight %d is negative", c);
            sum += cfg->class_weights[c];
        }
        if (!(sum > 0)) return dlt_err(DLT_EINVAL, "class weights are all zero");
    }
    s->channels = subj[0].channels;
    int *want = calloc((size_t)cfg->nclasses, sizeof(int));
    if (!want) return dlt_err(DLT_ENOMEM, "out of memory");
    for (int c = 0; c < cfg->nclasses; c++)
        want[c] = cfg->sampler == DLT_SAMPLER_BALANCED ? (!cfg->class_weights || cfg->class_weights[c] > 0) : c > 0;
    for (int i = 0; i < nsubj; i++) {
        dlt_subject *t = &subj[i];
        if (t->channels != s->channels)
            rc = dlt_err(DLT_ESHAPE, "%s: %lld channels, but %s has %lld", t->id, (long long)t->channels, subj[0].id,
                         (long long)s->channels);
        else if (!t->label && cfg->sampler != DLT_SAMPLER_RANDOM)
            rc = dlt_err(DLT_EINVAL, "%s: no label volume, which the %s sampler needs", t->id,
                         dlt_sampler_name(cfg->sampler));
        else if (cfg->pad == DLT_PAD_NONE && (t->dim[0] < P[0] || t->dim[1] < P[1] || t->dim[2] < P[2]))
            rc = dlt_err(DLT_ESHAPE, "%s: volume %lldx%lldx%lld is smaller than the patch %dx%dx%d, and --pad none forbids padding",
                         t->id, (long long)t->dim[0], (long long)t->dim[1], (long long)t->dim[2], P[0], P[1], P[2]);
        else
            rc = dlt_subject_index(t, cfg->nclasses, cfg->sampler != DLT_SAMPLER_RANDOM, want);
        if (rc) {
            free(want);
            return rc;
        }
    }
    if (cfg->sampler == DLT_SAMPLER_BALANCED)
        for (int c = 0; c < cfg->nclasses; c++) {
            if (!want[c]) continue;
            int64_t n = 0;
            for (int i = 0; i < nsubj; i++) n += subj[i].count[c];
            if (n == 0 && s->nmissing < 64) s->missing_classes[s->nmissing++] = c;
        }
    free(want);
    return 0;
}

void dlt_sampler_free(dlt_sampler *s)
{
    free(s->perm);
    dlt_free(s->box);
    dlt_free(s->boxlab);
    dlt_aug_work_free(&s->work);
    s->perm = NULL;
    s->box = NULL;
    s->boxlab = NULL;
}

void dlt_sampler_clone(dlt_sampler *d, const dlt_sampler *s)
{
    *d = *s;
    d->perm = NULL;
    d->perm_epoch = -1;
    d->box = NULL;
    d->boxlab = NULL;
    d->boxcap = 0;
    memset(&d->work, 0, sizeof d->work);
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* A uniformly random voxel of class c (the subject has some). */
static int64_t class_voxel(const dlt_subject *t, int c, dlt_rng *r)
{
    if (t->index[c]) return t->index[c][dlt_rng_below(r, (uint64_t)t->count[c])];
    /* a large class (>= 1/4 of the voxels): rejection */
    int64_t nvox = t->dim[0] * t->dim[1] * t->dim[2], v = 0;
    for (int tries = 0; tries < 100000; tries++) {
        v = (int64_t)dlt_rng_below(r, (uint64_t)nvox);
        if (t->label[v] == c) return v;
    }
    for (int64_t i = 0; i < nvox; i++, v = (v + 1) % nvox)
        if (t->label[v] == c) break;
    return v;
}

int dlt_sampler_plan(dlt_sampler *s, int64_t k, dlt_sample_plan *pl)
{
    const dlt_sample_config *cfg = &s->cfg;
    int64_t S = s->nsubj, N = cfg->per_volume, E = S * N;
    if (k < 0) return dlt_err(DLT_EINVAL, "negative record index");
    int64_t e = k / E, t = k % E;
    if (cfg->shuffle && E > 1) {
        if (s->perm_epoch != e) {
            if (!s->perm && !(s->perm = malloc(sizeof(uint32_t) * (size_t)E)))
                return dlt_err(DLT_ENOMEM, "out of memory for the epoch permutation");
            for (int64_t i = 0; i < E; i++) s->perm[i] = (uint32_t)i;
            dlt_rng r;
            dlt_rng_init(&r, cfg->seed, ((uint64_t)e << 2) | 2);
            for (int64_t i = E - 1; i > 0; i--) {
                int64_t j = (int64_t)dlt_rng_below(&r, (uint64_t)i + 1);
                uint32_t x = s->perm[i];
                s->perm[i] = s->perm[j];
                s->perm[j] = x;
            }
            s->perm_epoch = e;
        }
        t = s->perm[t];
    }
    memset(pl, 0, sizeof *pl);
    pl->epoch = e;
    pl->subject = (int)(t / N);
    pl->slot = (int)(t % N);
    pl->cls = -1;
    const dlt_subject *sub = &s->subj[pl->subject];
    const int *P = cfg->patch;

    /* Stratification over this subject's N slots: slot j goes to position
     * pj = (a*j + b) mod N (a coprime to N: a scrambled order) and aims at
     * quantile q = (pj + u) / N, so each class gets its share within +-1. */
    dlt_rng st;
    dlt_rng_init(&st, cfg->seed, ((uint64_t)(e * S + pl->subject) << 2) | 3);
    double u = dlt_rng_uniform(&st);
    int64_t a = 1, b = 0;
    if (N > 1) {
        for (int tries = 0; tries < 64; tries++) {
            a = 1 + (int64_t)dlt_rng_below(&st, (uint64_t)N - 1);
            if (gcd64(a, N) == 1) break;
            a = 1;
        }
        b = (int64_t)dlt_rng_below(&st, (uint64_t)N);
    }
    int64_t pj = (a * pl->slot + b) % N;

    dlt_rng r;
    dlt_rng_init(&r, cfg->seed, dlt_sample_stream(k, 0));
    if (cfg->sampler == DLT_SAMPLER_BALANCED) {
        double q = (pj + u) / N, total = 0, acc = 0;
        int last = -1;
        for (int c = 0; c < cfg->nclasses; c++)
            if (sub->count[c] > 0) total += cfg->class_weights ? cfg->class_weights[c] : 1;
        for (int c = 0; c < cfg->nclasses && total > 0; c++) {
            double w = cfg->class_weights ? cfg->class_weights[c] : 1;
            if (sub->count[c] == 0 || w <= 0) continue;
            last = c;
            acc += w;
            if (q * total < acc) {
                pl->cls = c;
                break;
            }
        }
        if (pl->cls < 0) pl->cls = last; /* rounding at q -> 1; -1 when no weighted class is present */
    } else if (cfg->sampler == DLT_SAMPLER_FOREGROUND) {
        double f = cfg->fg_fraction;
        int forced = floor((pj + 1) * f + u) > floor(pj * f + u);
        int nfg = 0;
        for (int c = 1; c < cfg->nclasses; c++) nfg += sub->count[c] > 0;
        if (forced && nfg > 0) {
            int pick = (int)dlt_rng_below(&r, (uint64_t)nfg);
            for (int c = 1; c < cfg->nclasses; c++)
                if (sub->count[c] > 0 && pick-- == 0) {
                    pl->cls = c;
                    break;
                }
        }
    }
    if (pl->cls >= 0) {
        int64_t v = class_voxel(sub, pl->cls, &r);
        int64_t c3[3] = {v % sub->dim[0], v / sub->dim[0] % sub->dim[1], v / (sub->dim[0] * sub->dim[1])};
        for (int ax = 0; ax < 3; ax++) {
            int64_t c = c3[ax] - P[ax] / 2;
            if (cfg->pad == DLT_PAD_NONE) {
                if (c > sub->dim[ax] - P[ax]) c = sub->dim[ax] - P[ax];
                if (c < 0) c = 0;
            }
            pl->corner[ax] = (int)c;
        }
    } else {
        for (int ax = 0; ax < 3; ax++) {
            int64_t n = sub->dim[ax];
            pl->corner[ax] = n >= P[ax] ? (int)dlt_rng_below(&r, (uint64_t)(n - P[ax] + 1))
                                        : (int)(n - P[ax] + (int64_t)dlt_rng_below(&r, (uint64_t)(P[ax] - n + 1)));
        }
    }
    return 0;
}

static int grow_patch(dlt_patch *p, int64_t nimg, int64_t nlab)
{
    if (nimg > p->cap_image) {
        dlt_free(p->image);
        p->cap_image = 0;
        if (!(p->image = dlt_alloc(nimg, sizeof(float), "patch image"))) return DLT_ENOMEM;
        p->cap_image = nimg;
    }
    if (nlab > p->cap_label) {
        dlt_free(p->label);
        p->cap_label = 0;
        if (!(p->label = dlt_alloc(nlab, sizeof(uint16_t), "patch label"))) return DLT_ENOMEM;
        p->cap_label = nlab;
    }
    return 0;
}

int dlt_sampler_record(dlt_sampler *s, int64_t k, dlt_patch *p)
{
    dlt_sample_plan pl;
    int rc = dlt_sampler_plan(s, k, &pl);
    if (rc) return rc;
    const dlt_subject *sub = &s->subj[pl.subject];
    const int *P = s->cfg.patch;
    int64_t vox = (int64_t)P[0] * P[1] * P[2], C = s->channels;
    int has_label = sub->label != NULL;
    if ((rc = grow_patch(p, C * vox, has_label ? vox : 0))) return rc;
    dlt_aug_params ap;
    dlt_aug_draw(&s->cfg.aug, s->cfg.seed, dlt_sample_stream(k, 1), &ap);
    if (dlt_aug_has_field(&ap)) {
        /* Warp (elastic, rotation, scaling) from a box around the patch
         * read out of the volume itself, so the warp pulls in real
         * neighbouring voxels, not padding. */
        dlt_aug_work *w = &s->work;
        if (3 * vox > w->fieldcap) {
            dlt_free(w->field);
            w->fieldcap = 0;
            if (!(w->field = dlt_alloc(3 * vox, sizeof(float), "elastic field"))) return DLT_ENOMEM;
            w->fieldcap = 3 * vox;
        }
        float maxabs;
        if ((rc = dlt_aug_spatial_field(&ap, P, w->field, &maxabs))) return rc;
        int M = (int)ceilf(maxabs) + 1;
        int bs[3] = {P[0] + 2 * M, P[1] + 2 * M, P[2] + 2 * M};
        int bc[3] = {pl.corner[0] - M, pl.corner[1] - M, pl.corner[2] - M};
        int64_t bvox = (int64_t)bs[0] * bs[1] * bs[2];
        if (bvox > s->boxcap) {
            dlt_free(s->box);
            dlt_free(s->boxlab);
            s->boxcap = 0;
            s->box = dlt_alloc(bvox * C, sizeof(float), "elastic box");
            s->boxlab = dlt_alloc(bvox, sizeof(uint16_t), "elastic box");
            if (!s->box || !s->boxlab) return DLT_ENOMEM;
            s->boxcap = bvox;
        }
        int pad = s->cfg.pad == DLT_PAD_NONE ? DLT_PAD_EDGE : s->cfg.pad;
        dlt_sample_extract(sub, bc, bs, pad, s->box, has_label ? s->boxlab : NULL);
        int origin[3] = {M, M, M};
        dlt_aug_warp(s->box, has_label ? s->boxlab : NULL, C, bs, origin, w->field, p->image,
                     has_label ? p->label : NULL, P);
    } else {
        dlt_sample_extract(sub, pl.corner, P, s->cfg.pad, p->image, has_label ? p->label : NULL);
    }
    if ((rc = dlt_aug_flip_rotate(&ap, p->image, C, has_label ? p->label : NULL, P, &s->work))) return rc;
    if ((rc = dlt_aug_intensity(&ap, p->image, C, P))) return rc;
    snprintf(p->id, sizeof p->id, "%s", sub->id);
    for (int ax = 0; ax < 3; ax++) {
        p->corner[ax] = pl.corner[ax];
        p->size[ax] = P[ax];
    }
    p->channels = (uint32_t)C;
    p->has_label = has_label;
    return 0;
}
