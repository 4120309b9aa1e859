/*
 * imgpack verify: checks a store from end to end and names every problem.
 *
 * Four passes. The metadata: every value against its checksum
 * (imgpack_reader_check_meta). The records, through the reader opened
 * with IMGPACK_OPEN_VERIFY: each index 0..count-1 must be there with a
 * sound header, a payload matching its CRC, a label below the class count
 * and equal to the "labels" metadata, a payload CRC equal to
 * "payload_crcs", and (jpeg and webp) a payload that decodes to the
 * header's size. The catalog, opened read-only with SQLite: PRAGMA
 * integrity_check, one images row per record agreeing on class and value
 * size, no path twice, the rows' digest equal to the store's
 * catalog_digest (so an edited path or sha256 shows without the sources),
 * class rows agreeing with the store and with their images, every dataset
 * key there and equal to what the store says. With --sources, the source
 * files: each images row's file must still hash to its sha256.
 *
 * Surviving LMDB. LMDB has no page checksums, and a damaged B-tree can
 * crash liblmdb itself. So the checks run in a child process; the parent
 * only waits. The child keeps, in memory shared with the parent, what it
 * is doing and the record it reads; if a signal kills it, the parent says
 * "LMDB structure damaged near record N" and exits 4. The child's stdout
 * is line-buffered, so every problem it printed before is kept.
 *
 * A store whose pack stopped (meta state is not "complete") is reported as
 * incomplete, not corrupt: its catalog may hold rows of one batch past the
 * count by design (docs/FORMAT.md, "Crash consistency"), which are ignored.
 *
 * Each problem is one line on stdout, "record N: ...", "catalog: ...",
 * "store: ..." or "source: ..."; a summary line ends the output. Failures
 * that stop the check (the store cannot be opened) go to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <nettle/sha2.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "imgpack/reader.h"
#include "imgpack/verify.h"

/* The catalog schema version this command knows (schema/catalog.sql). */
#define CATALOG_SCHEMA_VERSION 1

/* Read size when hashing source files: large enough that the syscalls
   cost nothing next to SHA-256, small enough to sit on the stack. */
#define HASH_CHUNK (64 * 1024)

/* A record label that could not be read: never a valid class id, since
   labels are below num_classes, itself a uint32_t. */
#define NO_LABEL UINT32_MAX

/* What the checking child is doing, for the parent to say if it dies. */
enum phase {
    PHASE_OPEN,     /* opening the store, loading its metadata */
    PHASE_META,     /* walking the metadata */
    PHASE_RECORDS,  /* reading record `record` */
    PHASE_LABELS,   /* reading the labels */
    PHASE_CATALOG,  /* comparing the catalog with the store */
    PHASE_SOURCES,  /* hashing source files */
};

/* Shared with the parent: written by the child, read once it ended. */
typedef struct progress {
    _Atomic int phase;
    _Atomic uint64_t record;
    _Atomic uint64_t problems;
    _Atomic uint64_t count;
    _Atomic uint32_t classes;
} progress;

typedef struct verify {
    const char *dir;
    const char *sources; /* NULL without --sources */
    imgpack_reader *reader;
    sqlite3 *db;
    uint64_t count;
    int complete;
    uint32_t *labels; /* per record, NO_LABEL where the record is bad */
    uint64_t *sizes;  /* per record: LMDB value size, 0 where bad */
    uint8_t *pixels;  /* decode buffer for jpeg and webp records */
    uint64_t pixels_capacity;
    uint64_t problems;
    progress *progress; /* shared with the parent */
} verify;

