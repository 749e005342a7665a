/* dlt-info - summarise NIfTI volumes, patch streams and model files.
 *
 *   dlt-info [--json] [--label|--image] FILE...     (FILE may be "-")
 *   dlt-info --backend [--device D] [--net N] [--filters F] [--patch P] [--batch B] [--precision P]
 *
 * The kind is recognised by content: a patch stream by its magic line, a
 * model by its safetensors structure, anything else goes to the NIfTI
 * reader. Each file's summary is built in memory and printed only when the
 * whole file was read, so a failing file leaves nothing on stdout. */
#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/dist.h"
#include "dlt/io.h"
#include "dlt/json.h"
#include "dlt/model.h"
#include "dlt/patches.h"
#include "dlt/probe.h"
#include "dlt/volume.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

enum { LABEL_AUTO, LABEL_YES, LABEL_NO };
/* A histogram over class ids as a JSON object {"id": count} of the non-zero bins. */
static void jw_histogram(dlt_jw *j, const char *name, const int64_t *hist)
{
    dlt_jw_object(j, name);
    for (int k = 0; k < 65536; k++)
        if (hist[k]) {
            char key[16];
            snprintf(key, sizeof key, "%d", k);
            dlt_jw_int(j, key, hist[k]);
        }
    dlt_jw_end(j);
}

static int opt_json, opt_label = LABEL_AUTO;

/* A summary under construction: human text and JSON side by side. */
typedef struct out {
    char *s;
    size_t len, cap;
    dlt_jw j;
} out;

