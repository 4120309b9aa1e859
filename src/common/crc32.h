/* CRC-32 with zlib's polynomial (crc32.c). Safe from any thread. */
#ifndef IMGPACK_SRC_CRC32_H
#define IMGPACK_SRC_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32 of `size` bytes: zlib's crc32(0, data, size). */
uint32_t imgpack__crc32(const uint8_t *data, size_t size);

#endif
