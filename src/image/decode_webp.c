/*
 * WebP decoding with libwebp, straight into the decoder's pixel buffer as
 * RGB. Pillow 9.4 opens WebP through WebPAnimDecoder, which decodes a still
 * image into a non-premultiplied RGBA canvas with libwebp's default options
 * (fancy upsampling, no dithering); convert('RGB') then drops alpha. Asking
 * libwebp for MODE_RGB with the same options runs the same YUV->RGB (lossy)
 * or ARGB (lossless) paths without the alpha plane, so the bytes agree.
 *
 * The size is checked from the VP8/VP8L/VP8X header (WebPGetFeatures) before
 * the pixels are allocated. Animated files are refused: their first frame is
 * a composite that needs libwebpdemux's canvas logic. WebP carries no EXIF
 * orientation that Pillow would apply, so none is applied here either.
 */
#include <stdint.h>
#include <stdio.h>

#include <webp/decode.h>

#include "decode_codecs.h"

/* libwebp's status codes as words for a reject reason. */
static const char *status_text(VP8StatusCode code) {
    switch (code) {
    case VP8_STATUS_OK:
        return "ok";
    case VP8_STATUS_OUT_OF_MEMORY:
        return "out of memory";
    case VP8_STATUS_INVALID_PARAM:
        return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR:
        return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return "unsupported feature";
    case VP8_STATUS_SUSPENDED:
        return "suspended";
    case VP8_STATUS_USER_ABORT:
        return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA:
        return "not enough data";
    }
    return "unknown error";
}

/* Maps a failed libwebp call to our status and a reason. */
static imgpack_status fail(VP8StatusCode code,
                           char reason[IMGPACK__REASON_SIZE]) {
    imgpack_status status;

    switch (code) {
    case VP8_STATUS_OUT_OF_MEMORY:
        status = IMGPACK_ERR_NOMEM;
        snprintf(reason, IMGPACK__REASON_SIZE, "WebP: out of memory");
        break;
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        status = IMGPACK_ERR_UNSUPPORTED;
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "unsupported WebP: unsupported feature");
        break;
    case VP8_STATUS_NOT_ENOUGH_DATA:
        status = IMGPACK_ERR_DECODE;
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "truncated WebP: not enough data");
        break;
    default:
        status = IMGPACK_ERR_DECODE;
        snprintf(reason, IMGPACK__REASON_SIZE, "corrupt WebP: %s",
                 status_text(code));
        break;
    }
    return status;
}

imgpack_status imgpack__decode_webp(const imgpack__decode_args *args) {
    imgpack__scratch *pixels = args->pixels;
    const uint8_t *data = args->data;
    size_t size = args->size;
    imgpack__pixels *out = args->out;
    char *reason = args->reason;
    WebPDecoderConfig config;
    imgpack_status status;
    VP8StatusCode code;
    size_t stride, bytes;

    if (!WebPInitDecoderConfig(&config)) {
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "WebP: library version mismatch");
        status = IMGPACK_ERR_UNSUPPORTED;
        goto done;
    }
    code = WebPGetFeatures(data, size, &config.input);
    if (code != VP8_STATUS_OK) {
        status = fail(code, reason);
        goto done;
    }
    if (config.input.has_animation) {
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "animated WebP is not supported");
        status = IMGPACK_ERR_UNSUPPORTED;
        goto done;
    }
    status = imgpack__decode_check_size((uint64_t)config.input.width,
                                        (uint64_t)config.input.height,
                                        args->max_pixels, reason);
    if (status != IMGPACK_OK) {
        goto done;
    }
    stride = (size_t)config.input.width * 3;
    bytes = stride * (size_t)config.input.height;
    status = imgpack__scratch_reserve(pixels, bytes, reason);
    if (status != IMGPACK_OK) {
        goto done;
    }
    config.output.colorspace = MODE_RGB;
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = pixels->data;
    config.output.u.RGBA.stride = (int)stride;
    config.output.u.RGBA.size = bytes;
    code = WebPDecode(data, size, &config);
    if (code != VP8_STATUS_OK) {
        status = fail(code, reason);
        goto release;
    }
    out->data = pixels->data;
    out->width = (uint32_t)config.input.width;
    out->height = (uint32_t)config.input.height;
    out->channels = 3;
    out->stride = stride;
release:
    /* Frees nothing for external memory, but is the documented pairing. */
    WebPFreeDecBuffer(&config.output);
done:
    return status;
}
