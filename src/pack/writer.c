/*
 * Batching results into the LMDB store and the SQLite catalog (opening a
 * store to write, resume or append is writer_open.c).
 *
 * Record indices are dense: the i-th packed result becomes record i, and a
 * rejected file takes no index. The meta entries "count" and
 * "next_position" commit with each LMDB batch, so the store always says how
 * far into the source listing it got.
 */
#include "writer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imgpack/imgpack.h"
#include "imgpack/verify.h"
#include "record.h"
#include "store_meta.h"

imgpack_status imgpack__writer_reserve_labels(imgpack__writer *w,
                                              uint64_t count,
                                              imgpack__error *err) {
    if (count > w->labels_capacity) {
        uint64_t cap = w->labels_capacity ? w->labels_capacity : 4096;
        while (cap < count)
            cap *= 2;
        uint32_t *labels = realloc(w->labels, cap * sizeof *labels);
        if (labels)
            w->labels = labels;
        uint32_t *crcs = labels ? realloc(w->crcs, cap * sizeof *crcs) : NULL;
        if (!crcs)
            return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        w->crcs = crcs;
        w->labels_capacity = cap;
    }
    return IMGPACK_OK;
}

/* Keeps the label and payload CRC of the record `r` brings, for the
   labels and payload_crcs entries. */
static imgpack_status remember_record(imgpack__writer *w, uint32_t label,
                                      const imgpack__result *r,
                                      imgpack__error *err) {
    imgpack__record_header h;
    imgpack_status status =
        imgpack__writer_reserve_labels(w, w->packed + 1, err);
    if (status == IMGPACK_OK &&
        imgpack__record_parse(r->value, r->value_size, 0, &h) != IMGPACK_OK)
        status = imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                    "record %" PRIu64 " has a bad header",
                                    w->packed);
    if (status == IMGPACK_OK) {
        w->labels[w->packed] = label;
        w->crcs[w->packed] = h.payload_crc;
    }
    return status;
}

/* Every record's label (or payload CRC) as little-endian u32s, for the
   "labels" ("payload_crcs") entry: a trainer gets all labels without
   touching a record. */
static uint8_t *u32_blob(const imgpack__writer *w, const uint32_t *values) {
    uint8_t *blob = malloc(w->packed * 4 + 1);
    if (blob)
        imgpack__meta_u32_encode(blob, values, w->packed);
    return blob;
}

/*
 * The metadata a batch closes with, the one place it is made: count,
 * next_position and the catalog digest, and with `complete` every label
 * and payload CRC and the state that says the pack finished. An append's
 * batches write only its append_ keys until the last, which also
 * publishes num_classes. BATCH_META_ENTRIES bounds the entries,
 * batch_meta_room the room they take in the batch, checksums included;
 * blobs[] are the blobs to free after the commit.
 */
#define BATCH_META_ENTRIES 10
#define BATCH_META_NUMBERS 5
#define BATCH_META_VALUE 80 /* the longest value but the two blobs */

static size_t batch_meta_room(const imgpack__writer *w, uint64_t packed) {
    return 2 * imgpack__store_meta_room(&w->store, 4 * packed) +
           (BATCH_META_ENTRIES - 2) *
               imgpack__store_meta_room(&w->store, BATCH_META_VALUE);
}

static imgpack_status
batch_meta(const imgpack__writer *w, int complete,
           imgpack__meta_entry meta[BATCH_META_ENTRIES],
           imgpack__meta_decimal numbers[BATCH_META_NUMBERS], size_t *n_meta,
           uint8_t *blobs[2], imgpack__error *err) {
    size_t n = 0;
    uint64_t next = w->position_base + w->batch_end;
    if (w->appending) {
        meta[n++] = imgpack__meta_number_entry(
            &numbers[2], IMGPACK_META_APPEND_COUNT, w->packed);
        meta[n++] = imgpack__meta_number_entry(
            &numbers[3], IMGPACK_META_APPEND_NEXT_POSITION, next);
        if (!complete) {
            *n_meta = n;
            return IMGPACK_OK;
        }
        meta[n++] = imgpack__meta_number_entry(
            &numbers[4], IMGPACK_META_NUM_CLASSES, w->num_classes);
        meta[n++] = imgpack__meta_text_entry(IMGPACK_META_APPEND_STATE,
                                             IMGPACK_META_STATE_COMPLETE);
    }
    meta[n++] =
        imgpack__meta_number_entry(&numbers[0], IMGPACK_META_COUNT, w->packed);
    meta[n++] = imgpack__meta_number_entry(&numbers[1],
                                           IMGPACK_META_NEXT_POSITION, next);
    if (w->catalog_digest_known)
        meta[n++] =
            (imgpack__meta_entry){IMGPACK_META_CATALOG_DIGEST, w->batch_digest,
                                  IMGPACK_CATALOG_DIGEST_HEX - 1};
    if (complete) {
        if (!(blobs[0] = u32_blob(w, w->labels)) ||
            !(blobs[1] = u32_blob(w, w->crcs)))
            return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        meta[n++] =
            (imgpack__meta_entry){IMGPACK_META_LABELS, blobs[0], w->packed * 4};
        meta[n++] = (imgpack__meta_entry){IMGPACK_META_PAYLOAD_CRCS, blobs[1],
                                          w->packed * 4};
        meta[n++] = imgpack__meta_text_entry(IMGPACK_META_STATE,
                                             IMGPACK_META_STATE_COMPLETE);
    }
    *n_meta = n;
    return IMGPACK_OK;
}

