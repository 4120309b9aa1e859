/*
 * Writing an LMDB store. Records are appended with MDB_APPEND: keys are
 * big-endian record numbers, so byte order is insertion order and LMDB
 * fills pages densely without searching. The map is sized lazily: LMDB
 * cannot grow it inside a transaction, so each batch begins by growing it
 * (doubling) until the room the caller asks for fits, counted in the most
 * pages LMDB can need for it. The writer puts records as they arrive and
 * frees them at once, so a batch is never written twice and the user never
 * sizes anything.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "meta_sum.h"
#include "record.h"

/*
 * What a batch may cost LMDB beyond the room of its values: the pages the
 * tree's rightmost path copies on write, the meta and free-page databases.
 * Branch pages are in each value's room (store_room).
 */
#define TREE_PAGES 64

/* LMDB's header at the start of every page and of every node (PAGEHDRSZ
   and NODESIZE in mdb.c). */
#define PAGE_HEADER 16
#define NODE_HEADER 8

imgpack_status imgpack__store_fail(imgpack__error *err, int rc, const char *dir,
                                   const char *what) {
    imgpack_status code = IMGPACK_ERR_STORE;
    if (rc == ENOSPC || rc == EDQUOT)
        return imgpack__error_set(err, IMGPACK_ERR_NO_SPACE,
                                  "%s: no space left on the device (%s: %s)",
                                  dir, what, mdb_strerror(rc));
    if (rc == EFBIG)
        return imgpack__error_set(err, IMGPACK_ERR_NO_SPACE,
                                  "%s: the file size limit (ulimit -f) is "
                                  "reached (%s: %s)",
                                  dir, what, mdb_strerror(rc));
    if (rc == ENOMEM)
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
    MDB_stat st;
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
    if ((rc = mdb_env_info(s->env, &info)) != 0 ||
        (rc = mdb_env_stat(s->env, &st)) != 0) {
        status = imgpack__store_fail(err, rc, dir, "cannot open LMDB");
        goto out;
    }
    s->map_size = info.me_mapsize;
    s->page_size = st.ms_psize;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, IMGPACK__STORE_RECORDS_DB, db_flags,
                           &s->records)) != 0 ||
        (rc = mdb_dbi_open(txn, IMGPACK__STORE_META_DB, db_flags, &s->meta)) !=
            0) {
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

/* Whether database `name` is absent or empty in the read transaction. */
static int database_empty(MDB_txn *txn, const char *name) {
    MDB_dbi dbi;
    MDB_stat st;
    int rc = mdb_dbi_open(txn, name, 0, &dbi);
    return rc == MDB_NOTFOUND ||
           (rc == 0 && mdb_stat(txn, dbi, &st) == 0 && st.ms_entries == 0);
}

int imgpack__store_is_unstarted(const char *dir) {
    char data_path[4096];
    struct stat st;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cursor = NULL;
    MDB_dbi main_db;
    MDB_val key, value;
    int unstarted = 0, rc;

    snprintf(data_path, sizeof data_path, "%s/data.mdb", dir);
    if (stat(data_path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    if (st.st_size == 0)
        return 1;
    /* Read-only and without the lock file: this only looks. */
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 2) != 0 ||
        mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK, 0644) != 0 ||
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0 ||
        mdb_dbi_open(txn, NULL, 0, &main_db) != 0 ||
        mdb_cursor_open(txn, main_db, &cursor) != 0)
        goto out;
    unstarted = 1;
    while (unstarted &&
           (rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) == 0) {
        unstarted =
            (key.mv_size == strlen(IMGPACK__STORE_RECORDS_DB) &&
             memcmp(key.mv_data, IMGPACK__STORE_RECORDS_DB, key.mv_size) ==
                 0) ||
            (key.mv_size == strlen(IMGPACK__STORE_META_DB) &&
             memcmp(key.mv_data, IMGPACK__STORE_META_DB, key.mv_size) == 0);
    }
    if (unstarted && rc != MDB_NOTFOUND)
        unstarted = 0;
    mdb_cursor_close(cursor);
    cursor = NULL;
    unstarted = unstarted && database_empty(txn, IMGPACK__STORE_RECORDS_DB) &&
                database_empty(txn, IMGPACK__STORE_META_DB);
out:
    if (cursor)
        mdb_cursor_close(cursor);
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    return unstarted;
}