static void addf(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (o->len + (size_t)n + 1 > o->cap) {
        size_t nc = o->cap ? o->cap : 1024;
        while (nc < o->len + (size_t)n + 1) nc *= 2;
        char *ns = realloc(o->s, nc);
        if (!ns) return;
        o->s = ns;
        o->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(o->s + o->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->len += (size_t)n;
}

/* 2287024 -> "2,287,024" */
static const char *grouped(int64_t x, char *buf)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", (long long)(x < 0 ? -x : x));
    int n = (int)strlen(t), k = 0;
    if (x < 0) buf[k++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = t[i];
    }
    buf[k] = 0;
    return buf;
}

/* i-th comma-separated name of a list (NULL if absent). */
static const char *nth_name(const char *list, int i, char *buf, size_t n)
{
    if (!list) return NULL;
    const char *p = list;
    for (int k = 0; k < i; k++) {
        p = strchr(p, ',');
        if (!p) return NULL;
        p++;
    }
    size_t l = strcspn(p, ",");
    if (l >= n) l = n - 1;
    memcpy(buf, p, l);
    buf[l] = 0;
    return buf;
}

/* ---- volumes ---- */

static const char *xform_name(int code)
{
    static const char *n[] = {"unknown", "scanner", "aligned", "talairach", "mni", "template"};
    return code >= 0 && code <= 5 ? n[code] : "?";
}

static int summarise_volume(const char *path, const char *name, out *o)
{
    dlt_volume v;
    int rc = opt_label == LABEL_YES ? dlt_volume_read_label(path, &v) : dlt_volume_read(path, &v);
    if (rc) return rc;
    int64_t nvox = v.nx * v.ny * v.nz;
    const char *dtype = dlt_volume_datatype(&v);
    int qc, sc;
    dlt_volume_xform_codes(&v, &qc, &sc);
    double slope, inter;
    dlt_volume_scaling(&v, &slope, &inter);
    int scaled = isfinite(slope) && slope != 0 && !(slope == 1 && inter == 0);
    char orient[4];
    dlt_volume_orientation(&v, orient);

    /* Statistics per channel; a label decision needs integer values only. */
    double gmin = INFINITY, gmax = -INFINITY, gsum = 0, gsq = 0;
    int64_t nnan = 0;
    int all_int = 1;
    for (int64_t c = 0; c < v.nc; c++)
        for (int64_t i = 0; i < nvox; i++) {
            double x = v.data ? v.data[c * nvox + i] : v.label[i];
            if (!isfinite(x)) { nnan++; continue; }
            if (x < gmin) gmin = x;
            if (x > gmax) gmax = x;
            gsum += x;
            gsq += x * x;
            if (all_int && (x != floor(x) || x < 0 || x > 65535)) all_int = 0;
        }
    int64_t nfin = nvox * v.nc - nnan;
    double mean = nfin ? gsum / (double)nfin : NAN;
    double sd = nfin ? sqrt(fmax(0, gsq / (double)nfin - mean * mean)) : NAN;

    /* Label: forced, or one channel of non-negative integer values with at
     * most 64 distinct ones, whatever the stored type (BraTS keeps labels in
     * float32). Real images have hundreds or thousands of distinct values:
     * an int16 T1 of IBSR 137, uint8 hippocampus MRI 150-250, CT thousands. */
    int64_t *hist = NULL;
    int nlab = 0, is_label = 0;
    if (opt_label == LABEL_YES || (opt_label == LABEL_AUTO && v.nc == 1 && all_int && nnan == 0)) {
        hist = calloc(65536, sizeof *hist);
        if (!hist) { dlt_volume_free(&v); return dlt_err(DLT_ENOMEM, "out of memory"); }
        for (int64_t i = 0; i < nvox; i++) hist[v.label ? v.label[i] : (int)v.data[i]]++;
        for (int k = 0; k < 65536; k++) nlab += hist[k] > 0;
        is_label = opt_label == LABEL_YES || nlab <= 64;
    }
    double vox_ml = v.spacing[0] * v.spacing[1] * v.spacing[2] / 1000.0;

    addf(o, "%s: NIfTI-%d %s volume\n", name, dlt_volume_nifti_version(&v), is_label ? "label" : "image");
    addf(o, "  dims          %lld x %lld x %lld", (long long)v.nx, (long long)v.ny, (long long)v.nz);
    addf(o, v.nc > 1 ? " x %lld channels\n" : " (1 channel)\n", (long long)v.nc);
    addf(o, "  voxel size    %g x %g x %g mm\n", v.spacing[0], v.spacing[1], v.spacing[2]);
    addf(o, "  datatype      %s", dtype);
    if (scaled) addf(o, " (scl_slope %g, scl_inter %g)", slope, inter);
    addf(o, "\n  orientation   %s\n", orient);
    addf(o, "  qform_code    %d (%s)\n  sform_code    %d (%s)\n", qc, xform_name(qc), sc, xform_name(sc));
    for (int r = 0; r < 4; r++)
        addf(o, "  %-13s %10.4f %10.4f %10.4f %10.4f\n", r == 0 ? "affine" : "", v.affine[r][0], v.affine[r][1],
             v.affine[r][2], v.affine[r][3]);
    const char *desc = dlt_volume_descrip(&v);
    if (desc && *desc) addf(o, "  description   %s\n", desc);
    addf(o, "  values        min %g  max %g  mean %g  std %g", gmin, gmax, mean, sd);
    if (nnan) addf(o, "  (%lld non-finite)", (long long)nnan);
    addf(o, "\n");
    if (is_label) {
        addf(o, "  labels        %d distinct\n", nlab);
        for (int k = 0; k < 65536; k++)
            if (hist[k]) addf(o, "  label %-7d %12lld voxels %12.2f ml\n", k, (long long)hist[k], (double)hist[k] * vox_ml);
    }

    dlt_jw *j = &o->j;
    dlt_jw_object(j, NULL);
    dlt_jw_string(j, "file", name);
    dlt_jw_string(j, "kind", "volume");
    dlt_jw_int(j, "nifti_version", dlt_volume_nifti_version(&v));
    dlt_jw_array(j, "dims");
    dlt_jw_int(j, NULL, v.nx);
    dlt_jw_int(j, NULL, v.ny);
    dlt_jw_int(j, NULL, v.nz);
    dlt_jw_end(j);
    dlt_jw_int(j, "channels", v.nc);
    dlt_jw_array(j, "voxel_size");
    for (int i = 0; i < 3; i++) dlt_jw_double(j, NULL, v.spacing[i]);
    dlt_jw_end(j);
    dlt_jw_string(j, "datatype", dtype);
    dlt_jw_double(j, "scl_slope", slope);
    dlt_jw_double(j, "scl_inter", inter);
    dlt_jw_string(j, "orientation", orient);
    dlt_jw_int(j, "qform_code", qc);
    dlt_jw_int(j, "sform_code", sc);
    dlt_jw_array(j, "affine");
    for (int r = 0; r < 4; r++) {
        dlt_jw_array(j, NULL);
        for (int c = 0; c < 4; c++) dlt_jw_double(j, NULL, v.affine[r][c]);
        dlt_jw_end(j);
    }
    dlt_jw_end(j);
    dlt_jw_string(j, "description", desc ? desc : "");
    dlt_jw_double(j, "min", gmin);
    dlt_jw_double(j, "max", gmax);
    dlt_jw_double(j, "mean", mean);
    dlt_jw_double(j, "std", sd);
    dlt_jw_int(j, "non_finite", nnan);
    dlt_jw_bool(j, "label", is_label);
    if (is_label) {
        jw_histogram(j, "label_voxels", hist);
    }
    dlt_jw_end(j);
    free(hist);
    dlt_volume_free(&v);
    return 0;
}

/* ---- patch streams ---- */

/* Distinct subject ids: open addressing over 64-bit FNV hashes; a hash
 * collision could merge two ids, which only makes a count off by one. */
typedef struct idset {
    uint64_t *h;
    int64_t cap, n;
} idset;

static void idset_add(idset *s, const char *id)
{
    uint64_t x = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) x = (x ^ *p) * 1099511628211ull;
    if (!x) x = 1;
    if (2 * (s->n + 1) > s->cap) {
        int64_t nc = s->cap ? 2 * s->cap : 1024;
        uint64_t *nh = calloc((size_t)nc, sizeof *nh);
        if (!nh) return;
        for (int64_t i = 0; i < s->cap; i++)
            if (s->h[i]) {
                int64_t k = (int64_t)(s->h[i] % (uint64_t)nc);
                while (nh[k]) k = (k + 1) % nc;
                nh[k] = s->h[i];
            }
        free(s->h);
        s->h = nh;
        s->cap = nc;
    }
    int64_t k = (int64_t)(x % (uint64_t)s->cap);
    while (s->h[k]) {
        if (s->h[k] == x) return;
        k = (k + 1) % s->cap;
    }
    s->h[k] = x;
    s->n++;
}

