/*
 * The LMDB side of a store being written: one environment in OUT_DIR with
 * two named databases, "records" (8-byte big-endian index -> record) and
 * "meta" (ASCII key -> value; docs/FORMAT.md lists the keys).
 *
 * Only the writer thread uses a store handle; every write is one batch in
 * one transaction, so a crash leaves whole batches or nothing.
 */
#ifndef IMGPACK_SRC_STORE_H
#define IMGPACK_SRC_STORE_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define IMGPACK__STORE_RECORDS_DB "records"
#define IMGPACK__STORE_META_DB "meta"
#define IMGPACK__STORE_FORMAT_VERSION 1

/* The first map size. It is address space, not disk: data.mdb grows with
   what is written, and the map doubles whenever a batch would not fit. */
#define IMGPACK__STORE_INITIAL_MAP ((size_t)1 << 30)

typedef struct imgpack__store {
    MDB_env *env;
    MDB_dbi records;
    MDB_dbi meta;
    size_t map_size;
    char *dir;
} imgpack__store;

/* A value to append, or a metadata entry to set, in one batch. */
typedef struct imgpack__store_value {
    const void *data;
    size_t size;
} imgpack__store_value;

typedef struct imgpack__meta_entry {
    const char *key;
    const void *value;
    size_t size;
} imgpack__meta_entry;

/*
 * Creates a new environment in the existing directory `dir`. Fails with
 * IMGPACK_ERR_EXISTS if `dir` already holds data.mdb.
 */
imgpack_status imgpack__store_create(imgpack__store *s, const char *dir,
                                     imgpack__error *err);

/* Opens the existing store in `dir` to append to it (resuming a pack).
   IMGPACK_ERR_NOT_FOUND without data.mdb, IMGPACK_ERR_NOT_A_STORE when it
   lacks imgpack's databases. */
imgpack_status imgpack__store_reopen(imgpack__store *s, const char *dir,
                                     imgpack__error *err);

/* Copies metadata `key` into `value` as a NUL-terminated string.
   IMGPACK_ERR_NOT_A_STORE if it is missing or longer than capacity - 1. */
imgpack_status imgpack__store_get_meta(imgpack__store *s, const char *key,
                                       char *value, size_t capacity,
                                       imgpack__error *err);

/*
 * Appends `n` records with indices first_index, first_index+1, ... and sets
 * the `n_meta` metadata entries, in one transaction. Grows the map and
 * retries when it is full. On failure nothing of the batch is stored.
 */
imgpack_status imgpack__store_append(imgpack__store *s, uint64_t first_index,
                                     const imgpack__store_value *records,
                                     size_t n, const imgpack__meta_entry *meta,
                                     size_t n_meta, imgpack__error *err);

/* Flushes everything committed, the last meta page included, to disk. */
imgpack_status imgpack__store_sync(imgpack__store *s, imgpack__error *err);

/* Closes the environment; accepts a store that was never created. */
void imgpack__store_close(imgpack__store *s);

/* Maps an LMDB return code to a status, keeping mdb_strerror in `err`. */
imgpack_status imgpack__store_fail(imgpack__error *err, int rc,
                                   const char *dir, const char *what);

#endif
