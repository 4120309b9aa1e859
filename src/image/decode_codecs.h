/*
 * What decode.c shares with the per-codec files decode_jpeg.c, decode_png.c
 * and decode_webp.c: the decoder's grow-only scratch buffers, the pixel-limit
 * check, and one entry point per codec. Nothing outside the decode module
 * includes this header.
 */
#ifndef IMGPACK_SRC_DECODE_CODECS_H
#define IMGPACK_SRC_DECODE_CODECS_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"

/*
 * A byte buffer owned by a decoder and reused from one image to the next. It
 * only grows, so a worker's steady state makes no allocations; its size is
 * bounded by the largest image the pixel limit lets through.
 */
typedef struct imgpack__scratch {
    uint8_t *data;
    size_t size;
} imgpack__scratch;

/*
 * Makes `buf` hold at least `size` bytes. Its old contents are not kept
 * (nothing needs them, and not copying is cheaper than realloc).
 * Returns IMGPACK_OK or IMGPACK_ERR_NOMEM with `reason` filled.
 */
imgpack_status imgpack__scratch_reserve(imgpack__scratch *buf, size_t size,
                                        char reason[IMGPACK__REASON_SIZE]);

/* Releases the memory of `buf` and leaves it empty. */
void imgpack__scratch_release(imgpack__scratch *buf);

/*
 * Checks a header's dimensions before anything is allocated for the pixels:
 * zero sizes are IMGPACK_ERR_DECODE, width*height over `max_pixels` (0 means
 * no limit) is IMGPACK_ERR_TOO_LARGE; both fill `reason`.
 */
imgpack_status imgpack__decode_check_size(uint64_t width, uint64_t height,
                                          uint64_t max_pixels,
                                          char reason[IMGPACK__REASON_SIZE]);

/*
 * What imgpack__decode_window() hands every codec, filled once there so the
 * codecs share one argument list. A codec decodes `data` into `pixels`
 * (resized as needed), may use `rows` for row pointers or row batches, fills
 * *out on success, and on failure returns a status of imgpack__decode() with
 * `reason` (IMGPACK__REASON_SIZE bytes) filled. Only JPEG honours `window`
 * (may be NULL); WebP needs no `rows`.
 */
typedef struct imgpack__decode_args {
    imgpack__scratch *pixels;
    imgpack__scratch *rows;
    const uint8_t *data;
    size_t size;
    uint64_t max_pixels;
    const imgpack__window *window;
    imgpack__pixels *out;
    char *reason;
} imgpack__decode_args;

/* The codecs, each as described above imgpack__decode_args. */
imgpack_status imgpack__decode_jpeg(const imgpack__decode_args *args);
imgpack_status imgpack__decode_png(const imgpack__decode_args *args);
imgpack_status imgpack__decode_webp(const imgpack__decode_args *args);

#endif
