/*
 * Writing the SQLite catalog. The schema text comes from schema/catalog.sql,
 * embedded at build time. Statements are prepared once; every value is bound
 * as a parameter, so names with quotes or SQL in them are just data.
 *
 * While packing, the journal is WAL with synchronous=FULL: each batch commit
 * is durable before the writer commits the same batch in LMDB.
 */
#include "catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

extern const char imgpack__catalog_schema[];

/* Room a catalog write may want: a batch's rows and their WAL frames stay
   well below it. */
#define WRITE_MARGIN ((uint64_t)1 << 20)

/* Whether a write to the catalog at `path` failing now is for want of
   room: the filesystem has less than WRITE_MARGIN free (*limit 0), or the
   catalog or its WAL is within WRITE_MARGIN of the file size limit
   (*limit 1). SQLite does not always say: a short write to the WAL or a
   checkpoint's comes back as a plain I/O error. */
static int out_of_room(const char *path, int *limit) {
    static const char *const suffixes[] = {"", "-wal"};
    char file[4096];
    struct statvfs fs;
    struct rlimit rl;
    struct stat st;
    *limit = 1;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
            snprintf(file, sizeof file, "%s%s", path, suffixes[i]);
            if (stat(file, &st) == 0 &&
                (uint64_t)st.st_size + WRITE_MARGIN > rl.rlim_cur)
                return 1;
        }
    *limit = 0;
    snprintf(file, sizeof file, "%s", path);
    char *slash = strrchr(file, '/');
    if (slash)
        *slash = '\0';
    return statvfs(slash ? file : ".", &fs) == 0 &&
           (uint64_t)fs.f_bavail * fs.f_frsize < WRITE_MARGIN;
}

/*
 * Says why SQLite failed. A full disk or a file size limit gets the
 * store's words for it whichever database meets it first: SQLite reports
 * it as SQLITE_FULL ("database or disk is full") or as an I/O error.
 */
static imgpack_status fail(imgpack__catalog *c, imgpack__error *err,
                           const char *what) {
    const char *text = c->db ? sqlite3_errmsg(c->db) : "";
    int code = c->db ? sqlite3_errcode(c->db) : SQLITE_OK, limit = 0;
    if ((code == SQLITE_FULL || code == SQLITE_IOERR) &&
        (out_of_room(c->path, &limit) || code == SQLITE_FULL))
        return imgpack__error_set(err, IMGPACK_ERR_NO_SPACE,
                                  limit ? "%s: the file size limit (ulimit "
                                          "-f) is reached (%s: %s)"
                                        : "%s: no space left on the device "
                                          "(%s: %s)",
                                  c->path, what, text);
    return imgpack__error_set(err, IMGPACK_ERR_CATALOG, "%s: %s: %s", c->path,
                              what, text);
}

static imgpack_status exec(imgpack__catalog *c, const char *sql,
                           imgpack__error *err) {
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fail(c, err, sql);
    return IMGPACK_OK;
}

static imgpack_status prepare(imgpack__catalog *c, const char *sql,
                              sqlite3_stmt **stmt, imgpack__error *err) {
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt,
                           NULL) != SQLITE_OK)
        return fail(c, err, "cannot prepare a statement");
    return IMGPACK_OK;
}

/* Runs a statement whose parameters are bound, then resets it. */
static imgpack_status step(imgpack__catalog *c, sqlite3_stmt *stmt,
                           imgpack__error *err, const char *what) {
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE)
        return fail(c, err, what);
    return IMGPACK_OK;
}

/* Opens `path` with `flags`, sets the pack's pragmas, runs `schema` when
   given, and prepares the writer's statements. */