#define MAX_SIZES 16

static int summarise_stream(dlt_patch_reader *r, const char *name, out *o)
{
    dlt_patch p = {0};
    int64_t nrec = 0, nlab = 0, nsizes = 0, size_n[MAX_SIZES] = {0}, other_sizes = 0, no_fg = 0;
    int32_t sizes[MAX_SIZES][3];
    uint32_t chmin = UINT32_MAX, chmax = 0;
    int64_t *hist = calloc(65536, sizeof *hist), *centre = calloc(65536, sizeof *centre);
    double fmin = INFINITY, fmax = -INFINITY, fsum = 0;
    double vmin = INFINITY, vmax = -INFINITY, vsum = 0;
    int64_t vn = 0;
    idset ids = {0};
    int rc;
    if (!hist || !centre) {
        free(hist);
        free(centre);
        return dlt_err(DLT_ENOMEM, "out of memory");
    }
    while ((rc = dlt_patch_read(r, &p)) == 1) {
        nrec++;
        idset_add(&ids, p.id);
        if (p.channels < chmin) chmin = p.channels;
        if (p.channels > chmax) chmax = p.channels;
        int k;
        for (k = 0; k < nsizes; k++)
            if (!memcmp(sizes[k], p.size, sizeof sizes[k])) break;
        if (k < nsizes) size_n[k]++;
        else if (nsizes < MAX_SIZES) {
            memcpy(sizes[nsizes], p.size, sizeof sizes[0]);
            size_n[nsizes++] = 1;
        } else other_sizes++;
        int64_t vox = (int64_t)p.size[0] * p.size[1] * p.size[2];
        for (int64_t i = 0; i < vox * p.channels; i++) {
            float x = p.image[i];
            if (!isfinite(x)) continue;
            if (x < vmin) vmin = x;
            if (x > vmax) vmax = x;
            vsum += x;
            vn++;
        }
        if (p.has_label) {
            nlab++;
            /* the class at the patch centre is what a balanced sampler balances */
            centre[p.label[((int64_t)p.size[2] / 2 * p.size[1] + p.size[1] / 2) * p.size[0] + p.size[0] / 2]]++;
            int64_t fg = 0;
            for (int64_t i = 0; i < vox; i++) {
                hist[p.label[i]]++;
                fg += p.label[i] != 0;
            }
            double f = (double)fg / (double)vox;
            if (f < fmin) fmin = f;
            if (f > fmax) fmax = f;
            fsum += f;
            no_fg += fg == 0;
        }
    }
    dlt_patch_free(&p);
    free(ids.h);
    if (rc < 0) {
        free(hist);
        free(centre);
        return rc;
    }
    const dlt_patch_header *h = &r->header;
    const char *names = dlt_patch_header_get(h, "class_names");
    char nb[256], g[32];
    addf(o, "%s: patch stream (dlt-patches 1)\n", name);
    for (int i = 0; i < h->nkeys; i++) addf(o, "  %-13s %s %s\n", i ? "" : "header", h->key[i], h->value[i]);
    addf(o, "  records       %s (%lld with labels), %lld subjects\n", grouped(nrec, g), (long long)nlab, (long long)ids.n);
    if (nrec) {
        addf(o, "  channels      %u", chmin);
        if (chmax != chmin) addf(o, "..%u", chmax);
        addf(o, "\n  patch sizes  ");
        for (int k = 0; k < nsizes; k++) addf(o, " %dx%dx%d (%lld)", sizes[k][0], sizes[k][1], sizes[k][2], (long long)size_n[k]);
        if (other_sizes) addf(o, " and %lld records of other sizes", (long long)other_sizes);
        addf(o, "\n  image values  min %g  max %g  mean %g\n", vmin, vmax, vn ? vsum / (double)vn : NAN);
    }
    if (nlab) {
        int64_t tot = 0;
        for (int k = 0; k < 65536; k++) tot += hist[k];
        addf(o, "  foreground    per record: min %.4f  mean %.4f  max %.4f; %lld records without\n", fmin,
             fsum / (double)nlab, fmax, (long long)no_fg);
        for (int k = 0; k < 65536; k++)
            if (hist[k]) {
                const char *nm = nth_name(names, k, nb, sizeof nb);
                addf(o, "  class %-7d %12lld voxels %6.2f%%  %6lld centres  %s\n", k, (long long)hist[k],
                     100.0 * (double)hist[k] / (double)tot, (long long)centre[k], nm ? nm : "");
            }
    }

    dlt_jw *j = &o->j;
    dlt_jw_object(j, NULL);
    dlt_jw_string(j, "file", name);
    dlt_jw_string(j, "kind", "patches");
    dlt_jw_object(j, "header");
    for (int i = 0; i < h->nkeys; i++) dlt_jw_string(j, h->key[i], h->value[i]);
    dlt_jw_end(j);
    dlt_jw_int(j, "records", nrec);
    dlt_jw_int(j, "labelled_records", nlab);
    dlt_jw_int(j, "subjects", ids.n);
    dlt_jw_array(j, "patch_sizes");
    for (int k = 0; k < nsizes; k++) {
        dlt_jw_object(j, NULL);
        dlt_jw_array(j, "size");
        for (int d = 0; d < 3; d++) dlt_jw_int(j, NULL, sizes[k][d]);
        dlt_jw_end(j);
        dlt_jw_int(j, "records", size_n[k]);
        dlt_jw_end(j);
    }
    dlt_jw_end(j);
    if (nrec) {
        dlt_jw_int(j, "channels", chmax);
        dlt_jw_double(j, "min", vmin);
        dlt_jw_double(j, "max", vmax);
        dlt_jw_double(j, "mean", vn ? vsum / (double)vn : NAN);
    }
    jw_histogram(j, "class_voxels", hist);
    jw_histogram(j, "class_centres", centre);
    if (nlab) {
        dlt_jw_object(j, "foreground_fraction");
        dlt_jw_double(j, "min", fmin);
        dlt_jw_double(j, "mean", fsum / (double)nlab);
        dlt_jw_double(j, "max", fmax);
        dlt_jw_int(j, "records_without", no_fg);
        dlt_jw_end(j);
    }
    dlt_jw_end(j);
    free(hist);
    free(centre);
    return 0;
}

