/*
 * Writing an LMDB store. Records are appended with MDB_APPEND: keys are
 * big-endian record numbers, so byte order is insertion order and LMDB
 * fills pages densely without searching. The map is sized lazily: before
 * each batch it is grown if the batch might not fit, and a MDB_MAP_FULL
 * that still happens aborts the transaction, doubles the map and retries,
 * so the user never sizes anything.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "record.h"

/* LMDB needs slack beyond the payload bytes: page headers, branch pages
   and the copy-on-write pages of the metadata; one eighth is generous. */
#define MAP_SLACK_DIVISOR 8

imgpack_status imgpack__store_fail(imgpack__error *err, int rc,
                                   const char *dir, const char *what) {
    imgpack_status code = IMGPACK_ERR_STORE;
    if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG)
        code = IMGPACK_ERR_NO_SPACE;
    else if (rc == ENOMEM)
        code = IMGPACK_ERR_NOMEM;
    else if (rc == EACCES || rc == EROFS || rc == EIO)
        code = IMGPACK_ERR_IO;
    return imgpack__error_set(err, code, "%s: %s: %s", dir, what,
                              mdb_strerror(rc));
}

/* Opens the environment in `dir`, creating the databases if `create`. */
static imgpack_status open_env(imgpack__store *s, const char *dir, int create,
                               imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    unsigned int db_flags = create ? MDB_CREATE : 0;
    MDB_txn *txn = NULL;
    MDB_envinfo info;
    int rc;

    s->dir = strdup(dir);
    if (!s->dir)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "%s: out of memory",
                                  dir);
    s->map_size = IMGPACK__STORE_INITIAL_MAP;
    if ((rc = mdb_env_create(&s->env)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, 2)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, s->map_size)) != 0) {
        status = imgpack__store_fail(err, rc, dir, "cannot set up LMDB");
        goto out;
    }
    /* One fsync per commit instead of two: the meta page reaches the disk
       with the next commit, or the final imgpack__store_sync. A system
       crash may undo the last batch, never corrupt the store; the catalog
       is allowed to be ahead (docs/FORMAT.md). */
    if ((rc = mdb_env_open(s->env, dir, MDB_NOMETASYNC, 0644)) != 0) {
        status = imgpack__store_fail(err, rc, dir, "cannot open LMDB");
        goto out;
    }
    /* A reopened store keeps the map size it had grown to. */
    if ((rc = mdb_env_info(s->env, &info)) != 0) {
        status = imgpack__store_fail(err, rc, dir, "cannot open LMDB");
        goto out;
    }
    s->map_size = info.me_mapsize;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, IMGPACK__STORE_RECORDS_DB, db_flags,
                           &s->records)) != 0 ||
        (rc = mdb_dbi_open(txn, IMGPACK__STORE_META_DB, db_flags,
                           &s->meta)) != 0) {
        status = rc == MDB_NOTFOUND
                     ? imgpack__error_set(err, IMGPACK_ERR_NOT_A_STORE,
                                          "%s: not an imgpack store", dir)
                     : imgpack__store_fail(err, rc, dir,
                                           "cannot open the databases");
        goto out;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        status = imgpack__store_fail(err, rc, dir, "cannot open the databases");
out:
    if (txn)
        mdb_txn_abort(txn);
    if (status != IMGPACK_OK)
        imgpack__store_close(s);
    return status;
}

static int holds_store(const char *dir) {
    char data_path[4096];
    struct stat st;
    snprintf(data_path, sizeof data_path, "%s/data.mdb", dir);
    return stat(data_path, &st) == 0;
}

imgpack_status imgpack__store_create(imgpack__store *s, const char *dir,
                                     imgpack__error *err) {
    memset(s, 0, sizeof *s);
    if (holds_store(dir))
        return imgpack__error_set(err, IMGPACK_ERR_EXISTS,
                                  "%s: already holds a store (data.mdb): resume "
                                  "it, or pack into another directory",
                                  dir);
    return open_env(s, dir, 1, err);
}

imgpack_status imgpack__store_reopen(imgpack__store *s, const char *dir,
                                     imgpack__error *err) {
    memset(s, 0, sizeof *s);
    if (!holds_store(dir))
        return imgpack__error_set(err, IMGPACK_ERR_NOT_FOUND,
                                  "%s: no store to resume (no data.mdb)", dir);
    return open_env(s, dir, 0, err);
}

imgpack_status imgpack__store_get_meta(imgpack__store *s, const char *key,
                                       char *value, size_t capacity,
                                       imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    MDB_txn *txn;
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return imgpack__store_fail(err, rc, s->dir, "cannot read metadata");
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size >= capacity))
        status = imgpack__error_set(err, IMGPACK_ERR_NOT_A_STORE,
                                    "%s: metadata '%s' is missing or too long",
                                    s->dir, key);
    else if (rc != 0)
        status = imgpack__store_fail(err, rc, s->dir, "cannot read metadata");
    else {
        memcpy(value, v.mv_data, v.mv_size);
        value[v.mv_size] = '\0';
    }
    mdb_txn_abort(txn);
    return status;
}

