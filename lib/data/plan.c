/* plan.c - a dataset's fingerprint and the experiment plan derived from it
 * (see dlt/plan.h; the rules are documented in dlt-plan(1)). */
#include "dlt/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlt/core.h"
#include "dlt/metrics.h"
#include "dlt/normalize.h"
#include "dlt/volume.h"

enum { FG_SAMPLES = 10000, MAX_LABEL = 65536 };

/* A growing float array. */
typedef struct {
    float *v;
    int64_t n, cap;
} fvec;

static int fvec_push(fvec *a, float x)
{
    if (a->n == a->cap) {
        int64_t cap = a->cap ? 2 * a->cap : 65536;
        float *v = realloc(a->v, sizeof(float) * (size_t)cap);
        if (!v) return dlt_err(DLT_ENOMEM, "fingerprint: out of memory");
        a->v = v, a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

void dlt_fingerprint_free(dlt_fingerprint *fp)
{
    free(fp->spacing);
    free(fp->size);
    free(fp->class_voxels);
    memset(fp, 0, sizeof *fp);
}

/* Sample one case into the channel arrays fg[] (foreground voxels) and
 * all0 (channel 0, every voxel), counting classes and zeros. */
static int measure_case(const dlt_volume *img, const dlt_volume *lab, dlt_fingerprint *fp, fvec *fg, fvec *all0,
                        int64_t *zeros, int *maxlab)
{
    int64_t nv = img->nx * img->ny * img->nz, nfg = 0;
    for (int64_t i = 0; i < nv; i++) {
        uint16_t c = lab->label[i];
        fp->class_voxels[c]++;
        if (c > *maxlab) *maxlab = c;
        nfg += c > 0;
        *zeros += img->data[i] == 0;
    }
    int64_t step = nfg > FG_SAMPLES ? nfg / FG_SAMPLES : 1, k = 0;
    int rc = 0;
    for (int64_t i = 0; i < nv && !rc; i++)
        if (lab->label[i] > 0 && k++ % step == 0)
            for (int c = 0; c < fp->channels && !rc; c++) rc = fvec_push(&fg[c], img->data[(int64_t)c * nv + i]);
    int64_t astep = nv > FG_SAMPLES ? nv / FG_SAMPLES : 1;
    for (int64_t i = 0; i < nv && !rc; i += astep) rc = fvec_push(all0, img->data[i]);
    return rc;
}

int dlt_fingerprint_measure(const dlt_vlist *l, dlt_fingerprint *fp, void (*progress)(int done, int total))
{
    memset(fp, 0, sizeof *fp);
    if (l->n < 1) return dlt_err(DLT_EINVAL, "%s: no case to plan for", l->path);
    fp->ncases = l->n;
    fp->spacing = calloc((size_t)l->n, sizeof *fp->spacing);
    fp->size = calloc((size_t)l->n, sizeof *fp->size);
    fp->class_voxels = calloc(MAX_LABEL, sizeof(int64_t));
    fvec fg[DLT_PLAN_MAX_CHANNELS], all0;
    memset(fg, 0, sizeof fg);
    memset(&all0, 0, sizeof all0);
    int64_t zeros = 0, voxels = 0;
    int maxlab = 0, rc = 0;
    if (!fp->spacing || !fp->size || !fp->class_voxels) rc = dlt_err(DLT_ENOMEM, "fingerprint: out of memory");
    for (int i = 0; i < l->n && !rc; i++) {
        const dlt_vlist_entry *e = &l->e[i];
        if (!e->label) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: case %s has no label: a plan needs labelled cases", l->path, e->line, e->id);
            break;
        }
        dlt_volume img, lab;
        memset(&lab, 0, sizeof lab);
        if ((rc = dlt_vlist_load_images(l, i, &img))) break;
        if ((rc = dlt_volume_read_label(e->label, &lab)) == 0 && (rc = dlt_volume_same_grid(&img, &lab, 1e-3)) != 0)
            dlt_err_prefix(rc, "%s:%d: case %s", l->path, e->line, e->id);
        if (!rc && i == 0) {
            fp->channels = (int)img.nc;
            if (fp->channels > DLT_PLAN_MAX_CHANNELS)
                rc = dlt_err(DLT_EINVAL, "case %s: %d channels, at most %d", e->id, fp->channels, DLT_PLAN_MAX_CHANNELS);
        } else if (!rc && img.nc != fp->channels)
            rc = dlt_err(DLT_ESHAPE, "%s:%d: case %s has %lld channels, the first case %d", l->path, e->line, e->id,
                         (long long)img.nc, fp->channels);
        if (!rc) {
            memcpy(fp->spacing[i], img.spacing, sizeof img.spacing);
            fp->size[i][0] = img.nx, fp->size[i][1] = img.ny, fp->size[i][2] = img.nz;
            voxels += img.nx * img.ny * img.nz;
            rc = measure_case(&img, &lab, fp, fg, &all0, &zeros, &maxlab);
        }
        dlt_volume_free(&img);
        dlt_volume_free(&lab);
        if (progress) progress(i + 1, l->n);
    }
    if (!rc && fg[0].n == 0) rc = dlt_err(DLT_EINVAL, "%s: no foreground voxel (label > 0) in any case", l->path);
    for (int c = 0; !rc && c < fp->channels; c++) {
        double s = 0, s2 = 0, q[2], pct[2] = {0.5, 99.5};
        for (int64_t i = 0; i < fg[c].n; i++) s += fg[c].v[i];
        double m = s / (double)fg[c].n;
        for (int64_t i = 0; i < fg[c].n; i++) s2 += (fg[c].v[i] - m) * (fg[c].v[i] - m);
        fp->fg_mean[c] = m, fp->fg_std[c] = sqrt(s2 / (double)fg[c].n);
        if ((rc = dlt_norm_percentiles(fg[c].v, fg[c].n, pct, 2, q)) == 0) fp->fg_p005[c] = q[0], fp->fg_p995[c] = q[1];
    }
    if (!rc) {
        double pct = 0.5;
        rc = dlt_norm_percentiles(all0.v, all0.n, &pct, 1, &fp->p005_all);
        fp->zero_fraction = voxels ? (double)zeros / (double)voxels : 0;
        fp->classes = maxlab + 1;
    }
    for (int c = 0; c < DLT_PLAN_MAX_CHANNELS; c++) free(fg[c].v);
    free(all0.v);
    if (rc) dlt_fingerprint_free(fp);
    return rc;
}

void dlt_plan_budget_default(dlt_plan_budget *b)
{
    memset(b, 0, sizeof *b);
    b->memory_mb = 4096;
    b->minutes = 20;
    b->voxels_per_s = 400000;
    b->max_batch = 8;
}

/* Activation bytes per patch voxel of a training step of the U-Net with
 * first-level filters f0 (measured: 973 MB for a batch of two 64^3 patches
 * at 16,32,64,128: 1.86 kB per voxel; proportional to f0). */
static double bytes_per_voxel(int f0) { return 1900.0 * f0 / 16.0; }

/* The network's scales for a patch (nnU-Net's rule, on our strides of 1
 * or 2 per axis): at each new level an axis is halved when its voxels are
 * at most twice the finest axis's there (so a coarse axis waits until the
 * others catch up) and it keeps at least 4 voxels at the bottom; levels
 * stop when no axis can be halved, or at DLT_PLAN_MAX_LEVELS. Fills
 * strides[][], returns the level count; mult[a] gets each axis's product
 * of strides (the patch must be a multiple of it). */
static int scales(const int p[3], const double spacing[3], int strides[][3], int mult[3])
{
    double s[3] = {spacing[0], spacing[1], spacing[2]};
    int levels = 1;
    for (int a = 0; a < 3; a++) strides[0][a] = 1, mult[a] = 1;
    while (levels < DLT_PLAN_MAX_LEVELS) {
        double mn = fmin(s[0], fmin(s[1], s[2]));
        int any = 0;
        for (int a = 0; a < 3; a++) {
            strides[levels][a] = s[a] <= 2 * mn * (1 + 1e-6) && p[a] / (mult[a] * 2) >= 4 ? 2 : 1;
            any |= strides[levels][a] == 2;
        }
        if (!any) break;
        for (int a = 0; a < 3; a++) mult[a] *= strides[levels][a], s[a] *= strides[levels][a];
        levels++;
    }
    return levels;
}

int dlt_plan_make(const dlt_fingerprint *fp, const dlt_plan_budget *b, dlt_plan *p)
{
    memset(p, 0, sizeof *p);
    int n = fp->ncases;
    double *v = malloc(sizeof(double) * (size_t)n);
    if (!v) return dlt_err(DLT_ENOMEM, "plan: out of memory");
    /* modality */
    if (b->modality && strcmp(b->modality, "ct") && strcmp(b->modality, "mr")) {
        free(v);
        return dlt_err(DLT_EINVAL, "modality '%s': ct or mr", b->modality);
    }
    snprintf(p->modality, sizeof p->modality, "%s", b->modality ? b->modality : fp->p005_all < -500 ? "ct" : "mr");
    /* spacing: the median; an axis over 3 times coarser than the finest is
     * anisotropic and gets its 10th percentile instead (nnU-Net) */
    for (int a = 0; a < 3; a++) {
        for (int i = 0; i < n; i++) v[i] = fp->spacing[i][a];
        p->spacing_median[a] = dlt_percentile_sort(v, n, 50);
        p->target_spacing[a] = p->spacing_median[a];
    }
    int amax = 0, amin = 0;
    for (int a = 1; a < 3; a++) {
        if (p->spacing_median[a] > p->spacing_median[amax]) amax = a;
        if (p->spacing_median[a] < p->spacing_median[amin]) amin = a;
    }
    p->aniso_axis = p->spacing_median[amax] > 3 * p->spacing_median[amin] ? amax : -1;
    if (p->aniso_axis >= 0) {
        for (int i = 0; i < n; i++) v[i] = fp->spacing[i][amax];
        p->target_spacing[amax] = dlt_percentile_sort(v, n, 10);
    }
    for (int a = 0; a < 3; a++) {
        for (int i = 0; i < n; i++) v[i] = (double)fp->size[i][a];
        p->size_median[a] = dlt_percentile_sort(v, n, 50);
        for (int i = 0; i < n; i++) v[i] = (double)fp->size[i][a] * fp->spacing[i][a] / p->target_spacing[a];
        p->size_resampled[a] = dlt_percentile_sort(v, n, 50);
    }
    free(v);
    /* normalisation: CT foreground clip + z-score with the dataset's
     * statistics; MR per-image z-score (over nonzero voxels when the
     * background is zero) */
    int k;
    if (!strcmp(p->modality, "ct")) {
        if (fp->channels != 1)
            return dlt_err(DLT_EINVAL, "ct: %d channels; the CT normalisation is for one channel (use --modality mr)",
                           fp->channels);
        k = snprintf(p->normalize, sizeof p->normalize, "clip=%.6g,%.6g;zscore=%.9g,%.9g", fp->fg_p005[0],
                     fp->fg_p995[0], fp->fg_mean[0], fp->fg_std[0] > 0 ? fp->fg_std[0] : 1.0);
    } else
        k = snprintf(p->normalize, sizeof p->normalize, "%s", fp->zero_fraction > 0.1 ? "whiten=nonzero" : "whiten");
    /* resample only where some case is off the target by over 1% */
    int resample = 0;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < 3; a++) resample |= fabs(fp->spacing[i][a] / p->target_spacing[a] - 1) > 0.01;
    if (resample)
        snprintf(p->normalize + k, sizeof p->normalize - (size_t)k, ";spacing=%.6g,%.6g,%.6g", p->target_spacing[0],
                 p->target_spacing[1], p->target_spacing[2]);
    /* patch: the median resampled image, rounded up to what the network's
     * downsamplings need, shrunk along its physically longest axis until a
     * batch of two fits the memory and 1000 steps the time */
    double mem = b->memory_mb * 1048576.0, vox_time = b->minutes * 60 * b->voxels_per_s;
    for (int a = 0; a < 3; a++) p->patch[a] = (int)ceil(p->size_resampled[a]);
    for (;;) {
        int mult[3];
        p->levels = scales(p->patch, p->target_spacing, p->strides, mult);
        for (int a = 0; a < 3; a++) p->patch[a] = (p->patch[a] + mult[a] - 1) / mult[a] * mult[a];
        double pv = (double)p->patch[0] * p->patch[1] * p->patch[2];
        if ((2 * pv * bytes_per_voxel(16) <= mem && 2 * pv * 1000 <= vox_time) || pv <= 8 * 8 * 8) break;
        int big = 0;
        for (int a = 1; a < 3; a++)
            if (p->patch[a] * p->target_spacing[a] > p->patch[big] * p->target_spacing[big]) big = a;
        p->patch[big] -= mult[big] > 8 ? mult[big] : 8;
        if (p->patch[big] < 8) p->patch[big] = 8;
    }
    double pv = (double)p->patch[0] * p->patch[1] * p->patch[2];
    /* batch: about 360k voxels a step (what trained best on two cores),
     * within the memory, 2 to max_batch */
    int batch = (int)lround(360000.0 / pv);
    int bmem = (int)(mem / (pv * bytes_per_voxel(16)));
    if (batch > bmem) batch = bmem;
    if (batch > b->max_batch) batch = b->max_batch;
    p->batch = batch < 2 ? 2 : batch;
    for (int l = 0; l < p->levels; l++) p->filters[l] = 16 << l > 320 ? 320 : 16 << l;
    int64_t steps = (int64_t)(vox_time / (pv * p->batch) / 50) * 50;
    p->steps = steps < 100 ? 100 : steps;
    return 0;
}

