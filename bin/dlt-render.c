/* dlt-render - a PNG picture of a volume: slices in the three standard views
 * (or a mosaic of one view), with label volumes overlaid in distinct colours,
 * one column per label volume (e.g. prediction beside reference), a legend
 * naming the classes, and an intensity window. Slices are shown in
 * radiological convention from the affine (patient right on the viewer's
 * left, anterior or superior at the top) with the physical aspect ratio. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/picture.h"
#include "dlt/volume.h"

#define MAXLAB 4
#define MAXCLASS 65536
enum { AXIAL = 0, CORONAL = 1, SAGITTAL = 2 };
static const char *view_names[] = {"axial", "coronal", "sagittal"};


/* For each RAS axis w: the file axis along it, whether the file index runs
 * against the RAS direction, its size and spacing. */
typedef struct {
    int64_t n[3];
    int axis[3];
    int flip[3];
    double mm[3];
} ras_map;

static void make_ras_map(const dlt_volume *v, ras_map *m)
{
    int64_t dims[3] = {v->nx, v->ny, v->nz};
    int used[3] = {0, 0, 0};
    for (int a = 0; a < 3; a++) {
        int best = 0;
        double bv = -1;
        for (int w = 0; w < 3; w++)
            if (!used[w] && fabs(v->affine[w][a]) > bv) bv = fabs(v->affine[w][a]), best = w;
        used[best] = 1;
        m->axis[best] = a;
        m->flip[best] = v->affine[best][a] < 0;
        m->n[best] = dims[a];
        m->mm[best] = v->spacing[a];
    }
}

/* File voxel offset for RAS indices r[3]. */
static int64_t ras_offset(const dlt_volume *v, const ras_map *m, const int64_t r[3])
{
    int64_t idx[3];
    for (int w = 0; w < 3; w++) idx[m->axis[w]] = m->flip[w] ? m->n[w] - 1 - r[w] : r[w];
    return (idx[2] * v->ny + idx[1]) * v->nx + idx[0];
}

/* RAS axes running along a panel's columns and rows (both drawn from high
 * to low index: right, anterior, superior first) and the one held fixed. */
static void view_axes(int view, int *col, int *row, int *fixed)
{
    if (view == AXIAL) *col = 0, *row = 1, *fixed = 2;
    else if (view == CORONAL) *col = 0, *row = 2, *fixed = 1;
    else *col = 1, *row = 2, *fixed = 0;
}

typedef struct {
    const dlt_volume *img;
    ras_map m;
    double lo, hi, alpha;
    int outline;
    double px_mm; /* mm per output pixel */
} scene;

static void panel_size(const scene *s, int view, int *pw, int *ph)
{
    int c, r, f;
    view_axes(view, &c, &r, &f);
    *pw = (int)ceil(s->m.n[c] * s->m.mm[c] / s->px_mm);
    *ph = (int)ceil(s->m.n[r] * s->m.mm[r] / s->px_mm);
}

static int label_at(const dlt_volume *l, const ras_map *m, const int64_t r[3])
{
    for (int w = 0; w < 3; w++)
        if (r[w] < 0 || r[w] >= m->n[w]) return 0;
    return l->label[ras_offset(l, m, r)];
}

