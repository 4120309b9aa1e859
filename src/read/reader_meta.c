/*
 * The reader's metadata calls: imgpack_reader_meta, which answers for a
 * sharded dataset as one store would, and imgpack_reader_refresh, which
 * reloads the progress metadata (count, state, tables) of a dataset still
 * being packed. The reads beneath are reader.c's slots and transactions.
 */
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader_open.h"
#include "store_meta.h"

/* Not an LMDB code: a meta lookup had no transaction; the slot says why. */
#define NO_TXN (-1)

/* ---- Metadata --------------------------------------------------------- */

/* Copies the dataset's labels, as the `labels` meta value of one store
   would hold them (little-endian u32s), into buf. */
static void encode_labels(const imgpack_reader *r, uint8_t *buf,
                          uint64_t capacity) {
    uint64_t bytes = r->count * 4 < capacity ? r->count * 4 : capacity;
    uint8_t last[4];
    imgpack__meta_u32_encode(buf, r->labels, bytes / 4);
    if (bytes % 4) {
        imgpack__meta_u32_encode(last, r->labels + bytes / 4, 1);
        memcpy(buf + bytes / 4 * 4, last, bytes % 4);
    }
}

/*
 * Meta `key` of a sharded dataset, as one store would answer: `count` and
 * `labels` for the whole (the labels through *synth_labels, so the caller
 * encodes them), `state` from the first incomplete shard, `next_position`
 * from the last, the keys that name one shard not at all, the rest from
 * shard 0 (every shard agrees on them, or on all that matters: open checks
 * format, geometry, settings, digest and classes).
 */
static int sharded_meta(imgpack_reader *r, imgpack__read_slot *s,
                        const char *key, MDB_val *value, char *number,
                        size_t number_size, int *synth_labels) {
    uint32_t k = 0;
    *synth_labels = 0;
    if (strcmp(key, IMGPACK_META_COUNT) == 0) {
        value->mv_size =
            (size_t)snprintf(number, number_size, "%" PRIu64, r->count);
        value->mv_data = number;
        return 0;
    }
    if (strcmp(key, IMGPACK_META_LABELS) == 0) {
        *synth_labels = r->labels != NULL;
        value->mv_size = r->count * 4;
        return r->labels ? 0 : MDB_NOTFOUND;
    }
    if (strcmp(key, IMGPACK_META_SHARD) == 0 ||
        strcmp(key, IMGPACK_META_SHARD_FIRST_POSITION) == 0)
        return MDB_NOTFOUND;
    if (strcmp(key, IMGPACK_META_STATE) == 0)
        while (k + 1 < r->num_shards && r->shards[k].complete)
            k++;
    if (strcmp(key, IMGPACK_META_NEXT_POSITION) == 0)
        k = r->num_shards - 1;
    MDB_txn *txn = imgpack__reader_txn(r, s, k);
    if (!txn)
        return NO_TXN;
    imgpack__shard *sh = &r->shards[k];
    return imgpack__meta_sum_get(txn, sh->meta, &sh->bounds, sh->meta_sums, key,
                                 value);
}

imgpack_status imgpack_reader_meta(imgpack_reader *r, const char *key,
                                   uint8_t *buf, uint64_t capacity,
                                   uint64_t *size) {
    imgpack__read_slot *s;
    MDB_val value;
    char number[24];
    int synth_labels = 0, rc;
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    if (!key || !size || (capacity > 0 && !buf)) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: reader_meta: no key, size or buffer",
                                    r->dir);
        goto out;
    }
    if (r->num_shards > 1) {
        rc = sharded_meta(r, s, key, &value, number, sizeof number,
                          &synth_labels);
    } else {
        MDB_txn *txn = imgpack__reader_txn(r, s, 0);
        imgpack__shard *sh = &r->shards[0];
        rc = txn ? imgpack__meta_sum_get(txn, sh->meta, &sh->bounds,
                                         sh->meta_sums, key, &value)
                 : NO_TXN;
    }
    if (rc == NO_TXN) {
        status = s->err.code; /* no transaction; the slot says why */
    } else if (rc == IMGPACK__META_SUM_MISMATCH ||
               rc == IMGPACK__META_OUTSIDE) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                    "%s: metadata \"%s\" %s", r->dir, key,
                                    imgpack__meta_sum_strerror(rc));
    } else if (rc == MDB_NOTFOUND) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_NOT_FOUND,
                                    "%s: no metadata \"%s\"", r->dir, key);
    } else if (rc != 0) {
        status =
            imgpack__store_fail(&s->err, rc, r->dir, "cannot read metadata");
    } else {
        *size = value.mv_size;
        if (synth_labels)
            encode_labels(r, buf, capacity);
        else if (capacity > 0)
            memcpy(buf, value.mv_data,
                   value.mv_size < capacity ? value.mv_size : capacity);
    }
out:
    imgpack__reader_end(r, s);
    return status;
}

/* ---- Refresh ----------------------------------------------------------- */

imgpack_status imgpack_reader_refresh(imgpack_reader *r) {
    imgpack__read_slot *s;
    MDB_txn **txns = NULL;
    imgpack_status status;
    /* Every thread's next call renews its transactions, this one first, so
       none reads with a snapshot older than the counts read here. */
    r->snapshot++;
    if ((status = imgpack__reader_begin(r, &s)))
        return status;
    if (!(txns = malloc(r->num_shards * sizeof *txns))) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_NOMEM,
                                    "%s: out of memory", r->dir);
        goto out;
    }
    for (uint32_t k = 0; k < r->num_shards; k++)
        if (!(txns[k] = imgpack__reader_txn(r, s, k))) {
            status = s->err.code;
            goto out;
        }
    status = imgpack__reader_load_progress(r, txns, &s->err);
out:
    free(txns);
    imgpack__reader_end(r, s);
    return status;
}