/* ---- models ---- */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Not a trainable parameter: optimiser and RNG state; buffers, i.e. BN
 * running statistics and the fixed upsampling kernels "up.<i>.w" of the
 * peer's state_dict (dlt-model(5)). */
static int is_state(const char *n) { return strncmp(n, "optim.", 6) == 0 || strncmp(n, "rng.", 4) == 0; }
static int is_buffer(const char *n)
{
    if (strncmp(n, "up.", 3) == 0) {
        const char *p = n + 3;
        while (*p >= '0' && *p <= '9') p++;
        if (p > n + 3 && strcmp(p, ".w") == 0) return 1;
    }
    return ends_with(n, ".running_mean") || ends_with(n, ".running_var") || ends_with(n, ".num_batches_tracked");
}

static const char *model_keys[] = {"net", "in_channels", "classes", "class_names", "filters", "strides", "res_units",
                                   "activation", "norm", "patch", "step", "preprocessing", "dlt_version", NULL};

static int meta_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int summarise_model(const dlt_model *m, const char *name, out *o)
{
    int64_t params = 0, buffers = 0, state = 0, bytes = 0;
    int nparam = 0, nbuf = 0, nstate = 0;
    for (int i = 0; i < m->ntensors; i++) {
        const dlt_model_tensor *t = &m->t[i];
        int64_t n = dlt_model_numel(t);
        bytes += t->nbytes;
        if (is_state(t->name)) { state += n; nstate++; }
        else if (is_buffer(t->name)) { buffers += n; nbuf++; }
        else { params += n; nparam++; }
    }
    char g[32], nb[256];
    addf(o, "%s: model (safetensors), %d tensors, %s bytes of data%s\n", name, m->ntensors, grouped(bytes, g),
         nstate ? ", checkpoint" : "");
    for (int k = 0; model_keys[k]; k++) {
        const char *v = dlt_model_get_meta(m, model_keys[k]);
        if (v) addf(o, "  %-13s %s\n", model_keys[k], v);
    }
    addf(o, "  parameters    %s in %d tensors\n", grouped(params, g), nparam);
    addf(o, "  buffers       %s in %d tensors (batch-norm statistics, fixed kernels)\n", grouped(buffers, g), nbuf);
    if (nstate) addf(o, "  state         %s in %d tensors (optimiser, RNG)\n", grouped(state, g), nstate);
    const char *cn = dlt_model_get_meta(m, "class_names");
    if (cn) {
        addf(o, "  class ids    ");
        for (int k = 0; nth_name(cn, k, nb, sizeof nb); k++) addf(o, " %d=%s", k, nb);
        addf(o, "\n");
    }
    /* Other metadata, sorted for a stable listing. */
    char **other = malloc(sizeof *other * (size_t)(m->nmeta + 1));
    int no = 0;
    for (int i = 0; other && i < m->nmeta; i++) {
        int known = 0;
        for (int k = 0; model_keys[k]; k++) known |= strcmp(m->meta_key[i], model_keys[k]) == 0;
        if (!known) other[no++] = m->meta_key[i];
    }
    if (other) qsort(other, (size_t)no, sizeof *other, meta_cmp);
    for (int i = 0; i < no; i++) addf(o, "  %-13s %s\n", other[i], dlt_model_get_meta(m, other[i]));

    dlt_jw *j = &o->j;
    dlt_jw_object(j, NULL);
    dlt_jw_string(j, "file", name);
    dlt_jw_string(j, "kind", "model");
    dlt_jw_int(j, "tensors", m->ntensors);
    dlt_jw_int(j, "parameters", params);
    dlt_jw_int(j, "buffers", buffers);
    dlt_jw_int(j, "state", state);
    dlt_jw_bool(j, "checkpoint", nstate > 0);
    dlt_jw_int(j, "data_bytes", bytes);
    if (cn) {
        dlt_jw_array(j, "class_names");
        for (int k = 0; nth_name(cn, k, nb, sizeof nb); k++) dlt_jw_string(j, NULL, nb);
        dlt_jw_end(j);
    }
    const char *step = dlt_model_get_meta(m, "step");
    if (step) {
        char *end;
        long long s = strtoll(step, &end, 10);
        if (end != step && !*end) dlt_jw_int(j, "step", s);
    }
    dlt_jw_object(j, "metadata");
    for (int i = 0; i < m->nmeta; i++) dlt_jw_string(j, m->meta_key[i], m->meta_value[i]);
    dlt_jw_end(j);
    dlt_jw_end(j);
    free(other);
    return 0;
}

