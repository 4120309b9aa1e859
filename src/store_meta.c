/*
 * The encodings of store_meta.h: shard names and the u32 tables.
 */
#include "store_meta.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "imgpack/pack.h"

void imgpack__shard_name(char out[IMGPACK__SHARD_NAME_SIZE], uint32_t k,
                         uint32_t n) {
    snprintf(out, IMGPACK__SHARD_NAME_SIZE, "shard-%" PRIu32 "-of-%" PRIu32,
             k, n);
}

void imgpack__shard_value(char out[IMGPACK__SHARD_NAME_SIZE], uint32_t k,
                          uint32_t n) {
    snprintf(out, IMGPACK__SHARD_NAME_SIZE, "%" PRIu32 "/%" PRIu32, k, n);
}

/* Parses decimal digits at *p without leading zeros into a value up to
   `max`, advancing *p. */
static int parse_count(const char **p, uint32_t max, uint32_t *out) {
    const char *s = *p;
    uint64_t n = 0;
    while (*s >= '0' && *s <= '9' && n <= max)
        n = n * 10 + (uint64_t)(*s++ - '0');
    if (s == *p || n > max || (**p == '0' && s - *p > 1))
        return 0;
    *p = s;
    *out = (uint32_t)n;
    return 1;
}

int imgpack__shard_name_parse(const char *name, uint32_t *k, uint32_t *n) {
    const char *p = name;
    if (strncmp(p, "shard-", 6) != 0)
        return 0;
    p += 6;
    if (!parse_count(&p, IMGPACK_MAX_SHARDS, k) || strncmp(p, "-of-", 4) != 0)
        return 0;
    p += 4;
    return parse_count(&p, IMGPACK_MAX_SHARDS, n) && *p == '\0' && *k < *n;
}

void imgpack__meta_u32_encode(uint8_t *out, const uint32_t *values,
                              uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            out[4 * i + b] = (uint8_t)(values[i] >> (8 * b));
}

void imgpack__meta_u32_decode(uint32_t *out, const uint8_t *bytes,
                              uint64_t n) {
    for (uint64_t i = 0; i < n; i++, bytes += 4)
        out[i] = (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 |
                 (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}
