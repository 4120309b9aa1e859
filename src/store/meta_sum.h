/*
 * Checksums of metadata values (meta_sum.c), the one home of their format:
 * the writer stores them (store.c), the reader checks them (reader_open.c,
 * reader.c), and `imgpack verify` reaches them through the reader.
 *
 * Every meta value under key K has a sibling key "crc/K" holding 8
 * lowercase hex digits: the CRC-32 (zlib's) of K, one NUL byte, then the
 * value, so a value moved under another key fails too. A store has them
 * when "crc/format_version" exists; stores written before them have none
 * of these keys and are read as before (docs/FORMAT.md, "Metadata
 * checksums").
 */
#ifndef IMGPACK_SRC_META_SUM_H
#define IMGPACK_SRC_META_SUM_H

#include <lmdb.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "imgpack/meta.h"

#define IMGPACK__META_SUM_PREFIX "crc/"
/* The key whose presence says a store checksums its metadata: written in
   the store's first metadata transaction, with format_version. */
#define IMGPACK__META_SUM_MARKER \
    IMGPACK__META_SUM_PREFIX IMGPACK_META_FORMAT_VERSION
/* Hex digits of a checksum value. */
#define IMGPACK__META_SUM_DIGITS 8
/* Longest meta key that can have a checksum: LMDB's key limit (511)
   less the prefix. */
#define IMGPACK__META_KEY_MAX 500

/* Not LMDB codes (those are -30800..-30780 or errno values): a value
   failed its checksum, or lies outside data.mdb. */
#define IMGPACK__META_SUM_MISMATCH (-29001)
#define IMGPACK__META_OUTSIDE (-29002)

/*
 * Where one environment's map and data file are, to tell whether a value
 * LMDB hands out lies within the file. A damaged page can make LMDB point
 * anywhere in its 1 TiB map, and reading past the file's end is SIGBUS.
 * Fields are atomics: reader threads refresh them (the file of a store
 * still being packed grows) while others read them.
 */
typedef struct imgpack__map_bounds {
    _Atomic uintptr_t base; /* the map's address */
    _Atomic uint64_t size;  /* data.mdb's size when last looked at */
} imgpack__map_bounds;

/* 1 if `size` bytes at `data` lie within env's data file. Looks at the map
   and the file again before saying 0, so a grown file or a remap is never
   taken for damage. */
int imgpack__map_contains(MDB_env *env, imgpack__map_bounds *b,
                          const void *data, size_t size);

/* The checksum of `value` under `key`, as stored (8 hex digits, no NUL). */
void imgpack__meta_sum_text(const char *key, const void *value, size_t size,
                            char out[IMGPACK__META_SUM_DIGITS]);

/* Puts "crc/key" for `value` into the write transaction. Returns an LMDB
   code, or EINVAL for a key longer than IMGPACK__META_KEY_MAX. */
int imgpack__meta_sum_put(MDB_txn *txn, MDB_dbi meta, const char *key,
                          const void *value, size_t size);

/* Sets *present to 1 if the store checksums its metadata, else 0;
   returns 0 or an LMDB code. A store without the marker but with any
   other "crc/" key lost the marker to damage: it has them. */
int imgpack__meta_sum_present(MDB_txn *txn, MDB_dbi meta, int *present);

/*
 * Meta `key` into *value, checked: within the data file (`b`), and with
 * `checked`, against its checksum, which must exist. Returns 0,
 * MDB_NOTFOUND, IMGPACK__META_SUM_MISMATCH (also for a missing or
 * malformed checksum), IMGPACK__META_OUTSIDE, or an LMDB code.
 */
int imgpack__meta_sum_get(MDB_txn *txn, MDB_dbi meta, imgpack__map_bounds *b,
                          int checked, const char *key, MDB_val *value);

/* Says what a code of imgpack__meta_sum_get means, for messages about
   codes that are not LMDB's. */
const char *imgpack__meta_sum_strerror(int rc);

#endif
