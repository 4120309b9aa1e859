/*
 * A store's header without a reader: what `--classes-from` and
 * imgpack_combine need (class table, settings, digests, count),
 * read in one read transaction of one environment, with no slots, labels
 * or record checks. It keeps those two off the public reader, which would
 * make the pack side depend on the whole read side.
 */
#ifndef IMGPACK_SRC_STORE_PEEK_H
#define IMGPACK_SRC_STORE_PEEK_H

#include <stdint.h>

#include "error.h"
#include "store_meta.h"

typedef struct imgpack__store_summary {
    imgpack__store_header header; /* everything: descriptions and digests */
    uint64_t count;               /* records */
} imgpack__store_summary;

/*
 * Reads the store in `dir` (its data.mdb), or for a sharded dataset's
 * directory its shard 0, the shard whose header every shard shares
 * (imgpack_reader_open checks that they do). Only a complete store is
 * read, as imgpack_reader_open without IMGPACK_OPEN_INCOMPLETE would.
 * Errors name the store: IMGPACK_ERR_INCOMPLETE, IMGPACK_ERR_NOT_A_STORE,
 * IMGPACK_ERR_VERSION_MISMATCH,
 * IMGPACK_ERR_CORRUPT, IMGPACK_ERR_STORE, IMGPACK_ERR_NOMEM. Free with
 * imgpack__store_header_free(&out->header).
 */
imgpack_status imgpack__store_peek(const char *dir, imgpack__store_summary *out,
                                   imgpack__error *err);

#endif
