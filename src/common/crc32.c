/*
 * CRC-32 with zlib's polynomial, the checksum of every record's header and
 * payload (docs/FORMAT.md), computed by libdeflate. Each record is checked
 * once when packed and on every verified read, so its speed matters:
 * libdeflate folds with carry-less multiplies where the CPU has them (x86
 * PCLMULQDQ, ARM PMULL), at the speed of the folding code imgpack carried
 * before (about 14 GB/s on a 150 KB record, bench/bench_crc32.c and
 * docs/BENCHMARKS.md "CRC-32"), where zlib 1.2.13 (Debian 12) runs at 6.
 * It takes a size_t length, so no input needs cutting into pieces.
 */
#include "crc32.h"

#include <libdeflate.h>

uint32_t imgpack__crc32(const uint8_t *data, size_t size) {
    return libdeflate_crc32(0, data, size);
}
