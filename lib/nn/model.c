/* model.c - model files as safetensors (dlt/model.h, dlt-model(5)).
 *
 * Reading is whole-file (models are megabytes): the buffer is validated as
 * safetensors' own loader does (header length within the file, JSON well
 * formed, known dtypes, sizes = prod(shape) * dtype size, tensors contiguous
 * from byte 0 with no overlap or gap, nothing after the last one) and each
 * tensor's bytes are copied into its own allocation. Every error names the
 * file and, where one is at fault, the tensor. */
#include "dlt/model.h"
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* safetensors refuses headers over 100 MB; so do we. */
#define MAX_HEADER 100000000LL

static const char *dt_names[] = {"F32", "F64", "I32", "I64", "U8", "BF16", "F16"};
static const int dt_sizes[] = {4, 8, 4, 8, 1, 2, 2};
#define NDT 7

const char *dlt_model_dtype_name(int dtype) { return dtype >= 0 && dtype < NDT ? dt_names[dtype] : "?"; }
int dlt_model_dtype_size(int dtype) { return dtype >= 0 && dtype < NDT ? dt_sizes[dtype] : 0; }
int dlt_model_dtype_parse(const char *s)
{
    for (int i = 0; i < NDT; i++)
        if (strcmp(s, dt_names[i]) == 0) return i;
    return -1;
}

void dlt_model_init(dlt_model *m) { memset(m, 0, sizeof *m); }

void dlt_model_free(dlt_model *m)
{
    for (int i = 0; i < m->ntensors; i++) {
        free(m->t[i].name);
        dlt_free(m->t[i].data);
    }
    free(m->t);
    for (int i = 0; i < m->nmeta; i++) {
        free(m->meta_key[i]);
        free(m->meta_value[i]);
    }
    free(m->meta_key);
    free(m->meta_value);
    memset(m, 0, sizeof *m);
}

const dlt_model_tensor *dlt_model_find(const dlt_model *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

int64_t dlt_model_numel(const dlt_model_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n = dlt_mul_checked(n, t->shape[i]);
    return n;
}

int dlt_model_add(dlt_model *m, const char *name, int dtype, int ndim, const int64_t *shape, const void *data)
{
    if (!name || !*name) return dlt_err(DLT_EINVAL, "model: empty tensor name");
    if (strcmp(name, "__metadata__") == 0) return dlt_err(DLT_EINVAL, "model: '__metadata__' is not a tensor name");
    if (dtype < 0 || dtype >= NDT) return dlt_err(DLT_EINVAL, "model: tensor '%s': bad dtype %d", name, dtype);
    if (ndim < 0 || ndim > 8) return dlt_err(DLT_EINVAL, "model: tensor '%s': %d dimensions (0..8 allowed)", name, ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return dlt_err(DLT_EINVAL, "model: tensor '%s': negative dimension", name);
        n = dlt_mul_checked(n, shape[i]);
    }
    int64_t nbytes = dlt_mul_checked(n, dt_sizes[dtype]);
    if (n < 0 || nbytes < 0) return dlt_err(DLT_EINVAL, "model: tensor '%s': size overflows", name);
    void *d = dlt_alloc(nbytes ? nbytes : 1, 1, name);
    if (!d) return DLT_ENOMEM;
    if (data) memcpy(d, data, (size_t)nbytes);
    else memset(d, 0, (size_t)nbytes);
    dlt_model_tensor *t = NULL;
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->t[i].name, name) == 0) t = &m->t[i];
    if (t) {
        dlt_free(t->data);
    } else {
        if (m->ntensors == m->cap_tensors) {
            int nc = m->cap_tensors ? 2 * m->cap_tensors : 64;
            dlt_model_tensor *nt = realloc(m->t, sizeof *nt * (size_t)nc);
            if (!nt) { dlt_free(d); return dlt_err(DLT_ENOMEM, "out of memory"); }
            m->t = nt;
            m->cap_tensors = nc;
        }
        t = &m->t[m->ntensors];
        memset(t, 0, sizeof *t);
        if (!(t->name = strdup(name))) { dlt_free(d); return dlt_err(DLT_ENOMEM, "out of memory"); }
        m->ntensors++;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    memset(t->shape, 0, sizeof t->shape);
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = d;
    t->nbytes = nbytes;
    return 0;
}

