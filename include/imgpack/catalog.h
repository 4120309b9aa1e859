/*
 * Reading a store's catalog (catalog.db, schema/catalog.sql) without
 * speaking SQL: its classes, its rejects, its dataset keys, and the
 * per-channel statistics `imgpack stats` keeps there. The catalog is the
 * packer's record of what went in; a reader does not need it to train.
 *
 * Usage:
 *
 *     imgpack_catalog *c;
 *     const imgpack_catalog_class *classes;
 *     uint64_t n;
 *     if (imgpack_catalog_open(&c, "train.imgpack", 0) ||
 *         imgpack_catalog_classes(c, &classes, &n))
 *         fprintf(stderr, "%s\n", imgpack_catalog_errmsg(c));
 *     imgpack_catalog_close(c);
 *
 * Memory. Rows and strings these functions return belong to the handle:
 * they stay valid until the next call of the same function on the handle,
 * or imgpack_catalog_close, whichever comes first. The caller frees
 * nothing.
 *
 * Threads. A handle is used by one thread at a time (it holds one SQLite
 * connection); open one per thread to read in parallel.
 *
 * Errors. Functions return an imgpack_status (IMGPACK_ERR_CATALOG for
 * what SQLite refused, IMGPACK_ERR_NOMEM); imgpack_catalog_errmsg() names
 * the catalog file and SQLite's reason.
 */
#ifndef IMGPACK_CATALOG_H
#define IMGPACK_CATALOG_H

#include "imgpack/imgpack.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct imgpack_catalog imgpack_catalog;

/* imgpack_catalog_open flags. */
enum {
    /* Open read-write, as imgpack_catalog_stats_store needs; without it
       the file is opened read-only and nothing, not even a journal's
       recovery, changes it. */
    IMGPACK_CATALOG_WRITE = 1u << 0,
};

/* One row of the classes table with its class_weights weight. */
typedef struct imgpack_catalog_class {
    int64_t class_id;        /* the records' label */
    const char *name;        /* never NULL */
    const char *description; /* NULL: none */
    int64_t num_images;
    /* total / (classes x num_images), the weight of a class-weighted
       cross-entropy; negative for a class with no images. */
    double weight;
} imgpack_catalog_class;

/* One rejected source file. */
typedef struct imgpack_catalog_reject {
    const char *path;   /* relative to the source, as packed */
    const char *reason; /* why it was not packed */
} imgpack_catalog_reject;

/* One dataset key with its value as text ("" for NULL). */
typedef struct imgpack_catalog_entry {
    const char *key;
    const char *value;
} imgpack_catalog_entry;

/*
 * Opens the catalog of the store at `store_dir` (its catalog.db; a
 * combined store's own). `flags`: 0 or IMGPACK_CATALOG_WRITE. On success
 * *out is a handle for imgpack_catalog_close. On failure *out is a handle
 * that only carries the message (or NULL if memory ran out): read
 * imgpack_catalog_errmsg, then close it. Returns IMGPACK_ERR_NOT_FOUND
 * when there is no catalog.db, IMGPACK_ERR_CATALOG when SQLite cannot
 * open it, IMGPACK_ERR_INVALID_ARG, IMGPACK_ERR_NOMEM.
 */
IMGPACK_API imgpack_status imgpack_catalog_open(imgpack_catalog **out,
                                                const char *store_dir,
                                                uint32_t flags);

/* Closes the catalog; NULL is fine. Invalidates what it returned. */
IMGPACK_API void imgpack_catalog_close(imgpack_catalog *c);

/* The last failure's message, naming the file; "" if none. Owned by the
   handle until its next call. NULL handle: "out of memory". */
IMGPACK_API const char *imgpack_catalog_errmsg(const imgpack_catalog *c);

/* Every class, by class id, into *rows (*count of them). */
IMGPACK_API imgpack_status imgpack_catalog_classes(
    imgpack_catalog *c, const imgpack_catalog_class **rows, uint64_t *count);

/* Every reject, in the order the packer met them, into *rows. */
IMGPACK_API imgpack_status imgpack_catalog_rejects(
    imgpack_catalog *c, const imgpack_catalog_reject **rows, uint64_t *count);

/* The number of rejects, without reading them. */
IMGPACK_API imgpack_status imgpack_catalog_num_rejects(imgpack_catalog *c,
                                                       uint64_t *count);

/* Every dataset key, by key, into *rows. */
IMGPACK_API imgpack_status imgpack_catalog_dataset(
    imgpack_catalog *c, const imgpack_catalog_entry **rows, uint64_t *count);

/*
 * The dataset key `key`'s value as text into *value (valid until the next
 * imgpack_catalog_dataset_get or close; "" for NULL). Returns
 * IMGPACK_ERR_NOT_FOUND when the catalog has no such key.
 */
IMGPACK_API imgpack_status imgpack_catalog_dataset_get(imgpack_catalog *c,
                                                       const char *key,
                                                       const char **value);

/*
 * The per-channel mean and std `imgpack stats` stored (dataset keys mean
 * and std, JSON arrays of numbers in 0..1 units): up to `capacity` values
 * each into `mean` and `std`, their number into *channels. Returns
 * IMGPACK_ERR_NOT_FOUND when none are stored, IMGPACK_ERR_CORRUPT when
 * they are not two arrays of the same length (at most `capacity`).
 */
IMGPACK_API imgpack_status imgpack_catalog_stats(imgpack_catalog *c,
                                                 double *mean, double *std,
                                                 uint32_t capacity,
                                                 uint32_t *channels);

/*
 * Stores `channels` means and stds (keys mean, std), the number of
 * records they came from (stats_records) and, when `sampled` is nonzero,
 * the sample's seed (stats_seed, as text: it may exceed SQLite's
 * integers; NULL otherwise), in one transaction. Needs a handle opened
 * with IMGPACK_CATALOG_WRITE; waits up to 5 s for another writer.
 */
IMGPACK_API imgpack_status imgpack_catalog_stats_store(
    imgpack_catalog *c, const double *mean, const double *std,
    uint32_t channels, uint64_t records, int32_t sampled, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* IMGPACK_CATALOG_H */
