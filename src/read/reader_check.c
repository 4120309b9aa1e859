/*
 * imgpack_reader_check_meta: every metadata value of a store against its
 * checksum (meta_sum.h), for `imgpack verify`. Reading checks only the
 * keys it reads; this walks all of them, so a damaged description, a
 * damaged key name (its value then has no checksum, and its checksum no
 * value) or a checksum of its own shows too.
 */
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpack/verify.h"
#include "meta_sum.h"
#include "reader_open.h"

/* Room for a message: a shard's directory, a quoted key, a reason. */
#define MESSAGE_SIZE (IMGPACK__ERRMSG_SIZE + IMGPACK__META_KEY_MAX + 64)

/* The problems found, kept until the walk ends: `report` runs after the
   reader call is over, never under its lock. */
typedef struct walk {
    char **messages;
    uint64_t problems, capacity;
    int out_of_memory;
} walk;

static void found(walk *w, const imgpack__shard *sh, const MDB_val *key,
                  const char *reason) {
    char message[MESSAGE_SIZE];
    int n = key->mv_size > IMGPACK__META_KEY_MAX ? IMGPACK__META_KEY_MAX
                                                 : (int)key->mv_size;
    snprintf(message, sizeof message, "%s: metadata \"%.*s\" %s", sh->dir, n,
             (const char *)key->mv_data, reason);
    if (w->problems == w->capacity) {
        uint64_t capacity = w->capacity ? 2 * w->capacity : 16;
        char **more = realloc(w->messages, capacity * sizeof *more);
        if (!more) {
            w->out_of_memory = 1;
            return;
        }
        w->messages = more;
        w->capacity = capacity;
    }
    if (!(w->messages[w->problems] = strdup(message))) {
        w->out_of_memory = 1;
        return;
    }
    w->problems++;
}

/* Checks one key of the walk; 0, or an LMDB error that stops it. */
static int check_key(walk *w, imgpack__shard *sh, MDB_txn *txn,
                     const MDB_val *key) {
    char name[IMGPACK__META_KEY_MAX + 1];
    MDB_val value;
    size_t prefix = strlen(IMGPACK__META_SUM_PREFIX);
    if (!imgpack__map_contains(sh->env, &sh->bounds, key->mv_data,
                               key->mv_size)) {
        found(w, sh, &(MDB_val){0, ""},
              "lies outside data.mdb (damaged "
              "LMDB page)");
        return 0;
    }
    if (key->mv_size == 0 || key->mv_size > IMGPACK__META_KEY_MAX + prefix ||
        memchr(key->mv_data, '\0', key->mv_size)) {
        found(w, sh, key, "is not a key imgpack writes");
        return 0;
    }
    int is_sum = key->mv_size > prefix &&
                 memcmp(key->mv_data, IMGPACK__META_SUM_PREFIX, prefix) == 0;
    const char *start = (const char *)key->mv_data + (is_sum ? prefix : 0);
    size_t n = key->mv_size - (is_sum ? prefix : 0);
    if (n > IMGPACK__META_KEY_MAX) {
        found(w, sh, key, "is not a key imgpack writes");
        return 0;
    }
    memcpy(name, start, n);
    name[n] = '\0';
    int rc = imgpack__meta_sum_get(txn, sh->meta, &sh->bounds, !is_sum, name,
                                   &value);
    if (is_sum && rc == MDB_NOTFOUND)
        found(w, sh, key, "is a checksum without its value (damaged key?)");
    else if (rc == IMGPACK__META_SUM_MISMATCH || rc == IMGPACK__META_OUTSIDE)
        found(w, sh, key, imgpack__meta_sum_strerror(rc));
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    return 0;
}

static imgpack_status check_shard(walk *w, imgpack_reader *r,
                                  imgpack__shard *sh) {
    MDB_txn *txn = NULL;
    MDB_cursor *cursor = NULL;
    MDB_val key, value;
    imgpack_status status = IMGPACK_OK;
    int rc = mdb_txn_begin(sh->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open(txn, sh->meta, &cursor);
    for (rc = rc ? rc : mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
         rc == 0; rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT))
        if ((rc = check_key(w, sh, txn, &key)) != 0)
            break;
    if (rc != MDB_NOTFOUND) {
        char message[MESSAGE_SIZE];
        snprintf(message, sizeof message, "%s: cannot read metadata: %s",
                 sh->dir, mdb_strerror(rc));
        status = imgpack__reader_fail(r, IMGPACK_ERR_STORE, message);
    }
    if (cursor)
        mdb_cursor_close(cursor);
    if (txn)
        mdb_txn_abort(txn);
    return status;
}

imgpack_status imgpack_reader_check_meta(imgpack_reader *r,
                                         void (*report)(void *, const char *),
                                         void *ctx, uint64_t *problems,
                                         int32_t *checked) {
    imgpack__read_slot *s;
    walk w = {NULL, 0, 0, 0};
    int any = 0;
    /* begin reopens the store in a forked child, as every call does. */
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    for (uint32_t k = 0; k < r->num_shards && status == IMGPACK_OK; k++)
        if (r->shards[k].meta_sums) {
            any = 1;
            status = check_shard(&w, r, &r->shards[k]);
        }
    if (status == IMGPACK_OK && w.out_of_memory)
        status = imgpack__error_set(&s->err, IMGPACK_ERR_NOMEM,
                                    "%s: out of memory", r->dir);
    imgpack__reader_end(r, s);
    for (uint64_t i = 0; i < w.problems; i++) {
        report(ctx, w.messages[i]);
        free(w.messages[i]);
    }
    free(w.messages);
    *problems = w.problems;
    *checked = any;
    return status;
}
