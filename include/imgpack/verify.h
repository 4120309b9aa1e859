/*
 * What `imgpack verify` checks beyond what reading a store checks: the
 * metadata as a whole, and the catalog rows against the digest the writer
 * kept of them in LMDB. The writer and verify share these functions, so
 * the formats they agree on live in the library alone (docs/FORMAT.md,
 * "Metadata checksums" and "Catalog digest").
 */
#ifndef IMGPACK_VERIFY_H
#define IMGPACK_VERIFY_H

#include "imgpack/reader.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of a catalog digest: 64 lowercase hex digits and a NUL. */
#define IMGPACK_CATALOG_DIGEST_HEX 65

/*
 * Advances the catalog digest `digest` over one images row: record
 * `index`, its `class_id`, its `path` (`path_size` bytes, any bytes) and
 * its source's `sha256` (NUL-terminated; NULL counts as ""). Before the
 * first row `digest` is "" (or 64 zeros: the same). The meta key
 * `catalog_digest` holds the digest over records 0..count-1 in index
 * order. Memory only; any thread.
 */
IMGPACK_API void imgpack_catalog_digest_row(
    char digest[IMGPACK_CATALOG_DIGEST_HEX], uint64_t index, uint32_t class_id,
    const char *path, size_t path_size, const char *sha256);

/*
 * Advances the digest `digest` (as above; "" at first) over one dataset
 * (key, value) pair of the catalog, both NUL-terminated text (NULL counts
 * as ""). The meta key `catalog_dataset_digest` holds the digest over the
 * catalog's dataset keys that the store has no copy of, in this order:
 * source, command, created, skipped. Memory only; any thread.
 */
IMGPACK_API void imgpack_catalog_digest_text(
    char digest[IMGPACK_CATALOG_DIGEST_HEX], const char *key,
    const char *value);

/*
 * Checks every metadata value of every shard against its checksum, and
 * that every checksum has its value (a damaged key name shows as both).
 * Calls `report(ctx, message)` once per problem, the message naming the
 * shard's directory and the key; *problems gets their number. A store
 * packed before metadata had checksums has nothing to check: *problems is
 * 0 and *checked 0 (else 1). Returns IMGPACK_OK whatever was found, or
 * IMGPACK_ERR_STORE, IMGPACK_ERR_NOMEM when the walk itself failed.
 * Threads as imgpack_reader_get; `report` runs on the calling thread,
 * after the walk, so it may call the reader; `message` is valid during
 * the call only.
 */
IMGPACK_API imgpack_status imgpack_reader_check_meta(
    imgpack_reader *r, void (*report)(void *ctx, const char *message),
    void *ctx, uint64_t *problems, int32_t *checked);

#ifdef __cplusplus
}
#endif

#endif /* IMGPACK_VERIFY_H */
