/*
 * The writer: takes results in source order and appends them to the store
 * and the catalog in batches. A record goes into the batch's LMDB
 * transaction as it arrives (and its buffer is freed); the catalog rows
 * wait for the commit. Per batch the catalog commits first, then LMDB: so
 * the LMDB store, authoritative for what was packed, is never ahead of the
 * catalog (docs/FORMAT.md, "Crash consistency").
 *
 * Only the thread that runs the pack uses a writer.
 */
#ifndef IMGPACK_SRC_WRITER_H
#define IMGPACK_SRC_WRITER_H

#include <stdint.h>

#include "catalog.h"
#include "sources.h"
#include "store.h"
#include "transform.h"

/*
 * A batch ends at IMGPACK__BATCH_RESULTS_PER_JOB results per worker, within
 * [IMGPACK__BATCH_MIN_RESULTS, IMGPACK__BATCH_MAX_RESULTS], or at
 * IMGPACK__BATCH_BYTES, whichever comes first. Growing with the workers
 * keeps the commits (two fsyncs each) at about the same rate however many
 * cores decode; staying small on small machines keeps LMDB's pages for one
 * batch a few MiB that are soon reused: fresh memory costs a page fault per
 * 4 KiB, and on a 2-core VM 128-record batches made the writer several
 * times dearer per record than 16-record ones (docs/BENCHMARKS.md).
 */
#define IMGPACK__BATCH_RESULTS_PER_JOB 8
#define IMGPACK__BATCH_MIN_RESULTS 16
#define IMGPACK__BATCH_MAX_RESULTS 128
#define IMGPACK__BATCH_BYTES ((size_t)32 << 20)

/* What the writer records about the pack in the store's metadata, and the
   number of workers feeding it, which sizes its batches. */
typedef struct imgpack__writer_info {
    const imgpack__transform_settings *settings;
    const char *command; /* may be NULL */
    /* The slice of the source this store holds: all of it (shard 0 of 1),
       or shard `shard_index` of `shard_count`, items [begin, end). */
    uint32_t shard_index, shard_count;
    uint64_t begin, end;
    uint32_t jobs;
} imgpack__writer_info;

typedef struct imgpack__writer {
    imgpack__store store;
    imgpack__catalog catalog;
    const imgpack__source *source;
    imgpack__result batch[IMGPACK__BATCH_MAX_RESULTS];
    uint64_t batch_positions[IMGPACK__BATCH_MAX_RESULTS];
    uint32_t batch_limit; /* results per batch, set for the worker count */
    uint32_t batch_count;
    size_t batch_bytes;
    uint64_t packed;   /* records committed or in the batch */
    uint64_t rejected; /* likewise */
    uint64_t bytes;
    uint64_t committed_positions; /* source items whose batch committed */
    uint32_t *labels; /* label of each record, for the "labels" meta entry */
    uint32_t *crcs;   /* payload CRC of each, for "payload_crcs" */
    uint64_t labels_capacity; /* of both */
    /* The catalog digest (imgpack/verify.h) over the committed records;
       "" before the first. A resumed store packed before it existed has
       none, and gets none (catalog_digest_known 0). */
    char catalog_digest[65];
    int catalog_digest_known;
} imgpack__writer;

/* Creates the store and catalog in `out_dir` and records the classes and
   how the pack is made. */
imgpack_status imgpack__writer_open(imgpack__writer *w, const char *out_dir,
                                    const imgpack__source *source,
                                    const imgpack__writer_info *info,
                                    imgpack__error *err);

/*
 * Reopens the store and catalog of an interrupted pack in `out_dir` to go
 * on with it: checks that the options and the source listing are the ones
 * it began with, rewinds the catalog to what LMDB committed, and sets
 * *next_position to the first source item still to pack.
 */
imgpack_status imgpack__writer_resume(imgpack__writer *w, const char *out_dir,
                                      const imgpack__source *source,
                                      const imgpack__writer_info *info,
                                      uint64_t *next_position,
                                      imgpack__error *err);

/*
 * Removes the store and catalog in `out_dir` when their pack was killed
 * while starting (imgpack__store_is_unstarted: nothing was committed), so
 * that a new pack can begin there; IMGPACK_ERR_NOT_A_STORE, naming the
 * directory, when the LMDB environment there holds anything else.
 */
imgpack_status imgpack__writer_discard_unstarted(const char *out_dir,
                                                imgpack__error *err);

/* Adds the result for source item `position` (positions arrive in order);
   the writer owns what *r owns from here on, even on failure. Commits when
   the batch is full. */
imgpack_status imgpack__writer_add(imgpack__writer *w, uint64_t position,
                                   imgpack__result *r, imgpack__error *err);

/* The counts of what LMDB holds, without the batch in progress: after a
   failure, what the pack really got done. */
void imgpack__writer_committed(const imgpack__writer *w, uint64_t *packed,
                               uint64_t *rejected, uint64_t *bytes);

/* Commits the current batch, if any. */
imgpack_status imgpack__writer_flush(imgpack__writer *w, imgpack__error *err);

/* Commits the last batch and marks the store complete. */
imgpack_status imgpack__writer_finish(imgpack__writer *w,
                                      imgpack__error *err);

/* Drops whatever is batched and not committed, and closes the store and
   catalog. */
void imgpack__writer_close(imgpack__writer *w);

#endif
