/*
 * Decoding of encoded images (JPEG, PNG, WebP) into 8-bit gray or RGB, with
 * the same pixels as Pillow's `Image.open(f).convert('RGB')`. Gray sources
 * stay one channel (the caller replicates after resizing, which is exact
 * because every channel is resized independently); everything else becomes
 * three channels (CMYK converted, palettes expanded, alpha dropped).
 *
 * A decoder keeps scratch buffers between calls, so each worker thread makes
 * its own and reuses it. One decoder must not be used by two threads at once.
 */
#ifndef IMGPACK_SRC_DECODE_H
#define IMGPACK_SRC_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "imgpack/imgpack.h"

/* Room for a reason such as "JPEG: Premature end of JPEG file". */
#define IMGPACK__REASON_SIZE 256

typedef enum imgpack__codec {
    IMGPACK__CODEC_UNKNOWN = 0,
    IMGPACK__CODEC_JPEG,
    IMGPACK__CODEC_PNG,
    IMGPACK__CODEC_WEBP,
} imgpack__codec;

typedef struct imgpack__decoder imgpack__decoder;

imgpack_status imgpack__decoder_create(imgpack__decoder **out);
void imgpack__decoder_destroy(imgpack__decoder *dec);

/* The codec of `data` from its magic bytes; file names are not consulted. */
imgpack__codec imgpack__codec_sniff(const uint8_t *data, size_t size);

/*
 * Decodes `data` into *out. The pixels belong to `dec` and stay valid until
 * its next decode or its destruction. `max_pixels` (width*height) is checked
 * from the header before any pixel buffer is allocated; 0 means no limit.
 *
 * Returns IMGPACK_OK, or, with a one-line reason in `reason`:
 * IMGPACK_ERR_DECODE (corrupt, truncated, not an image),
 * IMGPACK_ERR_UNSUPPORTED (a kind of image this decoder does not take),
 * IMGPACK_ERR_TOO_LARGE (over `max_pixels`), IMGPACK_ERR_NOMEM.
 */
imgpack_status imgpack__decode(imgpack__decoder *dec, const uint8_t *data,
                               size_t size, uint64_t max_pixels,
                               imgpack__pixels *out,
                               char reason[IMGPACK__REASON_SIZE]);

/*
 * Which pixels the caller will read, asked once the decoder knows the
 * image's size: `region` fills them in. Pixels outside may be left
 * undecoded (their bytes are unspecified). JPEG then skips the inverse DCT,
 * upsampling and colour conversion of the columns and rows outside (those
 * rows still go through the entropy decoder, so damage there is found);
 * PNG and WebP decode everything.
 */
typedef struct imgpack__window {
    void (*region)(void *user, uint32_t width, uint32_t height,
                   imgpack__region *out);
    void *user;
} imgpack__window;

/* imgpack__decode, with only the pixels `window` asks for guaranteed to be
   decoded (all of them when `window` is NULL). */
imgpack_status
imgpack__decode_window(imgpack__decoder *dec, const uint8_t *data, size_t size,
                       uint64_t max_pixels, const imgpack__window *window,
                       imgpack__pixels *out, char reason[IMGPACK__REASON_SIZE]);

#endif
