/*
 * The store's format in one place, beside record.h (a record's bytes) and
 * <imgpack/meta.h> (the metadata key names): how the metadata values are
 * encoded (decimal numbers, the u32 tables, the shard's "K/N"), the
 * shard-K-of-N directory name, the limits a reader checks a store against,
 * and the store's header as one struct, written by the writer and read by
 * the reader and by imgpack__store_peek (store_peek.h) alike.
 */
#ifndef IMGPACK_SRC_STORE_META_H
#define IMGPACK_SRC_STORE_META_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "imgpack/meta.h"
#include "meta_sum.h"

/* "shard-4294967295-of-4294967295" and its NUL fit. */
#define IMGPACK__SHARD_NAME_SIZE 32

/* The name of shard k of n's directory below the dataset's:
   "shard-K-of-N", decimal without padding. */
void imgpack__shard_name(char out[IMGPACK__SHARD_NAME_SIZE], uint32_t k,
                         uint32_t n);

/* 1 if `name` is exactly a shard directory's name, shard-K-of-N with
   K < N <= IMGPACK_MAX_SHARDS, written as imgpack__shard_name writes it
   (no padding, no sign, nothing after); else 0. The one parser of it. */
int imgpack__shard_name_parse(const char *name, uint32_t *k, uint32_t *n);

/* Meta IMGPACK_META_SHARD of shard k of n: "K/N". */
void imgpack__shard_value(char out[IMGPACK__SHARD_NAME_SIZE], uint32_t k,
                          uint32_t n);

/* The labels and payload_crcs tables: `n` values as little-endian u32s
   (4 * n bytes) and back. */
void imgpack__meta_u32_encode(uint8_t *out, const uint32_t *values,
                              uint64_t n);
void imgpack__meta_u32_decode(uint32_t *out, const uint8_t *bytes,
                              uint64_t n);

#endif