/* ---- dispatch ---- */

static int looks_like_nifti(const uint8_t *b, int64_t n)
{
    if (n < 4) return 0;
    uint32_t s;
    memcpy(&s, b, 4);
    uint32_t w = __builtin_bswap32(s);
    return s == 348 || s == 540 || w == 348 || w == 540;
}

static int not_any(const char *name)
{
    return dlt_err(DLT_EFORMAT, "%s: not a NIfTI volume, patch stream or model file", name);
}

/* A volume held in memory (stdin): through a temporary file, since the
 * volume reader takes paths; messages name "stdin", not the temporary. */
static int volume_from_mem(const uint8_t *buf, int64_t len, out *o)
{
    const char *td = getenv("TMPDIR");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/dlt-info-XXXXXX.nii", td && *td ? td : "/tmp");
    int fd = mkstemps(tmp, 4);
    if (fd < 0) return dlt_err(DLT_EIO, "stdin: cannot create a temporary file in %s: %s", td && *td ? td : "/tmp", strerror(errno));
    FILE *f = fdopen(fd, "wb");
    int rc = f ? dlt_write_all(f, buf, (size_t)len, tmp) : dlt_err(DLT_EIO, "%s: %s", tmp, strerror(errno));
    if (f && fclose(f) && !rc) rc = dlt_err(DLT_EIO, "%s: %s", tmp, strerror(errno));
    if (!rc) rc = summarise_volume(tmp, "stdin", o);
    unlink(tmp);
    if (rc) {
        /* Replace the temporary's name by "stdin" in the message. */
        char m[1200], *p;
        snprintf(m, sizeof m, "%s", dlt_errmsg());
        while ((p = strstr(m, tmp))) {
            size_t tl = strlen(tmp);
            memmove(p + 5, p + tl, strlen(p + tl) + 1);
            memcpy(p, "stdin", 5);
        }
        dlt_err(rc, "%s", m);
    }
    return rc;
}

