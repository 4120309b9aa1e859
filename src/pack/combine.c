/*
 * imgpack_combine: the dataset-level catalog of a sharded pack.
 *
 * Each shard is a complete store with its own catalog. Once all are
 * complete, their catalogs are merged into OUT_DIR/catalog.db: the class
 * table (counts summed), every image with its global index (the shard's
 * offset added to its own index) and its shard, every reject, and the
 * dataset table of shard 0 with the totals. The merge is written to a
 * temporary file and renamed into place, so a reader of catalog.db sees the
 * old catalog or the new one, never half of one.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "imgpack/pack.h"
#include "store_peek.h"

extern const char imgpack__catalog_schema[];

typedef struct combine_job {
    const char *dir;
    uint32_t count;    /* shards */
    uint64_t *records; /* per shard */
    imgpack__error err;
} combine_job;

/* Finds the shard count from the shard-K-of-N names in `dir`. */
static imgpack_status find_shards(combine_job *job) {
    DIR *d = opendir(job->dir);
    uint32_t k, n;
    if (!d)
        return imgpack__error_set(&job->err, imgpack__status_from_errno(errno),
                                  "%s: %s", job->dir, strerror(errno));
    job->count = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!imgpack__shard_name_parse(e->d_name, &k, &n))
            continue;
        if (job->count != 0 && n != job->count) {
            closedir(d);
            return imgpack__error_set(&job->err, IMGPACK_ERR_INVALID_ARG,
                                      "%s: holds shards of %" PRIu32
                                      " and of %" PRIu32 ": one pack only",
                                      job->dir, job->count, n);
        }
        job->count = n;
    }
    closedir(d);
    if (job->count == 0)
        return imgpack__error_set(&job->err, IMGPACK_ERR_NOT_FOUND,
                                  "%s: no shard-K-of-N directories", job->dir);
    return IMGPACK_OK;
}

/* Checks that shard `name` has `value` as meta `key`, as shard 0 has
   (`first`); shard 0 itself (k 0) only must have one. */
static imgpack_status same_value(combine_job *job, uint32_t k, const char *name,
                                 const char *key, const char *value,
                                 const char *first) {
    if (!value[0])
        return imgpack__error_set(&job->err, IMGPACK_ERR_NOT_A_STORE,
                                  "%s/%s: no '%s' metadata", job->dir, name,
                                  key);
    if (k && strcmp(value, first) != 0)
        return imgpack__error_set(
            &job->err, IMGPACK_ERR_INVALID_ARG,
            "%s: %s and shard-0-of-%" PRIu32 " differ in %s ('%s' "
            "against '%s'): they are not shards of one pack",
            job->dir, name, job->count, key, value, first);
    return IMGPACK_OK;
}

/* Checks that every shard exists, is complete and belongs to the same pack
   as shard 0; records each one's count. */
static imgpack_status check_shards(combine_job *job) {
    imgpack__store_summary first = {0}, shard;
    char name[IMGPACK__SHARD_NAME_SIZE], path[4096];
    imgpack_status status = IMGPACK_OK;
    for (uint32_t k = 0; k < job->count && status == IMGPACK_OK; k++) {
        imgpack__error why;
        imgpack__error_clear(&why);
        imgpack__shard_name(name, k, job->count);
        snprintf(path, sizeof path, "%s/%s", job->dir, name);
        if (access(path, F_OK) != 0) {
            status = imgpack__error_set(&job->err, IMGPACK_ERR_NOT_FOUND,
                                        "%s: %s is missing", job->dir, name);
            break;
        }
        if ((status = imgpack__store_peek(path, &shard, &why))) {
            imgpack__error_set(&job->err, status, "%s",
                               imgpack__error_text(&why));
            break;
        }
        job->records[k] = shard.count;
        if (k == 0)
            first = shard;
        if (!(status =
                  same_value(job, k, name, IMGPACK_META_SETTINGS,
                             shard.header.settings, first.header.settings)))
            status = same_value(job, k, name, IMGPACK_META_SOURCE_DIGEST,
                                shard.header.source_digest,
                                first.header.source_digest);
        if (k > 0)
            imgpack__store_header_free(&shard.header);
    }
    imgpack__store_header_free(&first.header);
    return status;
}

static imgpack_status sql(combine_job *job, sqlite3 *db, const char *text) {
    if (sqlite3_exec(db, text, NULL, NULL, NULL) != SQLITE_OK)
        return imgpack__error_set(&job->err, IMGPACK_ERR_CATALOG,
                                  "%s: combining the catalogs: %s", job->dir,
                                  sqlite3_errmsg(db));
    return IMGPACK_OK;
}

