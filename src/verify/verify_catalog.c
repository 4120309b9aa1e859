/*
 * imgpack_verify's checks of the catalog, opened read-only with SQLite,
 * after the records (their labels and sizes are known): PRAGMA
 * integrity_check and the schema version, one images row per record
 * agreeing on class and value size, no path twice, the rows' digest equal
 * to the store's catalog_digest (so an edited path or sha256 shows
 * without the sources), class rows agreeing with the store and with their
 * images, every dataset key there and equal to what the store says.
 *
 * A store whose pack stopped may have rows of one batch past its count by
 * design (docs/FORMAT.md, "Crash consistency"): they are counted and
 * ignored, and a note says so.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "error.h"
#include "imgpack/meta.h"
#include "store_meta.h"
#include "verify.h"

/* The catalog schema version this check knows (schema/catalog.sql). */
#define CATALOG_SCHEMA_VERSION 1

sqlite3_stmt *imgpack__verify_prepare(imgpack__verify *v, const char *sql) {
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(v->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        imgpack__verify_problem(
            v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
            "catalog: cannot query (%s): %s", sql, sqlite3_errmsg(v->db));
        sqlite3_finalize(stmt);
        stmt = NULL;
    }
    return stmt;
}

void imgpack__verify_finish(imgpack__verify *v, sqlite3_stmt *stmt, int rc) {
    if (rc != SQLITE_DONE)
        imgpack__verify_problem(
            v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
            "catalog: read failed: %s", sqlite3_errmsg(v->db));
    sqlite3_finalize(stmt);
}

static void check_integrity(imgpack__verify *v) {
    sqlite3_stmt *stmt = imgpack__verify_prepare(v, "PRAGMA integrity_check");
    int rc;
    if (!stmt)
        return;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        if (!text || strcmp(text, "ok") != 0)
            imgpack__verify_problem(
                v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
                "catalog: integrity_check: %s", text ? text : "?");
    }
    imgpack__verify_finish(v, stmt, rc);
    if ((stmt = imgpack__verify_prepare(v, "PRAGMA user_version")) == NULL)
        return;
    if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (sqlite3_column_int64(stmt, 0) != CATALOG_SCHEMA_VERSION)
            imgpack__verify_problem(
                v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
                "catalog: schema version %" PRId64 ", expected %d",
                (int64_t)sqlite3_column_int64(stmt, 0), CATALOG_SCHEMA_VERSION);
        rc = sqlite3_step(stmt);
    }
    imgpack__verify_finish(v, stmt, rc);
}

/* Records from *next up to `end` have no images row. */
static void report_missing_rows(imgpack__verify *v, uint64_t *next,
                                uint64_t end) {
    for (; *next < end; (*next)++)
        imgpack__verify_problem(v, IMGPACK_PROBLEM_CATALOG, *next,
                                "record %" PRIu64 ": no row in the catalog's "
                                "images table",
                                *next);
}

static void check_images(imgpack__verify *v, uint64_t *rows_past_count) {
    sqlite3_stmt *stmt = imgpack__verify_prepare(
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
            imgpack__verify_problem(
                v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
                "catalog: images row with negative idx %" PRId64, idx);
            continue;
        }
        uint64_t i = (uint64_t)idx;
        if (i >= v->count) {
            /* An unfinished pack commits a batch to the catalog before
               LMDB: such rows are expected, not damage. */
            if (v->complete && !v->stopped_append)
                imgpack__verify_problem(
                    v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
                    "catalog: images row %" PRIu64
                    " is past the store's %" PRIu64 " records",
                    i, v->count);
            else
                (*rows_past_count)++;
            continue;
        }
        report_missing_rows(v, &next, i);
        next = i + 1;
        if (v->labels[i] == IMGPACK__VERIFY_NO_LABEL)
            continue; /* the record itself was reported */
        if (class_id != (int64_t)v->labels[i])
            imgpack__verify_problem(v, IMGPACK_PROBLEM_CATALOG, i,
                                    "record %" PRIu64
                                    ": catalog class_id %" PRId64
                                    ", the record's label is %" PRIu32,
                                    i, class_id, v->labels[i]);
        if (stored != (int64_t)v->sizes[i])
            imgpack__verify_problem(v, IMGPACK_PROBLEM_CATALOG, i,
                                    "record %" PRIu64
                                    ": catalog stored_bytes %" PRId64
                                    ", the record has %" PRIu64,
                                    i, stored, v->sizes[i]);
    }
    imgpack__verify_finish(v, stmt, rc);
    report_missing_rows(v, &next, v->count);
}

/* Classes from *next up to `end` have no classes row. */
static void report_missing_classes(imgpack__verify *v, int64_t *next,
                                   int64_t end) {
    for (; *next < end; (*next)++)
        imgpack__verify_problem(
            v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
            "catalog: class %" PRId64 " has no row in classes", *next);
}

