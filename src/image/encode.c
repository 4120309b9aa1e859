/*
 * Encoders for jpeg, webp and webp-lossless records. JPEG keeps libjpeg's
 * defaults (ISLOW DCT, 4:2:0 chroma below quality 90 as cjpeg does, 4:4:4
 * from 90 up so colour edges survive at the qualities people pick for
 * training data); libjpeg's error exit longjmps back here only.
 */
#include "encode.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <webp/encode.h>

#include "imgpack/imgpack.h"

/* Quality from which chroma is kept at full resolution. */
#define JPEG_FULL_CHROMA_QUALITY 90

typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char *reason;
} jpeg_failure;

static void jpeg_fail(j_common_ptr cinfo) {
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    f->mgr.format_message(cinfo, text);
    snprintf(f->reason, IMGPACK__REASON_SIZE, "JPEG encoder: %s", text);
    longjmp(f->jump, 1);
}

/* Copies an encoder's output after `room` free bytes into a new buffer. */
static imgpack_status place(const uint8_t *encoded, size_t size, size_t room,
                            uint8_t **out, size_t *payload_size) {
    *out = malloc(room + size);
    if (!*out)
        return IMGPACK_ERR_NOMEM;
    memcpy(*out + room, encoded, size);
    *payload_size = size;
    return IMGPACK_OK;
}

static imgpack_status encode_jpeg(int32_t quality, const imgpack__pixels *px,
                                  size_t room, uint8_t **out,
                                  size_t *payload_size, char *reason) {
    struct jpeg_compress_struct cinfo;
    jpeg_failure failure = {.reason = reason};
    unsigned char *buffer = NULL;
    unsigned long size = 0;
    imgpack_status status;

    cinfo.err = jpeg_std_error(&failure.mgr);
    failure.mgr.error_exit = jpeg_fail;
    if (setjmp(failure.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return IMGPACK_ERR_INVALID_ARG;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &size);
    cinfo.image_width = px->width;
    cinfo.image_height = px->height;
    cinfo.input_components = (int)px->channels;
    cinfo.in_color_space = px->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (px->channels == 3 && quality >= JPEG_FULL_CHROMA_QUALITY)
        cinfo.comp_info[0].h_samp_factor = cinfo.comp_info[0].v_samp_factor = 1;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row =
            (JSAMPROW)(px->data + (size_t)cinfo.next_scanline * px->stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    status = place(buffer, size, room, out, payload_size);
    free(buffer);
    return status;
}

static imgpack_status encode_webp(int32_t format, int32_t quality,
                                  const imgpack__pixels *px, size_t room,
                                  uint8_t **out, size_t *payload_size,
                                  char *reason) {
    const uint8_t *rgb = px->data;
    uint8_t *expanded = NULL, *encoded = NULL;
    size_t stride = px->stride;
    size_t size;
    imgpack_status status;

    if (px->width > WEBP_MAX_DIMENSION || px->height > WEBP_MAX_DIMENSION) {
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "%ux%u is over WebP's limit of %d pixels a side", px->width,
                 px->height, WEBP_MAX_DIMENSION);
        return IMGPACK_ERR_INVALID_ARG;
    }
    /* libwebp takes RGB only; gray is replicated for it. */
    if (px->channels == 1) {
        expanded = malloc((size_t)px->width * px->height * 3);
        if (!expanded)
            return IMGPACK_ERR_NOMEM;
        for (uint32_t y = 0; y < px->height; y++)
            for (uint32_t x = 0; x < px->width; x++)
                memset(expanded + ((size_t)y * px->width + x) * 3,
                       px->data[y * px->stride + x], 3);
        rgb = expanded;
        stride = (size_t)px->width * 3;
    }
    if (format == IMGPACK_FORMAT_WEBP_LOSSLESS)
        size = WebPEncodeLosslessRGB(rgb, (int)px->width, (int)px->height,
                                     (int)stride, &encoded);
    else
        size = WebPEncodeRGB(rgb, (int)px->width, (int)px->height, (int)stride,
                             (float)quality, &encoded);
    free(expanded);
    if (size == 0) {
        snprintf(reason, IMGPACK__REASON_SIZE, "WebP encoder failed");
        return IMGPACK_ERR_NOMEM;
    }
    status = place(encoded, size, room, out, payload_size);
    WebPFree(encoded);
    return status;
}

imgpack_status imgpack__encode(int32_t format, int32_t quality,
                               const imgpack__pixels *px, size_t room,
                               uint8_t **out, size_t *payload_size,
                               char reason[IMGPACK__REASON_SIZE]) {
    switch (format) {
    case IMGPACK_FORMAT_JPEG:
        return encode_jpeg(quality, px, room, out, payload_size, reason);
    case IMGPACK_FORMAT_WEBP:
    case IMGPACK_FORMAT_WEBP_LOSSLESS:
        return encode_webp(format, quality, px, room, out, payload_size,
                           reason);
    }
    snprintf(reason, IMGPACK__REASON_SIZE, "no encoder for format %d",
             (int)format);
    return IMGPACK_ERR_INVALID_ARG;
}
