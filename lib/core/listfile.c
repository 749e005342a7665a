/* listfile.c - tab-separated list files (dlt/listfile.h). */
#include "dlt/listfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dlt/core.h"
#include "dlt/io.h"

#define MAX_FIELDS 256

static char *trim(char *s)
{
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

/* Split at tabs in place; returns the field count or -1 past `max`. */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    for (char *s = line;;) {
        if (n == max) return -1;
        f[n++] = trim(s);
        char *t = strchr(s, '\t');
        if (!t) return n;
        *t = 0;
        s = t + 1;
    }
}

static char **dup_fields(char **f, int n)
{
    char **c = calloc((size_t)n, sizeof *c);
    for (int i = 0; c && i < n; i++)
        if (!(c[i] = strdup(f[i]))) {
            while (i--) free(c[i]);
            free(c);
            return NULL;
        }
    return c;
}

static void free_fields(char **c, int n)
{
    for (int i = 0; c && i < n; i++) free(c[i]);
    free(c);
}

static int is_header(char **f, int n, const char *const *names)
{
    for (int i = 0; names && i < n; i++)
        for (const char *const *k = names; *k; k++)
            if (!strcasecmp(f[i], *k)) return 1;
    return 0;
}

int dlt_listfile_read(const char *path, const char *const *header_names, dlt_listfile *l)
{
    memset(l, 0, sizeof *l);
    uint8_t *buf;
    int64_t len;
    int rc = dlt_read_file(path, &buf, &len);
    if (rc) return rc;
    if (memchr(buf, 0, (size_t)len)) {
        dlt_free(buf);
        return dlt_err(DLT_EFORMAT, "%s: not a text list file (NUL bytes)", path);
    }
    char *text = malloc((size_t)len + 1);
    l->path = strdup(path);
    if (!text || !l->path) {
        free(text);
        dlt_free(buf);
        return dlt_err(DLT_ENOMEM, "%s: out of memory", path);
    }
    memcpy(text, buf, (size_t)len);
    text[len] = 0;
    dlt_free(buf);
    int cap = 0, lineno = 0, first = 1;
    char *f[MAX_FIELDS];
    for (char *s = text, *next; s && !rc; s = next) {
        next = strchr(s, '\n');
        if (next) *next++ = 0;
        lineno++;
        char *t = trim(s);
        if (!*t || *t == '#') continue;
        int nf = split_tabs(t, f, MAX_FIELDS);
        if (nf < 0) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: more than %d fields", path, lineno, MAX_FIELDS);
            break;
        }
        if (first) {
            first = 0;
            l->ncols = nf;
            if (is_header(f, nf, header_names)) {
                if (!(l->col = dup_fields(f, nf))) rc = dlt_err(DLT_ENOMEM, "%s: out of memory", path);
                continue;
            }
        }
        if (nf != l->ncols) {
            char cols[256] = "as the first row";
            if (l->col) {
                cols[0] = 0;
                for (int i = 0; i < l->ncols; i++)
                    snprintf(cols + strlen(cols), sizeof cols - strlen(cols), "%s%s", i ? ", " : "", l->col[i]);
            }
            rc = dlt_err(DLT_EFORMAT, "%s:%d: expected %d tab-separated columns (%s), got %d", path, lineno,
                         l->ncols, cols, nf);
            break;
        }
        if (l->nrows == cap) {
            cap = cap ? 2 * cap : 16;
            char ***c = realloc(l->cell, sizeof *c * (size_t)cap);
            int *ln = realloc(l->line, sizeof *ln * (size_t)cap);
            if (c) l->cell = c;
            if (ln) l->line = ln;
            if (!c || !ln) {
                rc = dlt_err(DLT_ENOMEM, "%s: out of memory", path);
                break;
            }
        }
        if (!(l->cell[l->nrows] = dup_fields(f, nf))) {
            rc = dlt_err(DLT_ENOMEM, "%s: out of memory", path);
            break;
        }
        l->line[l->nrows++] = lineno;
    }
    free(text);
    if (!rc && l->nrows == 0) rc = dlt_err(DLT_EFORMAT, "%s: the list has no entries", path);
    if (rc) dlt_listfile_free(l);
    return rc;
}

void dlt_listfile_free(dlt_listfile *l)
{
    for (int r = 0; r < l->nrows; r++) free_fields(l->cell[r], l->ncols);
    free_fields(l->col, l->ncols);
    free(l->cell);
    free(l->line);
    free(l->path);
    memset(l, 0, sizeof *l);
}

int dlt_listfile_column(const dlt_listfile *l, const char *name)
{
    for (int i = 0; l->col && i < l->ncols; i++)
        if (!strcasecmp(l->col[i], name)) return i;
    return -1;
}

int dlt_listfile_numbered(const dlt_listfile *l, const char *prefix, int *cols, int max)
{
    size_t pl = strlen(prefix);
    long order[256];
    int n = 0;
    if (max > 256) max = 256;
    for (int i = 0; l->col && i < l->ncols && n < max; i++) {
        const char *c = l->col[i];
        if (strncasecmp(c, prefix, pl)) continue;
        char *end;
        long k = c[pl] ? strtol(c + pl, &end, 10) : 0;
        if (c[pl] && (*end || k < 1)) continue;
        int j = n++;
        while (j > 0 && order[j - 1] > k) {
            order[j] = order[j - 1];
            cols[j] = cols[j - 1];
            j--;
        }
        order[j] = k;
        cols[j] = i;
    }
    return n;
}

const char *dlt_listfile_where(const dlt_listfile *l, int row)
{
    static _Thread_local char buf[600];
    snprintf(buf, sizeof buf, "%.500s:%d", l->path, row >= 0 && row < l->nrows ? l->line[row] : 0);
    return buf;
}

int dlt_listfile_path(const dlt_listfile *l, int row, int col, int must_exist, char **out)
{
    *out = NULL;
    const char *p = l->cell[row][col];
    if (!*p) return dlt_err(DLT_EFORMAT, "%s: empty path in column %d", dlt_listfile_where(l, row), col + 1);
    const char *slash = strrchr(l->path, '/');
    if (p[0] == '/' || !strcmp(p, "-") || !strcmp(l->path, "-") || !slash) *out = strdup(p);
    else if (asprintf(out, "%.*s/%s", (int)(slash - l->path), l->path, p) < 0) *out = NULL;
    if (!*out) return dlt_err(DLT_ENOMEM, "%s: out of memory", l->path);
    if (must_exist && strcmp(*out, "-") && access(*out, R_OK) != 0) {
        int e = errno;
        int rc = dlt_err(DLT_EIO, "%s: %s: %s", dlt_listfile_where(l, row), *out,
                         e == ENOENT ? "no such file" : strerror(e));
        free(*out);
        *out = NULL;
        return rc;
    }
    return 0;
}