imgpack_status imgpack__store_remove(const char *dir, imgpack__error *err) {
    static const char *const files[] = {"lock.mdb", "data.mdb"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                      "%s: cannot remove: %s", path,
                                      strerror(errno));
    }
    return IMGPACK_OK;
}

imgpack_status imgpack__store_check_new(const char *dir, imgpack__error *err) {
    if (holds_store(dir))
        return imgpack__error_set(
            err, IMGPACK_ERR_EXISTS,
            "%s: already holds a store (data.mdb): resume "
            "it, or pack into another directory",
            dir);
    return IMGPACK_OK;
}

imgpack_status imgpack__store_create(imgpack__store *s, const char *dir,
                                     imgpack__error *err) {
    memset(s, 0, sizeof *s);
    imgpack_status status = imgpack__store_check_new(dir, err);
    return status ? status : open_env(s, dir, 1, err);
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

/*
 * A node is its header, key, data (or the page number of its overflow
 * pages) and a 2-byte slot; LMDB moves a node's data to overflow pages when
 * the node exceeds its nodemax, about half a page. Appended leaves are at
 * least half full, so a leaf value takes at most twice its node; the
 * allowance of IMGPACK__STORE_MAX_KEY for a key of 8 bytes leaves each
 * record enough over for its share of branch nodes.
 */
size_t imgpack__store_room(const imgpack__store *s, size_t size) {
    size_t node = NODE_HEADER + IMGPACK__STORE_MAX_KEY + sizeof(uint64_t) + 2;
    size_t nodemax = (((s->page_size - PAGE_HEADER) / 2) & ~(size_t)1) - 2;
    if (node + size <= nodemax)
        return 2 * (node + size);
    /* Perhaps in overflow pages (a short key may keep it in a leaf, where
       it takes less than the one page counted here). */
    return ((size + PAGE_HEADER) / s->page_size + 1) * s->page_size + 2 * node;
}

size_t imgpack__store_meta_room(const imgpack__store *s, size_t size) {
    /* The value, and the checksum beside it (meta_sum.h). */
    return imgpack__store_room(s, size) +
           imgpack__store_room(s, IMGPACK__META_SUM_DIGITS);
}

imgpack_status imgpack__store_begin(imgpack__store *s, size_t room,
                                    imgpack__error *err) {
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    size_t pages = room / s->page_size + 1 + TREE_PAGES;
    size_t needed = (info.me_last_pgno + 1 + pages) * s->page_size;
    if (rc == 0 && needed > s->map_size)
        rc = grow_map(s, needed);
    if (rc == 0)
        rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (rc != 0) {
        s->txn = NULL;
        return write_failure(s, rc, room, err);
    }
    s->room = room;
    s->txn_bytes = 0;
    return IMGPACK_OK;
}

int imgpack__store_fits(const imgpack__store *s, size_t room) {
    return room <= s->room;
}

/* Puts one value into the open batch, within the room it was begun with. */
static imgpack_status put(imgpack__store *s, MDB_dbi dbi, MDB_val *key,
                          const void *data, size_t size, unsigned flags,
                          imgpack__error *err) {
    MDB_val val = {size, (void *)data};
    size_t room = imgpack__store_room(s, size);
    int rc =
        key->mv_size <= IMGPACK__STORE_MAX_KEY && imgpack__store_fits(s, room)
            ? mdb_put(s->txn, dbi, key, &val, flags)
            : MDB_MAP_FULL;
    if (rc != 0) {
        imgpack__store_abort(s);
        /* The room is a bound on what LMDB can need, so a full map here
           means the caller put more than it reserved (or a key longer
           than the room allows for). */
        if (rc == MDB_MAP_FULL)
            return imgpack__error_set(err, IMGPACK_ERR_STORE,
                                      "%s: a batch outgrew the room reserved "
                                      "for it; nothing of it was stored",
                                      s->dir);
        return write_failure(s, rc, size, err);
    }
    s->room -= room;
    s->txn_bytes += size;
    return IMGPACK_OK;
}

imgpack_status imgpack__store_put(imgpack__store *s, uint64_t index,
                                  const void *data, size_t size,
                                  imgpack__error *err) {
    uint8_t key_bytes[IMGPACK__KEY_SIZE];
    imgpack__record_key(index, key_bytes);
    MDB_val key = {sizeof key_bytes, key_bytes};
    return put(s, s->records, &key, data, size, MDB_APPEND, err);
}

imgpack_status imgpack__store_drop_records(imgpack__store *s, uint64_t first,
                                           uint64_t n, imgpack__error *err) {
    uint8_t key_bytes[IMGPACK__KEY_SIZE];
    MDB_cursor *cursor = NULL;
    MDB_val key, value;
    /* A deletion copies at most its record's leaf, freed pages aside. */
    imgpack_status status =
        imgpack__store_begin(s, n * imgpack__store_room(s, 0), err);
    if (status != IMGPACK_OK)
        return status;
    imgpack__record_key(first, key_bytes);
    int rc = mdb_cursor_open(s->txn, s->records, &cursor);
    while (rc == 0) {
        key = (MDB_val){sizeof key_bytes, key_bytes};
        rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
        if (rc == 0)
            rc = mdb_cursor_del(cursor, 0);
    }
    if (cursor)
        mdb_cursor_close(cursor);
    if (rc != MDB_NOTFOUND) {
        imgpack__store_abort(s);
        return write_failure(s, rc, 0, err);
    }
    return imgpack__store_commit(s, NULL, 0, err);
}

imgpack_status imgpack__store_commit(imgpack__store *s,
                                     const imgpack__meta_entry *meta,
                                     size_t n_meta, imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    int rc = 0;
    for (size_t i = 0; i < n_meta && status == IMGPACK_OK; i++) {
        MDB_val key = {strlen(meta[i].key), (void *)meta[i].key};
        status = put(s, s->meta, &key, meta[i].value, meta[i].size, 0, err);
        /* Within the room the caller asked begin for: its
           imgpack__store_meta_room. */
        if (status == IMGPACK_OK &&
            (rc = imgpack__meta_sum_put(s->txn, s->meta, meta[i].key,
                                        meta[i].value, meta[i].size)) != 0) {
            imgpack__store_abort(s);
            return write_failure(s, rc, meta[i].size, err);
        }
    }
    if (status != IMGPACK_OK)
        return status;
    rc = mdb_txn_commit(s->txn);
    s->txn = NULL;
    return rc ? write_failure(s, rc, s->txn_bytes, err) : IMGPACK_OK;
}

void imgpack__store_abort(imgpack__store *s) {
    if (s->txn)
        mdb_txn_abort(s->txn);
    s->txn = NULL;
}

imgpack_status imgpack__store_payload_crcs(imgpack__store *s, uint64_t count,
                                           uint32_t *out, imgpack__error *err) {
    MDB_txn *txn;
    MDB_cursor *cursor;
    MDB_val key, value;
    imgpack__record_header h;
    imgpack_status status = IMGPACK_OK;
    uint64_t i = 0;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return imgpack__store_fail(err, rc, s->dir, "cannot read records");
    if ((rc = mdb_cursor_open(txn, s->records, &cursor)) != 0) {
        mdb_txn_abort(txn);
        return imgpack__store_fail(err, rc, s->dir, "cannot read records");
    }
    /* Keys are big-endian indices: the walk meets them in index order. */
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
         rc == 0 && i < count;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT), i++) {
        uint8_t want[IMGPACK__KEY_SIZE];
        imgpack__record_key(i, want);
        if (key.mv_size != sizeof want ||
            memcmp(key.mv_data, want, sizeof want) ||
            imgpack__record_parse(value.mv_data, value.mv_size, 0, &h)) {
            status = imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                        "%s: record %llu is missing or damaged",
                                        s->dir, (unsigned long long)i);
            break;
        }
        out[i] = h.payload_crc;
    }
    if (status == IMGPACK_OK && i < count)
        status =
            rc != 0 && rc != MDB_NOTFOUND
                ? imgpack__store_fail(err, rc, s->dir, "cannot read records")
                : imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                     "%s: record %llu is missing", s->dir,
                                     (unsigned long long)i);
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    return status;
}

