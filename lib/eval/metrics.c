/* metrics.c - per-class overlap and surface metrics, summary statistics and
 * class names (dlt/metrics.h). The EDT is in metrics_edt.c. */
#include "dlt/core.h"
#include "dlt/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dlt_label_max(const uint16_t *x, int64_t n)
{
    int mx = 0;
#pragma omp parallel for reduction(max : mx) schedule(static)
    for (int64_t i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    return mx;
}

int dlt_metrics_compute(const uint16_t *pred, const uint16_t *ref, const int64_t n[3], const double spacing[3],
                        const int *labels, int nl, int distances, const double *nsd_tol, dlt_class_metrics *out)
{
    int64_t nv = n[0] * n[1] * n[2];
    int L = 1;
    {
        int a = dlt_label_max(pred, nv), b = dlt_label_max(ref, nv);
        L = (a > b ? a : b) + 1;
    }
    for (int c = 0; c < nl; c++)
        if (labels[c] < 0 || labels[c] > 65535) return dlt_err(DLT_EINVAL, "class %d is not a label value (0..65535)", labels[c]);
    int64_t *cnt = calloc((size_t)L * 3, sizeof(int64_t)); /* pred, ref, tp */
    if (!cnt) return dlt_err(DLT_ENOMEM, "out of memory");
    int64_t *hp = cnt, *hr = cnt + L, *ht = cnt + 2 * L;
#pragma omp parallel
    {
        int64_t *loc = calloc((size_t)L * 3, sizeof(int64_t));
        if (loc) {
#pragma omp for schedule(static)
            for (int64_t i = 0; i < nv; i++) {
                loc[pred[i]]++;
                loc[L + ref[i]]++;
                if (pred[i] == ref[i]) loc[2 * L + pred[i]]++;
            }
#pragma omp critical
            for (int64_t k = 0; k < 3 * (int64_t)L; k++) cnt[k] += loc[k];
            free(loc);
        }
    }
    double voxml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
    for (int c = 0; c < nl; c++) {
        dlt_class_metrics *m = &out[c];
        int l = labels[c];
        memset(m, 0, sizeof *m);
        m->label = l;
        m->n_pred = l < L ? hp[l] : 0;
        m->n_ref = l < L ? hr[l] : 0;
        m->tp = l < L ? ht[l] : 0;
        m->vol_pred_ml = (double)m->n_pred * voxml;
        m->vol_ref_ml = (double)m->n_ref * voxml;
        m->hd95 = m->assd = m->nsd = NAN;
        if (m->n_pred == 0 && m->n_ref == 0) {
            m->absent = 1;
            m->dice = m->precision = m->recall = NAN;
            continue;
        }
        m->dice = 2.0 * (double)m->tp / (double)(m->n_pred + m->n_ref);
        m->precision = m->n_pred ? (double)m->tp / (double)m->n_pred : 0.0;
        m->recall = m->n_ref ? (double)m->tp / (double)m->n_ref : 0.0;
        if (distances && (m->n_pred == 0 || m->n_ref == 0)) {
            m->hd95 = m->assd = INFINITY;
            if (nsd_tol && nsd_tol[c] > 0) m->nsd = 0;
        }
    }
    free(cnt);
    if (!distances) return 0;

    /* Bounding box of each wanted class over both volumes: every surface
     * voxel lies inside it, so the EDT restricted to it is exact. */
    int *slot = malloc(sizeof(int) * (size_t)L);
    int64_t(*box)[6] = malloc(sizeof(int64_t[6]) * (size_t)(nl ? nl : 1));
    if (!slot || !box) {
        free(slot);
        free(box);
        return dlt_err(DLT_ENOMEM, "out of memory");
    }
    for (int l = 0; l < L; l++) slot[l] = -1;
    int want = 0;
    for (int c = 0; c < nl; c++) {
        box[c][0] = box[c][1] = box[c][2] = INT64_MAX;
        box[c][3] = box[c][4] = box[c][5] = -1;
        if (out[c].n_pred && out[c].n_ref && labels[c] < L) {
            slot[labels[c]] = c;
            want = 1;
        }
    }
    if (want)
        for (int64_t k = 0; k < n[2]; k++)
            for (int64_t j = 0; j < n[1]; j++) {
                const uint16_t *pp = pred + (k * n[1] + j) * n[0], *rr = ref + (k * n[1] + j) * n[0];
                for (int64_t i = 0; i < n[0]; i++) {
                    int s1 = slot[pp[i]], s2 = slot[rr[i]];
                    for (int t = 0; t < 2; t++) {
                        int s = t ? s2 : s1;
                        if (s < 0 || (t && s2 == s1)) continue;
                        int64_t *b = box[s];
                        if (i < b[0]) b[0] = i;
                        if (j < b[1]) b[1] = j;
                        if (k < b[2]) b[2] = k;
                        if (i > b[3]) b[3] = i;
                        if (j > b[4]) b[4] = j;
                        if (k > b[5]) b[5] = k;
                    }
                }
            }
    int rc = 0;
    for (int c = 0; c < nl && !rc; c++) {
        if (!out[c].n_pred || !out[c].n_ref) continue;
        int64_t *b = box[slot[labels[c]]]; /* a label listed twice shares one box */
        int64_t m3[3] = {b[3] - b[0] + 1, b[4] - b[1] + 1, b[5] - b[2] + 1};
        int64_t nvc = m3[0] * m3[1] * m3[2];
        uint8_t *ma = dlt_alloc(nvc, 1, "class mask"), *mb = dlt_alloc(nvc, 1, "class mask");
        if (!ma || !mb) rc = DLT_ENOMEM;
        else {
            uint16_t l = (uint16_t)labels[c];
#pragma omp parallel for collapse(2) schedule(static)
            for (int64_t k = 0; k < m3[2]; k++)
                for (int64_t j = 0; j < m3[1]; j++) {
                    int64_t src = ((k + b[2]) * n[1] + (j + b[1])) * n[0] + b[0], dst = (k * m3[1] + j) * m3[0];
                    for (int64_t i = 0; i < m3[0]; i++) {
                        ma[dst + i] = pred[src + i] == l;
                        mb[dst + i] = ref[src + i] == l;
                    }
                }
            rc = dlt_surface_distances(ma, mb, m3, spacing, nsd_tol ? nsd_tol[c] : 0, &out[c].hd95, &out[c].assd,
                                       &out[c].nsd);
        }
        dlt_free(ma);
        dlt_free(mb);
    }
    free(slot);
    free(box);
    return rc;
}

int dlt_metrics_volumes(const dlt_volume *pred, const dlt_volume *ref, double tol, const int *labels, int nl,
                        int distances, const double *nsd_tol, dlt_class_metrics *out)
{
    if (!pred->label || !ref->label) return dlt_err(DLT_EINVAL, "metrics need label volumes");
    int rc = dlt_volume_same_grid(pred, ref, tol);
    if (rc) return rc;
    int64_t n[3] = {ref->nx, ref->ny, ref->nz};
    return dlt_metrics_compute(pred->label, ref->label, n, ref->spacing, labels, nl, distances, nsd_tol, out);
}

/* ---- summary statistics ---- */

void dlt_stats_compute(const double *x, int64_t n, dlt_stats *s)
{
    s->n = 0;
    s->mean = s->std = s->median = s->min = s->max = NAN;
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!v) return;
    int64_t m = 0;
    double sum = 0;
    int inf = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(x[i])) {
            v[m++] = x[i];
            if (isinf(x[i])) inf = 1;
            else sum += x[i];
        }
    s->n = m;
    if (m > 0) {
        s->median = dlt_percentile_sort(v, m, 50.0);
        s->min = v[0];
        s->max = v[m - 1];
        if (inf) s->mean = isinf(v[0]) && isinf(v[m - 1]) && v[0] < 0 && v[m - 1] > 0 ? NAN : isinf(v[m - 1]) ? INFINITY : -INFINITY;
        else s->mean = sum / (double)m;
        if (m > 1) {
            if (inf) s->std = INFINITY;
            else {
                double ss = 0;
                for (int64_t i = 0; i < m; i++) ss += (v[i] - s->mean) * (v[i] - s->mean);
                s->std = sqrt(ss / (double)(m - 1));
            }
        }
    }
    free(v);
}