static void print_help(void) {
    printf("Usage: imgpack verify [--sources SRC_DIR] OUT_DIR\n\n"
           "Checks the store OUT_DIR: every metadata value's checksum,\n"
           "every record's header and payload checksum, that jpeg and webp\n"
           "payloads decode, labels against the classes and the catalog, and\n"
           "the catalog: its integrity, its rows against the digest the\n"
           "store keeps of them, duplicate paths, its dataset keys against\n"
           "the store. With --sources, also hashes each packed source file\n"
           "under SRC_DIR and compares it with the catalog's sha256.\n\n"
           "Each problem is one line on stdout naming the record, catalog\n"
           "row or file; a summary line follows. A store whose pack stopped\n"
           "is reported as incomplete. The checks run in a child process:\n"
           "if damaged LMDB pages crash it, that is reported as \"LMDB\n"
           "structure damaged near record N\" (exit status 4).\n\n"
           "Options:\n"
           "  --sources SRC_DIR  re-hash the source files\n"
           "  --help             this text\n\n"
           "Exit status: 0 no problems, 1 the store cannot be read,\n"
           "2 bad command line, 4 problems found.\n");
}

static void problem(verify *v, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(verify *v, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    putchar('\n');
    v->problems++;
    atomic_store(&v->progress->problems, v->problems);
}

static void set_phase(verify *v, enum phase phase) {
    atomic_store(&v->progress->phase, (int)phase);
}

/* ---- Metadata --------------------------------------------------------- */

static void report_meta(void *ctx, const char *message) {
    problem(ctx, "store: %s", message);
}

static void check_meta(verify *v) {
    uint64_t found;
    int32_t checked;
    set_phase(v, PHASE_META);
    if (imgpack_reader_check_meta(v->reader, report_meta, v, &found,
                                  &checked) != IMGPACK_OK)
        problem(v, "store: cannot walk the metadata: %s",
                imgpack_reader_errmsg(v->reader));
}

/* ---- Records ---------------------------------------------------------- */

/* Decodes a jpeg or webp record; the reader checks that it comes out at
   the header's size. */
static void check_decodes(verify *v, uint64_t index, const imgpack_record *rec) {
    imgpack_record decoded;
    uint64_t need = (uint64_t)rec->width * rec->height * rec->channels;
    if (need > v->pixels_capacity) {
        free(v->pixels);
        v->pixels_capacity = 0;
        if (!(v->pixels = malloc(need))) {
            problem(v, "record %" PRIu64 ": cannot allocate %" PRIu64
                       " bytes to decode it",
                    index, need);
            return;
        }
        v->pixels_capacity = need;
    }
    if (imgpack_reader_decode(v->reader, index, v->pixels, v->pixels_capacity,
                              &decoded) != IMGPACK_OK)
        problem(v, "record %" PRIu64 ": %s", index,
                imgpack_reader_errmsg(v->reader));
}

static void check_records(verify *v) {
    int compressed = imgpack_reader_format(v->reader) != IMGPACK_FORMAT_RAW;
    set_phase(v, PHASE_RECORDS);
    for (uint64_t i = 0; i < v->count; i++) {
        imgpack_record rec;
        atomic_store_explicit(&v->progress->record, i, memory_order_relaxed);
        v->labels[i] = NO_LABEL;
        v->sizes[i] = 0;
        if (imgpack_reader_get(v->reader, i, &rec) != IMGPACK_OK) {
            problem(v, "record %" PRIu64 ": %s", i,
                    imgpack_reader_errmsg(v->reader));
            continue;
        }
        v->labels[i] = rec.label;
        /* The catalog's stored_bytes counts the 32-byte header too. */
        v->sizes[i] = rec.size + 32;
        if (compressed)
            check_decodes(v, i, &rec);
    }
}

/* A complete store's "labels" metadata, which trainers read instead of
   the records, must say what the records say. */
static void check_label_metadata(verify *v) {
    set_phase(v, PHASE_LABELS);
    uint32_t *meta = malloc(v->count ? v->count * sizeof *meta : 1);
    if (!meta) {
        problem(v, "store: cannot allocate room for %" PRIu64 " labels",
                v->count);
        return;
    }
    if (imgpack_reader_labels(v->reader, meta, v->count) != IMGPACK_OK) {
        problem(v, "store: labels metadata: %s",
                imgpack_reader_errmsg(v->reader));
    } else {
        for (uint64_t i = 0; i < v->count; i++)
            if (v->labels[i] != NO_LABEL && meta[i] != v->labels[i])
                problem(v, "record %" PRIu64 ": label %" PRIu32
                           ", the labels metadata says %" PRIu32,
                        i, v->labels[i], meta[i]);
    }
    free(meta);
}

/* ---- Catalog ---------------------------------------------------------- */

/* Prepares `sql`, or reports why not and returns NULL. */
static sqlite3_stmt *prepare(verify *v, const char *sql) {
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(v->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        problem(v, "catalog: cannot query (%s): %s", sql, sqlite3_errmsg(v->db));
        sqlite3_finalize(stmt);
        stmt = NULL;
    }
    return stmt;
}

/* Ends a statement's walk; an error part way is a problem too. */
static void finish(verify *v, sqlite3_stmt *stmt, int rc) {
    if (rc != SQLITE_DONE)
        problem(v, "catalog: read failed: %s", sqlite3_errmsg(v->db));
    sqlite3_finalize(stmt);
}

static void check_integrity(verify *v) {
    sqlite3_stmt *stmt = prepare(v, "PRAGMA integrity_check");
    int rc;
    if (!stmt)
        return;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        if (!text || strcmp(text, "ok") != 0)
            problem(v, "catalog: integrity_check: %s", text ? text : "?");
    }
    finish(v, stmt, rc);
    if ((stmt = prepare(v, "PRAGMA user_version")) == NULL)
        return;
    if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (sqlite3_column_int64(stmt, 0) != CATALOG_SCHEMA_VERSION)
            problem(v, "catalog: schema version %" PRId64 ", expected %d",
                    (int64_t)sqlite3_column_int64(stmt, 0),
                    CATALOG_SCHEMA_VERSION);
        rc = sqlite3_step(stmt);
    }
    finish(v, stmt, rc);
}