/* Merges shard k's catalog, attached as `s`. */
static imgpack_status merge_shard(combine_job *job, sqlite3 *db, uint32_t k,
                                  uint64_t offset) {
    char text[1024];
    imgpack_status status = IMGPACK_OK;
    if (k == 0)
        status = sql(job, db,
                     "INSERT INTO classes SELECT class_id, name, description,"
                     " 0 FROM s.classes;"
                     "INSERT INTO dataset SELECT key, value FROM s.dataset"
                     " WHERE key NOT IN ('shard', 'resumes')");
    snprintf(text, sizeof text,
             "UPDATE classes SET num_images = num_images + (SELECT"
             " num_images FROM s.classes AS o WHERE o.class_id ="
             " classes.class_id);"
             "INSERT INTO images SELECT idx + %" PRIu64 ", class_id, path,"
             " src_width, src_height, src_bytes, stored_bytes, sha256, %" PRIu32
             " FROM s.images WHERE idx < %" PRIu64 ";"
             "INSERT INTO rejects SELECT position, path, class_id, reason,"
             " %" PRIu32 " FROM s.rejects",
             offset, k, job->records[k], k);
    if (status == IMGPACK_OK)
        status = sql(job, db, text);
    return status;
}

static imgpack_status write_catalog(combine_job *job, const char *path) {
    sqlite3 *db = NULL;
    sqlite3_stmt *attach = NULL;
    imgpack_status status = IMGPACK_OK;
    uint64_t offset = 0;
    char text[512], now[32];
    time_t t = time(NULL);
    struct tm tm;

    unlink(path);
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        status = imgpack__error_set(&job->err, IMGPACK_ERR_CATALOG, "%s: %s",
                                    path, sqlite3_errmsg(db));
        goto out;
    }
    /* The file only becomes catalog.db by the rename at the end, so each
       shard can commit on its own (a transaction would forbid DETACH). */
    if ((status = sql(job, db, imgpack__catalog_schema)))
        goto out;
    if (sqlite3_prepare_v2(db, "ATTACH ? AS s", -1, &attach, NULL) !=
        SQLITE_OK) {
        status = sql(job, db, "ATTACH");
        goto out;
    }
    for (uint32_t k = 0; k < job->count && status == IMGPACK_OK; k++) {
        char shard_catalog[4096], name[IMGPACK__SHARD_NAME_SIZE];
        imgpack__shard_name(name, k, job->count);
        snprintf(shard_catalog, sizeof shard_catalog,
                 "file:%s/%s/catalog.db?mode=ro", job->dir, name);
        sqlite3_bind_text(attach, 1, shard_catalog, -1, SQLITE_STATIC);
        int rc = sqlite3_step(attach);
        sqlite3_reset(attach);
        if (rc != SQLITE_DONE) {
            status = sql(job, db, "ATTACH");
            break;
        }
        if (!(status = sql(job, db, "BEGIN")) &&
            !(status = merge_shard(job, db, k, offset)) &&
            !(status = sql(job, db, "COMMIT")))
            status = sql(job, db, "DETACH s");
        offset += job->records[k];
    }
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(text, sizeof text,
             "INSERT OR REPLACE INTO dataset VALUES ('count', %" PRIu64 "),"
             " ('shards', %" PRIu32 "), ('state', 'complete'),"
             " ('combined', '%s')",
             offset, job->count, now);
    if (status == IMGPACK_OK)
        status = sql(job, db, text);
out:
    sqlite3_finalize(attach);
    sqlite3_close(db);
    return status;
}

imgpack_status imgpack_combine(const char *dir, char *message,
                               uint64_t message_size) {
    combine_job job = {.dir = dir};
    char temporary[4096], final[4096];
    imgpack_status status;

    imgpack__error_clear(&job.err);
    if (!(status = find_shards(&job))) {
        job.records = calloc(job.count, sizeof *job.records);
        status = job.records ? check_shards(&job)
                             : imgpack__error_set(&job.err, IMGPACK_ERR_NOMEM,
                                                  "out of memory");
    }
    snprintf(temporary, sizeof temporary, "%s/catalog.db.tmp", dir);
    snprintf(final, sizeof final, "%s/catalog.db", dir);
    if (status == IMGPACK_OK)
        status = write_catalog(&job, temporary);
    if (status == IMGPACK_OK && rename(temporary, final) != 0)
        status = imgpack__error_set(&job.err, imgpack__status_from_errno(errno),
                                    "%s: %s", final, strerror(errno));
    if (status != IMGPACK_OK)
        unlink(temporary);
    if (message && message_size)
        snprintf(message, message_size, "%s", imgpack__error_text(&job.err));
    free(job.records);
    return status;
}
