/* sample_list.c - subjects from a list file or from paths, and loading their
 * volumes (dlt/sample.h). */
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/sample.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* `p` relative to the list file's directory (unless absolute or the list is stdin). */
static char *resolve(const char *list, const char *p)
{
    char *out = NULL;
    const char *slash = strrchr(list, '/');
    if (p[0] == '/' || !strcmp(list, "-") || !slash) return strdup(p);
    if (asprintf(&out, "%.*s/%s", (int)(slash - list), list, p) < 0) return NULL;
    return out;
}

/* Split a line at tabs in place; returns the field count (up to max). */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    char *s = line;
    while (n < max) {
        f[n++] = s;
        char *t = strchr(s, '\t');
        if (!t) break;
        *t = 0;
        s = t + 1;
    }
    return n;
}

static char *trim(char *s)
{
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

#define MAX_COLS 64

int dlt_sample_list_read(const char *path, dlt_subject **out, int *nout)
{
    *out = NULL;
    *nout = 0;
    uint8_t *buf;
    int64_t len;
    int rc = dlt_read_file(path, &buf, &len);
    if (rc) return rc;
    char *text = malloc((size_t)len + 1);
    if (!text) {
        dlt_free(buf);
        return dlt_err(DLT_ENOMEM, "%s: out of memory", path);
    }
    memcpy(text, buf, (size_t)len);
    text[len] = 0;
    dlt_free(buf);
    if (memchr(text, 0, (size_t)len)) {
        free(text);
        return dlt_err(DLT_EFORMAT, "%s: not a text list file (NUL bytes)", path);
    }

    /* columns: idcol, imgcol[0..nimg), labcol (-1 = none); set by the header
     * or, without one, by the first row's field count */
    int idcol = 0, imgcol[MAX_COLS], nimg = 0, labcol = -1, have_layout = 0, ncols = 0;
    dlt_subject *subj = NULL;
    int n = 0, cap = 0, lineno = 0;

    rc = 0;
    for (char *line = text, *next; line && !rc; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#') continue;
        char *f[MAX_COLS];
        int nf = split_tabs(l, f, MAX_COLS);
        for (int i = 0; i < nf; i++) f[i] = trim(f[i]);
        if (!have_layout) {
            have_layout = 1;
            int hdr = 0;
            for (int i = 0; i < nf; i++)
                if (!strcasecmp(f[i], "id")) hdr = 1;
            if (hdr) {
                /* header: id, label, image or image1, image2... in number order */
                int order[MAX_COLS];
                for (int i = 0; i < nf; i++) {
                    if (!strcasecmp(f[i], "id")) idcol = i;
                    else if (!strcasecmp(f[i], "label")) labcol = i;
                    else if (!strncasecmp(f[i], "image", 5)) {
                        char *end;
                        long k = f[i][5] ? strtol(f[i] + 5, &end, 10) : 0;
                        if (f[i][5] && (*end || k < 1)) continue;
                        int j = nimg++;
                        while (j > 0 && order[j - 1] > k) {
                            order[j] = order[j - 1];
                            imgcol[j] = imgcol[j - 1];
                            j--;
                        }
                        order[j] = (int)k;
                        imgcol[j] = i;
                    }
                }
                if (!nimg) rc = dlt_err(DLT_EFORMAT, "%s:%d: header names no image column (want id, image or image1.., label)", path, lineno);
                ncols = nf;
                continue;
            }
            if (nf < 3) {
                rc = dlt_err(DLT_EFORMAT, "%s:%d: want id, image(s) and label separated by tabs (or a header row "
                             "naming the columns), found %d field%s", path, lineno, nf, nf == 1 ? "" : "s");
                break;
            }
            for (int i = 1; i < nf - 1; i++) imgcol[nimg++] = i;
            labcol = nf - 1;
            ncols = nf;
        }
        if (nf < ncols) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: %d fields, want %d (tab-separated)", path, lineno, nf, ncols);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            dlt_subject *t = realloc(subj, sizeof *subj * (size_t)cap);
            if (!t) {
                rc = dlt_err(DLT_ENOMEM, "%s: out of memory", path);
                break;
            }
            subj = t;
        }
        dlt_subject *s = &subj[n++];
        memset(s, 0, sizeof *s);
        s->id = strdup(f[idcol]);
        s->listfile = strdup(path);
        s->line = lineno;
        s->nimages = nimg;
        s->image = calloc((size_t)nimg, sizeof(char *));
        if (!s->id || !s->listfile || !s->image) {
            rc = dlt_err(DLT_ENOMEM, "%s: out of memory", path);
            break;
        }
        if (!*s->id) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: empty subject id", path, lineno);
            break;
        }
        for (int i = 0; i <= nimg && !rc; i++) {
            int col = i < nimg ? imgcol[i] : labcol;
            if (col < 0) break;
            if (!*f[col]) {
                rc = dlt_err(DLT_EFORMAT, "%s:%d: empty %s path", path, lineno, i < nimg ? "image" : "label");
                break;
            }
            char *p = resolve(path, f[col]);
            if (!p) {
                rc = dlt_err(DLT_ENOMEM, "%s: out of memory", path);
                break;
            }
            if (i < nimg) s->image[i] = p;
            else s->labelpath = p;
            if (access(p, R_OK) != 0)
                rc = dlt_err(DLT_EIO, "%s:%d: %s: %s", path, lineno, p, errno == ENOENT ? "no such file" : strerror(errno));
        }
    }
    free(text);
    if (!rc && n == 0) rc = dlt_err(DLT_EFORMAT, "%s: no subjects in the list", path);
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
