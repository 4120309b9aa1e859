/*
 * torchvision's Resize(short_side) followed by CenterCrop(side) on a PIL
 * image, with the same bytes as Pillow's antialiased bilinear resampling.
 *
 * Only the pixels the crop keeps are computed: the horizontal pass runs on
 * the source rows the kept output rows need and only for the kept columns,
 * the vertical pass only for the kept rows. Each output pixel depends on its
 * own filter support alone, so this is exact, not an approximation.
 *
 * A resizer keeps scratch buffers (coefficients, the intermediate rows)
 * between calls; one per thread.
 */
#ifndef IMGPACK_SRC_RESIZE_H
#define IMGPACK_SRC_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "imgpack/imgpack.h"

/* Where each stage puts the image; see imgpack__geometry_plan. */
typedef struct imgpack__geometry {
    uint32_t src_width, src_height;
    uint32_t resized_width, resized_height; /* after Resize(short_side) */
    uint32_t out_width, out_height;         /* after CenterCrop */
    /* Top-left of the crop inside the resized image. Negative when the crop
       is larger than the image: torchvision pads with zeros then. */
    int64_t left, top;
} imgpack__geometry;

/*
 * Plans the geometry exactly as torchvision 0.14 does: with resize > 0 the
 * short side becomes `resize` and the long side int(resize*long/short)
 * (unchanged when already so); with crop > 0 the crop is crop x crop at
 * top = int(round((h - crop) / 2.0)) (round half to even), left likewise,
 * padded with zeros where the image is smaller. 0 turns either stage off.
 */
void imgpack__geometry_plan(uint32_t src_width, uint32_t src_height,
                            uint32_t resize, uint32_t crop,
                            imgpack__geometry *g);

/*
 * The source pixels that imgpack__resize_crop reads for geometry `g`: a
 * decoder may leave the others undecoded. All zero when nothing of the
 * source is kept.
 */
void imgpack__geometry_source_region(const imgpack__geometry *g,
                                     imgpack__region *out);

typedef struct imgpack__resizer imgpack__resizer;

imgpack_status imgpack__resizer_create(imgpack__resizer **out);
void imgpack__resizer_destroy(imgpack__resizer *rs);

/*
 * Turns the vector kernels off (0) or back on (non-zero; only where the CPU
 * has them, the default). Both paths give the same bytes; tests use this to
 * check the portable one on machines that would otherwise never run it.
 */
void imgpack__resizer_set_simd(imgpack__resizer *rs, int enable);

/*
 * Resizes and crops `src` (g->src_width x g->src_height) into `out`:
 * g->out_height rows of g->out_width * src->channels bytes, `out_stride`
 * bytes apart. Returns IMGPACK_OK or IMGPACK_ERR_NOMEM.
 */
imgpack_status imgpack__resize_crop(imgpack__resizer *rs,
                                    const imgpack__pixels *src,
                                    const imgpack__geometry *g, uint8_t *out,
                                    size_t out_stride);

#endif