static void put_list(FILE *f, const char *key, const int *v, int n)
{
    fprintf(f, "%s ", key);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", v[i]);
    fputc('\n', f);
}

int dlt_plan_write(FILE *f, const dlt_fingerprint *fp, const dlt_plan *p, const char *source)
{
    static const char axis[3] = {'x', 'y', 'z'};
    fprintf(f, "DLTPLAN 1\n# dlt-plan of %s: %d cases; see dlt-plan(1)\n", source, fp->ncases);
    fprintf(f, "modality %s\ncases %d\nchannels %d\nclasses %d\n", p->modality, fp->ncases, fp->channels, fp->classes);
    fprintf(f, "spacing_median %.6g,%.6g,%.6g\n", p->spacing_median[0], p->spacing_median[1], p->spacing_median[2]);
    fprintf(f, "target_spacing %.6g,%.6g,%.6g\n", p->target_spacing[0], p->target_spacing[1], p->target_spacing[2]);
    if (p->aniso_axis >= 0) fprintf(f, "anisotropic_axis %c\n", axis[p->aniso_axis]);
    else fprintf(f, "anisotropic_axis none\n");
    fprintf(f, "size_median %.6g,%.6g,%.6g\n", p->size_median[0], p->size_median[1], p->size_median[2]);
    fprintf(f, "size_resampled %.6g,%.6g,%.6g\n", p->size_resampled[0], p->size_resampled[1], p->size_resampled[2]);
    fprintf(f, "intensity");
    for (int c = 0; c < fp->channels; c++)
        fprintf(f, "%s%d:mean=%.6g,std=%.6g,p0.5=%.6g,p99.5=%.6g", c ? ";" : " ", c, fp->fg_mean[c], fp->fg_std[c],
                fp->fg_p005[c], fp->fg_p995[c]);
    fprintf(f, "\nclass_fraction ");
    int64_t tot = 0;
    for (int c = 0; c < fp->classes; c++) tot += fp->class_voxels[c];
    for (int c = 0; c < fp->classes; c++) fprintf(f, "%s%.4g", c ? "," : "", (double)fp->class_voxels[c] / (double)tot);
    fprintf(f, "\nnormalize %s\n", p->normalize);
    fprintf(f, "patch %d,%d,%d\nbatch %d\n", p->patch[0], p->patch[1], p->patch[2], p->batch);
    put_list(f, "filters", p->filters, p->levels);
    /* strides as dlt-train reads them: 1,2,2 when every level is the same on
     * all axes, else X x Y x Z per level */
    int iso = 1;
    for (int l = 0; l < p->levels; l++) iso &= p->strides[l][0] == p->strides[l][1] && p->strides[l][1] == p->strides[l][2];
    fprintf(f, "strides ");
    for (int l = 0; l < p->levels; l++)
        if (iso) fprintf(f, "%s%d", l ? "," : "", p->strides[l][0]);
        else fprintf(f, "%s%dx%dx%d", l ? "," : "", p->strides[l][0], p->strides[l][1], p->strides[l][2]);
    fputc('\n', f);
    fprintf(f, "steps %lld\n", (long long)p->steps);
    if (p->speed > 0) fprintf(f, "speed %.0f%s\n", p->speed, p->speed_measured ? " measured" : "");
    fprintf(f, "end\n");
    return ferror(f) ? dlt_err(DLT_EIO, "plan: write failed") : 0;
}

