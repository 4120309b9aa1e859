/*
 * The public catalog API (imgpack/catalog.h): a store's catalog.db read
 * through one SQLite connection, plus the one write that is not the
 * packer's, the statistics of `imgpack stats`. The packer's writing side
 * is catalog.c; the SQL both sides agree on is schema/catalog.sql.
 *
 * Each listing is read whole into memory the handle owns (a catalog holds
 * thousands of classes, rejects and keys at most, not the images rows),
 * its strings copied out of SQLite, since SQLite's text is only valid
 * until the statement steps again.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "error.h"
#include "imgpack/catalog.h"

/* How long a statistics write waits for another writer (a second stats or
   a user's sqlite3 shell may hold the lock briefly). */
#define CATALOG_BUSY_MS 5000

/* Characters of one stored statistics array: "[" and 32 per value. */
#define STATS_TEXT_PER_VALUE 32

/* One listing's rows and the strings they point to, all owned here. */
typedef struct listing {
    void *rows;
    uint64_t count, capacity;
    char **strings;
    uint64_t num_strings, strings_capacity;
} listing;

struct imgpack_catalog {
    sqlite3 *db;
    char *path;
    imgpack__error err;
    listing classes, rejects, entries;
    char *value; /* imgpack_catalog_dataset_get's */
};

static imgpack_status fail_sql(imgpack_catalog *c) {
    return imgpack__error_set(&c->err, IMGPACK_ERR_CATALOG, "%s: %s", c->path,
                              sqlite3_errmsg(c->db));
}

static imgpack_status fail_nomem(imgpack_catalog *c) {
    return imgpack__error_set(&c->err, IMGPACK_ERR_NOMEM, "%s: out of memory",
                              c->path);
}

imgpack_status imgpack__catalog_open_read(sqlite3 **db, const char *path,
                                          int writable, imgpack__error *err) {
    int flags = writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    *db = NULL;
    /* sqlite3_open_v2 would report a missing file as "unable to open":
       say what is wrong instead. */
    if (access(path, F_OK) != 0)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: %s", path, strerror(errno));
    if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK)
        return imgpack__error_set(err, IMGPACK_ERR_CATALOG,
                                  "cannot open %s: %s", path,
                                  *db ? sqlite3_errmsg(*db) : "out of memory");
    return IMGPACK_OK;
}

imgpack_status imgpack_catalog_open(imgpack_catalog **out,
                                    const char *store_dir, uint32_t flags) {
    imgpack_catalog *c = calloc(1, sizeof *c);
    imgpack_status status;
    *out = c;
    if (!c)
        return IMGPACK_ERR_NOMEM;
    if (!store_dir || (flags & ~(uint32_t)IMGPACK_CATALOG_WRITE))
        return imgpack__error_set(&c->err, IMGPACK_ERR_INVALID_ARG,
                                  "imgpack_catalog_open: no store or unknown "
                                  "flags 0x%" PRIx32,
                                  flags);
    size_t size = strlen(store_dir) + sizeof "/catalog.db";
    if (!(c->path = malloc(size)))
        return imgpack__error_set(&c->err, IMGPACK_ERR_NOMEM,
                                  "%s: out of memory", store_dir);
    snprintf(c->path, size, "%s/catalog.db", store_dir);
    status = imgpack__catalog_open_read(
        &c->db, c->path, (flags & IMGPACK_CATALOG_WRITE) != 0, &c->err);
    if (status == IMGPACK_OK && (flags & IMGPACK_CATALOG_WRITE))
        sqlite3_busy_timeout(c->db, CATALOG_BUSY_MS);
    return status;
}

static void free_listing(listing *l) {
    for (uint64_t i = 0; i < l->num_strings; i++)
        free(l->strings[i]);
    free(l->strings);
    free(l->rows);
    memset(l, 0, sizeof *l);
}