int dlt_model_set_meta(dlt_model *m, const char *key, const char *value)
{
    for (int i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta_key[i], key) == 0) {
            char *v = strdup(value);
            if (!v) return dlt_err(DLT_ENOMEM, "out of memory");
            free(m->meta_value[i]);
            m->meta_value[i] = v;
            return 0;
        }
    if (m->nmeta == m->cap_meta) {
        int nc = m->cap_meta ? 2 * m->cap_meta : 32;
        char **nk = realloc(m->meta_key, sizeof *nk * (size_t)nc);
        if (!nk) return dlt_err(DLT_ENOMEM, "out of memory");
        m->meta_key = nk;
        char **nv = realloc(m->meta_value, sizeof *nv * (size_t)nc);
        if (!nv) return dlt_err(DLT_ENOMEM, "out of memory");
        m->meta_value = nv;
        m->cap_meta = nc;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) { free(k); free(v); return dlt_err(DLT_ENOMEM, "out of memory"); }
    m->meta_key[m->nmeta] = k;
    m->meta_value[m->nmeta] = v;
    m->nmeta++;
    return 0;
}

const char *dlt_model_get_meta(const dlt_model *m, const char *key)
{
    for (int i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta_key[i], key) == 0) return m->meta_value[i];
    return NULL;
}

static uint64_t get64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

int dlt_model_is_model(const void *buf, int64_t n)
{
    const uint8_t *b = buf;
    if (n < 10) return 0;
    uint64_t h = get64(b);
    if (h < 2 || h > (uint64_t)MAX_HEADER) return 0;
    if (b[8] != '{') return 0;
    /* When the whole header is at hand, it must end with '}' (then padding). */
    if ((int64_t)(8 + h) <= n) {
        int64_t e = 8 + (int64_t)h - 1;
        while (e > 8 && (b[e] == ' ' || b[e] == '\n' || b[e] == '\t' || b[e] == '\r')) e--;
        if (b[e] != '}') return 0;
    }
    return 1;
}