int dlt_plan_normalize(const char *arg, dlt_norm_plan *p)
{
    char text[1024];
    int rc;
    if (dlt_plan_file_is(arg)) {
        if ((rc = dlt_plan_file_get(arg, "normalize", text, sizeof text)) == 0 && (rc = dlt_norm_plan_parse(p, text)) != 0)
            dlt_err_prefix(rc, "%s: normalize", arg);
    } else if ((rc = dlt_norm_plan_parse(p, arg)) != 0 && access(arg, F_OK) == 0)
        rc = dlt_err(DLT_EFORMAT, "--plan %s: a file, but not a dlt plan (no 'DLTPLAN 1' line first)", arg);
    return rc;
}

int dlt_plan_file_is(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[32];
    int yes = fgets(line, sizeof line, f) && !strcmp(line, "DLTPLAN 1\n");
    fclose(f);
    return yes;
}

int dlt_plan_file_get(const char *path, const char *key, char *value, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return dlt_err(DLT_EIO, "%s: cannot open the plan", path);
    char line[4096];
    int rc = DLT_EINVAL, first = 1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (first && strcmp(line, "DLTPLAN 1\n")) {
            rc = dlt_err(DLT_EFORMAT, "%s: not a dlt plan (no 'DLTPLAN 1' line first)", path);
            break;
        }
        first = 0;
        if (!strncmp(line, key, kl) && line[kl] == ' ') {
            line[strcspn(line, "\n")] = 0;
            snprintf(value, cap, "%s", line + kl + 1);
            rc = 0;
            break;
        }
        if (!strcmp(line, "end\n")) break;
    }
    if (first && rc == DLT_EINVAL) rc = dlt_err(DLT_EFORMAT, "%s: empty, not a dlt plan", path);
    else if (rc == DLT_EINVAL) dlt_err(rc, "%s: the plan has no '%s'", path, key);
    fclose(f);
    return rc;
}
