/*
 * Where a reader's stores are and how each is opened: the layout (one
 * store in the directory, or its shard-K-of-N subdirectories) and each
 * shard's LMDB environment. reader_open.c loads and checks the metadata.
 *
 * Environments. Each is opened MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD,
 * falling back to MDB_NOLOCK where lock.mdb cannot be written and to the
 * writer's map size where the system refuses ours. N shards share the
 * address space one store would map (IMGPACK_READER_MAP_SIZE / N each);
 * LMDB raises a map that is smaller than its data file, and reader.c
 * remaps when a writer grows one past it.
 */
#include "reader_open.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "store_meta.h"

/* Slots for read transactions in each lock file. Honoured only when this
   reader creates lock.mdb; LMDB's default of 126 is too few for many
   DataLoader workers times threads. */
#define READER_MAX_READERS 1024

/* ---- Environments ----------------------------------------------------- */

static int open_env(imgpack__shard *sh, size_t map_size) {
    int rc;
    for (;;) {
        unsigned flags = MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD |
                         (sh->nolock ? MDB_NOLOCK : 0);
        if ((rc = mdb_env_create(&sh->env)) != 0) {
            sh->env = NULL;
            break;
        }
        if ((rc = mdb_env_set_maxdbs(sh->env, 2)) == 0 &&
            (rc = mdb_env_set_maxreaders(sh->env, READER_MAX_READERS)) == 0 &&
            (rc = mdb_env_set_mapsize(sh->env, map_size)) == 0 &&
            (rc = mdb_env_open(sh->env, sh->dir, flags, 0644)) == 0)
            break;
        mdb_env_close(sh->env);
        sh->env = NULL;
        if ((rc == EACCES || rc == EROFS) && !sh->nolock)
            sh->nolock = 1;
        else if (rc == ENOMEM && map_size != 0)
            map_size = 0;
        else
            break;
    }
    return rc;
}

/* Opens the two databases; a store without them is not ours. */
static imgpack_status open_dbs(imgpack__shard *sh, imgpack__error *err) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(sh->env, NULL, MDB_RDONLY, &txn);
    imgpack_status status = IMGPACK_OK;
    if (rc != 0) {
        txn = NULL;
        status = imgpack__store_fail(err, rc, sh->dir, "cannot begin a read");
        goto out;
    }
    if ((rc = mdb_dbi_open(txn, IMGPACK__STORE_RECORDS_DB, 0, &sh->records)) ||
        (rc = mdb_dbi_open(txn, IMGPACK__STORE_META_DB, 0, &sh->meta))) {
        if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
            status = imgpack__error_set(err, IMGPACK_ERR_NOT_A_STORE,
                                        "%s: no imgpack databases in data.mdb",
                                        sh->dir);
        else
            status =
                imgpack__store_fail(err, rc, sh->dir, "cannot open databases");
        goto out;
    }
    /* Committing a read transaction keeps its database handles open for
       every later transaction of the environment. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        status = imgpack__store_fail(err, rc, sh->dir, "cannot open databases");
out:
    if (txn)
        mdb_txn_abort(txn);
    return status;
}

imgpack_status imgpack__shard_open(imgpack__shard *sh, size_t map_size,
                                   imgpack__error *err) {
    int rc = open_env(sh, map_size);
    if (rc != 0)
        return imgpack__store_fail(err, rc, sh->dir, "cannot open LMDB");
    if (!sh->nolock) {
        /* Frees slots that crashed readers left; best effort. */
        int dead;
        mdb_reader_check(sh->env, &dead);
    }
    return open_dbs(sh, err);
}

imgpack_status imgpack__reader_open_envs(imgpack_reader *r) {
    size_t map_size = (size_t)(IMGPACK_READER_MAP_SIZE / r->num_shards);
    imgpack_status status = IMGPACK_OK;
    for (uint32_t k = 0; k < r->num_shards && status == IMGPACK_OK; k++)
        status = imgpack__shard_open(&r->shards[k], map_size, &r->err);
    return status;
}

/* ---- Layout ----------------------------------------------------------- */

/* Makes r->shards: the one store in r->dir, or its `n` shard-K-of-N
   subdirectories. */
static imgpack_status make_shards(imgpack_reader *r, uint32_t n, int sharded) {
    /* "/", the shard's name and its NUL. */
    size_t size = strlen(r->dir) + 1 + IMGPACK__SHARD_NAME_SIZE;
    char name[IMGPACK__SHARD_NAME_SIZE];
    r->shards = calloc(n, sizeof *r->shards);
    r->first = calloc((size_t)n + 1, sizeof *r->first);
    if (!r->shards || !r->first)
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                  "%s: out of memory", r->dir);
    r->num_shards = n;
    for (uint32_t k = 0; k < n; k++) {
        if (!(r->shards[k].dir = malloc(size)))
            return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                      "%s: out of memory", r->dir);
        imgpack__shard_name(name, k, n);
        if (sharded)
            snprintf(r->shards[k].dir, size, "%s/%s", r->dir, name);
        else
            snprintf(r->shards[k].dir, size, "%s", r->dir);
    }
    return IMGPACK_OK;
}

/* Finds shard-K-of-N subdirectories: one N, every K. */
static imgpack_status find_shards(imgpack_reader *r) {
    DIR *d = opendir(r->dir);
    unsigned char *seen = NULL;
    uint32_t n = 0, k, count, first_k = 0;
    char name[IMGPACK__SHARD_NAME_SIZE];
    struct dirent *e;
    imgpack_status status = IMGPACK_OK;
    if (!d) {
        status = imgpack__error_set(&r->err, imgpack__status_from_errno(errno),
                                    "%s: %s", r->dir, strerror(errno));
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        if (!imgpack__shard_name_parse(e->d_name, &k, &count))
            continue;
        if (n == 0) {
            n = count;
            first_k = k;
            if (!(seen = calloc(n, 1))) {
                status = imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                            "%s: out of memory", r->dir);
                goto out;
            }
        } else if (count != n) {
            imgpack__shard_name(name, first_k, n);
            status = imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                        "%s: shards disagree on their number: "
                                        "%s and %s",
                                        r->dir, name, e->d_name);
            goto out;
        }
        seen[k] = 1;
    }
    if (n == 0) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                    "%s: no data.mdb and no shard-K-of-N "
                                    "directories: not an imgpack store",
                                    r->dir);
        goto out;
    }
    for (k = 0; k < n; k++)
        if (!seen[k]) {
            imgpack__shard_name(name, k, n);
            status = imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                        "%s/%s is missing", r->dir, name);
            goto out;
        }
    status = make_shards(r, n, 1);
out:
    if (d)
        closedir(d);
    free(seen);
    return status;
}

/* One store in r->dir, or shards beneath it. */
imgpack_status imgpack__reader_find_layout(imgpack_reader *r) {
    struct stat st;
    char path[4096];
    if (stat(r->dir, &st) != 0)
        return imgpack__error_set(&r->err, imgpack__status_from_errno(errno),
                                  "%s: %s", r->dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                  "%s: not a directory", r->dir);
    if (snprintf(path, sizeof path, "%s/data.mdb", r->dir) >= (int)sizeof path)
        return imgpack__error_set(&r->err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: path too long", r->dir);
    if (stat(path, &st) == 0)
        return make_shards(r, 1, 0);
    if (errno != ENOENT)
        return imgpack__error_set(&r->err, imgpack__status_from_errno(errno),
                                  "%s: %s", path, strerror(errno));
    return find_shards(r);
}