void imgpack_catalog_close(imgpack_catalog *c) {
    if (!c)
        return;
    free_listing(&c->classes);
    free_listing(&c->rejects);
    free_listing(&c->entries);
    free(c->value);
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

const char *imgpack_catalog_errmsg(const imgpack_catalog *c) {
    return c ? imgpack__error_text(&c->err) : "out of memory";
}

/* Grows *items (of `size`-byte elements) so that item `n` fits; 0 or
   -1. */
static int make_room(void *items, uint64_t n, uint64_t *capacity, size_t size) {
    void **at = items;
    if (n < *capacity)
        return 0;
    uint64_t more = *capacity ? 2 * *capacity : 64;
    void *bigger = realloc(*at, more * size);
    if (!bigger)
        return -1;
    *at = bigger;
    *capacity = more;
    return 0;
}

/* A copy of column `column`'s text kept by `l`; `or_null` when it is
   NULL (NULL too: none). Sets *nomem when memory ran out. */
static const char *copy_text(listing *l, sqlite3_stmt *stmt, int column,
                             const char *or_null, int *nomem) {
    const char *text = (const char *)sqlite3_column_text(stmt, column);
    char *copy;
    if (!text && !or_null)
        return NULL;
    if (make_room(&l->strings, l->num_strings, &l->strings_capacity,
                  sizeof *l->strings) ||
        !(copy = strdup(text ? text : or_null))) {
        *nomem = 1;
        return NULL;
    }
    l->strings[l->num_strings++] = copy;
    return copy;
}

/* Prepares `sql` on the handle's connection; IMGPACK_OK or its error. */
static imgpack_status prepare(imgpack_catalog *c, const char *sql,
                              sqlite3_stmt **stmt) {
    if (!c->db)
        return imgpack__error_set(&c->err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: not open", c->path ? c->path : "?");
    imgpack__error_clear(&c->err);
    if (sqlite3_prepare_v2(c->db, sql, -1, stmt, NULL) != SQLITE_OK)
        return fail_sql(c);
    return IMGPACK_OK;
}

/* Ends a listing: SQLITE_DONE is success, anything else SQLite's error;
   running out of memory on the way wins. */
static imgpack_status finish(imgpack_catalog *c, sqlite3_stmt *stmt, int rc,
                             int nomem) {
    imgpack_status status = IMGPACK_OK;
    if (nomem)
        status = fail_nomem(c);
    else if (rc != SQLITE_DONE)
        status = fail_sql(c);
    sqlite3_finalize(stmt);
    return status;
}

/* Fills one row from the statement's current result. */
typedef void (*fill_row)(listing *l, void *row, sqlite3_stmt *stmt, int *nomem);

/* Reads every result of `sql` into `l`, a row of `size` bytes each, and
   says in *count how many there are (0 on failure). */
static imgpack_status read_listing(imgpack_catalog *c, listing *l,
                                   const char *sql, size_t size, fill_row fill,
                                   uint64_t *count) {
    sqlite3_stmt *stmt;
    int rc = SQLITE_DONE, nomem = 0;
    free_listing(l);
    imgpack_status status = prepare(c, sql, &stmt);
    if (status != IMGPACK_OK)
        goto done;
    while (!nomem && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (make_room(&l->rows, l->count, &l->capacity, size)) {
            nomem = 1;
            break;
        }
        fill(l, (char *)l->rows + l->count++ * size, stmt, &nomem);
    }
    if ((status = finish(c, stmt, rc, nomem)) != IMGPACK_OK)
        free_listing(l);
done:
    *count = l->count;
    return status;
}

static void fill_class(listing *l, void *row, sqlite3_stmt *stmt, int *nomem) {
    imgpack_catalog_class *cls = row;
    cls->class_id = sqlite3_column_int64(stmt, 0);
    cls->name = copy_text(l, stmt, 1, "", nomem);
    cls->description = copy_text(l, stmt, 2, NULL, nomem);
    cls->num_images = sqlite3_column_int64(stmt, 3);
    cls->weight = sqlite3_column_type(stmt, 4) == SQLITE_NULL
                      ? -1.0
                      : sqlite3_column_double(stmt, 4);
}

imgpack_status imgpack_catalog_classes(imgpack_catalog *c,
                                       const imgpack_catalog_class **rows,
                                       uint64_t *count) {
    imgpack_status status = read_listing(
        c, &c->classes,
        "SELECT w.class_id, w.name, c.description, w.num_images, w.weight "
        "FROM class_weights AS w JOIN classes AS c USING (class_id) "
        "ORDER BY w.class_id",
        sizeof **rows, fill_class, count);
    *rows = c->classes.rows;
    return status;
}

static void fill_reject(listing *l, void *row, sqlite3_stmt *stmt, int *nomem) {
    imgpack_catalog_reject *reject = row;
    reject->path = copy_text(l, stmt, 0, "", nomem);
    reject->reason = copy_text(l, stmt, 1, "", nomem);
}

imgpack_status imgpack_catalog_rejects(imgpack_catalog *c,
                                       const imgpack_catalog_reject **rows,
                                       uint64_t *count) {
    imgpack_status status = read_listing(
        c, &c->rejects, "SELECT path, reason FROM rejects ORDER BY rowid",
        sizeof **rows, fill_reject, count);
    *rows = c->rejects.rows;
    return status;
}

imgpack_status imgpack_catalog_num_rejects(imgpack_catalog *c,
                                           uint64_t *count) {
    sqlite3_stmt *stmt;
    int rc;
    *count = 0;
    imgpack_status status = prepare(c, "SELECT COUNT(*) FROM rejects", &stmt);
    if (status != IMGPACK_OK)
        return status;
    if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        *count = (uint64_t)sqlite3_column_int64(stmt, 0);
        rc = sqlite3_step(stmt);
    }
    return finish(c, stmt, rc, 0);
}

static void fill_entry(listing *l, void *row, sqlite3_stmt *stmt, int *nomem) {
    imgpack_catalog_entry *entry = row;
    entry->key = copy_text(l, stmt, 0, "", nomem);
    entry->value = copy_text(l, stmt, 1, "", nomem);
}

imgpack_status imgpack_catalog_dataset(imgpack_catalog *c,
                                       const imgpack_catalog_entry **rows,
                                       uint64_t *count) {
    imgpack_status status = read_listing(
        c, &c->entries,
        "SELECT key, CAST(value AS TEXT) FROM dataset ORDER BY key",
        sizeof **rows, fill_entry, count);
    *rows = c->entries.rows;
    return status;
}

imgpack_status imgpack_catalog_dataset_get(imgpack_catalog *c, const char *key,
                                           const char **value) {
    sqlite3_stmt *stmt;
    int rc, nomem = 0;
    free(c->value);
    c->value = NULL;
    *value = NULL;
    imgpack_status status = prepare(
        c, "SELECT CAST(value AS TEXT) FROM dataset WHERE key = ?", &stmt);
    if (status != IMGPACK_OK)
        return status;
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_TRANSIENT);
    if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        nomem = !(c->value = strdup(text ? text : ""));
        rc = sqlite3_step(stmt);
    } else if (rc == SQLITE_DONE) {
        sqlite3_finalize(stmt);
        return imgpack__error_set(&c->err, IMGPACK_ERR_NOT_FOUND,
                                  "%s: no dataset key %s", c->path, key);
    }
    if ((status = finish(c, stmt, rc, nomem)) == IMGPACK_OK)
        *value = c->value;
    return status;
}