static void draw_panel(dlt_picture *p, int x0, int y0, const scene *s, const dlt_volume *lab, int view,
                       int64_t slice)
{
    int c, r, f, pw, ph;
    view_axes(view, &c, &r, &f);
    panel_size(s, view, &pw, &ph);
    for (int j = 0; j < ph; j++)
        for (int i = 0; i < pw; i++) {
            int64_t rr[3];
            rr[f] = slice;
            rr[c] = s->m.n[c] - 1 - (int64_t)((i + 0.5) * s->px_mm / s->m.mm[c]);
            rr[r] = s->m.n[r] - 1 - (int64_t)((j + 0.5) * s->px_mm / s->m.mm[r]);
            if (rr[c] < 0) rr[c] = 0;
            if (rr[r] < 0) rr[r] = 0;
            float v = s->img->data[ras_offset(s->img, &s->m, rr)];
            double g = (v - s->lo) / (s->hi - s->lo);
            g = !(g > 0) ? 0 : g > 1 ? 1 : g;
            double rgb[3] = {255 * g, 255 * g, 255 * g};
            int k = lab ? label_at(lab, &s->m, rr) : 0;
            if (k > 0) {
                int edge = 1;
                if (s->outline) {
                    edge = 0;
                    for (int d = 0; d < 4 && !edge; d++) {
                        int64_t q[3] = {rr[0], rr[1], rr[2]};
                        q[d < 2 ? c : r] += (d % 2) ? 1 : -1;
                        edge = label_at(lab, &s->m, q) != k;
                    }
                }
                if (edge) {
                    uint8_t col[3];
                    dlt_label_colour(k, col);
                    double a = s->outline ? 1.0 : s->alpha;
                    for (int q = 0; q < 3; q++) rgb[q] = (1 - a) * rgb[q] + a * col[q];
                }
            }
            uint8_t o[3] = {(uint8_t)(rgb[0] + 0.5), (uint8_t)(rgb[1] + 0.5), (uint8_t)(rgb[2] + 0.5)};
            dlt_picture_fill(p, x0 + i, y0 + j, 1, 1, o);
        }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 1st and 99th percentiles from a strided sample of the first channel. */
static void auto_window(const dlt_volume *v, double *lo, double *hi)
{
    int64_t n = v->nx * v->ny * v->nz, step = n / 200000 + 1, k = 0;
    *lo = 0, *hi = 1;
    float *s = dlt_alloc(n / step + 1, sizeof(float), "window sample");
    if (!s) return;
    for (int64_t i = 0; i < n; i += step)
        if (isfinite(v->data[i])) s[k++] = v->data[i];
    if (k > 0) {
        qsort(s, (size_t)k, sizeof(float), cmp_float);
        *lo = s[k / 100];
        *hi = s[k - 1 - k / 100];
        if (*hi <= *lo) *hi = *lo + 1;
    }
    dlt_free(s);
}

/* Class names from TSV lines "id<TAB>name"; other lines (a header) skipped. */
static int read_classes(const char *path, char **names)
{
    FILE *f = fopen(path, "r");
    if (!f) return dlt_err(DLT_EIO, "%s: cannot open", path);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *end;
        long id = strtol(line, &end, 10);
        if (end == line || *end != '\t' || id < 0 || id >= MAXCLASS) continue;
        char *name = end + 1;
        name[strcspn(name, "\r\n")] = 0;
        free(names[id]);
        names[id] = strdup(name);
    }
    fclose(f);
    return 0;
}

/* RAS-index bounding box and centroid of the foreground of l; 0 if empty. */
static int foreground_box(const dlt_volume *l, const ras_map *m, int64_t lo[3], int64_t hi[3], int64_t mid[3])
{
    double sum[3] = {0, 0, 0};
    int64_t cnt = 0, r[3];
    for (int w = 0; w < 3; w++) lo[w] = m->n[w], hi[w] = -1;
    for (r[2] = 0; r[2] < m->n[2]; r[2]++)
        for (r[1] = 0; r[1] < m->n[1]; r[1]++)
            for (r[0] = 0; r[0] < m->n[0]; r[0]++)
                if (l->label[ras_offset(l, m, r)]) {
                    for (int w = 0; w < 3; w++) {
                        sum[w] += r[w];
                        if (r[w] < lo[w]) lo[w] = r[w];
                        if (r[w] > hi[w]) hi[w] = r[w];
                    }
                    cnt++;
                }
    if (!cnt) return 0;
    for (int w = 0; w < 3; w++) mid[w] = (int64_t)(sum[w] / cnt + 0.5);
    return 1;
}