/* ---- class names ---- */

static int names_add(dlt_class_names *cn, int id, const char *name, size_t len)
{
    int *nid = realloc(cn->id, sizeof(int) * (size_t)(cn->n + 1));
    if (nid) cn->id = nid;
    char **nn = realloc(cn->name, sizeof(char *) * (size_t)(cn->n + 1));
    if (nn) cn->name = nn;
    char *s = strndup(name, len);
    if (!nid || !nn || !s) {
        free(s);
        return dlt_err(DLT_ENOMEM, "out of memory");
    }
    cn->id[cn->n] = id;
    cn->name[cn->n] = s;
    cn->n++;
    return 0;
}

int dlt_class_names_read(const char *path, dlt_class_names *cn)
{
    memset(cn, 0, sizeof *cn);
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return dlt_err(DLT_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        char *end;
        errno = 0;
        long id = strtol(p, &end, 10);
        if (end == p || (*end != '\t' && *end != ' ' && *end)) {
            if (cn->n == 0 && lineno == 1) continue; /* header row */
            rc = dlt_err(DLT_EFORMAT, "%s:%d: expected 'id<TAB>name', got '%s'", path, lineno, line);
            break;
        }
        if (errno || id < 0 || id > 65535) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: class id %ld is not in 0..65535", path, lineno, id);
            break;
        }
        while (*end == '\t' || *end == ' ') end++;
        size_t len = strlen(end);
        while (len && (end[len - 1] == ' ' || end[len - 1] == '\t')) len--;
        if (dlt_class_names_get(cn, (int)id)) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: class %ld named twice", path, lineno, id);
            break;
        }
        if ((rc = names_add(cn, (int)id, end, len)) != 0) break;
    }
    free(line);
    if (f != stdin) fclose(f);
    if (!rc && cn->n == 0) rc = dlt_err(DLT_EFORMAT, "%s: no classes in the file", path);
    if (rc) dlt_class_names_free(cn);
    return rc;
}

