/*
 * Record headers: writing, parsing and checking them. See record.h for the
 * layout and docs/FORMAT.md for the same in prose.
 */
#include "record.h"

#include <string.h>

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

void imgpack__record_key(uint64_t index, uint8_t key[IMGPACK__KEY_SIZE]) {
    for (int i = 0; i < IMGPACK__KEY_SIZE; i++)
        key[i] = (uint8_t)(index >> (8 * (IMGPACK__KEY_SIZE - 1 - i)));
}

void imgpack__record_header_write(uint8_t *value,
                                  const imgpack__record_header *h) {
    memcpy(value, IMGPACK__RECORD_MAGIC, 4);
    put_u16(value + 4, IMGPACK__RECORD_VERSION);
    value[6] = h->format;
    value[7] = h->channels;
    put_u32(value + 8, h->width);
    put_u32(value + 12, h->height);
    put_u32(value + 16, h->label);
    put_u32(value + 20, h->payload_size);
    put_u32(value + 24, h->payload_crc);
    put_u32(value + 28, imgpack__crc32(value, 28));
}

imgpack_status imgpack__record_parse_verified(const uint8_t *value, size_t size,
                                              imgpack__record_header *h) {
    h->format = value[6];
    h->channels = value[7];
    h->width = get_u32(value + 8);
    h->height = get_u32(value + 12);
    h->label = get_u32(value + 16);
    h->payload_size = get_u32(value + 20);
    h->payload_crc = get_u32(value + 24);
    return h->payload_size == size - IMGPACK__RECORD_HEADER_SIZE
               ? IMGPACK_OK
               : IMGPACK_ERR_CORRUPT;
}

imgpack_status imgpack__record_parse(const uint8_t *value, size_t size,
                                     int check_payload,
                                     imgpack__record_header *h) {
    if (size < IMGPACK__RECORD_HEADER_SIZE ||
        memcmp(value, IMGPACK__RECORD_MAGIC, 4) != 0)
        return IMGPACK_ERR_CORRUPT;
    if (get_u32(value + 28) != imgpack__crc32(value, 28))
        return IMGPACK_ERR_CORRUPT;
    if (get_u16(value + 4) != IMGPACK__RECORD_VERSION)
        return IMGPACK_ERR_VERSION_MISMATCH;
    if (imgpack__record_parse_verified(value, size, h) != IMGPACK_OK ||
        h->format > IMGPACK_FORMAT_WEBP_LOSSLESS ||
        (h->channels != 1 && h->channels != 3))
        return IMGPACK_ERR_CORRUPT;
    if (h->format == IMGPACK_FORMAT_RAW &&
        (uint64_t)h->width * h->height * h->channels != h->payload_size)
        return IMGPACK_ERR_CORRUPT;
    if (check_payload && imgpack__crc32(value + IMGPACK__RECORD_HEADER_SIZE,
                                        h->payload_size) != h->payload_crc)
        return IMGPACK_ERR_CORRUPT;
    return IMGPACK_OK;
}