/* Records from *next up to `end` have no images row. */
static void report_missing_rows(verify *v, uint64_t *next, uint64_t end) {
    for (; *next < end; (*next)++)
        problem(v, "record %" PRIu64 ": no row in the catalog's images table",
                *next);
}

static void check_images(verify *v, uint64_t *rows_past_count) {
    sqlite3_stmt *stmt = prepare(
        v, "SELECT idx, class_id, stored_bytes FROM images ORDER BY idx");
    uint64_t next = 0;
    int rc;
    *rows_past_count = 0;
    if (!stmt)
        return;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int64_t idx = sqlite3_column_int64(stmt, 0);
        int64_t class_id = sqlite3_column_int64(stmt, 1);
        int64_t stored = sqlite3_column_int64(stmt, 2);
        if (idx < 0) {
            problem(v, "catalog: images row with negative idx %" PRId64, idx);
            continue;
        }
        uint64_t i = (uint64_t)idx;
        if (i >= v->count) {
            /* An unfinished pack commits a batch to the catalog before
               LMDB: such rows are expected, not damage. */
            if (v->complete)
                problem(v, "catalog: images row %" PRIu64
                           " is past the store's %" PRIu64 " records",
                        i, v->count);
            else
                (*rows_past_count)++;
            continue;
        }
        report_missing_rows(v, &next, i);
        next = i + 1;
        if (v->labels[i] == NO_LABEL)
            continue; /* the record itself was reported */
        if (class_id != (int64_t)v->labels[i])
            problem(v, "record %" PRIu64 ": catalog class_id %" PRId64
                       ", the record's label is %" PRIu32,
                    i, class_id, v->labels[i]);
        if (stored != (int64_t)v->sizes[i])
            problem(v, "record %" PRIu64 ": catalog stored_bytes %" PRId64
                       ", the record has %" PRIu64,
                    i, stored, v->sizes[i]);
    }
    finish(v, stmt, rc);
    report_missing_rows(v, &next, v->count);
}

