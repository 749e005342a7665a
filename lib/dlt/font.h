/* dlt/font.h - a small bitmap font (8x13 pixels, ASCII 32..126) for text in
 * the PNG pictures (legends, titles). */
#ifndef DLT_FONT_H_INCLUDED
#define DLT_FONT_H_INCLUDED

#define DLT_FONT_W 8
#define DLT_FONT_H 13
/* dlt_font8x13[c - 32][row]: bit 7 is the leftmost pixel. */
extern const unsigned char dlt_font8x13[95][13];

#endif