typedef struct {
    int idx;          /* index into m->t */
    int64_t begin, end;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* One tensor entry: checks and adds it (data copied from `data`). */
static int read_tensor(const char *name, const char *key, const dlt_json *e, const uint8_t *data, int64_t ndata,
                       dlt_model *m, span *sp)
{
#define TERR(code, ...) (snprintf(msg, sizeof msg, __VA_ARGS__), dlt_err(code, "%s: tensor '%s': %s", name, key, msg))
    char msg[512];
    if (e->type != DLT_JSON_OBJECT) return TERR(DLT_EFORMAT, "entry is a %s, not an object", dlt_json_type_name(e->type));
    const dlt_json *dt = dlt_json_get(e, "dtype"), *sh = dlt_json_get(e, "shape"), *of = dlt_json_get(e, "data_offsets");
    if (!dt || dt->type != DLT_JSON_STRING) return TERR(DLT_EFORMAT, "missing or bad \"dtype\"");
    if (!sh || sh->type != DLT_JSON_ARRAY) return TERR(DLT_EFORMAT, "missing or bad \"shape\"");
    if (!of || of->type != DLT_JSON_ARRAY || of->n != 2) return TERR(DLT_EFORMAT, "missing or bad \"data_offsets\"");
    int dtype = dlt_model_dtype_parse(dt->string);
    if (dtype < 0) return TERR(DLT_EUNSUP, "unsupported dtype '%.40s'", dt->string);
    if (sh->n > 8) return TERR(DLT_EUNSUP, "%d dimensions (at most 8)", sh->n);
    int64_t shape[8], numel = 1;
    for (int i = 0; i < sh->n; i++) {
        const dlt_json *d = &sh->items[i];
        if (d->type != DLT_JSON_NUMBER || !d->is_int || d->integer < 0) return TERR(DLT_EFORMAT, "bad shape entry %d", i);
        shape[i] = d->integer;
        numel = dlt_mul_checked(numel, shape[i]);
    }
    int64_t need = numel < 0 ? -1 : dlt_mul_checked(numel, dt_sizes[dtype]);
    if (need < 0) return TERR(DLT_EFORMAT, "shape overflows");
    for (int i = 0; i < 2; i++)
        if (of->items[i].type != DLT_JSON_NUMBER || !of->items[i].is_int || of->items[i].integer < 0)
            return TERR(DLT_EFORMAT, "bad data_offsets");
    int64_t b = of->items[0].integer, en = of->items[1].integer;
    if (en < b) return TERR(DLT_EFORMAT, "data_offsets [%lld,%lld] end before they begin", (long long)b, (long long)en);
    if (en > ndata)
        return TERR(DLT_ETRUNC, "data_offsets exceed file (end %lld > %lld data bytes; truncated?)", (long long)en,
                    (long long)ndata);
    if (en - b != need)
        return TERR(DLT_EFORMAT, "data_offsets [%lld,%lld] span %lld bytes, shape and dtype %s need %lld", (long long)b,
                    (long long)en, (long long)(en - b), dt_names[dtype], (long long)need);
    int rc = dlt_model_add(m, key, dtype, sh->n, shape, data + b);
    if (rc) return dlt_err_prefix(rc, "%s", name);
    sp->idx = m->ntensors - 1;
    sp->begin = b;
    sp->end = en;
    return 0;
#undef TERR
}

int dlt_model_read_mem(const void *buf, int64_t len, const char *name, dlt_model *m)
{
    const uint8_t *b = buf;
    dlt_model_init(m);
    if (len < 8) return dlt_err(len == 0 ? DLT_EFORMAT : DLT_ETRUNC, "%s: %s", name, len == 0 ? "empty file" : "truncated (shorter than 8 bytes)");
    uint64_t hl = get64(b);
    if (hl > (uint64_t)MAX_HEADER) return dlt_err(DLT_EFORMAT, "%s: header length %llu absurd (not a model file?)", name, (unsigned long long)hl);
    if ((int64_t)hl > len - 8)
        return dlt_err(DLT_ETRUNC, "%s: header length %llu exceeds the file (%lld bytes; truncated?)", name,
                       (unsigned long long)hl, (long long)len);
    dlt_json j;
    int rc = dlt_json_parse((const char *)b + 8, (int64_t)hl, &j);
    if (rc) return dlt_err_prefix(rc, "%s: header JSON", name);
    if (j.type != DLT_JSON_OBJECT) {
        dlt_json_free(&j);
        return dlt_err(DLT_EFORMAT, "%s: header JSON is not an object", name);
    }
    const uint8_t *data = b + 8 + hl;
    int64_t ndata = len - 8 - (int64_t)hl;
    span *sp = calloc((size_t)j.n + 1, sizeof *sp);
    int ns = 0;
    if (!sp) { rc = dlt_err(DLT_ENOMEM, "out of memory"); goto out; }
    for (int i = 0; i < j.n; i++) {
        const char *key = j.keys[i];
        const dlt_json *e = &j.items[i];
        if (strcmp(key, "__metadata__") == 0) {
            if (e->type != DLT_JSON_OBJECT) { rc = dlt_err(DLT_EFORMAT, "%s: __metadata__ is not an object", name); goto out; }
            for (int k = 0; k < e->n; k++) {
                if (e->items[k].type != DLT_JSON_STRING) {
                    rc = dlt_err(DLT_EFORMAT, "%s: __metadata__ '%s': value is a %s, not a string", name, e->keys[k],
                                 dlt_json_type_name(e->items[k].type));
                    goto out;
                }
                if ((rc = dlt_model_set_meta(m, e->keys[k], e->items[k].string))) goto out;
            }
            continue;
        }
        if (!*key) { rc = dlt_err(DLT_EFORMAT, "%s: a tensor with an empty name", name); goto out; }
        if ((rc = read_tensor(name, key, e, data, ndata, m, &sp[ns]))) goto out;
        ns++;
    }
    /* Contiguous from 0, no overlap, no gap, nothing left over. */
    qsort(sp, (size_t)ns, sizeof *sp, span_cmp);
    int64_t at = 0;
    for (int i = 0; i < ns; i++) {
        const char *tn = m->t[sp[i].idx].name;
        if (sp[i].begin < at) {
            rc = dlt_err(DLT_EFORMAT, "%s: tensor '%s': data_offsets overlap tensor '%s'", name, tn, m->t[sp[i - 1].idx].name);
            goto out;
        }
        if (sp[i].begin > at) {
            rc = dlt_err(DLT_EFORMAT, "%s: tensor '%s': %lld unused bytes before its data_offsets", name, tn,
                         (long long)(sp[i].begin - at));
            goto out;
        }
        at = sp[i].end;
    }
    if (at != ndata) {
        rc = dlt_err(DLT_EFORMAT, "%s: %lld bytes after the last tensor's data (corrupt file?)", name, (long long)(ndata - at));
        goto out;
    }
out:
    free(sp);
    dlt_json_free(&j);
    if (rc) dlt_model_free(m);
    return rc;
}

int dlt_model_read(const char *path, dlt_model *m)
{
    uint8_t *buf;
    int64_t len;
    dlt_model_init(m);
    int rc = dlt_read_file(path, &buf, &len);
    if (rc) return rc;
    rc = dlt_model_read_mem(buf, len, strcmp(path, "-") == 0 ? "stdin" : path, m);
    dlt_free(buf);
    return rc;
}

static int name_cmp(const void *a, const void *b, void *ctx)
{
    const dlt_model *m = ctx;
    return strcmp(m->t[*(const int *)a].name, m->t[*(const int *)b].name);
}

int dlt_model_fwrite(FILE *f, const dlt_model *m, const char *name)
{
    int *order = malloc(sizeof *order * (size_t)(m->ntensors + 1));
    if (!order) return dlt_err(DLT_ENOMEM, "out of memory");
    for (int i = 0; i < m->ntensors; i++) order[i] = i;
    qsort_r(order, (size_t)m->ntensors, sizeof *order, name_cmp, (void *)m);
    dlt_jw w;
    dlt_jw_init(&w, 0);
    dlt_jw_object(&w, NULL);
    if (m->nmeta) {
        dlt_jw_object(&w, "__metadata__");
        for (int i = 0; i < m->nmeta; i++) dlt_jw_string(&w, m->meta_key[i], m->meta_value[i]);
        dlt_jw_end(&w);
    }
    int64_t off = 0;
    for (int k = 0; k < m->ntensors; k++) {
        const dlt_model_tensor *t = &m->t[order[k]];
        dlt_jw_object(&w, t->name);
        dlt_jw_string(&w, "dtype", dlt_model_dtype_name(t->dtype));
        dlt_jw_array(&w, "shape");
        for (int i = 0; i < t->ndim; i++) dlt_jw_int(&w, NULL, t->shape[i]);
        dlt_jw_end(&w);
        dlt_jw_array(&w, "data_offsets");
        dlt_jw_int(&w, NULL, off);
        dlt_jw_int(&w, NULL, off + t->nbytes);
        dlt_jw_end(&w);
        dlt_jw_end(&w);
        off += t->nbytes;
    }
    dlt_jw_end(&w);
    /* Pad with spaces so the data starts 8-byte aligned, as safetensors does. */
    while ((8 + w.len) % 8) dlt_jw_raw(&w, " ", 1);
    int rc = dlt_jw_error(&w);
    if (!rc) {
        uint8_t lb[8];
        for (int i = 0; i < 8; i++) lb[i] = (uint8_t)((uint64_t)w.len >> (8 * i));
        rc = dlt_write_all(f, lb, 8, name);
        if (!rc) rc = dlt_write_all(f, w.s, (size_t)w.len, name);
        for (int k = 0; !rc && k < m->ntensors; k++) {
            const dlt_model_tensor *t = &m->t[order[k]];
            rc = dlt_write_all(f, t->data, (size_t)t->nbytes, name);
        }
    }
    dlt_jw_free(&w);
    free(order);
    return rc;
}

int dlt_model_write(const char *path, const dlt_model *m)
{
    if (strcmp(path, "-") == 0 && dlt_stdout_is_tty())
        return dlt_err(DLT_EINVAL, "stdout: refusing to write a model file to a terminal");
    dlt_outfile o;
    int rc = dlt_outfile_open(&o, path);
    if (rc) return rc;
    rc = dlt_model_fwrite(o.f, m, strcmp(path, "-") == 0 ? "stdout" : path);
    if (rc) {
        dlt_outfile_abort(&o);
        return rc;
    }
    return dlt_outfile_commit(&o);
}

static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, f = h & 0x3ff, u;
    if (e == 0) {
        if (f == 0) u = s;
        else { /* subnormal: value f * 2^-24 */
            float v = (float)f * 5.9604644775390625e-8f;
            return s ? -v : v;
        }
    } else if (e == 31) u = s | 0x7f800000u | (f << 13);
    else u = s | ((e + 112) << 23) | (f << 13);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

int dlt_model_tensor_to_f32(const dlt_model_tensor *t, float *out)
{
    int64_t n = dlt_model_numel(t);
    const uint8_t *d = t->data;
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case DLT_DT_F32: { float v; memcpy(&v, d + 4 * i, 4); out[i] = v; break; }
        case DLT_DT_F64: { double v; memcpy(&v, d + 8 * i, 8); out[i] = (float)v; break; }
        case DLT_DT_I32: { int32_t v; memcpy(&v, d + 4 * i, 4); out[i] = (float)v; break; }
        case DLT_DT_I64: { int64_t v; memcpy(&v, d + 8 * i, 8); out[i] = (float)v; break; }
        case DLT_DT_U8: out[i] = d[i]; break;
        case DLT_DT_BF16: {
            uint16_t h; memcpy(&h, d + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16; float v; memcpy(&v, &u, 4); out[i] = v; break;
        }
        case DLT_DT_F16: { uint16_t h; memcpy(&h, d + 2 * i, 2); out[i] = half_to_float(h); break; }
        default: return dlt_err(DLT_EINVAL, "tensor '%s': bad dtype", t->name);
        }
    }
    return 0;
}