static void check_classes(verify *v) {
    sqlite3_stmt *stmt = prepare(
        v, "SELECT c.class_id, c.name, c.num_images,"
           " (SELECT COUNT(*) FROM images AS i WHERE i.class_id = c.class_id)"
           " FROM classes AS c ORDER BY c.class_id");
    uint32_t classes = imgpack_reader_num_classes(v->reader);
    int64_t expected = 0;
    int rc;
    if (!stmt)
        return;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(stmt, 0);
        const char *name = (const char *)sqlite3_column_text(stmt, 1);
        int64_t num_images = sqlite3_column_int64(stmt, 2);
        int64_t rows = sqlite3_column_int64(stmt, 3);
        for (; expected < id && expected < (int64_t)classes; expected++)
            problem(v, "catalog: class %" PRId64 " has no row in classes",
                    expected);
        expected = id + 1;
        if (id < 0 || id >= (int64_t)classes) {
            problem(v, "catalog: class %" PRId64 " is not among the store's "
                       "%" PRIu32 " classes",
                    id, classes);
            continue;
        }
        const char *want = imgpack_reader_class_name(v->reader, (uint32_t)id);
        if (!name || strcmp(name, want) != 0)
            problem(v, "catalog: class %" PRId64 " is named \"%s\", the "
                       "store says \"%s\"",
                    id, name ? name : "", want);
        if (num_images != rows)
            problem(v, "catalog: class %" PRId64 " has num_images %" PRId64
                       " but %" PRId64 " images rows",
                    id, num_images, rows);
    }
    finish(v, stmt, rc);
    for (; expected < (int64_t)classes; expected++)
        problem(v, "catalog: class %" PRId64 " has no row in classes", expected);
}

/* No path may be packed twice: a duplicated row hides an edited one. */
static void check_duplicate_paths(verify *v) {
    sqlite3_stmt *stmt = prepare(
        v, "SELECT path, COUNT(*), MIN(idx) FROM images WHERE idx < ?"
           " GROUP BY path HAVING COUNT(*) > 1 ORDER BY MIN(idx)");
    int rc;
    if (!stmt)
        return;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)v->count);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        problem(v, "catalog: path %s is in %" PRId64 " images rows (from "
                   "record %" PRId64 ")",
                (const char *)sqlite3_column_text(stmt, 0),
                (int64_t)sqlite3_column_int64(stmt, 1),
                (int64_t)sqlite3_column_int64(stmt, 2));
    finish(v, stmt, rc);
}

/* Meta `key` as a NUL-terminated string in `out`; 0 if the store has no
   such key (or it does not fit). */
static int store_meta(verify *v, const char *key, char *out, size_t capacity) {
    uint64_t size = 0;
    if (imgpack_reader_meta(v->reader, key, (uint8_t *)out, capacity - 1,
                            &size) != IMGPACK_OK ||
        size >= capacity)
        return 0;
    out[size] = '\0';
    return 1;
}

/*
 * The images rows against the store's catalog_digest (imgpack/verify.h):
 * an edited path, sha256 or class_id changes it. Only a store's own
 * catalog is digested: a combined catalog's indices are the dataset's,
 * and each shard's own catalog is verified with the shard.
 */
static void check_digest(verify *v) {
    char want[IMGPACK_CATALOG_DIGEST_HEX], got[IMGPACK_CATALOG_DIGEST_HEX] = "";
    sqlite3_stmt *stmt;
    int rc;
    if (imgpack_reader_num_shards(v->reader) > 1)
        return;
    /* Stores packed before the digest (or resumed from such) lack it; a
       digest that damage deleted left its checksum, which check_meta
       reports. */
    if (!store_meta(v, IMGPACK_META_CATALOG_DIGEST, want, sizeof want))
        return;
    if (!(stmt = prepare(v, "SELECT idx, class_id, path, sha256 FROM images"
                            " WHERE idx >= 0 AND idx < ? ORDER BY idx")))
        return;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)v->count);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_blob(stmt, 2);
        int path_size = sqlite3_column_bytes(stmt, 2);
        imgpack_catalog_digest_row(
            got, (uint64_t)sqlite3_column_int64(stmt, 0),
            (uint32_t)sqlite3_column_int64(stmt, 1), path ? path : "",
            (size_t)path_size, (const char *)sqlite3_column_text(stmt, 3));
    }
    finish(v, stmt, rc);
    if (rc == SQLITE_DONE && strcmp(got[0] ? got : "", want) != 0)
        problem(v, "catalog: the images rows are not the ones packed (a "
                   "path, sha256 or class_id was edited, or rows were "
                   "added or removed): their digest is %s, the store's "
                   "catalog_digest %s",
                got[0] ? got : "(no rows)", want);
}