/* Parses a JSON array of numbers, "[0.485, 0.456, 0.406]", into at most
   `capacity` values; their number, or -1 when it is not one. */
static int64_t parse_array(const char *text, double *out, uint32_t capacity) {
    const char *at = text;
    char *end;
    int64_t n = 0;
    while (*at == ' ')
        at++;
    if (*at++ != '[')
        return -1;
    for (;;) {
        while (*at == ' ')
            at++;
        if (*at == ']' && n == 0)
            break;
        if ((uint64_t)n == capacity)
            return -1;
        out[n++] = strtod(at, &end);
        if (end == at)
            return -1;
        for (at = end; *at == ' '; at++) {
        }
        if (*at == ']')
            break;
        if (*at++ != ',')
            return -1;
    }
    for (at++; *at == ' '; at++) {
    }
    return *at ? -1 : n;
}

imgpack_status imgpack_catalog_stats(imgpack_catalog *c, double *mean,
                                     double *std, uint32_t capacity,
                                     uint32_t *channels) {
    const char *text;
    int64_t n_mean, n_std;
    *channels = 0;
    imgpack_status status = imgpack_catalog_dataset_get(c, "mean", &text);
    if (status != IMGPACK_OK)
        return status;
    n_mean = parse_array(text, mean, capacity);
    if ((status = imgpack_catalog_dataset_get(c, "std", &text)) != IMGPACK_OK)
        return status;
    n_std = parse_array(text, std, capacity);
    if (n_mean < 1 || n_mean != n_std)
        return imgpack__error_set(&c->err, IMGPACK_ERR_CORRUPT,
                                  "%s: dataset mean and std are not two "
                                  "arrays of 1..%" PRIu32 " numbers alike",
                                  c->path, capacity);
    *channels = (uint32_t)n_mean;
    return IMGPACK_OK;
}

