/* sample_list.c - subjects from a list file or from paths, and loading their
 * volumes (dlt/sample.h). */
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/listfile.h"
#include "dlt/sample.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int dlt_sample_list_read(const char *path, dlt_subject **out, int *nout)
{
    static const char *const names[] = {"id", NULL};
    *out = NULL;
    *nout = 0;
    dlt_listfile l;
    int rc = dlt_listfile_read(path, names, &l);
    if (rc) return rc;
    /* columns: from the header, or id, images..., label */
    int idcol = 0, imgcol[256], nimg = 0, labcol = -1;
    if (l.col) {
        idcol = dlt_listfile_column(&l, "id");
        labcol = dlt_listfile_column(&l, "label");
        nimg = dlt_listfile_numbered(&l, "image", imgcol, 256);
        if (!nimg) rc = dlt_err(DLT_EFORMAT, "%s: header names no image column (want id, image or image1.., label)", path);
    } else if (l.ncols < 3) {
        rc = dlt_err(DLT_EFORMAT, "%s: want id, image(s) and label separated by tabs (or a header row "
                     "naming the columns), found %d field%s", dlt_listfile_where(&l, 0), l.ncols, l.ncols == 1 ? "" : "s");
    } else {
        for (int i = 1; i < l.ncols - 1; i++) imgcol[nimg++] = i;
        labcol = l.ncols - 1;
    }
    dlt_subject *subj = rc ? NULL : calloc((size_t)l.nrows, sizeof *subj);
    if (!rc && !subj) rc = dlt_err(DLT_ENOMEM, "%s: out of memory", path);
    int n = 0;
    for (int r = 0; !rc && r < l.nrows; r++) {
        dlt_subject *s = &subj[n++];
        s->id = strdup(l.cell[r][idcol]);
        s->listfile = strdup(path);
        s->line = l.line[r];
        s->nimages = nimg;
        s->image = calloc((size_t)nimg, sizeof(char *));
        if (!s->id || !s->listfile || !s->image) {
            rc = dlt_err(DLT_ENOMEM, "%s: out of memory", path);
            break;
        }
        if (!*s->id) {
            rc = dlt_err(DLT_EFORMAT, "%s: empty subject id", dlt_listfile_where(&l, r));
            break;
        }
        for (int i = 0; i < nimg && !rc; i++) rc = dlt_listfile_path(&l, r, imgcol[i], 1, &s->image[i]);
        if (!rc && labcol >= 0) rc = dlt_listfile_path(&l, r, labcol, 1, &s->labelpath);
    }
    dlt_listfile_free(&l);
    if (rc) {
        dlt_subjects_free(subj, n);
        return rc;
    }
    *out = subj;
    *nout = n;
    return 0;
}

int dlt_subject_from_paths(dlt_subject *s, const char *const *images, int nimages, const char *label)
{
    memset(s, 0, sizeof *s);
    const char *b = strrchr(images[0], '/');
    b = b ? b + 1 : images[0];
    size_t k = strlen(b);
    if (k > 7 && !strcmp(b + k - 7, ".nii.gz")) k -= 7;
    else if (k > 4 && !strcmp(b + k - 4, ".nii")) k -= 4;
    s->id = strndup(b, k);
    s->nimages = nimages;
    s->image = calloc((size_t)nimages, sizeof(char *));
    if (!s->id || !s->image) return dlt_err(DLT_ENOMEM, "out of memory");
    for (int i = 0; i < nimages; i++)
        if (!(s->image[i] = strdup(images[i]))) return dlt_err(DLT_ENOMEM, "out of memory");
    if (label && !(s->labelpath = strdup(label))) return dlt_err(DLT_ENOMEM, "out of memory");
    return 0;
}

/* Prefix "LIST:LINE: " to the current message for list subjects. */
static int where(const dlt_subject *s, int rc)
{
    if (s->listfile) return dlt_err_prefix(rc, "%s:%d", s->listfile, s->line);
    return rc;
}

int dlt_subject_load(dlt_subject *s)
{
    int rc;
    s->vol = calloc((size_t)s->nimages, sizeof(dlt_volume));
    if (!s->vol) return dlt_err(DLT_ENOMEM, "out of memory");
    for (int i = 0; i < s->nimages; i++) {
        if ((rc = dlt_volume_read(s->image[i], &s->vol[i]))) return where(s, rc);
        s->nvol = i + 1;
        if (i > 0 && (rc = dlt_volume_same_grid(&s->vol[0], &s->vol[i], 1e-3))) {
            dlt_err_prefix(rc, "%s and %s: images on different grids", s->image[0], s->image[i]);
            return where(s, rc);
        }
    }
    if (s->labelpath) {
        if (!(s->labvol = calloc(1, sizeof(dlt_volume)))) return dlt_err(DLT_ENOMEM, "out of memory");
        if ((rc = dlt_volume_read_label(s->labelpath, s->labvol))) {
            free(s->labvol);
            s->labvol = NULL;
            return where(s, rc);
        }
        if ((rc = dlt_volume_same_grid(s->labvol, &s->vol[0], 1e-3))) {
            dlt_err_prefix(rc, "%s and %s: image and label on different grids", s->image[0], s->labelpath);
            return where(s, rc);
        }
        s->label = s->labvol->label;
    }
    s->dim[0] = s->vol[0].nx;
    s->dim[1] = s->vol[0].ny;
    s->dim[2] = s->vol[0].nz;
    s->channels = 0;
    for (int i = 0; i < s->nvol; i++) s->channels += s->vol[i].nc;
    if (!(s->chan = calloc((size_t)s->channels, sizeof(float *)))) return dlt_err(DLT_ENOMEM, "out of memory");
    int64_t nvox = s->dim[0] * s->dim[1] * s->dim[2], c = 0;
    for (int i = 0; i < s->nvol; i++)
        for (int64_t j = 0; j < s->vol[i].nc; j++) s->chan[c++] = s->vol[i].data + j * nvox;
    /* dlt-normalize records "dlt:STEPS" in the description; anything else
     * there (a scanner's or another program's note) is not preprocessing */
    const char *d = dlt_volume_descrip(&s->vol[0]);
    snprintf(s->preprocessing, sizeof s->preprocessing, "%s", strncmp(d, "dlt:", 4) ? "" : d + 4);
    dlt_subject_scan(s);
    return 0;
}

void dlt_subject_free(dlt_subject *s)
{
    dlt_subject_index_free(s);
    for (int i = 0; i < s->nvol; i++) dlt_volume_free(&s->vol[i]);
    free(s->vol);
    if (s->labvol) dlt_volume_free(s->labvol);
    free(s->labvol);
    for (int i = 0; s->image && i < s->nimages; i++) free(s->image[i]);
    free(s->image);
    free(s->labelpath);
    free(s->listfile);
    free(s->id);
    free(s->chan);
    memset(s, 0, sizeof *s);
}

void dlt_subjects_free(dlt_subject *s, int n)
{
    for (int i = 0; i < n; i++) dlt_subject_free(&s[i]);
    free(s);
}