/* One dataset key: what the catalog holds, what the store says. */
typedef struct dataset_key {
    const char *key;
    char expected[256]; /* "" when nothing in the store to compare */
    int required;
} dataset_key;

/* The value of `name=` in the settings text `settings`, into out. */
static void setting(const char *settings, const char *name, char *out,
                    size_t capacity) {
    const char *at = strstr(settings, name);
    size_t n = 0;
    out[0] = '\0';
    if (!at)
        return;
    at += strlen(name);
    while (at[n] && at[n] != ' ' && n + 1 < capacity)
        n++;
    memcpy(out, at, n);
    out[n] = '\0';
}

/* The dataset keys the store keeps no copy of, against its
   catalog_dataset_digest (imgpack/verify.h). */
static void check_dataset_digest(verify *v) {
    static const char *const keys[] = {"source", "command", "created",
                                       "skipped"};
    char want[IMGPACK_CATALOG_DIGEST_HEX], got[IMGPACK_CATALOG_DIGEST_HEX] = "";
    if (!store_meta(v, IMGPACK_META_CATALOG_DATASET_DIGEST, want, sizeof want))
        return; /* packed before it existed */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        sqlite3_stmt *stmt = prepare(
            v, "SELECT CAST(value AS TEXT) FROM dataset WHERE key = ?");
        if (!stmt)
            return;
        sqlite3_bind_text(stmt, 1, keys[i], -1, SQLITE_STATIC);
        int found = sqlite3_step(stmt) == SQLITE_ROW;
        if (found)
            imgpack_catalog_digest_text(
                got, keys[i], (const char *)sqlite3_column_text(stmt, 0));
        sqlite3_finalize(stmt);
        if (!found)
            return; /* reported as missing already */
    }
    if (strcmp(got, want) != 0)
        problem(v, "catalog: dataset source, command, created or skipped "
                   "is not what was packed (the store's "
                   "catalog_dataset_digest disagrees)");
}

/*
 * Every dataset key the writer sets must be in the catalog, and those the
 * store also knows must say the same: count, num_classes, format, resize,
 * crop, quality and max_pixels (from `settings`), state, tool_version,
 * shard and shards; the others (source, command, created, skipped) must
 * match the store's digest of them. An unfinished pack may have committed
 * its last batch, or its completion, to the catalog and not yet to LMDB
 * (docs/FORMAT.md), so there only "complete" for "packing" is expected,
 * and count is not compared.
 */