static int info_stdin(out *o)
{
    uint8_t *buf;
    int64_t len;
    int rc = dlt_read_file("-", &buf, &len);
    if (rc) {
        const char *m = dlt_errmsg();
        if (strncmp(m, "-: ", 3) == 0) {
            char t[1100];
            snprintf(t, sizeof t, "stdin: %s", m + 3);
            dlt_err(rc, "%s", t);
        }
        return rc;
    }
    if (len == 0) rc = dlt_err(DLT_EFORMAT, "stdin: empty input, not a NIfTI volume, patch stream or model file");
    else if (dlt_patch_is_stream(buf, len)) {
        dlt_patch_reader r;
        rc = dlt_patch_reader_mem(&r, buf, len, "stdin");
        if (!rc) {
            rc = summarise_stream(&r, "stdin", o);
            dlt_patch_reader_close(&r);
        }
    } else if (dlt_model_is_model(buf, len)) {
        dlt_model m;
        rc = dlt_model_read_mem(buf, len, "stdin", &m);
        if (!rc) {
            rc = summarise_model(&m, "stdin", o);
            dlt_model_free(&m);
        }
    } else if (!looks_like_nifti(buf, len)) {
        rc = not_any("stdin");
    } else {
        rc = volume_from_mem(buf, len, o);
    }
    dlt_free(buf);
    return rc;
}

