/*
 * imgpack__store_peek: one store's header, count and state, through the
 * reader's own environment opening (reader_shards.c) and header parser
 * (store_meta.c).
 */
#include "store_peek.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reader_open.h"

/* The directory of the store to read: `dir` itself when it holds
   data.mdb (or cannot be listed: opening it then says why), else its
   shard-0-of-N. A new string, or NULL with `err` set. */
static char *store_dir(const char *dir, imgpack__error *err) {
    char path[4096], *found = NULL;
    struct stat st;
    uint32_t k, n;
    DIR *d;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) != 0 && errno == ENOENT && (d = opendir(dir))) {
        for (struct dirent *e; !found && (e = readdir(d)) != NULL;)
            if (imgpack__shard_name_parse(e->d_name, &k, &n) && k == 0 &&
                asprintf(&found, "%s/%s", dir, e->d_name) < 0)
                found = NULL;
        closedir(d);
    }
    if (!found && !(found = strdup(dir)))
        imgpack__error_set(err, IMGPACK_ERR_NOMEM, "%s: out of memory", dir);
    return found;
}

imgpack_status imgpack__store_peek(const char *dir, imgpack__store_summary *out,
                                   imgpack__error *err) {
    imgpack__shard sh = {0};
    MDB_txn *txn = NULL;
    MDB_val v;
    imgpack_status status = IMGPACK_ERR_NOMEM;
    int rc;
    memset(out, 0, sizeof *out);
    if (!(sh.dir = store_dir(dir, err)))
        goto out;
    /* Map size 0: the size the environment was written with. */
    if ((status = imgpack__shard_open(&sh, 0, err)))
        goto out;
    if ((rc = mdb_txn_begin(sh.env, NULL, MDB_RDONLY, &txn)) != 0) {
        txn = NULL;
        status = imgpack__store_fail(err, rc, sh.dir, "cannot begin a read");
        goto out;
    }
    if ((rc = imgpack__meta_sum_present(txn, sh.meta, &sh.meta_sums))) {
        status = imgpack__store_fail(err, rc, sh.dir, "cannot read metadata");
        goto out;
    }
    imgpack__meta_view m = {sh.dir, txn, sh.meta, &sh.bounds, sh.meta_sums};
    if ((status = imgpack__store_header_read(&m, 1, &out->header, err)) ||
        (status = imgpack__meta_number(&m, IMGPACK_META_COUNT, UINT64_MAX,
                                       &out->count, err)))
        goto out;
    rc = imgpack__meta_get(&m, IMGPACK_META_STATE, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        status = imgpack__meta_fail(err, rc, sh.dir, IMGPACK_META_STATE);
    else if (rc != 0 || !imgpack__meta_is(&v, IMGPACK_META_STATE_COMPLETE))
        status = imgpack__error_set(err, IMGPACK_ERR_INCOMPLETE,
                                    "%s: store is not complete (still being "
                                    "packed, or the pack stopped)",
                                    sh.dir);
out:
    if (status != IMGPACK_OK)
        imgpack__store_header_free(&out->header);
    if (txn)
        mdb_txn_abort(txn);
    if (sh.env)
        mdb_env_close(sh.env);
    free(sh.dir);
    return status;
}
