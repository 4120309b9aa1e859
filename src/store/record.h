/*
 * The byte layout of one record, shared by the writer and the reader
 * (docs/FORMAT.md is the reference for other languages).
 *
 * A record is the LMDB value under an 8-byte big-endian index key: a 32-byte
 * header, then the payload. Header fields are little-endian. The header ends
 * with a CRC-32 of its own first 28 bytes, so a damaged header is detected
 * before any field is trusted; the payload has its own CRC-32, checked when
 * asked (it costs a pass over the pixels).
 */
#ifndef IMGPACK_SRC_RECORD_H
#define IMGPACK_SRC_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "crc32.h" /* the checksum of headers and payloads */
#include "imgpack/imgpack.h"

#define IMGPACK__RECORD_MAGIC "IPKR"
#define IMGPACK__RECORD_VERSION 1
/* 32 bytes keep the payload 16-byte aligned inside LMDB's overflow pages. */
#define IMGPACK__RECORD_HEADER_SIZE 32
#define IMGPACK__KEY_SIZE 8

typedef struct imgpack__record_header {
    uint8_t format;   /* imgpack_format */
    uint8_t channels; /* of the decoded pixels: 1 or 3 */
    uint32_t width;
    uint32_t height;
    uint32_t label; /* class id */
    uint32_t payload_size;
    uint32_t payload_crc; /* zlib CRC-32 of the payload */
} imgpack__record_header;

/* Writes `h` into the first IMGPACK__RECORD_HEADER_SIZE bytes of `value`. */
void imgpack__record_header_write(uint8_t *value,
                                  const imgpack__record_header *h);

/*
 * Parses and checks the header of a `size`-byte value: magic, version,
 * header CRC, known format and channels, payload size matching `size`, and
 * for raw records width*height*channels == payload size. With
 * `check_payload` also the payload's CRC. Returns IMGPACK_OK,
 * IMGPACK_ERR_VERSION_MISMATCH or IMGPACK_ERR_CORRUPT.
 */
imgpack_status imgpack__record_parse(const uint8_t *value, size_t size,
                                     int check_payload,
                                     imgpack__record_header *h);

/*
 * The fields of a header that passed imgpack__record_parse before (the
 * reader's "Header checks"), without its checks but one: the payload size
 * must still match `size` (at least IMGPACK__RECORD_HEADER_SIZE), which
 * keeps every later access to the payload within the value. Returns
 * IMGPACK_OK or IMGPACK_ERR_CORRUPT. imgpack__record_parse reads the fields
 * through it, so the layout is read in one place.
 */
imgpack_status imgpack__record_parse_verified(const uint8_t *value, size_t size,
                                              imgpack__record_header *h);

/* The key of record `index`: big-endian, so key order is index order. */
void imgpack__record_key(uint64_t index, uint8_t key[IMGPACK__KEY_SIZE]);

#endif
