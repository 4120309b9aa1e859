/*
 * Encoding a record's pixels for the compressed store formats: JPEG through
 * libjpeg-turbo, WebP (lossy or lossless) through libwebp. Raw records need
 * no encoder: their payload is the pixels themselves.
 */
#ifndef IMGPACK_SRC_ENCODE_H
#define IMGPACK_SRC_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "image.h"

/*
 * Encodes `px` (1 or 3 channels) as `format` at `quality` (1..100; ignored
 * by lossless WebP). On success *out is a malloc'd buffer that the caller
 * frees: `room` bytes left for a header, then the *payload_size bytes of
 * the encoded image. Returns IMGPACK_OK, IMGPACK_ERR_NOMEM, or
 * IMGPACK_ERR_INVALID_ARG with a reason (e.g. WebP's 16383-pixel side limit).
 */
imgpack_status imgpack__encode(int32_t format, int32_t quality,
                               const imgpack__pixels *px, size_t room,
                               uint8_t **out, size_t *payload_size,
                               char reason[IMGPACK__REASON_SIZE]);

#endif
