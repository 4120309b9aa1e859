/*
 * The decoder object and the codec-independent half of decoding: sniffing
 * the codec from the first bytes, the pixel-limit check, and the scratch
 * buffers every codec decodes into. A decoder owns two grow-only buffers,
 * one for the pixels it hands out and one for row pointers or row batches,
 * so a worker that reuses its decoder stops allocating once it has seen its
 * largest image; large ones live in huge pages (hugemem.c), so growing to a
 * big photo does not cost a page fault per 4 KiB. The codecs themselves live in
 * decode_jpeg.c, decode_png.c and decode_webp.c; this file only dispatches to
 * them.
 */
#include "decode.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_codecs.h"
#include "hugemem.h"

struct imgpack__decoder {
    imgpack__scratch pixels; /* what imgpack__decode() hands out */
    imgpack__scratch rows;   /* row pointers, or rows before conversion */
};

/* Image formats recognised only to say precisely why they are refused. */
static const struct {
    const char *magic;
    size_t length;
    const char *name;
} unsupported_formats[] = {
    {"GIF87a", 6, "GIF"}, {"GIF89a", 6, "GIF"}, {"BM", 2, "BMP"},
    {"II*\0", 4, "TIFF"}, {"MM\0*", 4, "TIFF"},
};

imgpack_status imgpack__decoder_create(imgpack__decoder **out) {
    imgpack_status status = IMGPACK_OK;
    imgpack__decoder *dec = NULL;

    if (out == NULL) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    *out = NULL;
    dec = calloc(1, sizeof(*dec));
    if (dec == NULL) {
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    *out = dec;
done:
    return status;
}

void imgpack__decoder_destroy(imgpack__decoder *dec) {
    if (dec == NULL) {
        return;
    }
    imgpack__scratch_release(&dec->pixels);
    imgpack__scratch_release(&dec->rows);
    free(dec);
}

imgpack__codec imgpack__codec_sniff(const uint8_t *data, size_t size) {
    static const uint8_t png_signature[8] = {0x89, 'P',  'N',  'G',
                                             '\r', '\n', 0x1a, '\n'};
    imgpack__codec codec = IMGPACK__CODEC_UNKNOWN;

    if (data == NULL) {
        size = 0;
    }
    /* SOI followed by the 0xFF of the next marker: every JPEG variant
       (JFIF, Exif, Adobe, bare) starts this way. */
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        codec = IMGPACK__CODEC_JPEG;
    } else if (size >= sizeof(png_signature) &&
               memcmp(data, png_signature, sizeof(png_signature)) == 0) {
        codec = IMGPACK__CODEC_PNG;
    } else if (size >= 12 && memcmp(data, "RIFF", 4) == 0 &&
               memcmp(data + 8, "WEBP", 4) == 0) {
        codec = IMGPACK__CODEC_WEBP;
    }
    return codec;
}

imgpack_status imgpack__scratch_reserve(imgpack__scratch *buf, size_t size,
                                        char reason[IMGPACK__REASON_SIZE]) {
    imgpack_status status = IMGPACK_OK;

    if (size <= buf->size) {
        goto done;
    }
    imgpack__scratch_release(buf);
    buf->data = imgpack__huge_alloc(size);
    if (buf->data == NULL) {
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "out of memory allocating %zu bytes", size);
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    buf->size = size;
done:
    return status;
}

void imgpack__scratch_release(imgpack__scratch *buf) {
    imgpack__huge_free(buf->data, buf->size);
    buf->data = NULL;
    buf->size = 0;
}

imgpack_status imgpack__decode_check_size(uint64_t width, uint64_t height,
                                          uint64_t max_pixels,
                                          char reason[IMGPACK__REASON_SIZE]) {
    imgpack_status status = IMGPACK_OK;

    if (width == 0 || height == 0) {
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "image has no pixels (%" PRIu64 "x%" PRIu64 ")", width,
                 height);
        status = IMGPACK_ERR_DECODE;
    } else if (max_pixels != 0 && width * height > max_pixels) {
        /* Headers hold at most 32-bit dimensions, so the product fits. */
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "image is %" PRIu64 "x%" PRIu64 " = %" PRIu64
                 " pixels, over the limit of %" PRIu64,
                 width, height, width * height, max_pixels);
        status = IMGPACK_ERR_TOO_LARGE;
    }
    return status;
}

/* Names a refused but recognised format, or returns NULL. */
static const char *unsupported_name(const uint8_t *data, size_t size) {
    const char *name = NULL;
    size_t i;

    for (i = 0;
         i < sizeof(unsupported_formats) / sizeof(unsupported_formats[0]);
         i++) {
        if (size >= unsupported_formats[i].length &&
            memcmp(data, unsupported_formats[i].magic,
                   unsupported_formats[i].length) == 0) {
            name = unsupported_formats[i].name;
            break;
        }
    }
    return name;
}

imgpack_status imgpack__decode(imgpack__decoder *dec, const uint8_t *data,
                               size_t size, uint64_t max_pixels,
                               imgpack__pixels *out,
                               char reason[IMGPACK__REASON_SIZE]) {
    return imgpack__decode_window(dec, data, size, max_pixels, NULL, out,
                                  reason);
}

imgpack_status imgpack__decode_window(imgpack__decoder *dec,
                                      const uint8_t *data, size_t size,
                                      uint64_t max_pixels,
                                      const imgpack__window *window,
                                      imgpack__pixels *out,
                                      char reason[IMGPACK__REASON_SIZE]) {
    imgpack_status status = IMGPACK_OK;
    imgpack__decode_args args;
    const char *other;

    if (reason == NULL) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    reason[0] = '\0';
    if (dec == NULL || out == NULL || (data == NULL && size != 0)) {
        snprintf(reason, IMGPACK__REASON_SIZE, "invalid argument");
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    memset(out, 0, sizeof(*out));
    if (size == 0) {
        snprintf(reason, IMGPACK__REASON_SIZE, "empty file");
        status = IMGPACK_ERR_DECODE;
        goto done;
    }
    args.pixels = &dec->pixels;
    args.rows = &dec->rows;
    args.data = data;
    args.size = size;
    args.max_pixels = max_pixels;
    args.window = window;
    args.out = out;
    args.reason = reason;
    switch (imgpack__codec_sniff(data, size)) {
    case IMGPACK__CODEC_JPEG:
        status = imgpack__decode_jpeg(&args);
        break;
    case IMGPACK__CODEC_PNG:
        status = imgpack__decode_png(&args);
        break;
    case IMGPACK__CODEC_WEBP:
        status = imgpack__decode_webp(&args);
        break;
    case IMGPACK__CODEC_UNKNOWN:
        other = unsupported_name(data, size);
        if (other != NULL) {
            snprintf(reason, IMGPACK__REASON_SIZE,
                     "%s images are not supported (only JPEG, PNG, WebP)",
                     other);
            status = IMGPACK_ERR_UNSUPPORTED;
        } else {
            snprintf(reason, IMGPACK__REASON_SIZE,
                     "not a JPEG, PNG or WebP image (unknown signature)");
            status = IMGPACK_ERR_DECODE;
        }
        break;
    }
    if (status != IMGPACK_OK) {
        memset(out, 0, sizeof(*out));
    }
done:
    return status;
}
