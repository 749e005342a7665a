/* vlist.c - volume list files and multi-file channel loading (dlt/vlist.h). */
#include "dlt/vlist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlt/core.h"
#include "dlt/listfile.h"

static char *xstrdup(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
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

int dlt_vlist_read(const char *path, dlt_vlist *l)
{
    static const char *const names[] = {"id", NULL};
    memset(l, 0, sizeof *l);
    dlt_listfile t;
    int rc = dlt_listfile_read(path, names, &t);
    if (rc) return rc;
    /* columns: from the header, else id, image (2 columns) or id, images..., label */
    int cid = 0, clab = -1, nimg = 0, cimg[256];
    if (t.col) {
        cid = dlt_listfile_column(&t, "id");
        clab = dlt_listfile_column(&t, "label");
        nimg = dlt_listfile_numbered(&t, "image", cimg, 256);
        if (!nimg) rc = dlt_err(DLT_EFORMAT, "%s: the header row names no image column", path);
    } else if (t.ncols < 2) {
        rc = dlt_err(DLT_EFORMAT, "%s: expected id and image columns (tab-separated)", dlt_listfile_where(&t, 0));
    } else {
        clab = t.ncols >= 3 ? t.ncols - 1 : -1;
        nimg = t.ncols >= 3 ? t.ncols - 2 : 1;
        for (int k = 0; k < nimg; k++) cimg[k] = 1 + k;
    }
    l->path = xstrdup(path);
    l->e = rc ? NULL : calloc((size_t)t.nrows, sizeof *l->e);
    if (!rc && (!l->e || !l->path)) rc = dlt_err(DLT_ENOMEM, "out of memory");
    for (int r = 0; !rc && r < t.nrows; r++) {
        dlt_vlist_entry *e = &l->e[l->n++];
        e->line = t.line[r];
        e->id = xstrdup(t.cell[r][cid]);
        e->image = calloc((size_t)nimg, sizeof(char *));
        if (!e->id || !e->image) {
            rc = dlt_err(DLT_ENOMEM, "out of memory");
            break;
        }
        for (int k = 0; k < nimg && !rc; k++)
            if (!(rc = dlt_listfile_path(&t, r, cimg[k], 1, &e->image[k]))) e->nimages++;
        if (!rc && clab >= 0 && *t.cell[r][clab]) rc = dlt_listfile_path(&t, r, clab, 1, &e->label);
    }
    dlt_listfile_free(&t);
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