imgpack_status imgpack__store_add_checksums(imgpack__store *s,
                                            imgpack__error *err) {
    MDB_txn *txn = NULL;
    MDB_cursor *cursor = NULL;
    MDB_stat st;
    MDB_val key, value;
    char **keys = NULL;
    size_t n = 0;
    int present = 0;
    imgpack_status status = IMGPACK_OK;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = imgpack__meta_sum_present(txn, s->meta, &present);
    if (rc == 0 && !present && (rc = mdb_stat(txn, s->meta, &st)) == 0 &&
        !(keys = calloc(st.ms_entries + 1, sizeof *keys)))
        rc = ENOMEM;
    /* Keys first, puts after: a cursor must not walk what it changes. */
    if (keys && (rc = mdb_cursor_open(txn, s->meta, &cursor)) == 0) {
        for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
             rc == 0 && n < st.ms_entries;
             rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
            if (!(keys[n] = strndup(key.mv_data, key.mv_size))) {
                rc = ENOMEM;
                break;
            }
            n++;
        }
        mdb_cursor_close(cursor);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0) {
        status = imgpack__store_fail(err, rc, s->dir, "cannot read metadata");
    } else if (keys &&
               !(status = imgpack__store_begin(
                     s, n * imgpack__store_room(s, IMGPACK__META_SUM_DIGITS),
                     err))) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            MDB_val k = {strlen(keys[i]), keys[i]};
            if ((rc = mdb_get(s->txn, s->meta, &k, &value)) == 0)
                rc = imgpack__meta_sum_put(s->txn, s->meta, keys[i],
                                           value.mv_data, value.mv_size);
            else if (rc == MDB_NOTFOUND)
                rc = 0; /* a key with a NUL in it: not one of ours */
        }
        if (rc == 0)
            rc = mdb_txn_commit(s->txn);
        else
            mdb_txn_abort(s->txn);
        s->txn = NULL;
        if (rc != 0)
            status = write_failure(s, rc, 0, err);
    }
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
    return status;
}

imgpack_status imgpack__store_set_meta(imgpack__store *s,
                                       const imgpack__meta_entry *meta,
                                       size_t n_meta, imgpack__error *err) {
    size_t room = 0;
    for (size_t i = 0; i < n_meta; i++)
        room += imgpack__store_meta_room(s, meta[i].size);
    imgpack_status status = imgpack__store_begin(s, room, err);
    return status ? status : imgpack__store_commit(s, meta, n_meta, err);
}

imgpack_status imgpack__store_sync(imgpack__store *s, imgpack__error *err) {
    int rc = mdb_env_sync(s->env, 1);
    return rc ? imgpack__store_fail(err, rc, s->dir, "cannot sync")
              : IMGPACK_OK;
}

void imgpack__store_close(imgpack__store *s) {
    imgpack__store_abort(s);
    if (s->env)
        mdb_env_close(s->env);
    free(s->dir);
    memset(s, 0, sizeof *s);
}
