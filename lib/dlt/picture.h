/* dlt/picture.h - RGB pictures for people to look at: a canvas, text in the
 * built-in 8x13 font, the label colour table, and PNG output (libpng). */
#ifndef DLT_PICTURE_H
#define DLT_PICTURE_H

#include <stdint.h>

typedef struct dlt_picture {
    int w, h;
    uint8_t *rgb; /* [h][w][3], from dlt_alloc */
} dlt_picture;

/* A w x h canvas filled with grey level `bg`. */
int dlt_picture_new(dlt_picture *p, int w, int h, uint8_t bg);
void dlt_picture_free(dlt_picture *p);
void dlt_picture_fill(dlt_picture *p, int x, int y, int w, int h, const uint8_t rgb[3]);
/* Text with its top-left corner at (x,y); clipped at the edges. Returns the
 * width drawn in pixels. Non-ASCII bytes are drawn as '?'. */
int dlt_picture_text(dlt_picture *p, int x, int y, const char *s, const uint8_t rgb[3]);
/* Write as an 8-bit RGB PNG, atomically; "-" writes to stdout. */
int dlt_picture_write_png(const dlt_picture *p, const char *path);

/* Colour of class `c` (> 0): the 13 BTCV organs get distinct colours close
 * to those of the usual viewers, others cycle through a fixed palette. */
void dlt_label_colour(int c, uint8_t rgb[3]);

#endif