static int info_path(const char *path, out *o)
{
    struct stat st;
    if (stat(path, &st) != 0) return dlt_err(DLT_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return dlt_err(DLT_EIO, "%s: is a directory", path);
    FILE *f = fopen(path, "rb");
    if (!f) return dlt_err(DLT_EIO, "%s: %s", path, strerror(errno));
    uint8_t head[4096], raw[2];
    size_t nraw = fread(raw, 1, 2, f);
    int gz = nraw == 2 && raw[0] == 0x1f && raw[1] == 0x8b;
    rewind(f);
    /* zlib reads plain files unchanged, so one sniff serves both. */
    gzFile z = gzdopen(dup(fileno(f)), "rb");
    fclose(f);
    int64_t n = 0;
    if (z) {
        int got = gzread(z, head, sizeof head);
        n = got > 0 ? got : 0;
        gzclose(z);
    }
    int rc;
    if (dlt_patch_is_stream(head, n)) {
        dlt_patch_reader r;
        if (gz) {
            uint8_t *buf;
            int64_t len;
            if ((rc = dlt_read_file(path, &buf, &len))) return rc;
            rc = dlt_patch_reader_mem(&r, buf, len, path);
            if (!rc) {
                rc = summarise_stream(&r, path, o);
                dlt_patch_reader_close(&r);
            }
            dlt_free(buf);
            return rc;
        }
        if ((rc = dlt_patch_reader_open(&r, path))) return rc;
        rc = summarise_stream(&r, path, o);
        dlt_patch_reader_close(&r);
        return rc;
    }
    if (dlt_model_is_model(head, n)) {
        dlt_model m;
        if ((rc = dlt_model_read(path, &m))) return rc;
        rc = summarise_model(&m, path, o);
        dlt_model_free(&m);
        return rc;
    }
    if (n == 0 && !gz) return dlt_err(DLT_EFORMAT, "%s: empty file, not a NIfTI volume, patch stream or model file", path);
    if (n > 0 && !looks_like_nifti(head, n)) return not_any(path);
    return summarise_volume(path, path, o);
}

/* --backend: the CPU, what the backend runs on it, and which implementation
 * each convolution of a network gets in a training step and in inference. */
static struct {
    const char *device, *net, *filters, *precision;
    int64_t patch[3], batch;
} bk = {"cpu", "unet", NULL, "fp32", {64, 64, 64}, 2};

static int backend_report(void)
{
    int kind = dlt_net_kind_parse(bk.net);
    if (kind < 0) return dlt_err(DLT_EINVAL, "--net %s: unknown network (expected unet, asym-unet or fcn)", bk.net);
    dlt_net_config c;
    dlt_net_config_default(&c, kind, 1, 14);
    int rc = bk.filters ? dlt_net_parse_filters(&c, bk.filters) : 0;
    if (rc) return rc;
    dlt_backend *be = NULL;
    if ((rc = dlt_backend_create(bk.device, &be))) return rc;
    if ((rc = dlt_backend_set_precision(be, bk.precision)) ||
        (rc = dlt_net_probe(be, &c, bk.batch, bk.patch, 1, 1))) {
        dlt_backend_free(be);
        return rc;
    }
    char model[256], filters[128];
    dlt_cpu_model(model, sizeof model);
    dlt_net_format_filters(&c, filters, sizeof filters);
    const char *isa = dlt_backend_info(be, "isa"), *prec = dlt_backend_info(be, "precision"),
               *convs = dlt_backend_info(be, "convolutions");
    printf("cpu\t%s\n", model);
    printf("backend\t%s\n", be->name);
    if (isa) printf("isa\t%s\n", isa);
    printf("mpi\t%s\n", dlt_dist_library()); /* what dlt-train's data parallelism runs on */
    printf("precision\t%s\n", prec ? prec : bk.precision);
    printf("network\t%s, filters %s, 1 channel, 14 classes; training step batch %lld and inference batch 1, patch "
           "%lldx%lldx%lld\n",
           dlt_net_kind_name(kind), filters, (long long)bk.batch, (long long)bk.patch[0], (long long)bk.patch[1],
           (long long)bk.patch[2]);
    if (convs) {
        int nref = 0;
        for (const char *l = convs; *l;) {
            const char *e = strchr(l, '\n');
            int n = e ? (int)(e - l) : (int)strlen(l);
            printf("convolution\t%.*s\n", n, l);
            nref += memmem(l, (size_t)n, "reference", 9) != NULL;
            l += n + (e != NULL);
        }
        printf("reference code\t%d convolution(s)\n", nref);
    } else {
        printf("convolution\t(this backend does not report its choices)\n");
    }
    dlt_backend_free(be);
    return 0;
}


static int level = DLT_LOG_INFO, backend;

static int opt_patch(const dlt_option *o, const char *arg)
{
    int p[3];
    if (dlt_parse_int3(arg, 1, 1024, p)) return dlt_err(DLT_EINVAL, "'%s': expected N or X,Y,Z in 1..1024", arg);
    for (int i = 0; i < 3; i++) bk.patch[i] = p[i];
    return 0;
}

static dlt_option opts[] = {
    DLT_OPT_FLAG(0, "json", &opt_json, 1, "one JSON object per file, one per line"),
    DLT_OPT_FLAG(0, "label", &opt_label, LABEL_YES, "treat volumes as label maps (voxel count per label)"),
    DLT_OPT_FLAG(0, "image", &opt_label, LABEL_NO, "treat volumes as images (no label counts)"),
    DLT_OPT_COMMON(&level),
    DLT_OPT_FLAG(0, "backend", &backend, 1,
                 "instead of files: the CPU, what the backend runs on it (ISA\nof its loops and of oneDNN, channel "
                 "block, precision), the\nMPI library, and the implementation each convolution of a\nnetwork gets in one "
                 "training step and one inference pass\non random data (tab-separated lines; no FILE), with:"),
    DLT_OPT_STR('d', "device", &bk.device, "D", "cpu (default), cpu-ref, cuda or auto"),
    DLT_OPT_STR(0, "net", &bk.net, "N", "unet (default), asym-unet or fcn (1 channel, 14 classes)"),
    DLT_OPT_STR(0, "filters", &bk.filters, "F", "filters per scale (default 16,32,64,128)"),
    DLT_OPT_CALL(0, "patch", opt_patch, "P", "patch size N or X,Y,Z (default 64)"),
    DLT_OPT_I64(0, "batch", &bk.batch, "B", 1, 64, "training batch (default 2)"),
    DLT_OPT_STR(0, "precision", &bk.precision, "P", "fp32 (default) or bf16"),
    DLT_OPT_END,
};

static const dlt_cli cli = {
    "dlt-info", "[options] FILE...",
    "Summarise NIfTI volumes, patch streams (dlt-patches(5)) and model files\n"
    "(dlt-model(5)); the kind is recognised by content. FILE may be - (stdin).",
    opts,
    "DLT_CPU_ISA=avx2 (or sse2, avx512) caps the ISA of the cpu backend and of oneDNN.\n"
    "\n"
    "Without --label or --image, a one-channel volume whose values are at most\n"
    "64 distinct non-negative integers is summarised as a label map.\n"
    "Exit status: 0 all files summarised, 1 a file failed, 2 usage error.",
    NULL};

int main(int argc, char **argv)
{
    dlt_log_init("dlt-info");
    dlt_stdout_check_at_exit();
    const int first = dlt_cli_parse(&cli, argc, argv);
    if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
    dlt_log_set_level(level);
    if (backend) {
        if (first < argc) {
            dlt_error("--backend takes no FILE");
            return 2;
        }
        if (backend_report()) {
            dlt_error("%s", dlt_errmsg());
            return 1;
        }
        return 0; /* a lost write is caught at exit (dlt_stdout_check_at_exit) */
    }
    if (first >= argc) return dlt_usage_error("no input file (use - for stdin)");
    int nstdin = 0;
    for (int i = first; i < argc; i++) nstdin += strcmp(argv[i], "-") == 0;
    if (nstdin > 1) {
        dlt_error("stdin (-) given more than once");
        return 2;
    }
    int failed = 0, printed = 0;
    for (int i = first; i < argc; i++) {
        out o = {0};
        dlt_jw_init(&o.j, 0);
        int rc = strcmp(argv[i], "-") == 0 ? info_stdin(&o) : info_path(argv[i], &o);
        if (!rc) rc = dlt_jw_error(&o.j);
        if (rc) {
            dlt_error("%s", dlt_errmsg());
            failed = 1;
        } else if (opt_json) {
            fwrite(o.j.s, 1, (size_t)o.j.len, stdout);
            fputc('\n', stdout);
        } else {
            if (printed++) fputc('\n', stdout);
            fwrite(o.s, 1, o.len, stdout);
        }
        fflush(stdout);
        free(o.s);
        dlt_jw_free(&o.j);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        dlt_error("stdout: write failed: %s", strerror(errno));
        return 1;
    }
    return failed;
}