/*
 * Says why a batch could not be written. LMDB turns a short write into EIO,
 * and a full disk or a file size limit first shows as a short write, so EIO
 * is checked against the free space and the limit before it is believed.
 */
static imgpack_status write_failure(imgpack__store *s, int rc, size_t bytes,
                                    imgpack__error *err) {
    struct statvfs fs;
    struct rlimit limit;
    struct stat st;
    char data_path[4096];
    snprintf(data_path, sizeof data_path, "%s/data.mdb", s->dir);
    if (rc == EIO && statvfs(s->dir, &fs) == 0 &&
        (uint64_t)fs.f_bavail * fs.f_frsize < bytes)
        return imgpack__error_set(
            err, IMGPACK_ERR_NO_SPACE,
            "%s: no space left on the device: %.1f MB free, a batch needs "
            "%.1f MB",
            s->dir, (double)fs.f_bavail * fs.f_frsize / 1e6,
            (double)bytes / 1e6);
    if ((rc == EIO || rc == EFBIG) && getrlimit(RLIMIT_FSIZE, &limit) == 0 &&
        limit.rlim_cur != RLIM_INFINITY && stat(data_path, &st) == 0 &&
        (uint64_t)st.st_size + bytes > limit.rlim_cur)
        return imgpack__error_set(err, IMGPACK_ERR_NO_SPACE,
                                  "%s: the file size limit (ulimit -f) of "
                                  "%llu bytes is reached",
                                  s->dir, (unsigned long long)limit.rlim_cur);
    return imgpack__store_fail(err, rc, s->dir, "cannot write a batch");
}

static int grow_map(imgpack__store *s, size_t at_least) {
    size_t size = s->map_size * 2;
    while (size < at_least)
        size *= 2;
    int rc = mdb_env_set_mapsize(s->env, size);
    if (rc == 0)
        s->map_size = size;
    return rc;
}

/* Grows the map before a batch of `bytes` if it might not fit. */
static int reserve(imgpack__store *s, size_t bytes) {
    MDB_envinfo info;
    MDB_stat st;
    int rc;
    if ((rc = mdb_env_info(s->env, &info)) != 0 ||
        (rc = mdb_env_stat(s->env, &st)) != 0)
        return rc;
    size_t used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
    size_t needed = used + bytes + bytes / MAP_SLACK_DIVISOR + 64 * st.ms_psize;
    return needed > s->map_size ? grow_map(s, needed) : 0;
}

static int put_batch(imgpack__store *s, uint64_t first_index,
                     const imgpack__store_value *records, size_t n,
                     const imgpack__meta_entry *meta, size_t n_meta) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t key_bytes[IMGPACK__KEY_SIZE];
        imgpack__record_key(first_index + i, key_bytes);
        MDB_val key = {sizeof key_bytes, key_bytes};
        MDB_val val = {records[i].size, (void *)records[i].data};
        rc = mdb_put(txn, s->records, &key, &val, MDB_APPEND);
    }
    for (size_t i = 0; i < n_meta && rc == 0; i++) {
        MDB_val key = {strlen(meta[i].key), (void *)meta[i].key};
        MDB_val val = {meta[i].size, (void *)meta[i].value};
        rc = mdb_put(txn, s->meta, &key, &val, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

imgpack_status imgpack__store_append(imgpack__store *s, uint64_t first_index,
                                     const imgpack__store_value *records,
                                     size_t n, const imgpack__meta_entry *meta,
                                     size_t n_meta, imgpack__error *err) {
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += records[i].size + IMGPACK__KEY_SIZE;
    for (size_t i = 0; i < n_meta; i++)
        bytes += meta[i].size + strlen(meta[i].key);
    int rc = reserve(s, bytes);
    if (rc == 0)
        rc = put_batch(s, first_index, records, n, meta, n_meta);
    /* The estimate can fall short (e.g. many small records fill branch
       pages); the aborted batch is simply written again in a bigger map. */
    while (rc == MDB_MAP_FULL) {
        rc = grow_map(s, s->map_size * 2);
        if (rc == 0)
            rc = put_batch(s, first_index, records, n, meta, n_meta);
    }
    if (rc != 0)
        return write_failure(s, rc, bytes, err);
    return IMGPACK_OK;
}

imgpack_status imgpack__store_sync(imgpack__store *s, imgpack__error *err) {
    int rc = mdb_env_sync(s->env, 1);
    return rc ? imgpack__store_fail(err, rc, s->dir, "cannot sync") : IMGPACK_OK;
}

void imgpack__store_close(imgpack__store *s) {
    if (s->env)
        mdb_env_close(s->env);
    free(s->dir);
    memset(s, 0, sizeof *s);
}
