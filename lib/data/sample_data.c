/* sample_data.c - what the sampler needs from a loaded subject: patch
 * extraction with border padding (row memcpy where the patch is inside),
 * per-class voxel counts and indices, and memory accounting (dlt/sample.h). */
#include "dlt/core.h"
#include "dlt/sample.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *sampler_names[] = {"random", "balanced", "foreground"};
static const char *pad_names[] = {"zero", "edge", "reflect", "none"};

int dlt_sampler_kind(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(name, sampler_names[i])) return i;
    return -1;
}
const char *dlt_sampler_name(int kind) { return kind >= 0 && kind < 3 ? sampler_names[kind] : "?"; }
int dlt_pad_mode(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(name, pad_names[i])) return i;
    return -1;
}
const char *dlt_pad_name(int mode) { return mode >= 0 && mode < 4 ? pad_names[mode] : "?"; }

/* Source index of position i on an axis of n voxels, or -1 for "zero". */
static int64_t map_index(int64_t i, int64_t n, int pad)
{
    if (i >= 0 && i < n) return i;
    if (pad == DLT_PAD_EDGE) return i < 0 ? 0 : n - 1;
    if (pad == DLT_PAD_REFLECT) {
        if (n == 1) return 0;
        int64_t period = 2 * (n - 1);
        i %= period;
        if (i < 0) i += period;
        return i < n ? i : period - i;
    }
    return -1;
}

void dlt_sample_extract(const dlt_subject *s, const int corner[3], const int size[3], int pad, float *image,
                        uint16_t *label)
{
    int X = size[0], Y = size[1], Z = size[2];
    int64_t nx = s->dim[0], ny = s->dim[1], nz = s->dim[2];
    int64_t vox = (int64_t)X * Y * Z;
    int64_t *mx = malloc(sizeof(int64_t) * (size_t)(X + Y + Z)), *my = mx + X, *mz = my + Y;
    if (!mx) { /* tiny; cannot really fail, but never crash */
        if (image) memset(image, 0, (size_t)(s->channels * vox) * sizeof(float));
        if (label) memset(label, 0, (size_t)vox * sizeof(uint16_t));
        return;
    }
    for (int i = 0; i < X; i++) mx[i] = map_index((int64_t)corner[0] + i, nx, pad);
    for (int i = 0; i < Y; i++) my[i] = map_index((int64_t)corner[1] + i, ny, pad);
    for (int i = 0; i < Z; i++) mz[i] = map_index((int64_t)corner[2] + i, nz, pad);
    /* the run of x inside the volume is one memcpy */
    int64_t lo = -(int64_t)corner[0], hi = nx - corner[0];
    if (lo < 0) lo = 0;
    if (hi > X) hi = X;
    if (hi < lo) hi = lo;
    for (int z = 0; z < Z; z++)
        for (int y = 0; y < Y; y++) {
            int64_t o = ((int64_t)z * Y + y) * X;
            int inside = mz[z] >= 0 && my[y] >= 0;
            int64_t row = inside ? (mz[z] * ny + my[y]) * nx : 0;
            for (int64_t c = 0; image && c < s->channels; c++) {
                float *d = image + c * vox + o;
                if (!inside) {
                    memset(d, 0, (size_t)X * sizeof(float));
                    continue;
                }
                const float *src = s->chan[c] + row;
                for (int64_t x = 0; x < lo; x++) d[x] = mx[x] < 0 ? 0 : src[mx[x]];
                memcpy(d + lo, src + corner[0] + lo, (size_t)(hi - lo) * sizeof(float));
                for (int64_t x = hi; x < X; x++) d[x] = mx[x] < 0 ? 0 : src[mx[x]];
            }
            if (label) {
                uint16_t *d = label + o;
                if (!inside || !s->label) {
                    memset(d, 0, (size_t)X * sizeof(uint16_t));
                    continue;
                }
                const uint16_t *src = s->label + row;
                for (int64_t x = 0; x < lo; x++) d[x] = mx[x] < 0 ? 0 : src[mx[x]];
                memcpy(d + lo, src + corner[0] + lo, (size_t)(hi - lo) * sizeof(uint16_t));
                for (int64_t x = hi; x < X; x++) d[x] = mx[x] < 0 ? 0 : src[mx[x]];
            }
        }
    free(mx);
}