static void check_dataset(verify *v) {
    char settings[512] = "", shard[64] = "", state[32] = "";
    uint32_t k = 0, n = 0;
    dataset_key keys[] = {
        {"count", "", 1},       {"num_classes", "", 1}, {"format", "", 1},
        {"resize", "", 1},      {"crop", "", 1},        {"quality", "", 1},
        {"max_pixels", "", 1},  {"state", "", 1},       {"tool_version", "", 1},
        {"skipped", "", 1},     {"source", "", 1},      {"command", "", 1},
        {"created", "", 1},     {"shard", "", 0},       {"shards", "", 0},
    };
    size_t nkeys = sizeof keys / sizeof keys[0];
    int sharded = imgpack_reader_num_shards(v->reader) > 1;
    store_meta(v, IMGPACK_META_SETTINGS, settings, sizeof settings);
    store_meta(v, IMGPACK_META_STATE, state, sizeof state);
    if (v->complete)
        snprintf(keys[0].expected, sizeof keys[0].expected, "%" PRIu64,
                 v->count);
    snprintf(keys[1].expected, sizeof keys[1].expected, "%" PRIu32,
             imgpack_reader_num_classes(v->reader));
    snprintf(keys[2].expected, sizeof keys[2].expected, "%s",
             imgpack_format_name(imgpack_reader_format(v->reader)));
    snprintf(keys[3].expected, sizeof keys[3].expected, "%" PRIu32,
             imgpack_reader_resize(v->reader));
    snprintf(keys[4].expected, sizeof keys[4].expected, "%" PRIu32,
             imgpack_reader_crop(v->reader));
    setting(settings, "quality=", keys[5].expected, sizeof keys[5].expected);
    setting(settings, "max-pixels=", keys[6].expected, sizeof keys[6].expected);
    if (v->complete)
        snprintf(keys[7].expected, sizeof keys[7].expected, "%s", state);
    store_meta(v, IMGPACK_META_TOOL_VERSION, keys[8].expected, sizeof keys[8].expected);
    if (sharded) {
        keys[14].required = 1;
        snprintf(keys[14].expected, sizeof keys[14].expected, "%" PRIu32,
                 imgpack_reader_num_shards(v->reader));
    } else if (store_meta(v, IMGPACK_META_SHARD, shard, sizeof shard) &&
               sscanf(shard, "%" SCNu32 "/%" SCNu32, &k, &n) == 2) {
        keys[13].required = keys[14].required = 1;
        snprintf(keys[13].expected, sizeof keys[13].expected, "%" PRIu32, k);
        snprintf(keys[14].expected, sizeof keys[14].expected, "%" PRIu32, n);
    }
    for (size_t i = 0; i < nkeys; i++) {
        sqlite3_stmt *stmt =
            prepare(v, "SELECT CAST(value AS TEXT) FROM dataset WHERE key = ?");
        int rc;
        if (!stmt)
            return;
        sqlite3_bind_text(stmt, 1, keys[i].key, -1, SQLITE_STATIC);
        if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            const char *got = (const char *)sqlite3_column_text(stmt, 0);
            if (!got)
                got = "";
            if (keys[i].expected[0] && strcmp(got, keys[i].expected) != 0 &&
                !(i == 7 && !v->complete && strcmp(got, "complete") == 0))
                problem(v, "catalog: dataset %s is \"%s\", the store says "
                           "\"%s\"",
                        keys[i].key, got, keys[i].expected);
            rc = sqlite3_step(stmt);
        } else if (rc == SQLITE_DONE && keys[i].required) {
            problem(v, "catalog: dataset has no %s", keys[i].key);
        }
        finish(v, stmt, rc);
    }
    check_dataset_digest(v);
}

