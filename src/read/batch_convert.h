/*
 * The last step of a batch image: source pixels (8-bit, interleaved) to
 * the output's element type and layout, cropping by offset and flipping
 * by stride on the way. A converter holds the output geometry and the
 * per-channel value tables; it is read-only once made, so every thread of
 * a batcher shares one.
 */
#ifndef IMGPACK_SRC_BATCH_CONVERT_H
#define IMGPACK_SRC_BATCH_CONVERT_H

#include <stdint.h>

#include "image.h"

/* Channels an output image may have: gray, RGB (and room for RGBA). */
#define IMGPACK__CONVERT_MAX_CHANNELS 4

typedef struct imgpack__converter {
    uint32_t width, height, channels; /* of one output image */
    int32_t layout;                   /* IMGPACK_LAYOUT_* */
    int32_t dtype;                    /* IMGPACK_DTYPE_* */
    uint32_t elem_size;               /* bytes per value */
    float lut[IMGPACK__CONVERT_MAX_CHANNELS][256];
    uint16_t lut16[IMGPACK__CONVERT_MAX_CHANNELS][256]; /* 16-bit types */
} imgpack__converter;

/*
 * Sets up `c` for width x height x channels images of `dtype` in
 * `layout`; float types map value v of channel k to (v/255.0f -
 * mean[k]) / std[k] in float32 (mean and std hold n_norm values: 1 for
 * every channel, or one per channel), the 16-bit types round that once,
 * to nearest even.
 */
void imgpack__converter_init(imgpack__converter *c, uint32_t width,
                             uint32_t height, uint32_t channels, int32_t layout,
                             int32_t dtype, const float *mean, const float *std,
                             uint32_t n_norm);

/*
 * Writes one output image into `dst` from `px` (1 channel, replicated
 * into every output channel, or as many as the output has): output pixel
 * (x, y) is source pixel (left + x, top + y), or (left + width - 1 - x,
 * top + y) when `flip`; pixels outside the source are black (value 0)
 * padding, as torchvision's CenterCrop pads. Streaming stores: call
 * imgpack__convert_fence before another thread reads the output.
 */
void imgpack__convert(const imgpack__converter *c, const imgpack__pixels *px,
                      int64_t top, int64_t left, int flip, uint8_t *dst);

/* Orders the calling thread's streaming stores before what follows. */
void imgpack__convert_fence(void);

#endif
