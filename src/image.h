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

#endif