/*
 * Begins a batch: its catalog transaction, and its LMDB one with room for
 * a batch's records, for one record of `record_size` bytes if that is
 * more, and for the metadata it may end with. Small records take up to
 * twice their bytes of room (store.h), so a batch of them still ends by
 * its bytes; each put checks that the closing metadata, which grows with
 * the labels, still fits after it.
 */
static imgpack_status begin_batch(imgpack__writer *w, size_t record_size,
                                  imgpack__error *err) {
    size_t record = imgpack__store_room(&w->store, record_size);
    size_t batch = 2 * IMGPACK__BATCH_BYTES;
    size_t room =
        (record > batch ? record : batch) + batch_meta_room(w, w->packed);
    imgpack_status status = imgpack__catalog_begin(&w->catalog, err);
    if (status == IMGPACK_OK &&
        (status = imgpack__store_thread_begin(&w->store_thread, room, err)))
        imgpack__catalog_abort(&w->catalog);
    if (status == IMGPACK_OK) {
        w->batch_open = 1;
        w->room = room;
        w->batch_bytes = 0;
        w->batch_end = w->committed_positions;
        w->run_length = 0;
        memcpy(w->batch_digest, w->catalog_digest, sizeof w->batch_digest);
        clock_gettime(CLOCK_MONOTONIC, &w->batch_began);
    }
    return status;
}

/* Drops the open batch's catalog rows after a failure; the store's thread
   drops its LMDB half when it stops (imgpack__writer_close). */
static void abort_batch(imgpack__writer *w) {
    imgpack__catalog_abort(&w->catalog);
    w->batch_open = 0;
}

/* Counts the run of equal classes in the catalog. */
static imgpack_status count_run(imgpack__writer *w, imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    if (w->run_length > 0)
        status = imgpack__catalog_count_images(&w->catalog, w->run_class,
                                               w->run_length, err);
    w->run_length = 0;
    return status;
}

/* Waits for the store's thread to commit every batch handed to it: they
   are then what LMDB holds. */
static imgpack_status thread_wait(imgpack__writer *w, imgpack__error *err) {
    imgpack_status status = imgpack__store_thread_wait(&w->store_thread, err);
    if (status == IMGPACK_OK)
        w->durable = w->handed;
    return status;
}

/* The catalog's count and state as of the batch; an append's count and
   num_classes change with its last batch only, as the store's do. */
static imgpack_status catalog_progress(imgpack__writer *w, int complete,
                                       imgpack__error *err) {
    imgpack__catalog *c = &w->catalog;
    imgpack_status status = IMGPACK_OK;
    if (w->appending && !complete)
        return IMGPACK_OK;
    if ((status =
             imgpack__catalog_set_int(c, "count", (int64_t)w->packed, err)) ||
        !complete)
        return status;
    if (w->appending && ((status = imgpack__catalog_set_int(
                              c, "num_classes", w->num_classes, err)) ||
                         (status = imgpack__catalog_bump(c, "appends", err))))
        return status;
    return imgpack__catalog_set_text(c, "state", "complete", err);
}

/*
 * Commits the open batch (begun empty if none is): the catalog, once the
 * store's thread has committed the batch before, then hands the LMDB
 * commit to the thread without waiting for it. With `complete`, the same
 * two transactions mark the pack finished, so the last batch costs no
 * extra commit.
 */
static imgpack_status commit_batch(imgpack__writer *w, int complete,
                                   imgpack__error *err) {
    imgpack__catalog *c = &w->catalog;
    imgpack__meta_entry meta[BATCH_META_ENTRIES];
    imgpack__meta_decimal numbers[BATCH_META_NUMBERS];
    uint8_t *blobs[2] = {NULL, NULL};
    size_t n_meta = 0;
    imgpack_status status = IMGPACK_OK;

    if (!w->batch_open)
        status = begin_batch(w, 0, err);
    if (status ||
        (status =
             batch_meta(w, complete, meta, numbers, &n_meta, blobs, err)) ||
        (status = count_run(w, err)) ||
        (status = catalog_progress(w, complete, err)) ||
        (status = thread_wait(w, err)) ||
        (status = imgpack__catalog_commit(c, err)) ||
        (status =
             imgpack__store_thread_commit(&w->store_thread, meta, n_meta, err)))
        abort_batch(w);
    else {
        w->committed_positions = w->batch_end;
        memcpy(w->catalog_digest, w->batch_digest, sizeof w->catalog_digest);
        w->handed = (imgpack__writer_counts){w->packed, w->rejected, w->bytes};
    }
    w->batch_open = 0;
    free(blobs[0]);
    free(blobs[1]);
    return status;
}

