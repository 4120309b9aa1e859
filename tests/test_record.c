/* Record headers: round trip, and every kind of damage is detected; the
   checksum is zlib's CRC-32 at every length and alignment. */
#include <stdlib.h>
#include <zlib.h>

#include "check.h"
#include "record.h"

#define W 4
#define H 3

static void make_record(uint8_t *value, uint32_t label) {
    for (int i = 0; i < W * H * 3; i++)
        value[IMGPACK__RECORD_HEADER_SIZE + i] = (uint8_t)(i * 7);
    imgpack__record_header h = {
        .format = IMGPACK_FORMAT_RAW,
        .channels = 3,
        .width = W,
        .height = H,
        .label = label,
        .payload_size = W * H * 3,
        .payload_crc =
            imgpack__crc32(value + IMGPACK__RECORD_HEADER_SIZE, W * H * 3)};
    imgpack__record_header_write(value, &h);
}

/* imgpack__crc32 is libdeflate's, which folds with carry-less multiplies
   where the CPU has them: it must give zlib's value, the one docs/FORMAT.md
   names, for any length (short ones, where the folding starts, tails of 1
   to 15 bytes) from any address. */
static void test_crc_matches_zlib(void) {
    enum { LARGE = (1 << 20) + 5 };
    uint8_t *data = malloc(LARGE + 16);
    uint32_t seed = 12345;
    CHECK(data != NULL);
    for (size_t i = 0; i < LARGE + 16; i++) {
        seed = seed * 1103515245u + 12345u;
        data[i] = (uint8_t)(seed >> 16);
    }
    for (size_t size = 0; size <= 1100; size++)
        for (size_t offset = 0; offset < 4; offset++)
            CHECK_EQ(imgpack__crc32(data + offset, size),
                     (uint32_t)crc32(0, data + offset, (uInt)size));
    CHECK_EQ(imgpack__crc32(data + 3, LARGE),
             (uint32_t)crc32(0, data + 3, LARGE));
    free(data);
}

int main(void) {
    test_crc_matches_zlib();
    enum { SIZE = IMGPACK__RECORD_HEADER_SIZE + W * H * 3 };
    uint8_t value[SIZE];
    imgpack__record_header h;

    make_record(value, 77);
    CHECK_OK(imgpack__record_parse(value, SIZE, 1, &h));
    CHECK_EQ(h.width, W);
    CHECK_EQ(h.height, H);
    CHECK_EQ(h.label, 77);
    CHECK_EQ(h.channels, 3);
    CHECK(memcmp(value, "IPKR", 4) == 0);
    CHECK_EQ(value[16], 77); /* little-endian label at offset 16 */

    /* A flipped bit anywhere in the header, or the payload, is caught. */
    for (int bit = 0; bit < SIZE * 8; bit++) {
        value[bit / 8] ^= (uint8_t)(1 << (bit % 8));
        CHECK(imgpack__record_parse(value, SIZE, 1, &h) != IMGPACK_OK);
        value[bit / 8] ^= (uint8_t)(1 << (bit % 8));
    }
    /* Without the payload check, payload damage goes unnoticed by design. */
    value[SIZE - 1] ^= 1;
    CHECK_OK(imgpack__record_parse(value, SIZE, 0, &h));
    value[SIZE - 1] ^= 1;

    /* Truncated values and a newer version. */
    CHECK_EQ(imgpack__record_parse(value, SIZE - 1, 0, &h),
             IMGPACK_ERR_CORRUPT);
    CHECK_EQ(imgpack__record_parse(value, 10, 0, &h), IMGPACK_ERR_CORRUPT);
    value[4] = 2;
    uint32_t crc = imgpack__crc32(value, 28);
    for (int i = 0; i < 4; i++)
        value[28 + i] = (uint8_t)(crc >> (8 * i));
    CHECK_EQ(imgpack__record_parse(value, SIZE, 0, &h),
             IMGPACK_ERR_VERSION_MISMATCH);

    uint8_t key[IMGPACK__KEY_SIZE];
    imgpack__record_key(0x0102030405060708ull, key);
    CHECK(memcmp(key, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    printf("record: ok\n");
    return 0;
}
