/*
 * One source item in, one LMDB value (or a reject reason) out: the item as
 * its source reads it (sources.h), decoded, resized, encoded.
 *
 * For raw records the resizer writes straight into the value after its
 * header, so the crop is computed once and never copied. Gray images are
 * resized as one channel and replicated at the end: every channel is
 * resized independently, so this equals resizing the RGB image Pillow's
 * convert('RGB') would have made, at a third of the cost.
 */
#include "transform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "encode.h"
#include "error.h"
#include "record.h"
#include "resize.h"

struct imgpack__transformer {
    imgpack__transform_settings settings;
    imgpack__decoder *decoder;
    imgpack__resizer *resizer;
    imgpack__item_buffer buffer; /* what the source reads an item into */
    uint8_t *gray;               /* a gray crop before replication */
    size_t gray_capacity;
};

imgpack_status
imgpack__transformer_create(imgpack__transformer **out,
                            const imgpack__transform_settings *settings) {
    imgpack_status status;
    imgpack__transformer *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t)
        return IMGPACK_ERR_NOMEM;
    t->settings = *settings;
    if ((status = imgpack__decoder_create(&t->decoder)) != IMGPACK_OK ||
        (status = imgpack__resizer_create(&t->resizer)) != IMGPACK_OK) {
        imgpack__transformer_destroy(t);
        return status;
    }
    *out = t;
    return IMGPACK_OK;
}

void imgpack__transformer_destroy(imgpack__transformer *t) {
    if (!t)
        return;
    imgpack__decoder_destroy(t->decoder);
    imgpack__resizer_destroy(t->resizer);
    imgpack__item_buffer_free(&t->buffer);
    free(t->gray);
    free(t);
}

void imgpack__result_clear(imgpack__result *r) {
    free(r->value);
    memset(r, 0, sizeof *r);
}

static imgpack_status reject(imgpack__result *r, imgpack_status status,
                             const char *format, const char *detail) {
    r->status = status;
    snprintf(r->reason, sizeof r->reason, format, detail);
    return status;
}

/* Replicates a gray crop into RGB. */
static void gray_to_rgb(const uint8_t *gray, size_t pixels, uint8_t *rgb) {
    for (size_t i = 0; i < pixels; i++)
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
}

/* Resizes and crops into a fresh buffer after `room` header bytes, with
   `channels` channels (gray sources are replicated into RGB ones). */
static imgpack_status make_crop(imgpack__transformer *t,
                                const imgpack__pixels *src,
                                const imgpack__geometry *g, uint32_t channels,
                                size_t room, uint8_t **out) {
    size_t pixels = (size_t)g->out_width * g->out_height;
    uint8_t *value = malloc(room + pixels * channels);
    imgpack_status status;
    if (!value)
        return IMGPACK_ERR_NOMEM;
    if (src->channels == channels) {
        status = imgpack__resize_crop(t->resizer, src, g, value + room,
                                      (size_t)g->out_width * channels);
    } else if (imgpack__grow_buffer(&t->gray, &t->gray_capacity, pixels) != 0) {
        status = IMGPACK_ERR_NOMEM;
    } else {
        status =
            imgpack__resize_crop(t->resizer, src, g, t->gray, g->out_width);
        if (status == IMGPACK_OK)
            gray_to_rgb(t->gray, pixels, value + room);
    }
    if (status != IMGPACK_OK) {
        free(value);
        return status;
    }
    *out = value;
    return IMGPACK_OK;
}

/* The decoder's window: only the pixels the crop's resize reads. */
static void crop_region(void *user, uint32_t width, uint32_t height,
                        imgpack__region *out) {
    const imgpack__transform_settings *s = user;
    imgpack__geometry g;
    imgpack__geometry_plan(width, height, s->resize, s->crop, &g);
    imgpack__geometry_source_region(&g, out);
}

/* The item's pixels into *decoded: as its source reads them, decoded
   unless the source holds pixels already. */
static imgpack_status load_item(imgpack__transformer *t,
                                const imgpack__source *src, size_t index,
                                imgpack__pixels *decoded, imgpack__result *r) {
    imgpack__item_data item = {0};
    r->status = src->ops->read(src, index, &t->buffer, &item, r->reason);
    r->src_bytes = item.size;
    if (r->status != IMGPACK_OK)
        return r->status;
    imgpack__sha256_hex(item.data, item.size, r->sha256);
    if (item.decoded) {
        *decoded = item.pixels;
        return IMGPACK_OK;
    }
    imgpack__window window = {crop_region, &t->settings};
    return r->status = imgpack__decode_window(t->decoder, item.data, item.size,
                                              t->settings.max_pixels, &window,
                                              decoded, r->reason);
}

void imgpack__transform_item(imgpack__transformer *t,
                             const imgpack__source *src, size_t index,
                             imgpack__result *r) {
    const imgpack__transform_settings *s = &t->settings;
    imgpack__pixels decoded;
    imgpack__geometry g;
    uint8_t *crop = NULL;
    imgpack__record_header h = {.format = (uint8_t)s->format,
                                .channels = (uint8_t)s->channels,
                                .label = src->items[index].class_id};
    size_t payload_size;

    memset(r, 0, sizeof *r);
    if (load_item(t, src, index, &decoded, r) != IMGPACK_OK)
        return;
    r->src_width = decoded.width;
    r->src_height = decoded.height;
    imgpack__geometry_plan(decoded.width, decoded.height, s->resize, s->crop,
                           &g);
    h.width = g.out_width;
    h.height = g.out_height;
    r->status = make_crop(t, &decoded, &g, s->channels,
                          IMGPACK__RECORD_HEADER_SIZE, &crop);
    if (r->status != IMGPACK_OK) {
        snprintf(r->reason, sizeof r->reason, "out of memory");
        return;
    }
    payload_size = (size_t)g.out_width * g.out_height * s->channels;
    if (s->format == IMGPACK_FORMAT_RAW) {
        r->value = crop;
    } else {
        imgpack__pixels px = {crop + IMGPACK__RECORD_HEADER_SIZE, g.out_width,
                              g.out_height, s->channels,
                              (size_t)g.out_width * s->channels};
        r->status = imgpack__encode(s->format, s->quality, &px,
                                    IMGPACK__RECORD_HEADER_SIZE, &r->value,
                                    &payload_size, r->reason);
        free(crop);
        if (r->status != IMGPACK_OK)
            return;
    }
    if (payload_size > UINT32_MAX) {
        imgpack__result_clear(r);
        reject(r, IMGPACK_ERR_TOO_LARGE, "%s",
               "record would be larger than 4 GiB");
        return;
    }
    h.payload_size = (uint32_t)payload_size;
    h.payload_crc =
        imgpack__crc32(r->value + IMGPACK__RECORD_HEADER_SIZE, payload_size);
    imgpack__record_header_write(r->value, &h);
    r->value_size = IMGPACK__RECORD_HEADER_SIZE + payload_size;
}
