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
#include "imgpack/verify.h"
#include "meta_sum.h"
#include "store.h"

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
/* 1 if `value` is exactly such a value, K < N <= IMGPACK_MAX_SHARDS,
   into *k and *n. */
int imgpack__shard_value_parse(const char *value, uint32_t *k, uint32_t *n);

/* The labels and payload_crcs tables: `n` values as little-endian u32s
   (4 * n bytes) and back. */
void imgpack__meta_u32_encode(uint8_t *out, const uint32_t *values, uint64_t n);
void imgpack__meta_u32_decode(uint32_t *out, const uint8_t *bytes, uint64_t n);

/* The longest settings line (writer.c) and source digest (64 hex
   digits) a header holds, NUL included. */
#define IMGPACK__SETTINGS_SIZE 128
#define IMGPACK__SOURCE_DIGEST_SIZE 65

/*
 * A store's header: the metadata a pack writes once, in its first
 * transaction (imgpack__store_header_write), and every reader reads
 * (imgpack__store_header_read). Progress (count, next_position, state,
 * the tables) is written per batch by writer.c.
 */
typedef struct imgpack__store_header {
    int32_t format; /* imgpack_format */
    uint32_t channels;
    uint32_t width, height; /* 0 when records differ in size */
    uint32_t resize, crop;  /* the packing options, 0 = off */
    uint32_t num_classes;
    char **class_names;        /* num_classes names */
    char **class_descriptions; /* num_classes, NULL where none (or unread) */
    char settings[IMGPACK__SETTINGS_SIZE]; /* "" when missing */
    char source_digest[IMGPACK__SOURCE_DIGEST_SIZE];
    char catalog_dataset_digest[IMGPACK_CATALOG_DIGEST_HEX];
    /* Written only: shard K of N (N 1: a whole store), and the source
       position its records begin at. */
    uint32_t shard_index, shard_count;
    uint64_t first_position;
} imgpack__store_header;

/* Writes `h` (and count 0, state "packing", the tool's version) in a
   transaction of its own. */
imgpack_status imgpack__store_header_write(imgpack__store *s,
                                           const imgpack__store_header *h,
                                           imgpack__error *err);

/* Writes the names (and descriptions, where not NULL) of classes
   [first, end) and the `n_more` entries `more` in a transaction of their
   own, leaving num_classes as it is: an append adds its new classes so,
   with its append_ keys, then publishes them with its last batch. */
imgpack_status imgpack__store_classes_write(imgpack__store *s,
                                            char *const *names,
                                            char *const *descriptions,
                                            uint32_t first, uint32_t end,
                                            const imgpack__meta_entry *more,
                                            size_t n_more, imgpack__error *err);

/* A decimal metadata number: key and value kept together, so that the
   entry can point at both until the commit. */
typedef struct imgpack__meta_decimal {
    char key[32];
    char value[24];
} imgpack__meta_decimal;

/* The entry of number `value` under `key`, its text kept in *m. */
imgpack__meta_entry imgpack__meta_number_entry(imgpack__meta_decimal *m,
                                               const char *key, uint64_t value);

/* The entry of the string `value` under `key` (no NUL stored). */
imgpack__meta_entry imgpack__meta_text_entry(const char *key,
                                             const char *value);

/* One store's metadata as a read transaction sees it, values checked
   against their checksums (meta_sum.h). `dir` names the store in
   messages. */
typedef struct imgpack__meta_view {
    const char *dir;
    MDB_txn *txn;
    MDB_dbi dbi;
    imgpack__map_bounds *bounds;
    int sums; /* the store has metadata checksums */
} imgpack__meta_view;

/* The checked value of `key`: 0, MDB_NOTFOUND, a meta_sum.h code or an
   LMDB code. */
int imgpack__meta_get(const imgpack__meta_view *m, const char *key,
                      MDB_val *value);

/* Why `key` could not be read (rc from imgpack__meta_get): damage
   (IMGPACK_ERR_CORRUPT, naming the key) or LMDB's error. */
imgpack_status imgpack__meta_fail(imgpack__error *err, int rc, const char *dir,
                                  const char *key);

/* 1 if `v` holds exactly `text`. */
int imgpack__meta_is(const MDB_val *v, const char *text);

/* A decimal number no larger than `max`: IMGPACK_ERR_NOT_A_STORE when the
   key is missing, IMGPACK_ERR_CORRUPT when it is not such a number. */
imgpack_status imgpack__meta_number(const imgpack__meta_view *m,
                                    const char *key, uint64_t max,
                                    uint64_t *out, imgpack__error *err);

/* The table under `key` (labels, payload_crcs): exactly `count` u32s, else
   IMGPACK_ERR_CORRUPT. */
imgpack_status imgpack__meta_table(const imgpack__meta_view *m, const char *key,
                                   uint64_t count, uint32_t *out,
                                   imgpack__error *err);

/*
 * Reads and checks the header: format version (its own code on a
 * mismatch), format, channels (1 or 3), sides up to
 * IMGPACK_MAX_RECORD_SIDE and the class names; with `all` also the class
 * descriptions, settings and digests ("" or NULL where missing), which
 * otherwise stay empty: a reader has no use for them, and reads them only
 * on request (imgpack_reader_meta). On failure `h` holds nothing to free.
 * Free with imgpack__store_header_free.
 */
imgpack_status imgpack__store_header_read(const imgpack__meta_view *m, int all,
                                          imgpack__store_header *h,
                                          imgpack__error *err);

/* Frees the class names and descriptions a read made; `h` stays valid,
   with no classes. */
void imgpack__store_header_free(imgpack__store_header *h);

#endif
