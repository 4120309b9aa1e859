/*
 * The in-memory image every stage hands to the next: 8-bit samples,
 * interleaved channels, rows `stride` bytes apart.
 */
#ifndef IMGPACK_SRC_IMAGE_H
#define IMGPACK_SRC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct imgpack__pixels {
    const uint8_t *data;
    uint32_t width;
    uint32_t height;
    uint32_t channels; /* 1 (gray) or 3 (RGB) */
    size_t stride;     /* bytes from one row to the next, >= width*channels */
} imgpack__pixels;

/* A rectangle of an image: columns [x0, x1), rows [y0, y1). */
typedef struct imgpack__region {
    uint32_t x0, x1;
    uint32_t y0, y1;
} imgpack__region;

#endif
