/*
 * The writer: takes results in source order and appends them to the store
 * and the catalog in batches. A batch is one LMDB and one SQLite
 * transaction, both begun with the batch's first result: a record goes
 * to the store's thread as it arrives (store_thread.h), its catalog row
 * into SQLite. Per batch the catalog commits first, then LMDB: so the LMDB
 * store, authoritative for what was packed, is never ahead of the catalog
 * (docs/FORMAT.md, "Crash consistency"). The LMDB commit runs on the
 * store's thread while the writer goes on with the next batch, whose
 * catalog commit waits for it: the catalog is at most one batch ahead.
 *
 * Only the thread that runs the pack uses a writer. After a failure, only
 * imgpack__writer_close may follow.
 */
#ifndef IMGPACK_SRC_WRITER_H
#define IMGPACK_SRC_WRITER_H

#include <stdint.h>
#include <time.h>

#include "catalog.h"
#include "sources.h"
#include "store.h"
#include "store_thread.h"
#include "transform.h"

/*
 * A batch commits once it holds IMGPACK__BATCH_BYTES of records or has been
 * open IMGPACK__BATCH_SECONDS, whichever comes first. Each commit costs two
 * fsyncs and a few small writes, whatever the batch holds: batches counted
 * in records (8 per worker, 16 to 128) made 784-byte digits fsync-bound,
 * 7,700 fsyncs for Fashion-MNIST's 47 MB, where an fsync costs milliseconds
 * on a network file system. Sized in bytes, every fsync carries 32 MiB or
 * a second's work.
 *
 * 32 MiB bounds the writer's memory (LMDB holds a batch's pages until the
 * commit, and the next batch waits beside it: store_thread.h) and how long
 * one commit's fsync takes (32 MiB at 1 GB/s is 32 ms); it is 223 records
 * of 224x224 RGB, 41,000 digits. One second
 * bounds what a crash can undo and how stale a reader beside the pack or a
 * resume finds the store, while keeping commits of slow or tiny records
 * to one a second. Batch boundaries decide nothing about the content: a
 * resumed pack equals an uninterrupted one wherever they fell.
 */
#define IMGPACK__BATCH_BYTES ((size_t)32 << 20)
#define IMGPACK__BATCH_SECONDS 1.0

/* What the writer records about the pack in the store's metadata. */
typedef struct imgpack__writer_info {
    const imgpack__transform_settings *settings;
    const char *command; /* may be NULL */
    /* The slice of the source this store holds: all of it (shard 0 of 1),
       or shard `shard_index` of `shard_count`, items [begin, end). */
    uint32_t shard_index, shard_count;
    uint64_t begin, end;
    /* The size every record has, when they share one; else 0 by 0. */
    uint32_t width, height;
} imgpack__writer_info;

/* What a pack holds: records, rejects, and the records' bytes. */
typedef struct imgpack__writer_counts {
    uint64_t packed, rejected, bytes;
} imgpack__writer_counts;

typedef struct imgpack__writer {
    imgpack__store store;
    imgpack__store_thread store_thread; /* runs the store's batches */
    imgpack__catalog catalog;
    const imgpack__source *source;
    int batch_open; /* both transactions begun */
    size_t room;    /* what the batch may still put (imgpack__store_room) */
    struct timespec batch_began;
    size_t batch_bytes; /* of the records in the batch */
    uint64_t batch_end; /* one past the batch's last source item */
    /* The run of equal classes not yet counted in the catalog: sources in
       folder order make one count update per class and batch. */
    uint32_t run_class;
    uint64_t run_length;
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
    char batch_digest[65]; /* the same with the open batch's rows */
    int catalog_digest_known;
    /* An append (imgpack__writer_append): its batches commit their
       progress to the append_ keys and only the last one publishes the
       records, the tables and the `num_classes` classes. Item i of the
       appended listing is source position position_base + i (0 and the
       item's own index in a pack). */
    int appending;
    uint64_t position_base;
    uint32_t num_classes;
    /* The counts as of the last batch handed to the store's thread, and
       as of the last it is known to have committed: after a failure, the
       latter is what the pack got done (imgpack__writer_committed). */
    imgpack__writer_counts handed, durable;
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
 * Reopens the complete store in `out_dir` to append `source`'s items
 * (listed by imgpack__append_listing: the store's classes first) as
 * records after its own: checks that the options are the ones it was
 * packed with, drops what an interrupted append left in the catalog, and
 * writes the new classes' names, which its last batch publishes.
 */
imgpack_status imgpack__writer_append(imgpack__writer *w, const char *out_dir,
                                      const imgpack__source *source,
                                      const imgpack__writer_info *info,
                                      imgpack__error *err);

/*
 * Removes the store and catalog in `out_dir` when their pack was killed
 * while starting (imgpack__store_is_unstarted: nothing was committed), so
 * that a new pack can begin there; IMGPACK_ERR_NOT_A_STORE, naming the
 * directory, when the LMDB environment there holds anything else.
 */
imgpack_status imgpack__writer_discard_unstarted(const char *out_dir,
                                                 imgpack__error *err);

/* Makes room for at least `count` labels and payload CRCs. */
imgpack_status imgpack__writer_reserve_labels(imgpack__writer *w,
                                              uint64_t count,
                                              imgpack__error *err);

/* Adds the result for source item `position` (positions arrive in order);
   the writer owns what *r owns from here on, even on failure, and clears
   it. Commits when the batch is full or old enough. */
imgpack_status imgpack__writer_add(imgpack__writer *w, uint64_t position,
                                   imgpack__result *r, imgpack__error *err);

/* The counts of what LMDB holds, without the batch in progress: after a
   failure, what the pack really got done. */
void imgpack__writer_committed(const imgpack__writer *w, uint64_t *packed,
                               uint64_t *rejected, uint64_t *bytes);

/* Commits the current batch, if any, and waits until it is on disk. */
imgpack_status imgpack__writer_flush(imgpack__writer *w, imgpack__error *err);

/* Commits the last batch and marks the store complete. */
imgpack_status imgpack__writer_finish(imgpack__writer *w, imgpack__error *err);

/* Drops whatever is batched and not committed, and closes the store and
   catalog. */
void imgpack__writer_close(imgpack__writer *w);

#endif
