/*
 * libFuzzer target for record parsing: any bytes as an LMDB value, checked
 * the way the reader checks a record before handing it out.
 *
 * The reader (src/read/reader.c, fetch and imgpack__reader_pixels) parses the
 * header with imgpack__record_parse, with and without the payload CRC,
 * bounds the claimed size, and decodes jpeg and webp payloads with the
 * header's pixel count as the limit. This target repeats that sequence on
 * the fuzzed value, then reads every byte of what would be returned: the
 * payload view, or the decoded pixels.
 *
 * Built as a libFuzzer binary with -DIMGPACK_FUZZ=ON (clang), and replayed
 * over tests/fuzz/corpus/record by tests/fuzz/replay.c in every build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "decode.h"
#include "record.h"

/* The reader's bound on a record side (src/read/reader.c, fetch). */
#define FUZZ_MAX_SIDE 65536u

/* Decoding cap for this target: the reader would allow the header's whole
   width x height, but a fuzzed header would then let one input allocate
   gigabytes; a mismatch below this is all there is to find. */
#define FUZZ_MAX_PIXELS (4096u * 4096u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static imgpack__decoder *decoder;
static volatile uint32_t sink;

static uint32_t sum_bytes(const uint8_t *p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += p[i];
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    imgpack__record_header h, checked;
    imgpack__pixels px;
    char reason[IMGPACK__REASON_SIZE];

    if (!decoder && imgpack__decoder_create(&decoder) != IMGPACK_OK)
        abort();
    if (imgpack__record_parse(data, size, 0, &h) != IMGPACK_OK)
        goto out;
    /* The payload CRC check must agree with the header-only parse. */
    if (imgpack__record_parse(data, size, 1, &checked) == IMGPACK_OK &&
        (checked.payload_size != h.payload_size ||
         checked.payload_crc !=
             imgpack__crc32(data + IMGPACK__RECORD_HEADER_SIZE,
                            size - IMGPACK__RECORD_HEADER_SIZE)))
        abort();
    if (h.width == 0 || h.height == 0 || h.width > FUZZ_MAX_SIDE ||
        h.height > FUZZ_MAX_SIDE)
        goto out;
    if (h.payload_size != size - IMGPACK__RECORD_HEADER_SIZE)
        abort();
    const uint8_t *payload = data + IMGPACK__RECORD_HEADER_SIZE;
    if (h.format == IMGPACK_FORMAT_RAW) {
        sink = sum_bytes(payload, h.payload_size);
        goto out;
    }
    uint64_t limit = (uint64_t)h.width * h.height;
    if (limit > FUZZ_MAX_PIXELS)
        goto out;
    if (imgpack__decode(decoder, payload, h.payload_size, limit, &px, reason) !=
        IMGPACK_OK)
        goto out;
    if ((uint64_t)px.width * px.height > limit)
        abort();
    for (uint32_t y = 0; y < px.height; y++)
        sink = sum_bytes(px.data + (size_t)y * px.stride,
                         (size_t)px.width * px.channels);
out:
    return 0;
}
