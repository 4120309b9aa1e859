/*
 * Checking a store beyond what reading it checks: imgpack_verify, the
 * whole check `imgpack verify` runs; the metadata as a whole; and the
 * catalog rows against the digest the writer kept of them in LMDB. The
 * writer and verify share these functions, so the formats they agree on
 * live in the library alone (docs/FORMAT.md, "Metadata checksums" and
 * "Catalog digest").
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
IMGPACK_API void
imgpack_catalog_digest_row(char digest[IMGPACK_CATALOG_DIGEST_HEX],
                           uint64_t index, uint32_t class_id, const char *path,
                           size_t path_size, const char *sha256);

/*
 * Advances the digest `digest` (as above; "" at first) over one dataset
 * (key, value) pair of the catalog, both NUL-terminated text (NULL counts
 * as ""). The meta key `catalog_dataset_digest` holds the digest over the
 * catalog's dataset keys that the store has no copy of, in this order:
 * source, command, created, skipped. Memory only; any thread.
 */
IMGPACK_API void
imgpack_catalog_digest_text(char digest[IMGPACK_CATALOG_DIGEST_HEX],
                            const char *key, const char *value);

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

/* What an imgpack_problem is about. */
enum {
    /* The store as a whole: its metadata, its LMDB structure, its labels
       metadata. */
    IMGPACK_PROBLEM_STORE = 1,
    /* One record: its header, payload, label or decoding. */
    IMGPACK_PROBLEM_RECORD = 2,
    /* The catalog: its integrity, its rows against the store. */
    IMGPACK_PROBLEM_CATALOG = 3,
    /* A source file against the catalog's sha256 (with `sources`). */
    IMGPACK_PROBLEM_SOURCE = 4,
    /* Not a problem and not counted: what the check says of a store whose
       pack stopped ("store: incomplete: ..."), in its place in the
       report. */
    IMGPACK_PROBLEM_NOTE = 5,
};

/* imgpack_problem.record when the problem concerns no one record. */
#define IMGPACK_PROBLEM_NO_RECORD UINT64_MAX

/* One finding of imgpack_verify. */
typedef struct imgpack_problem {
    int32_t kind;    /* IMGPACK_PROBLEM_* */
    uint64_t record; /* the record concerned, or IMGPACK_PROBLEM_NO_RECORD */
    /* The finding as one line, as `imgpack verify` prints it: "record N:
       ...", "catalog: ...", "store: ..." or "source: ...". Valid during
       the callback only. */
    const char *message;
} imgpack_problem;

typedef struct imgpack_verify_options {
    /* The directory the store was packed from: each images row's file is
       hashed and compared with its sha256. NULL: the sources are not
       checked. */
    const char *sources;
} imgpack_verify_options;

/* Bytes of imgpack_verify_summary.error. */
#define IMGPACK_VERIFY_ERROR_SIZE 1024

typedef struct imgpack_verify_summary {
    uint64_t records;  /* the store's record count */
    uint32_t classes;  /* its class count */
    int32_t complete;  /* nonzero: its pack finished */
    uint64_t problems; /* problems reported (notes not counted) */
    /* 0: the store could not be opened (damaged or of another format
       version); the one problem reported says why; nothing else was
       checked. */
    int32_t opened;
    /* Nonzero: the check was killed by this signal, damaged LMDB pages
       having crashed liblmdb; the last problem says where. */
    int32_t signal;
    /* When imgpack_verify fails: why, naming the store; else "". */
    char error[IMGPACK_VERIFY_ERROR_SIZE];
} imgpack_verify_summary;

/*
 * Checks the store at `store_dir` from end to end, as `imgpack verify`
 * does: every metadata value against its checksum; every record's header,
 * payload CRC, label (against the class count, the labels metadata, the
 * payload_crcs metadata), and for jpeg and webp that it decodes to the
 * header's size; the catalog's integrity, one images row per record
 * agreeing on class and size, no path twice, its rows against the store's
 * catalog_digest, its classes and dataset keys against the store; with
 * opts->sources, each source file against its sha256. A store whose pack
 * stopped is incomplete, not corrupt: catalog rows past its count are
 * expected and ignored.
 *
 * LMDB has no page checksums and a damaged B-tree can crash liblmdb, so
 * the checks run in a forked child process; this function waits for it.
 * A child killed by a signal is reported as a problem ("LMDB structure
 * damaged near record N") and in out->signal.
 *
 * `on_problem(ctx, p)` is called once per problem, in the calling thread
 * and process, in the order found; `p` and its message are valid during
 * the call only. `opts` may be NULL (no sources). *out is filled whatever
 * happens.
 *
 * Returns IMGPACK_OK when the check ran, whatever it found (see
 * out->problems, out->complete, out->opened, out->signal); otherwise the
 * store could not be checked at all (IMGPACK_ERR_NOT_A_STORE,
 * IMGPACK_ERR_NOT_FOUND, IMGPACK_ERR_NOMEM, IMGPACK_ERR_IO for a failed
 * fork or pipe, ...) and out->error says why.
 *
 * Threads: any thread; it forks, so the caller's other threads do not
 * run in the child, which uses only this library.
 */
IMGPACK_API imgpack_status
imgpack_verify(const char *store_dir, const imgpack_verify_options *opts,
               void (*on_problem)(void *ctx, const imgpack_problem *p),
               void *ctx, imgpack_verify_summary *out);

#ifdef __cplusplus
}
#endif

#endif /* IMGPACK_VERIFY_H */