static int parse_views(const char *views, int *vlist, int *nview)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", views);
    *nview = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(t, view_names[i]) == 0) k = i;
        if (k < 0 || *nview == 3) return dlt_err(DLT_EINVAL, "--view: unknown view '%s' (axial, coronal, sagittal)", t);
        vlist[(*nview)++] = k;
    }
    return *nview ? 0 : dlt_err(DLT_EINVAL, "--view: no view given");
}

static const char *out, *labels[MAXLAB], *classes, *titles, *views = "axial,coronal,sagittal", *window, *at;
static int nlab, mosaic, size = 256, outline, level = DLT_LOG_INFO;
static double alpha = 0.5;

static int opt_label(const dlt_option *o, const char *arg)
{
    if (nlab == MAXLAB) return dlt_err(DLT_EINVAL, "at most %d label volumes", MAXLAB);
    labels[nlab++] = arg;
    return 0;
}

static dlt_option opts[] = {
    DLT_OPT_CALL('l', "label", opt_label, "FILE", "label volume to overlay (up to 4; e.g. prediction, reference)"),
    DLT_OPT_STR('o', "output", &out, "FILE", "PNG to write ('-' for stdout, refused on a terminal)"),
    DLT_OPT_STR(0, "view", &views, "LIST", "views: axial,coronal,sagittal (default all three)"),
    DLT_OPT_INT(0, "mosaic", &mosaic, "N", 1, 64, "N slices of the first view, evenly spaced over the labelled extent"),
    DLT_OPT_STR(0, "at", &at, "X,Y,Z",
                "voxel indices the slices pass through (default: centre of the\nfirst label's foreground, else the volume centre)"),
    DLT_OPT_STR('w', "window", &window, "LO,HI", "intensity window (default: 1st..99th percentile)"),
    DLT_OPT_DBL(0, "alpha", &alpha, "A", 0, 1, 0, "overlay opacity, 0..1 (default 0.5)"),
    DLT_OPT_FLAG(0, "outline", &outline, 1, "draw label outlines only"),
    DLT_OPT_STR(0, "classes", &classes, "FILE", "class names: TSV lines 'id<TAB>name'"),
    DLT_OPT_STR(0, "titles", &titles, "A,B", "column titles (default: the label file names)"),
    DLT_OPT_INT(0, "size", &size, "PX", 16, 4096, "longest side of a panel in pixels (default 256)"),
    DLT_OPT_COMMON(&level),
    DLT_OPT_END,
};

static const dlt_cli cli = {"dlt-render", "IMAGE [-l LABEL]... -o OUT.png [options]",
                            "Write a PNG of IMAGE's slices with each LABEL overlaid (one column per label).", opts,
                            "See dlt-render(1).", NULL};

/* present[k] = 1 for every class k in any of the label volumes; returns
 * how many foreground classes that is. */
static int classes_present(const dlt_volume *lab, int nlab, unsigned char *present)
{
    int n = 0;
    for (int i = 0; i < nlab; i++)
        for (int64_t k = 0; k < lab[i].nx * lab[i].ny * lab[i].nz; k++) present[lab[i].label[k]] = 1;
    for (int k = 1; k < MAXCLASS; k++) n += present[k];
    return n;
}

/* A colour box and "id name" per present class, `cols` to a row from (x0, y0). */
static void draw_legend(dlt_picture *p, int x0, int y0, int cols, const unsigned char *present, char *const *names)
{
    static const uint8_t white[3] = {235, 235, 235};
    for (int k = 1, li = 0; k < MAXCLASS; k++) {
        if (!present[k]) continue;
        int lx = x0 + (li % cols) * 200, yy = y0 + (li / cols) * 16;
        uint8_t col[3];
        dlt_label_colour(k, col);
        dlt_picture_fill(p, lx, yy + 1, 12, 12, col);
        char name[64];
        snprintf(name, sizeof name, "%d %.20s", k, names[k] ? names[k] : "");
        dlt_picture_text(p, lx + 16, yy, name, white);
        li++;
    }
}