void dlt_subject_scan(dlt_subject *s)
{
    int64_t nvox = s->dim[0] * s->dim[1] * s->dim[2];
    uint16_t m = 0;
    if (s->label)
        for (int64_t i = 0; i < nvox; i++)
            if (s->label[i] > m) m = s->label[i];
    s->maxlabel = m;
}

static void index_free(dlt_subject *s)
{
    for (int c = 0; s->index && c < s->nclasses; c++) dlt_free(s->index[c]);
    free(s->index);
    free(s->count);
    s->index = NULL;
    s->count = NULL;
    s->nclasses = 0;
}

int dlt_subject_index(dlt_subject *s, int nclasses, int lists, const int *want)
{
    index_free(s);
    int64_t nvox = s->dim[0] * s->dim[1] * s->dim[2];
    if (nclasses < 1 || nclasses > 65536) return dlt_err(DLT_EINVAL, "%s: bad class count %d", s->id, nclasses);
    if (lists && nvox > (int64_t)UINT32_MAX)
        return dlt_err(DLT_EUNSUP, "%s: %lld voxels: too many for 32-bit class indices", s->id, (long long)nvox);
    s->count = calloc((size_t)nclasses, sizeof(int64_t));
    s->index = calloc((size_t)nclasses, sizeof(uint32_t *));
    if (!s->count || !s->index) {
        index_free(s);
        return dlt_err(DLT_ENOMEM, "%s: out of memory for the class index", s->id);
    }
    s->nclasses = nclasses;
    if (!s->label) return 0;
    for (int64_t i = 0; i < nvox; i++) {
        uint16_t v = s->label[i];
        if (v >= nclasses) {
            int rc = dlt_err(DLT_EINVAL, "%s: label value %u at voxel %lld, but there are %d classes (0..%d); set --classes",
                             s->id, v, (long long)i, nclasses, nclasses - 1);
            index_free(s);
            return rc;
        }
        s->count[v]++;
    }
    if (!lists) return 0;
    /* Classes covering a quarter of the volume or more are drawn by
     * rejection (at most 4 tries on average): no index, which saves the
     * big one, the background. */
    int64_t *fill = calloc((size_t)nclasses, sizeof(int64_t));
    if (!fill) {
        index_free(s);
        return dlt_err(DLT_ENOMEM, "%s: out of memory for the class index", s->id);
    }
    int any = 0;
    for (int c = 0; c < nclasses; c++) {
        if ((want && !want[c]) || s->count[c] == 0 || s->count[c] * 4 >= nvox) continue;
        if (!(s->index[c] = dlt_alloc(s->count[c], sizeof(uint32_t), "class index"))) {
            free(fill);
            int rc = dlt_err_prefix(DLT_ENOMEM, "%s", s->id);
            index_free(s);
            return rc;
        }
        any = 1;
    }
    if (any)
        for (int64_t i = 0; i < nvox; i++) {
            uint16_t v = s->label[i];
            if (s->index[v]) s->index[v][fill[v]++] = (uint32_t)i;
        }
    free(fill);
    return 0;
}

void dlt_subject_bytes(const dlt_subject *s, int64_t *image, int64_t *label, int64_t *index)
{
    int64_t nvox = s->dim[0] * s->dim[1] * s->dim[2];
    *image = nvox * s->channels * (int64_t)sizeof(float);
    *label = s->label ? nvox * (int64_t)sizeof(uint16_t) : 0;
    *index = 0;
    for (int c = 0; s->index && c < s->nclasses; c++)
        if (s->index[c]) *index += s->count[c] * (int64_t)sizeof(uint32_t);
}

/* Class-index part of dlt_subject_free (sample_list.c frees the rest). */
void dlt_subject_index_free(dlt_subject *s) { index_free(s); }