int dlt_class_names_parse(const char *s, dlt_class_names *cn)
{
    memset(cn, 0, sizeof *cn);
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    int rc = 0;
    if (*p == '[') {
        p++;
        for (int id = 0;; id++) {
            while (isspace((unsigned char)*p)) p++;
            if (*p == ']') break;
            if (*p != '"') { rc = dlt_err(DLT_EFORMAT, "class names: expected a JSON string at '%.20s'", p); break; }
            p++;
            char buf[512];
            size_t len = 0;
            while (*p && *p != '"') {
                char ch = *p++;
                if (ch == '\\' && *p) {
                    ch = *p++;
                    ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch;
                }
                if (len < sizeof buf - 1) buf[len++] = ch;
            }
            if (*p != '"') { rc = dlt_err(DLT_EFORMAT, "class names: unterminated string"); break; }
            p++;
            if ((rc = names_add(cn, id, buf, len)) != 0) break;
            while (isspace((unsigned char)*p)) p++;
            if (*p == ',') p++;
            else if (*p != ']') { rc = dlt_err(DLT_EFORMAT, "class names: expected ',' or ']' at '%.20s'", p); break; }
        }
    } else {
        for (int id = 0; *p; id++) {
            size_t len = strcspn(p, ",");
            const char *q = p;
            while (len && isspace((unsigned char)*q)) q++, len--;
            size_t l2 = len;
            while (l2 && isspace((unsigned char)q[l2 - 1])) l2--;
            if ((rc = names_add(cn, id, q, l2)) != 0) break;
            p = q + len;
            if (*p == ',') p++;
        }
    }
    if (rc) dlt_class_names_free(cn);
    return rc;
}

const char *dlt_class_names_get(const dlt_class_names *cn, int id)
{
    for (int i = 0; cn && i < cn->n; i++)
        if (cn->id[i] == id) return cn->name[i];
    return NULL;
}

void dlt_class_names_free(dlt_class_names *cn)
{
    for (int i = 0; i < cn->n; i++) free(cn->name[i]);
    free(cn->id);
    free(cn->name);
    memset(cn, 0, sizeof *cn);
}