static void check_classes(imgpack__verify *v) {
    sqlite3_stmt *stmt = imgpack__verify_prepare(
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
        report_missing_classes(v, &expected,
                               id < (int64_t)classes ? id : (int64_t)classes);
        expected = id + 1;
        if (v->stopped_append && id >= (int64_t)classes)
            continue; /* a class the stopped append was adding */
        if (id < 0 || id >= (int64_t)classes) {
            imgpack__verify_problem(
                v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
                "catalog: class %" PRId64 " is not among the store's "
                "%" PRIu32 " classes",
                id, classes);
            continue;
        }
        const char *want = imgpack_reader_class_name(v->reader, (uint32_t)id);
        if (!name || strcmp(name, want) != 0)
            imgpack__verify_problem(
                v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
                "catalog: class %" PRId64 " is named \"%s\", the "
                "store says \"%s\"",
                id, name ? name : "", want);
        if (num_images != rows)
            imgpack__verify_problem(
                v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
                "catalog: class %" PRId64 " has num_images %" PRId64
                " but %" PRId64 " images rows",
                id, num_images, rows);
    }
    imgpack__verify_finish(v, stmt, rc);
    report_missing_classes(v, &expected, (int64_t)classes);
}

/* No path may be packed twice: a duplicated row hides an edited one. */
static void check_duplicate_paths(imgpack__verify *v) {
    sqlite3_stmt *stmt = imgpack__verify_prepare(
        v, "SELECT path, COUNT(*), MIN(idx) FROM images WHERE idx < ?"
           " GROUP BY path HAVING COUNT(*) > 1 ORDER BY MIN(idx)");
    int rc;
    if (!stmt)
        return;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)v->count);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        imgpack__verify_problem(
            v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
            "catalog: path %s is in %" PRId64 " images rows (from "
            "record %" PRId64 ")",
            (const char *)sqlite3_column_text(stmt, 0),
            (int64_t)sqlite3_column_int64(stmt, 1),
            (int64_t)sqlite3_column_int64(stmt, 2));
    imgpack__verify_finish(v, stmt, rc);
}

/*
 * The images rows against the store's catalog_digest (imgpack/verify.h):
 * an edited path, sha256 or class_id changes it. Only a store's own
 * catalog is digested: a combined catalog's indices are the dataset's,
 * and each shard's own catalog is verified with the shard.
 */