static void check_catalog(verify *v) {
    char path[4096];
    uint64_t rows_past_count = 0;
    if (snprintf(path, sizeof path, "%s/catalog.db", v->dir) >=
        (int)sizeof path) {
        problem(v, "catalog: path too long");
        return;
    }
    if (access(path, F_OK) != 0) {
        problem(v, "catalog: %s: %s", path, strerror(errno));
        return;
    }
    /* Read-only: verify must never change what it checks, even by
       recovering a journal. */
    if (sqlite3_open_v2(path, &v->db, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        problem(v, "catalog: cannot open %s: %s", path, sqlite3_errmsg(v->db));
        return;
    }
    set_phase(v, PHASE_CATALOG);
    check_integrity(v);
    check_images(v, &rows_past_count);
    check_duplicate_paths(v);
    check_digest(v);
    check_classes(v);
    check_dataset(v);
    if (!v->complete)
        printf("store: incomplete: the pack stopped after %" PRIu64
               " records; %" PRIu64 " catalog rows past them are ignored\n",
               v->count, rows_past_count);
}

/* ---- Sources ---------------------------------------------------------- */

/* SHA-256 of the file at `path` as lowercase hex; 0, or errno. */
static int hash_file(const char *path, char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    uint8_t chunk[HASH_CHUNK];
    uint8_t digest[SHA256_DIGEST_SIZE];
    struct sha256_ctx ctx;
    int err = 0;
    /* O_NONBLOCK: a FIFO put where an image was must not hang verify. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno;
    sha256_init(&ctx);
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            goto out;
        }
        if (n == 0)
            break;
        sha256_update(&ctx, (size_t)n, chunk);
    }
    sha256_digest(&ctx, sizeof digest, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
out:
    close(fd);
    return err;
}

static void check_sources(verify *v) {
    sqlite3_stmt *stmt = NULL;
    char *path = NULL;
    size_t capacity = 0;
    int rc;
    if (!v->db)
        return; /* already reported: without a catalog no hashes exist */
    if (!(stmt = prepare(v, "SELECT idx, path, sha256 FROM images"
                            " WHERE idx >= 0 AND idx < ? ORDER BY idx")))
        return;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)v->count);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int64_t idx = sqlite3_column_int64(stmt, 0);
        const char *relative = (const char *)sqlite3_column_text(stmt, 1);
        const char *want = (const char *)sqlite3_column_text(stmt, 2);
        char hex[65];
        if (!relative)
            relative = "";
        size_t need = strlen(v->sources) + strlen(relative) + 2;
        if (need > capacity) {
            char *bigger = realloc(path, need);
            if (!bigger) {
                problem(v, "source: out of memory");
                break;
            }
            path = bigger;
            capacity = need;
        }
        snprintf(path, capacity, "%s/%s", v->sources, relative);
        int err = hash_file(path, hex);
        if (err != 0)
            problem(v, "record %" PRId64 ": source %s: %s", idx, path,
                    strerror(err));
        else if (!want || strcmp(hex, want) != 0)
            problem(v, "record %" PRId64 ": source %s has changed: sha256 %s, "
                       "the catalog says %s",
                    idx, path, hex, want ? want : "nothing");
    }
    if (rc == SQLITE_ROW)
        sqlite3_finalize(stmt); /* stopped early, already reported */
    else
        finish(v, stmt, rc);
    free(path);
}

/* ---- Command ---------------------------------------------------------- */

/* Opens the store; returns EXIT_OK, or the exit status when it cannot be
   checked at all. Damaged metadata is a finding, not a failure. */