static imgpack_status open_catalog(imgpack__catalog *c, const char *path,
                                   int flags, const char *schema, int64_t shard,
                                   imgpack__error *err) {
    imgpack_status status;
    memset(c, 0, sizeof *c);
    c->shard = shard;
    c->path = strdup(path);
    if (!c->path)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "%s: out of memory",
                                  path);
    if (sqlite3_open_v2(path, &c->db,
                        flags | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        status = fail(c, err, "cannot open the catalog");
        goto out;
    }
    /* The schema is one transaction: one sync instead of one per table. */
    if ((status = exec(c, "PRAGMA journal_mode=WAL", err)) ||
        (status = exec(c, "PRAGMA synchronous=FULL", err)) ||
        (status = exec(c, "PRAGMA foreign_keys=ON", err)) ||
        (schema && ((status = imgpack__catalog_begin(c, err)) ||
                    (status = exec(c, schema, err)) ||
                    (status = imgpack__catalog_commit(c, err)))))
        goto out;
    if ((status = prepare(c,
                          "INSERT INTO images (idx, class_id, path, src_width,"
                          " src_height, src_bytes, stored_bytes, sha256, shard)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          &c->insert_image, err)) ||
        (status = prepare(c,
                          "INSERT INTO rejects (position, path, class_id,"
                          " reason, shard) VALUES (?, ?, ?, ?, ?)",
                          &c->insert_reject, err)) ||
        (status = prepare(c,
                          "UPDATE classes SET num_images = num_images + ?"
                          " WHERE class_id = ?",
                          &c->add_class_images, err)) ||
        (status = prepare(c,
                          "INSERT OR REPLACE INTO dataset (key, value)"
                          " VALUES (?, ?)",
                          &c->set_dataset, err)))
        goto out;
out:
    if (status != IMGPACK_OK)
        imgpack__catalog_close(c);
    return status;
}

imgpack_status imgpack__catalog_create(imgpack__catalog *c, const char *path,
                                       int64_t shard, imgpack__error *err) {
    return open_catalog(c, path, SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE,
                        imgpack__catalog_schema, shard, err);
}

imgpack_status imgpack__catalog_reopen(imgpack__catalog *c, const char *path,
                                       int64_t shard, imgpack__error *err) {
    return open_catalog(c, path, 0, NULL, shard, err);
}

/* Runs `sql` with `value` bound to its one parameter. */
static imgpack_status exec_with(imgpack__catalog *c, const char *sql,
                                int64_t value, imgpack__error *err) {
    sqlite3_stmt *stmt;
    imgpack_status status = prepare(c, sql, &stmt, err);
    if (status != IMGPACK_OK)
        return status;
    sqlite3_bind_int64(stmt, 1, value);
    status = step(c, stmt, err, sql);
    sqlite3_finalize(stmt);
    return status;
}

/* Drops image rows from `count` on and rejects from `next_position` on,
   in the open transaction. */
static imgpack_status drop_rows_past(imgpack__catalog *c, uint64_t count,
                                     uint64_t next_position,
                                     imgpack__error *err) {
    imgpack_status status =
        exec_with(c, "DELETE FROM images WHERE idx >= ?", (int64_t)count, err);
    return status ? status
                  : exec_with(c, "DELETE FROM rejects WHERE position >= ?",
                              (int64_t)next_position, err);
}

/* Sets every class's num_images to its rows, in the open transaction. */
static imgpack_status recount_classes(imgpack__catalog *c,
                                      imgpack__error *err) {
    return exec(c,
                "UPDATE classes SET num_images = (SELECT COUNT(*)"
                " FROM images WHERE images.class_id = classes.class_id)",
                err);
}

imgpack_status imgpack__catalog_rewind(imgpack__catalog *c, uint64_t count,
                                       uint64_t next_position,
                                       imgpack__error *err) {
    imgpack_status status;
    if ((status = imgpack__catalog_begin(c, err)) ||
        (status = drop_rows_past(c, count, next_position, err)) ||
        (status = recount_classes(c, err)) ||
        (status = imgpack__catalog_set_int(c, "count", (int64_t)count, err)) ||
        (status = imgpack__catalog_bump(c, "resumes", err)))
        return status;
    return imgpack__catalog_commit(c, err);
}

imgpack_status imgpack__catalog_bump(imgpack__catalog *c, const char *key,
                                     imgpack__error *err) {
    sqlite3_stmt *stmt;
    const char *sql = "INSERT OR REPLACE INTO dataset (key, value) VALUES"
                      " (?1, 1 + COALESCE((SELECT value FROM dataset"
                      " WHERE key = ?1), 0))";
    imgpack_status status = prepare(c, sql, &stmt, err);
    if (status != IMGPACK_OK)
        return status;
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
    status = step(c, stmt, err, sql);
    sqlite3_finalize(stmt);
    return status;
}

imgpack_status
imgpack__catalog_begin_append(imgpack__catalog *c, uint64_t count,
                              uint64_t next_position, uint32_t old_classes,
                              uint32_t num_classes, char *const *names,
                              char *const *descriptions, imgpack__error *err) {
    imgpack_status status;
    if ((status = imgpack__catalog_begin(c, err)) ||
        (status = drop_rows_past(c, count, next_position, err)) ||
        (status = exec_with(c, "DELETE FROM classes WHERE class_id >= ?",
                            old_classes, err)))
        return status;
    for (uint32_t i = old_classes; i < num_classes && !status; i++)
        status =
            imgpack__catalog_add_class(c, i, names[i], descriptions[i], err);
    if (status || (status = recount_classes(c, err)) ||
        (status = imgpack__catalog_set_text(
             c, "record_order",
             "appended records follow the existing ones; class ids and "
             "record indices never change",
             err)))
        return status;
    return imgpack__catalog_commit(c, err);
}

imgpack_status imgpack__catalog_read_back(imgpack__catalog *c, uint64_t count,
                                          uint32_t *labels, uint64_t *rejected,
                                          uint64_t *bytes,
                                          imgpack__error *err) {
    imgpack_status status;
    sqlite3_stmt *stmt;
    uint64_t seen = 0;
    if ((status = prepare(c,
                          "SELECT idx, class_id, stored_bytes FROM images"
                          " ORDER BY idx",
                          &stmt, err)))
        return status;
    *bytes = 0;
    while (sqlite3_step(stmt) == SQLITE_ROW && seen < count) {
        if ((uint64_t)sqlite3_column_int64(stmt, 0) != seen)
            break;
        labels[seen++] = (uint32_t)sqlite3_column_int64(stmt, 1);
        *bytes += (uint64_t)sqlite3_column_int64(stmt, 2);
    }
    sqlite3_finalize(stmt);
    if (seen != count)
        return imgpack__error_set(
            err, IMGPACK_ERR_CORRUPT, "%s: has no row for record %llu of %llu",
            c->path, (unsigned long long)seen, (unsigned long long)count);
    if ((status = prepare(c, "SELECT COUNT(*) FROM rejects", &stmt, err)))
        return status;
    *rejected = sqlite3_step(stmt) == SQLITE_ROW
                    ? (uint64_t)sqlite3_column_int64(stmt, 0)
                    : 0;
    sqlite3_finalize(stmt);
    return IMGPACK_OK;
}

imgpack_status imgpack__catalog_add_class(imgpack__catalog *c,
                                          uint32_t class_id, const char *name,
                                          const char *description,
                                          imgpack__error *err) {
    sqlite3_stmt *stmt;
    imgpack_status status = prepare(
        c, "INSERT INTO classes (class_id, name, description) VALUES (?, ?, ?)",
        &stmt, err);
    if (status != IMGPACK_OK)
        return status;
    sqlite3_bind_int64(stmt, 1, class_id);
    sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
    if (description)
        sqlite3_bind_text(stmt, 3, description, -1, SQLITE_STATIC);
    status = step(c, stmt, err, "cannot insert a class");
    sqlite3_finalize(stmt);
    return status;
}

imgpack_status imgpack__catalog_begin(imgpack__catalog *c,
                                      imgpack__error *err) {
    return exec(c, "BEGIN IMMEDIATE", err);
}

imgpack_status imgpack__catalog_commit(imgpack__catalog *c,
                                       imgpack__error *err) {
    return exec(c, "COMMIT", err);
}

void imgpack__catalog_abort(imgpack__catalog *c) {
    if (c->db && !sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

imgpack_status imgpack__catalog_add_image(imgpack__catalog *c,
                                          const imgpack__catalog_image *img,
                                          imgpack__error *err) {
    sqlite3_stmt *s = c->insert_image;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)img->idx);
    sqlite3_bind_int64(s, 2, img->class_id);
    sqlite3_bind_text(s, 3, img->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, img->src_width);
    sqlite3_bind_int64(s, 5, img->src_height);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)img->src_bytes);
    sqlite3_bind_int64(s, 7, (sqlite3_int64)img->stored_bytes);
    sqlite3_bind_text(s, 8, img->sha256, -1, SQLITE_STATIC);
    if (c->shard >= 0)
        sqlite3_bind_int64(s, 9, c->shard);
    return step(c, s, err, "cannot insert an image");
}

