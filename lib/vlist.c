/* vlist.c - volume list files and multi-file channel loading (dlt/vlist.h). */
#include "dlt/vlist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlt/core.h"

static char *xstrdup(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

/* dir of the list + rel, unless rel is absolute or "-". */
static char *resolve(const char *list, const char *rel)
{
    if (rel[0] == '/' || !strcmp(rel, "-")) return xstrdup(rel);
    const char *slash = strrchr(list, '/');
    size_t dl = slash ? (size_t)(slash - list) + 1 : 0;
    char *p = malloc(dl + strlen(rel) + 1);
    if (!p) return NULL;
    memcpy(p, list, dl);
    strcpy(p + dl, rel);
    return p;
}

void dlt_vlist_free(dlt_vlist *l)
{
    for (int i = 0; i < l->n; i++) {
        dlt_vlist_entry *e = &l->e[i];
        free(e->id);
        for (int k = 0; k < e->nimages; k++) free(e->image[k]);
        free(e->image);
        free(e->label);
    }
    free(l->e);
    free(l->path);
    memset(l, 0, sizeof *l);
}

#define MAXCOL 64

static int split(char *line, char **f)
{
    int n = 0;
    char *s = line;
    for (;;) {
        if (n == MAXCOL) return n;
        f[n++] = s;
        char *t = strchr(s, '\t');
        if (!t) break;
        *t = 0;
        s = t + 1;
    }
    return n;
}

int dlt_vlist_read(const char *path, dlt_vlist *l)
{
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "r");
    if (!f) return dlt_err(DLT_EIO, "%s: %s", path, strerror(errno));
    l->path = xstrdup(path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0, header = 0, cid = 0, clab = -1, nimg = 0, cimg[MAXCOL];
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0 || line[0] == '#') continue;
        char *fld[MAXCOL];
        int nf = split(line, fld);
        if (!header && !l->n && !strcmp(fld[0], "id")) {
            header = 1;
            nimg = 0;
            for (int k = 0; k < nf; k++) {
                if (!strcmp(fld[k], "id")) cid = k;
                else if (!strcmp(fld[k], "label")) clab = k;
                else if (!strncmp(fld[k], "image", 5)) cimg[nimg++] = k;
            }
            /* image1, image2...: in their numeric order (image alone first) */
            for (int a = 0; a < nimg; a++)
                for (int b = a + 1; b < nimg; b++)
                    if (atoi(fld[cimg[b]] + 5) < atoi(fld[cimg[a]] + 5)) {
                        int t = cimg[a];
                        cimg[a] = cimg[b], cimg[b] = t;
                    }
            if (!nimg) {
                rc = dlt_err(DLT_EFORMAT, "%s:%d: the header row names no image column", path, lineno);
                break;
            }
            continue;
        }
        if (!header) {
            if (nf < 2) {
                rc = dlt_err(DLT_EFORMAT, "%s:%d: expected id and image columns (tab-separated)", path, lineno);
                break;
            }
            cid = 0;
            clab = nf >= 3 ? nf - 1 : -1;
            nimg = nf >= 3 ? nf - 2 : 1;
            for (int k = 0; k < nimg; k++) cimg[k] = 1 + k;
        }
        int need = clab > cid ? clab : cid;
        for (int k = 0; k < nimg; k++)
            if (cimg[k] > need) need = cimg[k];
        if (nf <= need) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: %d columns, expected %d", path, lineno, nf, need + 1);
            break;
        }
        dlt_vlist_entry *ne = realloc(l->e, sizeof *ne * (size_t)(l->n + 1));
        if (!ne) {
            rc = dlt_err(DLT_ENOMEM, "out of memory");
            break;
        }
        l->e = ne;
        dlt_vlist_entry *e = &l->e[l->n++];
        memset(e, 0, sizeof *e);
        e->line = lineno;
        e->id = xstrdup(fld[cid]);
        e->image = calloc((size_t)nimg, sizeof(char *));
        if (!e->id || !e->image) {
            rc = dlt_err(DLT_ENOMEM, "out of memory");
            break;
        }
        for (int k = 0; k < nimg; k++) {
            e->image[e->nimages++] = resolve(path, fld[cimg[k]]);
            if (access(e->image[k], R_OK)) {
                rc = dlt_err(DLT_EIO, "%s:%d: %s: %s", path, lineno, e->image[k], strerror(errno));
                break;
            }
        }
        if (rc) break;
        if (clab >= 0 && *fld[clab]) {
            e->label = resolve(path, fld[clab]);
            if (access(e->label, R_OK)) {
                rc = dlt_err(DLT_EIO, "%s:%d: %s: %s", path, lineno, e->label, strerror(errno));
                break;
            }
        }
    }
    free(line);
    fclose(f);
    if (!rc && l->n == 0) rc = dlt_err(DLT_EFORMAT, "%s: no entries", path);
    if (rc) dlt_vlist_free(l);
    return rc;
}

int dlt_load_channels(const char *const *paths, int n, dlt_volume *v)
{
    int rc = dlt_volume_read(paths[0], v);
    if (rc || n == 1) return rc;
    dlt_volume *more = dlt_calloc(n, sizeof(dlt_volume), "volumes");
    if (!more) {
        dlt_volume_free(v);
        return DLT_ENOMEM;
    }
    int64_t nc = v->nc;
    for (int i = 1; i < n && !rc; i++) {
        if ((rc = dlt_volume_read(paths[i], &more[i]))) break;
        if ((rc = dlt_volume_same_grid(v, &more[i], 1e-3))) {
            dlt_err_prefix(rc, "%s and %s", paths[0], paths[i]);
            break;
        }
        nc += more[i].nc;
    }
    dlt_volume all;
    if (!rc && !(rc = dlt_volume_like(&all, v, nc, 0))) {
        int64_t nv = v->nx * v->ny * v->nz, at = 0;
        memcpy(all.data, v->data, sizeof(float) * (size_t)(nv * v->nc));
        at = nv * v->nc;
        for (int i = 1; i < n; i++) {
            memcpy(all.data + at, more[i].data, sizeof(float) * (size_t)(nv * more[i].nc));
            at += nv * more[i].nc;
        }
        dlt_volume_free(v);
        *v = all;
    }
    for (int i = 1; i < n; i++) dlt_volume_free(&more[i]);
    dlt_free(more);
    if (rc) dlt_volume_free(v);
    return rc;
}

int dlt_vlist_load_images(const dlt_vlist *l, int i, dlt_volume *v)
{
    const dlt_vlist_entry *e = &l->e[i];
    int rc = dlt_load_channels((const char *const *)e->image, e->nimages, v);
    if (rc) dlt_err_prefix(rc, "%s:%d", l->path, e->line);
    return rc;
}