static int open_store(verify *v) {
    imgpack_status status = imgpack_reader_open(
        &v->reader, v->dir, IMGPACK_OPEN_INCOMPLETE | IMGPACK_OPEN_VERIFY);
    if (status == IMGPACK_ERR_CORRUPT ||
        status == IMGPACK_ERR_VERSION_MISMATCH) {
        problem(v, "store: %s", imgpack_reader_errmsg(v->reader));
        printf("%s: cannot be checked further: 1 problem\n", v->dir);
        return EXIT_PROBLEMS;
    }
    if (status != IMGPACK_OK) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(v->reader));
        return EXIT_FAILED;
    }
    v->count = imgpack_reader_count(v->reader);
    v->complete = imgpack_reader_is_complete(v->reader) != 0;
    v->labels = malloc(v->count ? v->count * sizeof *v->labels : 1);
    v->sizes = malloc(v->count ? v->count * sizeof *v->sizes : 1);
    if (!v->labels || !v->sizes) {
        cli_error(v->dir, "out of memory for %" PRIu64 " records", v->count);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* Runs every check: the checking child's whole life. Returns the exit
   status. */
static int run_checks(verify *v) {
    int code = open_store(v);
    if (code != EXIT_OK)
        return code;
    atomic_store(&v->progress->count, v->count);
    atomic_store(&v->progress->classes, imgpack_reader_num_classes(v->reader));
    check_meta(v);
    check_records(v);
    if (v->complete)
        check_label_metadata(v);
    check_catalog(v);
    if (v->sources) {
        set_phase(v, PHASE_SOURCES);
        check_sources(v);
    }
    printf("%s: %" PRIu64 " records, %" PRIu32 " classes%s: %" PRIu64
           " problem%s\n",
           v->dir, v->count, imgpack_reader_num_classes(v->reader),
           v->complete ? "" : ", incomplete", v->problems,
           v->problems == 1 ? "" : "s");
    return v->problems || !v->complete ? EXIT_PROBLEMS : EXIT_OK;
}

/* What the child was doing when a signal killed it. */
static const char *phase_text(int phase) {
    switch (phase) {
    case PHASE_OPEN:
        return "opening the store";
    case PHASE_META:
        return "walking the metadata";
    case PHASE_LABELS:
        return "reading the labels";
    case PHASE_CATALOG:
        return "comparing the catalog with the store";
    default:
        return "hashing source files";
    }
}

/* Says how the checking child died of `sig`; returns the exit status. */
static int report_crash(verify *v, int sig) {
    const progress *p = v->progress;
    int phase = atomic_load(&p->phase);
    uint64_t problems = atomic_load(&p->problems) + 1;
    if (phase == PHASE_RECORDS)
        printf("store: LMDB structure damaged near record %" PRIu64
               " (the check was killed by signal %d, %s, inside LMDB's "
               "B-tree walk)\n",
               (uint64_t)atomic_load(&p->record), sig, strsignal(sig));
    else if (phase == PHASE_SOURCES)
        printf("source: verify was killed by signal %d, %s, while %s\n", sig,
               strsignal(sig), phase_text(phase));
    else
        printf("store: LMDB structure damaged (the check was killed by "
               "signal %d, %s, while %s)\n",
               sig, strsignal(sig), phase_text(phase));
    printf("%s: %" PRIu64 " records, %" PRIu32 " classes: %" PRIu64
           " problem%s\n",
           v->dir, (uint64_t)atomic_load(&p->count),
           (uint32_t)atomic_load(&p->classes), problems,
           problems == 1 ? "" : "s");
    return EXIT_PROBLEMS;
}

/* Runs the checks in a child process (see "Surviving LMDB" above) and
   returns their exit status, or EXIT_PROBLEMS for a child a signal
   killed. */
static int run_isolated(verify *v) {
    int status, code;
    v->progress = mmap(NULL, sizeof *v->progress, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (v->progress == MAP_FAILED) {
        cli_error(v->dir, "cannot share memory with the check: %s",
                  strerror(errno));
        return EXIT_FAILED;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        cli_error(v->dir, "cannot start the check: %s", strerror(errno));
        code = EXIT_FAILED;
        goto out;
    }
    if (pid == 0) {
        /* A crash here is damage in the store, reported by the parent:
           no core file. Lines go out as printed, so none is lost. */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        setvbuf(stdout, NULL, _IOLBF, 0);
        code = run_checks(v);
        sqlite3_close(v->db);
        free(v->pixels);
        free(v->sizes);
        free(v->labels);
        imgpack_reader_close(v->reader);
        fflush(stdout);
        _exit(code);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            cli_error(v->dir, "cannot wait for the check: %s", strerror(errno));
            code = EXIT_FAILED;
            goto out;
        }
    if (WIFSIGNALED(status))
        code = report_crash(v, WTERMSIG(status));
    else
        code = WEXITSTATUS(status);
out:
    munmap(v->progress, sizeof *v->progress);
    return code;
}

int cmd_verify(int argc, char **argv) {
    static const struct option options[] = {
        {"sources", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    verify v = {0};
    int option;

    opterr = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'h') {
            print_help();
            return EXIT_OK;
        }
        if (option == '?')
            return cli_usage_error("verify", "unknown option or missing "
                                             "argument '%s'",
                                   argv[optind - 1]);
        v.sources = optarg;
    }
    if (argc - optind != 1)
        return cli_usage_error("verify", "expected one OUT_DIR");
    v.dir = argv[optind];
    return run_isolated(&v);
}