imgpack_status imgpack__catalog_add_reject(imgpack__catalog *c,
                                           uint64_t position, const char *path,
                                           uint32_t class_id,
                                           const char *reason,
                                           imgpack__error *err) {
    sqlite3_stmt *s = c->insert_reject;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)position);
    sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC);
    if (class_id != IMGPACK__NO_CLASS)
        sqlite3_bind_int64(s, 3, class_id);
    sqlite3_bind_text(s, 4, reason, -1, SQLITE_STATIC);
    if (c->shard >= 0)
        sqlite3_bind_int64(s, 5, c->shard);
    return step(c, s, err, "cannot insert a reject");
}

imgpack_status imgpack__catalog_count_images(imgpack__catalog *c,
                                             uint32_t class_id, uint64_t n,
                                             imgpack__error *err) {
    sqlite3_stmt *s = c->add_class_images;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)n);
    sqlite3_bind_int64(s, 2, class_id);
    return step(c, s, err, "cannot count a class's images");
}

imgpack_status imgpack__catalog_set_text(imgpack__catalog *c, const char *key,
                                         const char *value,
                                         imgpack__error *err) {
    sqlite3_stmt *s = c->set_dataset;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    return step(c, s, err, "cannot set a dataset value");
}

imgpack_status imgpack__catalog_set_int(imgpack__catalog *c, const char *key,
                                        int64_t value, imgpack__error *err) {
    sqlite3_stmt *s = c->set_dataset;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, value);
    return step(c, s, err, "cannot set a dataset value");
}

imgpack_status imgpack__catalog_finish(imgpack__catalog *c,
                                       imgpack__error *err) {
    return exec(c, "PRAGMA journal_mode=DELETE", err);
}

void imgpack__catalog_close(imgpack__catalog *c) {
    sqlite3_finalize(c->insert_image);
    sqlite3_finalize(c->insert_reject);
    sqlite3_finalize(c->add_class_images);
    sqlite3_finalize(c->set_dataset);
    sqlite3_close(c->db);
    free(c->path);
    memset(c, 0, sizeof *c);
}

imgpack_status imgpack__catalog_remove(const char *path, imgpack__error *err) {
    /* The main file last: while it exists, the others may be its. */
    static const char *const suffixes[] = {"-wal", "-shm", "-journal", ""};
    char file[4096];
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        snprintf(file, sizeof file, "%s%s", path, suffixes[i]);
        if (unlink(file) != 0 && errno != ENOENT)
            return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                      "%s: cannot remove: %s", file,
                                      strerror(errno));
    }
    return IMGPACK_OK;
}