static void check_digest(imgpack__verify *v) {
    char want[IMGPACK_CATALOG_DIGEST_HEX], got[IMGPACK_CATALOG_DIGEST_HEX] = "";
    sqlite3_stmt *stmt;
    int rc;
    if (imgpack_reader_num_shards(v->reader) > 1)
        return;
    /* Stores packed before the digest (or resumed from such) lack it; a
       digest that damage deleted left its checksum, which check_meta
       reports. */
    if (!imgpack__verify_store_meta(v, IMGPACK_META_CATALOG_DIGEST, want,
                                    sizeof want))
        return;
    if (!(stmt = imgpack__verify_prepare(
              v, "SELECT idx, class_id, path, sha256 FROM images"
                 " WHERE idx >= 0 AND idx < ? ORDER BY idx")))
        return;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)v->count);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_blob(stmt, 2);
        int path_size = sqlite3_column_bytes(stmt, 2);
        imgpack_catalog_digest_row(got, (uint64_t)sqlite3_column_int64(stmt, 0),
                                   (uint32_t)sqlite3_column_int64(stmt, 1),
                                   path ? path : "", (size_t)path_size,
                                   (const char *)sqlite3_column_text(stmt, 3));
    }
    imgpack__verify_finish(v, stmt, rc);
    if (rc == SQLITE_DONE && strcmp(got[0] ? got : "", want) != 0)
        imgpack__verify_problem(
            v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
            "catalog: the images rows are not the ones packed (a "
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
static void check_dataset_digest(imgpack__verify *v) {
    static const char *const keys[] = {"source", "command", "created",
                                       "skipped"};
    char want[IMGPACK_CATALOG_DIGEST_HEX], got[IMGPACK_CATALOG_DIGEST_HEX] = "";
    if (!imgpack__verify_store_meta(v, IMGPACK_META_CATALOG_DATASET_DIGEST,
                                    want, sizeof want))
        return; /* packed before it existed */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        sqlite3_stmt *stmt = imgpack__verify_prepare(
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
        imgpack__verify_problem(
            v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
            "catalog: dataset source, command, created or skipped "
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
 * and count is not compared. Likewise a stopped append may have committed
 * its last catalog transaction, with the new count and num_classes, and
 * not the LMDB one that publishes them: neither is compared then.
 */
static void check_dataset(imgpack__verify *v) {
    char settings[512] = "", shard[64] = "", state[32] = "";
    uint32_t k = 0, n = 0;
    dataset_key keys[] = {
        {"count", "", 1},      {"num_classes", "", 1}, {"format", "", 1},
        {"resize", "", 1},     {"crop", "", 1},        {"quality", "", 1},
        {"max_pixels", "", 1}, {"state", "", 1},       {"tool_version", "", 1},
        {"skipped", "", 1},    {"source", "", 1},      {"command", "", 1},
        {"created", "", 1},    {"shard", "", 0},       {"shards", "", 0},
    };
    size_t nkeys = sizeof keys / sizeof keys[0];
    int sharded = imgpack_reader_num_shards(v->reader) > 1;
    imgpack__verify_store_meta(v, IMGPACK_META_SETTINGS, settings,
                               sizeof settings);
    imgpack__verify_store_meta(v, IMGPACK_META_STATE, state, sizeof state);
    if (v->complete && !v->stopped_append)
        snprintf(keys[0].expected, sizeof keys[0].expected, "%" PRIu64,
                 v->count);
    if (!v->stopped_append)
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
    imgpack__verify_store_meta(v, IMGPACK_META_TOOL_VERSION, keys[8].expected,
                               sizeof keys[8].expected);
    if (sharded) {
        keys[14].required = 1;
        snprintf(keys[14].expected, sizeof keys[14].expected, "%" PRIu32,
                 imgpack_reader_num_shards(v->reader));
    } else if (imgpack__verify_store_meta(v, IMGPACK_META_SHARD, shard,
                                          sizeof shard) &&
               imgpack__shard_value_parse(shard, &k, &n)) {
        keys[13].required = keys[14].required = 1;
        snprintf(keys[13].expected, sizeof keys[13].expected, "%" PRIu32, k);
        snprintf(keys[14].expected, sizeof keys[14].expected, "%" PRIu32, n);
    }
    for (size_t i = 0; i < nkeys; i++) {
        sqlite3_stmt *stmt = imgpack__verify_prepare(
            v, "SELECT CAST(value AS TEXT) FROM dataset WHERE key = ?");
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
                imgpack__verify_problem(
                    v, IMGPACK_PROBLEM_CATALOG, IMGPACK_PROBLEM_NO_RECORD,
                    "catalog: dataset %s is \"%s\", the store says "
                    "\"%s\"",
                    keys[i].key, got, keys[i].expected);
            rc = sqlite3_step(stmt);
        } else if (rc == SQLITE_DONE && keys[i].required) {
            imgpack__verify_problem(v, IMGPACK_PROBLEM_CATALOG,
                                    IMGPACK_PROBLEM_NO_RECORD,
                                    "catalog: dataset has no %s", keys[i].key);
        }
        imgpack__verify_finish(v, stmt, rc);
    }
    check_dataset_digest(v);
}

/* Notes in v->stopped_append whether an append stopped (meta.h). */
static void stopped_append(imgpack__verify *v) {
    char state[32] = "";
    v->stopped_append = imgpack__verify_store_meta(v, IMGPACK_META_APPEND_STATE,
                                                   state, sizeof state) &&
                        strcmp(state, IMGPACK_META_STATE_APPENDING) == 0;
}

void imgpack__verify_catalog(imgpack__verify *v) {
    char path[4096];
    uint64_t rows_past_count = 0;
    imgpack__error err = {0};
    if (snprintf(path, sizeof path, "%s/catalog.db", v->dir) >=
        (int)sizeof path) {
        imgpack__verify_problem(v, IMGPACK_PROBLEM_CATALOG,
                                IMGPACK_PROBLEM_NO_RECORD,
                                "catalog: path too long");
        return;
    }
    /* Read-only: verify must never change what it checks. */
    if (imgpack__catalog_open_read(&v->db, path, 0, &err) != IMGPACK_OK) {
        imgpack__verify_problem(v, IMGPACK_PROBLEM_CATALOG,
                                IMGPACK_PROBLEM_NO_RECORD, "catalog: %s",
                                imgpack__error_text(&err));
        sqlite3_close(v->db);
        v->db = NULL;
        return;
    }
    imgpack__verify_set_phase(v, IMGPACK__VERIFY_CATALOG);
    stopped_append(v);
    check_integrity(v);
    check_images(v, &rows_past_count);
    check_duplicate_paths(v);
    check_digest(v);
    check_classes(v);
    check_dataset(v);
    if (!v->complete)
        imgpack__verify_problem(v, IMGPACK_PROBLEM_NOTE,
                                IMGPACK_PROBLEM_NO_RECORD,
                                "store: incomplete: the pack stopped after "
                                "%" PRIu64 " records; %" PRIu64
                                " catalog rows past them are ignored",
                                v->count, rows_past_count);
    else if (v->stopped_append)
        imgpack__verify_problem(v, IMGPACK_PROBLEM_NOTE,
                                IMGPACK_PROBLEM_NO_RECORD,
                                "store: an append stopped (run it again); "
                                "%" PRIu64 " catalog rows past the store's "
                                "records are ignored",
                                rows_past_count);
}
