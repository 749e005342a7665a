/* picture.c - RGB canvas, bitmap text, label colours and PNG output
 * (dlt/picture.h). */
#include "dlt/picture.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <string.h>

#include "dlt/core.h"
#include "dlt/font.h"
#include "dlt/io.h"

int dlt_picture_new(dlt_picture *p, int w, int h, uint8_t bg)
{
    memset(p, 0, sizeof *p);
    if (w <= 0 || h <= 0 || w > 32768 || h > 32768) return dlt_err(DLT_EINVAL, "picture of %dx%d pixels", w, h);
    p->rgb = dlt_alloc((int64_t)w * h, 3, "picture");
    if (!p->rgb) return DLT_ENOMEM;
    memset(p->rgb, bg, (size_t)w * h * 3);
    p->w = w;
    p->h = h;
    return 0;
}

void dlt_picture_free(dlt_picture *p)
{
    dlt_free(p->rgb);
    memset(p, 0, sizeof *p);
}

void dlt_picture_fill(dlt_picture *p, int x, int y, int w, int h, const uint8_t rgb[3])
{
    for (int j = y < 0 ? 0 : y; j < y + h && j < p->h; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < p->w; i++) memcpy(p->rgb + ((int64_t)j * p->w + i) * 3, rgb, 3);
}

int dlt_picture_text(dlt_picture *p, int x, int y, const char *s, const uint8_t rgb[3])
{
    int x0 = x;
    for (; *s; s++, x += DLT_FONT_W) {
        unsigned char c = (unsigned char)*s;
        if (c < 32 || c > 126) c = '?';
        const unsigned char *g = dlt_font8x13[c - 32];
        for (int r = 0; r < DLT_FONT_H; r++)
            for (int b = 0; b < 8; b++)
                if (g[r] & (0x80 >> b)) dlt_picture_fill(p, x + b, y + r, 1, 1, rgb);
    }
    return x - x0;
}

/* libpng's default handlers print "libpng error: Write Error" and lose
 * errno; ours keep the first failing write's errno (or libpng's message) for
 * one error that names the file. */
typedef struct png_sink {
    FILE *f;
    const char *name; /* for messages: the path, or "stdout" */
    int err;         /* errno of the first failed write */
    char what[128];  /* libpng's own message otherwise */
} png_sink;

static void png_sink_write(png_structp png, png_bytep data, size_t n)
{
    png_sink *s = png_get_io_ptr(png);
    if (fwrite(data, 1, n, s->f) != n) {
        if (!s->err) s->err = errno ? errno : EIO;
        png_error(png, "write failed");
    }
}

static void png_sink_flush(png_structp png) { (void)png; }

static void png_sink_error(png_structp png, png_const_charp msg)
{
    png_sink *s = png_get_error_ptr(png);
    snprintf(s->what, sizeof s->what, "%s", msg);
    png_longjmp(png, 1);
}

static void png_sink_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

int dlt_picture_write_png(const dlt_picture *p, const char *path)
{
    dlt_outfile o;
    int rc = dlt_outfile_open(&o, path);
    if (rc) return rc;
    png_sink sink = {.f = o.f, .name = strcmp(path, "-") == 0 ? "stdout" : path};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_sink_error, png_sink_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        dlt_outfile_abort(&o);
        return dlt_err(DLT_ENOMEM, "%s: libpng init failed", sink.name);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        dlt_outfile_abort(&o);
        if (sink.err) return dlt_err(DLT_EIO, "%s: write failed: %s", sink.name, strerror(sink.err));
        return dlt_err(DLT_EIO, "%s: writing PNG failed: %s", sink.name, sink.what);
    }
    png_set_write_fn(png, &sink, png_sink_write, png_sink_flush);
    png_set_IHDR(png, info, (png_uint_32)p->w, (png_uint_32)p->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int j = 0; j < p->h; j++) png_write_row(png, p->rgb + (int64_t)j * p->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return dlt_outfile_commit(&o);
}

void dlt_label_colour(int c, uint8_t rgb[3])
{
    static const uint8_t tab[][3] = {
        {0, 0, 0},       {220, 60, 60},   /* 1 spleen */
        {60, 180, 75},   /* 2 right kidney */ {255, 225, 25},  /* 3 left kidney */
        {0, 130, 200},   /* 4 gallbladder */ {245, 130, 48},  /* 5 esophagus */
        {145, 30, 180},  /* 6 liver */ {70, 240, 240},  /* 7 stomach */
        {240, 50, 230},  /* 8 aorta */ {210, 245, 60},  /* 9 IVC */
        {250, 190, 212}, /* 10 portal/splenic vein */ {0, 128, 128},  /* 11 pancreas */
        {220, 190, 255}, /* 12 right adrenal */ {170, 110, 40},  /* 13 left adrenal */
        {255, 250, 200}, {128, 0, 0},     {170, 255, 195}, {128, 128, 0}, {255, 215, 180}, {0, 0, 128},
    };
    int n = (int)(sizeof tab / sizeof tab[0]);
    int i = c <= 0 ? 0 : 1 + (c - 1) % (n - 1);
    memcpy(rgb, tab[i], 3);
}
