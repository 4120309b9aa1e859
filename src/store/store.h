/*
 * The LMDB side of a store being written: one environment in OUT_DIR with
 * two named databases, "records" (8-byte big-endian index -> record) and
 * "meta" (ASCII key -> value; docs/FORMAT.md lists the keys). Every
 * metadata value is stored with its checksum (meta_sum.h).
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
    size_t page_size;
    char *dir;
    MDB_txn *txn;     /* the batch begun, or NULL */
    size_t room;      /* what the batch may still put, as store_room counts */
    size_t txn_bytes; /* the bytes of the values it has put */
} imgpack__store;

/* The longest key a store holds: record keys are 8 bytes, metadata keys
   short names. A key is part of what store_room bounds. */
#define IMGPACK__STORE_MAX_KEY 64

/* A metadata entry to set. */
typedef struct imgpack__meta_entry {
    const char *key;
    const void *value;
    size_t size;
} imgpack__meta_entry;

/* IMGPACK_ERR_EXISTS if `dir` already holds a store (data.mdb). */
imgpack_status imgpack__store_check_new(const char *dir, imgpack__error *err);

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

/*
 * Whether `dir` holds what a pack killed while starting leaves: an empty
 * data.mdb, or an environment whose only databases are an empty records
 * and an empty meta (LMDB's first commits are the databases, then the
 * header). Nothing else counts: another environment may be someone's data.
 */
int imgpack__store_is_unstarted(const char *dir);

/* Removes `dir`'s data.mdb and lock.mdb (data.mdb last); a file already
   gone is no failure. */
imgpack_status imgpack__store_remove(const char *dir, imgpack__error *err);

/* Copies metadata `key` into `value` as a NUL-terminated string.
   IMGPACK_ERR_NOT_A_STORE if it is missing or longer than capacity - 1. */
imgpack_status imgpack__store_get_meta(imgpack__store *s, const char *key,
                                       char *value, size_t capacity,
                                       imgpack__error *err);

/*
 * A batch is one write transaction: imgpack__store_begin, imgpack__store_put
 * for each record in index order, then imgpack__store_commit with the
 * batch's metadata (or imgpack__store_abort). LMDB cannot grow its map
 * inside a transaction, and a record put is not kept for a retry, so begin
 * grows the map first, by `room`: the sum of imgpack__store_room over the
 * records and of imgpack__store_meta_room over the metadata the batch may
 * put. On failure nothing of the batch is stored and none is open.
 */
imgpack_status imgpack__store_begin(imgpack__store *s, size_t room,
                                    imgpack__error *err);

/* The most room a value of `size` bytes can take in a batch: its share of
   leaf and branch pages, or its overflow pages and node. */
size_t imgpack__store_room(const imgpack__store *s, size_t size);

/* The same for a metadata value, which imgpack__store_commit stores with
   its checksum (meta_sum.h). */
size_t imgpack__store_meta_room(const imgpack__store *s, size_t size);

/* Whether `room` more fits what the open batch has left. */
int imgpack__store_fits(const imgpack__store *s, size_t room);

/* Puts record `index` (one past the last one stored) into the open batch;
   LMDB copies it. Beyond the batch's room it fails and aborts the batch. */
imgpack_status imgpack__store_put(imgpack__store *s, uint64_t index,
                                  const void *data, size_t size,
                                  imgpack__error *err);

/* Removes the records from index `first` on (`n` of them at most: it
   sizes the transaction) in a transaction of its own: what a stopped
   append wrote past the store's count. */
imgpack_status imgpack__store_drop_records(imgpack__store *s, uint64_t first,
                                           uint64_t n, imgpack__error *err);

/* Sets the `n_meta` metadata entries and commits the open batch. */
imgpack_status imgpack__store_commit(imgpack__store *s,
                                     const imgpack__meta_entry *meta,
                                     size_t n_meta, imgpack__error *err);

/* Drops the open batch, if any. */
void imgpack__store_abort(imgpack__store *s);

/*
 * The payload CRC of records 0..count-1 into `out`, read back from their
 * headers in a read transaction (no batch may be open): what a resumed
 * pack needs for the `payload_crcs` metadata, which ties each index to its
 * content. One header read per record. IMGPACK_ERR_CORRUPT if a record is
 * missing or its header is bad.
 */
imgpack_status imgpack__store_payload_crcs(imgpack__store *s, uint64_t count,
                                           uint32_t *out, imgpack__error *err);

/*
 * Gives a store written before metadata checksums (no "crc/format_version")
 * a checksum for every metadata value, in a transaction of its own, so
 * that resuming it with this version leaves a store with all of them or
 * none. Does nothing to a store that has them.
 */
imgpack_status imgpack__store_add_checksums(imgpack__store *s,
                                            imgpack__error *err);

/* Sets metadata entries in a transaction of their own. */
imgpack_status imgpack__store_set_meta(imgpack__store *s,
                                       const imgpack__meta_entry *meta,
                                       size_t n_meta, imgpack__error *err);

/* Flushes everything committed, the last meta page included, to disk. */
imgpack_status imgpack__store_sync(imgpack__store *s, imgpack__error *err);

/* Drops an open batch and closes the environment; accepts a store that was
   never created. */
void imgpack__store_close(imgpack__store *s);

/* Maps an LMDB return code to a status, keeping mdb_strerror in `err`. */
imgpack_status imgpack__store_fail(imgpack__error *err, int rc, const char *dir,
                                   const char *what);

#endif