/* `values` as a JSON array, exact (%.17g) so they read back the same. */
static char *format_array(const double *values, uint32_t n) {
    size_t size = 2 + (size_t)n * STATS_TEXT_PER_VALUE, used = 0;
    char *text = malloc(size);
    if (!text)
        return NULL;
    text[used++] = '[';
    for (uint32_t i = 0; i < n; i++)
        used += (size_t)snprintf(text + used, size - used, "%s%.17g",
                                 i ? ", " : "", values[i]);
    snprintf(text + used, size - used, "]");
    return text;
}

/* The statistics could not be written: say so, with SQLite's reason. */
static imgpack_status fail_store(imgpack_catalog *c) {
    return imgpack__error_set(&c->err, IMGPACK_ERR_CATALOG,
                              "%s: cannot store the statistics: %s", c->path,
                              sqlite3_errmsg(c->db));
}

imgpack_status imgpack_catalog_stats_store(imgpack_catalog *c,
                                           const double *mean,
                                           const double *std, uint32_t channels,
                                           uint64_t records, int32_t sampled,
                                           uint64_t seed) {
    sqlite3_stmt *stmt = NULL;
    char seed_text[32];
    char *mean_text = format_array(mean, channels);
    char *std_text = format_array(std, channels);
    imgpack_status status = IMGPACK_OK;
    if (!mean_text || !std_text) {
        status = fail_nomem(c);
        goto out;
    }
    if ((status = prepare(c,
                          "INSERT OR REPLACE INTO dataset (key, value) "
                          "VALUES ('mean', ?1), ('std', ?2), "
                          "('stats_records', ?3), ('stats_seed', ?4)",
                          &stmt)) != IMGPACK_OK)
        goto out;
    sqlite3_bind_text(stmt, 1, mean_text, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, std_text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)records);
    snprintf(seed_text, sizeof seed_text, "%" PRIu64, seed);
    if (sampled)
        sqlite3_bind_text(stmt, 4, seed_text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(stmt, 4);
    /* IMMEDIATE: take the write lock before reading anything, so a busy
       catalog waits here rather than failing halfway. */
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        status = fail_store(c);
        goto out;
    }
    if (sqlite3_step(stmt) != SQLITE_DONE ||
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        status = fail_store(c);
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
out:
    sqlite3_finalize(stmt);
    free(std_text);
    free(mean_text);
    return status;
}
