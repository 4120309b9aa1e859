/*
 * A 5x7 bitmap font for printable ASCII, and text drawn with it into RGB
 * buffers: the captions of `imgpack grid`, with no font dependency.
 */
#ifndef IMGPACK_TOOLS_FONT_H
#define IMGPACK_TOOLS_FONT_H

#include <stddef.h>
#include <stdint.h>

#define FONT_WIDTH 5
#define FONT_HEIGHT 7
/* Columns from one character to the next: the glyph and one blank. */
#define FONT_ADVANCE (FONT_WIDTH + 1)

/*
 * Draws `text` into the RGB image `rgb` (rows `stride` bytes apart) with
 * its top-left corner at (x, y), each font pixel a `scale` x `scale`
 * square of `color` (3 bytes). Stops before the first character that would
 * cross column `right` (exclusive); bytes outside ASCII 32..126 show as
 * '?'. The caller keeps y + FONT_HEIGHT * scale within the image.
 */
void font_draw(uint8_t *rgb, size_t stride, uint32_t x, uint32_t y,
               uint32_t right, uint32_t scale, const uint8_t *color,
               const char *text);

#endif
