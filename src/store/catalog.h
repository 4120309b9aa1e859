/*
 * The SQLite catalog of a store being written (schema/catalog.sql). Only the
 * writer thread uses it. Writes happen in batches that the writer commits
 * just before the matching LMDB batch, so the catalog is never behind the
 * store (docs/FORMAT.md, "Crash consistency").
 */
#ifndef IMGPACK_SRC_CATALOG_H
#define IMGPACK_SRC_CATALOG_H

#include <sqlite3.h>
#include <stdint.h>

#include "error.h"
#include "sources.h"

typedef struct imgpack__catalog {
    sqlite3 *db;
    int64_t shard; /* the shard column's value; -1 for NULL (unsharded) */
    sqlite3_stmt *insert_image;
    sqlite3_stmt *insert_reject;
    sqlite3_stmt *add_class_images;
    sqlite3_stmt *set_dataset;
    char *path;
} imgpack__catalog;

/* A packed image's row. */
typedef struct imgpack__catalog_image {
    uint64_t idx;
    uint32_t class_id;
    const char *path;
    uint32_t src_width, src_height;
    uint64_t src_bytes, stored_bytes;
    const char *sha256;
} imgpack__catalog_image;

/* Opens the catalog file `path` of an existing store, read-only unless
   `writable` (SQLite's own journal recovery aside, read-only changes
   nothing); a missing file is IMGPACK_ERR_NOT_FOUND. *db is closed by the
   caller, also on failure. Used by catalog_read.c and verify. */
imgpack_status imgpack__catalog_open_read(sqlite3 **db, const char *path,
                                          int writable, imgpack__error *err);

/* Creates `path` (which must not exist) and its schema. Rows written get
   `shard` in their shard column (-1: NULL, an unsharded store). */
imgpack_status imgpack__catalog_create(imgpack__catalog *c, const char *path,
                                       int64_t shard, imgpack__error *err);

/* Opens the catalog of a store being resumed (`shard` as for create). */
imgpack_status imgpack__catalog_reopen(imgpack__catalog *c, const char *path,
                                       int64_t shard, imgpack__error *err);

/*
 * Brings a resumed catalog back to what LMDB committed: drops image rows
 * from `count` on and rejects from source position `next_position` on (the
 * batch a crash cut between the two commits), recounts the classes, and
 * counts the resume in dataset.resumes.
 */
imgpack_status imgpack__catalog_rewind(imgpack__catalog *c, uint64_t count,
                                       uint64_t next_position,
                                       imgpack__error *err);

/*
 * Readies the catalog of a complete store for an append (pack.h,
 * imgpack_pack_options_set_append): drops what an interrupted append left
 * (image rows from `count` on, rejects from `next_position` on, classes
 * from `old_classes` on), adds classes old_classes..num_classes-1 from
 * `names` and `descriptions`, and says in dataset.record_order that
 * appends keep class ids and record indices.
 */
imgpack_status
imgpack__catalog_begin_append(imgpack__catalog *c, uint64_t count,
                              uint64_t next_position, uint32_t old_classes,
                              uint32_t num_classes, char *const *names,
                              char *const *descriptions, imgpack__error *err);

/* Reads back what a rewound catalog holds: the label of each of the `count`
   records into `labels`, the number of rejects, and the records' bytes.
   IMGPACK_ERR_CORRUPT if a record has no row. */
imgpack_status imgpack__catalog_read_back(imgpack__catalog *c, uint64_t count,
                                          uint32_t *labels, uint64_t *rejected,
                                          uint64_t *bytes, imgpack__error *err);

/* Inserts class `class_id` with its name and description (may be NULL). */
imgpack_status imgpack__catalog_add_class(imgpack__catalog *c,
                                          uint32_t class_id, const char *name,
                                          const char *description,
                                          imgpack__error *err);

imgpack_status imgpack__catalog_begin(imgpack__catalog *c, imgpack__error *err);
imgpack_status imgpack__catalog_commit(imgpack__catalog *c,
                                       imgpack__error *err);
/* Rolls back the open transaction, if any. */
void imgpack__catalog_abort(imgpack__catalog *c);

imgpack_status imgpack__catalog_add_image(imgpack__catalog *c,
                                          const imgpack__catalog_image *img,
                                          imgpack__error *err);
imgpack_status imgpack__catalog_add_reject(imgpack__catalog *c,
                                           uint64_t position, const char *path,
                                           uint32_t class_id,
                                           const char *reason,
                                           imgpack__error *err);
/* Adds `n` to the class's num_images. */
imgpack_status imgpack__catalog_count_images(imgpack__catalog *c,
                                             uint32_t class_id, uint64_t n,
                                             imgpack__error *err);

/* Adds 1 to the integer dataset.key (a missing one counts as 0). */
imgpack_status imgpack__catalog_bump(imgpack__catalog *c, const char *key,
                                     imgpack__error *err);

/* Sets dataset.key to a text or an integer value. */
imgpack_status imgpack__catalog_set_text(imgpack__catalog *c, const char *key,
                                         const char *value,
                                         imgpack__error *err);
imgpack_status imgpack__catalog_set_int(imgpack__catalog *c, const char *key,
                                        int64_t value, imgpack__error *err);

/*
 * Ends the pack: switches the journal from WAL back to a single file, so
 * the catalog is one self-contained file that read-only media can serve.
 */
imgpack_status imgpack__catalog_finish(imgpack__catalog *c,
                                       imgpack__error *err);

void imgpack__catalog_close(imgpack__catalog *c);

/* Removes the catalog file `path` and SQLite's files beside it (WAL,
   shared memory, journal); a file already gone is no failure. */
imgpack_status imgpack__catalog_remove(const char *path, imgpack__error *err);

#endif