/* Where the views cut (RAS indices): at --at's voxel, else the centre of
 * the first label's foreground, else the middle; and, for a mosaic, the
 * extent to cover. 0, or non-zero after an error message. */
static int slice_position(const ras_map *m, const dlt_volume *img, const dlt_volume *lab0, const int *at_v,
                          int64_t mid[3], int64_t flo[3], int64_t fhi[3])
{
    if (!lab0 || !foreground_box(lab0, m, flo, fhi, mid))
        for (int w = 0; w < 3; w++) mid[w] = m->n[w] / 2, flo[w] = 0, fhi[w] = m->n[w] - 1;
    if (!at_v) return 0;
    const int64_t dims[3] = {img->nx, img->ny, img->nz};
    for (int a = 0; a < 3; a++)
        if (at_v[a] >= dims[a]) {
            dlt_error("--at: index %d outside 0..%lld", at_v[a], (long long)dims[a] - 1);
            return 1;
        }
    for (int w = 0; w < 3; w++) mid[w] = m->flip[w] ? m->n[w] - 1 - at_v[m->axis[w]] : at_v[m->axis[w]];
    return 0;
}

int main(int argc, char **argv)
{
    dlt_log_init(argv[0]);
    dlt_stdout_check_at_exit();
    scene s;
    memset(&s, 0, sizeof s);
    const int first = dlt_cli_parse(&cli, argc, argv);
    if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
    dlt_log_set_level(level);
    s.alpha = alpha, s.outline = outline;
    if (first != argc - 1 || !out)
        return dlt_usage_error("%s", first >= argc ? "no IMAGE given" : !out ? "no output given (-o OUT.png)" : "more than one IMAGE");
    if (strcmp(out, "-") == 0 && dlt_stdout_is_tty()) { dlt_error("refusing to write a PNG to a terminal"); return 2; }
    int vlist[3], nview;
    if (parse_views(views, vlist, &nview)) { dlt_error("%s", dlt_errmsg()); return 2; }
    int win_given = 0;
    if (window) {
        double wv[2];
        int n;
        if (dlt_parse_doubles(window, 2, wv, &n) || n != 2 || !(wv[1] > wv[0])) {
            dlt_error("--window: expected LO,HI with LO < HI, got '%s'", window);
            return 2;
        }
        s.lo = wv[0], s.hi = wv[1], win_given = 1;
    }
    int at_v[3] = {0, 0, 0};
    if (at && dlt_parse_int3(at, 0, 1 << 30, at_v)) { dlt_error("--at: %s", dlt_errmsg()); return 2; }
    static char *names[MAXCLASS];
    if (classes && read_classes(classes, names)) { dlt_error("%s", dlt_errmsg()); return 1; }

    dlt_volume img, lab[MAXLAB];
    if (dlt_volume_read(argv[first], &img)) { dlt_error("%s", dlt_errmsg()); return 1; }
    if (img.nc > 1) dlt_warn("%s: %lld channels; showing the first", argv[first], (long long)img.nc);
    for (int i = 0; i < nlab; i++) {
        if (dlt_volume_read_label(labels[i], &lab[i])) { dlt_error("%s", dlt_errmsg()); return 1; }
        if (dlt_volume_same_grid(&img, &lab[i], 1e-3)) {
            dlt_error("%s: not on the grid of %s: %s", labels[i], argv[first], dlt_errmsg());
            return 1;
        }
    }
    s.img = &img;
    make_ras_map(&img, &s.m);
    if (!win_given) auto_window(&img, &s.lo, &s.hi);

    int64_t mid[3], flo[3], fhi[3];
    if (slice_position(&s.m, &img, nlab ? &lab[0] : NULL, at ? at_v : NULL, mid, flo, fhi)) return 2;

    /* Pixel size: the longest side of the volume gets `size` pixels. */
    double longest = 0;
    for (int w = 0; w < 3; w++) longest = fmax(longest, s.m.n[w] * s.m.mm[w]);
    s.px_mm = longest / size;

    /* Panels: a mosaic is N slices of one view; otherwise one per view. */
    int npanel = mosaic ? mosaic : nview, pview[64];
    int64_t pslice[64];
    int pw, ph, maxw = 0, maxh = 0;
    for (int i = 0; i < npanel; i++) {
        int cc, rr, ff;
        pview[i] = mosaic ? vlist[0] : vlist[i];
        view_axes(pview[i], &cc, &rr, &ff);
        pslice[i] = mosaic ? flo[ff] + (int64_t)((fhi[ff] - flo[ff]) * (i + 0.5) / mosaic) : mid[ff];
        panel_size(&s, pview[i], &pw, &ph);
        if (pw > maxw) maxw = pw;
        if (ph > maxh) maxh = ph;
    }
    int ncol = nlab ? nlab : 1, gap = 6, title_h = 18;
    int grid_c = mosaic ? (int)ceil(sqrt(npanel)) : 1, grid_r = (npanel + grid_c - 1) / grid_c;
    /* Row tops: a mosaic's rows are alike; the views' rows each take their own height. */
    int row_y[65], grid_h = 0;
    for (int r = 0; r < grid_r; r++) {
        row_y[r] = title_h + grid_h;
        int rh = maxh;
        if (!mosaic) panel_size(&s, pview[r], &pw, &rh);
        grid_h += rh + gap;
    }
    /* Legend: the classes present in any label volume. */
    static unsigned char present[MAXCLASS];
    const int npresent = classes_present(lab, nlab, present);
    int block_w = grid_c * (maxw + gap), W = ncol * block_w + gap;
    if (W < 420) W = 420;
    int legend_cols = W / 200 > 0 ? W / 200 : 1;
    int legend_h = npresent ? ((npresent + legend_cols - 1) / legend_cols) * 16 + 8 : 0;
    int H = title_h + grid_h + gap + legend_h + 16;
    dlt_picture p;
    if (dlt_picture_new(&p, W, H, 24)) { dlt_error("%s", dlt_errmsg()); return 1; }
    uint8_t white[3] = {235, 235, 235}, grey[3] = {160, 160, 160};

    char tbuf[256];
    snprintf(tbuf, sizeof tbuf, "%s", titles ? titles : "");
    char *tsave = NULL, *tok = titles ? strtok_r(tbuf, ",", &tsave) : NULL;
    for (int col = 0; col < ncol; col++) {
        const char *t = tok ? tok : nlab ? labels[col] : argv[first];
        const char *base = strrchr(t, '/');
        dlt_picture_text(&p, gap + col * block_w, 3, base && !tok ? base + 1 : t, white);
        if (tok) tok = strtok_r(NULL, ",", &tsave);
        for (int i = 0; i < npanel; i++) {
            int gx = i % grid_c, gy = i / grid_c;
            int x0 = gap + col * block_w + gx * (maxw + gap), y0 = row_y[gy];
            draw_panel(&p, x0, y0, &s, nlab ? &lab[col] : NULL, pview[i], pslice[i]);
            char lbl[64];
            snprintf(lbl, sizeof lbl, "%s %lld", view_names[pview[i]], (long long)pslice[i]);
            dlt_picture_text(&p, x0 + 2, y0 + 2, lbl, grey);
        }
    }
    draw_legend(&p, gap, title_h + grid_h + gap, legend_cols, present, names);
    snprintf(tbuf, sizeof tbuf, "window %.4g..%.4g, patient right on the left", s.lo, s.hi);
    dlt_picture_text(&p, gap, H - 15, tbuf, grey);
    int rc = dlt_picture_write_png(&p, out);
    if (rc) dlt_error("%s", dlt_errmsg());
    dlt_picture_free(&p);
    dlt_volume_free(&img);
    for (int i = 0; i < nlab; i++) dlt_volume_free(&lab[i]);
    for (int k = 0; k < MAXCLASS; k++) free(names[k]);
    return rc ? 1 : 0;
}