void imgpack__writer_committed(const imgpack__writer *w, uint64_t *packed,
                               uint64_t *rejected, uint64_t *bytes) {
    *packed = w->durable.packed;
    *rejected = w->durable.rejected;
    *bytes = w->durable.bytes;
}

imgpack_status imgpack__writer_flush(imgpack__writer *w, imgpack__error *err) {
    imgpack_status status =
        w->batch_open ? commit_batch(w, 0, err) : IMGPACK_OK;
    return status ? status : thread_wait(w, err);
}

/*
 * Hands a record to the store's thread, which puts it into the batch's
 * LMDB transaction (a copy) and frees its buffer at once, so the workers'
 * next records reuse warm memory. A record the batch has no room for,
 * with the metadata the batch may end with after it, commits the batch
 * first.
 */
static imgpack_status put_record(imgpack__writer *w, imgpack__result *r,
                                 imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    size_t room = imgpack__store_room(&w->store, r->value_size);
    if (w->batch_open && room + batch_meta_room(w, w->packed + 1) > w->room)
        status = commit_batch(w, 0, err);
    if (!status && !w->batch_open)
        status = begin_batch(w, r->value_size, err);
    if (status)
        return status;
    w->room -= room;
    status = imgpack__store_thread_put(&w->store_thread, w->packed, r->value,
                                       r->value_size, err);
    r->value = NULL;
    return status;
}

/* The catalog row of a packed result, which becomes record w->packed. */
static imgpack_status catalog_image(imgpack__writer *w, uint64_t position,
                                    const imgpack__result *r,
                                    imgpack__error *err) {
    const imgpack__source_item *item = &w->source->items[position];
    imgpack__catalog_image row = {w->packed,     item->class_id, item->path,
                                  r->src_width,  r->src_height,  r->src_bytes,
                                  r->value_size, r->sha256};
    imgpack_status status = imgpack__catalog_add_image(&w->catalog, &row, err);
    if (w->catalog_digest_known)
        imgpack_catalog_digest_row(w->batch_digest, w->packed, item->class_id,
                                   item->path, strlen(item->path), r->sha256);
    if (status == IMGPACK_OK && item->class_id != w->run_class)
        status = count_run(w, err);
    w->run_class = item->class_id;
    w->run_length++;
    return status;
}

static imgpack_status add_result(imgpack__writer *w, uint64_t position,
                                 imgpack__result *r, imgpack__error *err) {
    const imgpack__source_item *item = &w->source->items[position];
    imgpack_status status;
    if (r->status != IMGPACK_OK) {
        if (!w->batch_open && (status = begin_batch(w, 0, err)))
            return status;
        if ((status = imgpack__catalog_add_reject(
                 &w->catalog, w->position_base + position, item->path,
                 item->class_id, r->reason, err)))
            return status;
        w->rejected++;
    } else {
        if ((status = remember_record(w, item->class_id, r, err)) ||
            (status = put_record(w, r, err)) ||
            (status = catalog_image(w, position, r, err)))
            return status;
        w->packed++;
        w->bytes += r->value_size;
        w->batch_bytes += r->value_size;
    }
    w->batch_end = position + 1;
    return IMGPACK_OK;
}

/* Whether the open batch holds enough, or has been open long enough, to
   commit (writer.h). */
static int batch_is_due(const imgpack__writer *w) {
    struct timespec now;
    if (!w->batch_open)
        return 0;
    if (w->batch_bytes >= IMGPACK__BATCH_BYTES)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - w->batch_began.tv_sec) +
               (double)(now.tv_nsec - w->batch_began.tv_nsec) / 1e9 >=
           IMGPACK__BATCH_SECONDS;
}

imgpack_status imgpack__writer_add(imgpack__writer *w, uint64_t position,
                                   imgpack__result *r, imgpack__error *err) {
    imgpack_status status = add_result(w, position, r, err);
    imgpack__result_clear(r);
    if (status != IMGPACK_OK)
        abort_batch(w);
    else if (batch_is_due(w))
        status = commit_batch(w, 0, err);
    return status;
}

imgpack_status imgpack__writer_finish(imgpack__writer *w, imgpack__error *err) {
    imgpack_status status;
    if (!(status = commit_batch(w, 1, err)) &&
        !(status = thread_wait(w, err)) &&
        !(status = imgpack__store_sync(&w->store, err)))
        status = imgpack__catalog_finish(&w->catalog, err);
    return status;
}

void imgpack__writer_close(imgpack__writer *w) {
    abort_batch(w);
    imgpack__store_thread_stop(&w->store_thread);
    imgpack__catalog_close(&w->catalog);
    imgpack__store_close(&w->store);
    free(w->labels);
    free(w->crcs);
    w->labels = NULL;
    w->crcs = NULL;
}
