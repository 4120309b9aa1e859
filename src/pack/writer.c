/*
 * Batching results into the LMDB store and the SQLite catalog.
 *
 * Record indices are dense: the i-th packed result becomes record i, and a
 * rejected file takes no index. The meta entries "count" and
 * "next_position" commit with each LMDB batch, so the store always says how
 * far into the source listing it got.
 */
#include "writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imgpack/imgpack.h"
#include "imgpack/verify.h"
#include "record.h"
#include "store_meta.h"

#define SETTINGS_TEXT_SIZE IMGPACK__SETTINGS_SIZE

/* Every option that changes what lands in the store, as one line: a resume
   must be given the same. */
static void settings_text(const imgpack__transform_settings *s,
                          char out[SETTINGS_TEXT_SIZE]) {
    snprintf(out, SETTINGS_TEXT_SIZE,
             "resize=%" PRIu32 " crop=%" PRIu32 " format=%s quality=%" PRId32
             " max-pixels=%" PRIu64 " channels=%" PRIu32,
             s->resize, s->crop, imgpack_format_name(s->format), s->quality,
             s->max_pixels, s->channels);
}

/* The digest of the catalog's dataset keys the store keeps no copy of
   (imgpack/verify.h), as write_catalog_header sets them. */
static void dataset_digest(const imgpack__writer *w,
                           const imgpack__writer_info *info,
                           const char *created,
                           char digest[IMGPACK_CATALOG_DIGEST_HEX]) {
    char skipped[32];
    snprintf(skipped, sizeof skipped, "%" PRIu64, (uint64_t)w->source->skipped);
    digest[0] = '\0';
    imgpack_catalog_digest_text(digest, "source", w->source->root);
    imgpack_catalog_digest_text(digest, "command",
                                info->command ? info->command : "");
    imgpack_catalog_digest_text(digest, "created", created);
    imgpack_catalog_digest_text(digest, "skipped", skipped);
}

/* The store's static metadata and class table, in one first transaction. */
static imgpack_status write_store_header(imgpack__writer *w,
                                         const imgpack__writer_info *info,
                                         const char *created,
                                         imgpack__error *err) {
    const imgpack__transform_settings *s = info->settings;
    const imgpack__source *src = w->source;
    imgpack__store_header h = {
        .format = s->format,
        .channels = s->channels,
        .width = info->width,
        .height = info->height,
        .resize = s->resize,
        .crop = s->crop,
        .num_classes = src->num_classes,
        .class_names = src->class_names,
        .class_descriptions = src->class_descriptions,
        .shard_index = info->shard_index,
        .shard_count = info->shard_count,
        .first_position = info->begin,
    };
    settings_text(s, h.settings);
    imgpack__source_digest(src, h.source_digest);
    dataset_digest(w, info, created, h.catalog_dataset_digest);
    return imgpack__store_header_write(&w->store, &h, err);
}

/* What the catalog's shard columns hold: the shard, or NULL (-1). */
static int64_t shard_column(const imgpack__writer_info *info) {
    return info->shard_count > 1 ? (int64_t)info->shard_index : -1;
}

static void utc_now(char out[32]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static imgpack_status write_catalog_header(imgpack__writer *w,
                                           const imgpack__writer_info *info,
                                           const char *created,
                                           imgpack__error *err) {
    const imgpack__transform_settings *s = info->settings;
    const imgpack__source *src = w->source;
    imgpack__catalog *c = &w->catalog;
    imgpack_status status;
    if ((status = imgpack__catalog_begin(c, err)))
        return status;
    for (uint32_t i = 0; i < src->num_classes && status == IMGPACK_OK; i++)
        status = imgpack__catalog_add_class(c, i, src->class_names[i],
                                            src->class_descriptions[i], err);
    if (status || (status = imgpack__catalog_set_int(c, "count", 0, err)) ||
        (status = imgpack__catalog_set_int(c, "num_classes", src->num_classes,
                                           err)) ||
        (status = imgpack__catalog_set_text(
             c, "format", imgpack_format_name(s->format), err)) ||
        (status = imgpack__catalog_set_int(c, "resize", s->resize, err)) ||
        (status = imgpack__catalog_set_int(c, "crop", s->crop, err)) ||
        (status = imgpack__catalog_set_int(c, "quality", s->quality, err)) ||
        (status = imgpack__catalog_set_int(c, "max_pixels",
                                           (int64_t)s->max_pixels, err)) ||
        (status = imgpack__catalog_set_int(c, "skipped", (int64_t)src->skipped,
                                           err)) ||
        (status = imgpack__catalog_set_text(c, "source", src->root, err)) ||
        (status = imgpack__catalog_set_text(c, "tool_version",
                                            IMGPACK_VERSION_STRING, err)) ||
        (status = imgpack__catalog_set_text(
             c, "command", info->command ? info->command : "", err)) ||
        (status = imgpack__catalog_set_text(c, "created", created, err)) ||
        (status = imgpack__catalog_set_text(c, "state", "packing", err)) ||
        (info->shard_count > 1 && ((status = imgpack__catalog_set_int(
                                        c, "shard", info->shard_index, err)) ||
                                   (status = imgpack__catalog_set_int(
                                        c, "shards", info->shard_count, err)))))
        return status;
    return imgpack__catalog_commit(c, err);
}

imgpack_status imgpack__writer_open(imgpack__writer *w, const char *out_dir,
                                    const imgpack__source *source,
                                    const imgpack__writer_info *info,
                                    imgpack__error *err) {
    imgpack_status status;
    char path[4096], created[32];
    memset(w, 0, sizeof *w);
    w->source = source;
    w->catalog_digest_known = 1;
    utc_now(created);
    if ((status = imgpack__store_create(&w->store, out_dir, err)))
        return status;
    snprintf(path, sizeof path, "%s/catalog.db", out_dir);
    if ((status = imgpack__catalog_create(&w->catalog, path, shard_column(info),
                                          err)) ||
        (status = write_catalog_header(w, info, created, err)) ||
        (status = write_store_header(w, info, created, err)) ||
        (status =
             imgpack__store_thread_start(&w->store_thread, &w->store, err)))
        imgpack__writer_close(w);
    return status;
}

/* Makes room for at least `count` labels and payload CRCs. */
static imgpack_status reserve_labels(imgpack__writer *w, uint64_t count,
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
    imgpack_status status = reserve_labels(w, w->packed + 1, err);
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

/* Reads a decimal metadata value. */
static imgpack_status meta_number(imgpack__writer *w, const char *key,
                                  uint64_t *value, imgpack__error *err) {
    char text[32], *end;
    imgpack_status status =
        imgpack__store_get_meta(&w->store, key, text, sizeof text, err);
    if (status != IMGPACK_OK)
        return status;
    *value = strtoull(text, &end, 10);
    if (*end != '\0' || end == text)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata '%s' is not a number: '%s'",
                                  w->store.dir, key, text);
    return IMGPACK_OK;
}

/* Refuses to add to a store that was packed with other settings, naming
   both: `what` says what was asked ("resume", "append"). */
static imgpack_status check_same_settings(imgpack__writer *w,
                                          const imgpack__writer_info *info,
                                          const char *what,
                                          imgpack__error *err) {
    char stored[SETTINGS_TEXT_SIZE], wanted[SETTINGS_TEXT_SIZE];
    uint64_t version;
    imgpack_status status;
    if ((status = meta_number(w, IMGPACK_META_FORMAT_VERSION, &version, err)))
        return status;
    if (version != IMGPACK__STORE_FORMAT_VERSION)
        return imgpack__error_set(err, IMGPACK_ERR_VERSION_MISMATCH,
                                  "%s: store format %" PRIu64 ", this imgpack "
                                  "writes %d",
                                  w->store.dir, version,
                                  IMGPACK__STORE_FORMAT_VERSION);
    if ((status = imgpack__store_get_meta(&w->store, IMGPACK_META_SETTINGS,
                                          stored, sizeof stored, err)))
        return status;
    settings_text(info->settings, wanted);
    if (strcmp(stored, wanted) != 0)
        return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: was packed with '%s', not '%s': %s "
                                  "with the original options",
                                  w->store.dir, stored, wanted, what);
    return IMGPACK_OK;
}

/* Refuses to resume a pack that was made differently. */
static imgpack_status check_same_pack(imgpack__writer *w,
                                      const imgpack__writer_info *info,
                                      imgpack__error *err) {
    char digest[65], stored_digest[65];
    imgpack_status status;
    if ((status = check_same_settings(w, info, "resume", err)) ||
        (status =
             imgpack__store_get_meta(&w->store, IMGPACK_META_SOURCE_DIGEST,
                                     stored_digest, sizeof stored_digest, err)))
        return status;
    imgpack__source_digest(w->source, digest);
    if (strcmp(stored_digest, digest) != 0)
        return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: the source listing is not the one this "
                                  "pack began with (files or classes were "
                                  "added, removed or renamed)",
                                  w->store.dir);
    return IMGPACK_OK;
}

/* Refuses an append to a store that is not complete, naming what to do. */
static imgpack_status check_complete(const imgpack__writer *w,
                                     const char *state, imgpack__error *err) {
    if (strcmp(state, IMGPACK_META_STATE_COMPLETE) == 0)
        return IMGPACK_OK;
    return imgpack__error_set(err, IMGPACK_ERR_INCOMPLETE,
                              "%s: its pack is not finished: finish it with "
                              "--resume before appending",
                              w->store.dir);
}

/*
 * Removes the records a stopped append committed past the store's count,
 * so that this one writes them again from there; then, in one
 * transaction, the new classes' names and the append's keys: from here
 * on the store says an append is under way (meta.h).
 */
static imgpack_status start_append(imgpack__writer *w, uint32_t old_classes,
                                   uint64_t count, uint64_t next_position,
                                   imgpack__error *err) {
    const imgpack__source *src = w->source;
    imgpack__meta_entry meta[3];
    imgpack__meta_decimal numbers[2];
    uint64_t appended = count;
    imgpack_status status =
        meta_number(w, IMGPACK_META_APPEND_COUNT, &appended, err);
    if (status == IMGPACK_ERR_NOT_A_STORE) {
        imgpack__error_clear(err); /* never appended to */
        status = IMGPACK_OK;
    }
    if (status == IMGPACK_OK && appended > count)
        status = imgpack__store_drop_records(&w->store, count, appended - count,
                                             err);
    if (status != IMGPACK_OK)
        return status;
    meta[0] = imgpack__meta_number_entry(&numbers[0], IMGPACK_META_APPEND_COUNT,
                                         count);
    meta[1] = imgpack__meta_number_entry(
        &numbers[1], IMGPACK_META_APPEND_NEXT_POSITION, next_position);
    meta[2] = imgpack__meta_text_entry(IMGPACK_META_APPEND_STATE,
                                       IMGPACK_META_STATE_APPENDING);
    return imgpack__store_classes_write(&w->store, src->class_names,
                                        src->class_descriptions, old_classes,
                                        src->num_classes, meta, 3, err);
}

/* Readies the catalog for an append, then adds the new classes' names to
   the store (published by the append's last batch). */
static imgpack_status begin_append(imgpack__writer *w, uint64_t count,
                                   uint64_t next_position,
                                   imgpack__error *err) {
    const imgpack__source *src = w->source;
    uint64_t old_classes;
    imgpack_status status;
    if ((status = meta_number(w, IMGPACK_META_NUM_CLASSES, &old_classes, err)))
        return status;
    if (old_classes > src->num_classes)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: the append's class table is shorter "
                                  "than the store's",
                                  w->store.dir);
    if ((status = imgpack__catalog_begin_append(
             &w->catalog, count, next_position, (uint32_t)old_classes,
             src->num_classes, src->class_names, src->class_descriptions,
             err)) ||
        (status =
             start_append(w, (uint32_t)old_classes, count, next_position, err)))
        return status;
    w->appending = 1;
    w->position_base = next_position;
    w->num_classes = src->num_classes;
    return IMGPACK_OK;
}

/*
 * Reopens a store to go on writing it: an interrupted pack to resume
 * (`append` 0), or a complete store to append to (`append` 1; then
 * *next_position is 0, the first item of the appended listing).
 */
static imgpack_status reopen(imgpack__writer *w, const char *out_dir,
                             const imgpack__source *source,
                             const imgpack__writer_info *info, int append,
                             uint64_t *next_position, imgpack__error *err) {
    imgpack_status status;
    char path[4096], state[16];
    uint64_t count;
    memset(w, 0, sizeof *w);
    w->source = source;
    snprintf(path, sizeof path, "%s/catalog.db", out_dir);
    /* The environment's databases, then its header, are the first two LMDB
       commits: without either, the pack died while starting and nothing
       was packed (imgpack__writer_discard_unstarted clears such a store).
       The directory might also be some other LMDB environment. */
    status = imgpack__store_reopen(&w->store, out_dir, err);
    if (status == IMGPACK_OK)
        status = imgpack__store_get_meta(&w->store, IMGPACK_META_FORMAT_VERSION,
                                         state, sizeof state, err);
    if (status == IMGPACK_ERR_NOT_A_STORE)
        status = imgpack__error_set(
            err, IMGPACK_ERR_NOT_A_STORE,
            "%s: holds no imgpack header, so no packed records (a pack "
            "stopped while starting?): remove it and pack again",
            out_dir);
    if (status != IMGPACK_OK)
        goto out;
    if ((status = append ? check_same_settings(w, info, "append", err)
                         : check_same_pack(w, info, err)) ||
        (status = imgpack__store_add_checksums(&w->store, err)) ||
        (status = meta_number(w, IMGPACK_META_COUNT, &count, err)) ||
        (status =
             meta_number(w, IMGPACK_META_NEXT_POSITION, next_position, err)) ||
        (status = imgpack__store_get_meta(&w->store, IMGPACK_META_STATE, state,
                                          sizeof state, err)) ||
        (append && (status = check_complete(w, state, err))) ||
        (status = imgpack__catalog_reopen(&w->catalog, path, shard_column(info),
                                          err)) ||
        (status = append ? begin_append(w, count, *next_position, err)
                         : imgpack__catalog_rewind(&w->catalog, count,
                                                   *next_position, err)) ||
        (status = reserve_labels(w, count, err)) ||
        (status =
             imgpack__store_payload_crcs(&w->store, count, w->crcs, err)) ||
        (status = imgpack__catalog_read_back(&w->catalog, count, w->labels,
                                             &w->rejected, &w->bytes, err)) ||
        (status =
             imgpack__store_thread_start(&w->store_thread, &w->store, err)))
        goto out;
    /* Missing in a store packed before the digest existed: go on without
       one rather than refuse the resume. */
    w->catalog_digest_known =
        imgpack__store_get_meta(&w->store, IMGPACK_META_CATALOG_DIGEST,
                                w->catalog_digest, sizeof w->catalog_digest,
                                err) == IMGPACK_OK;
    if (!w->catalog_digest_known)
        imgpack__error_clear(err);
    w->packed = count;
    if (append)
        *next_position = 0;
    w->committed_positions = *next_position;
    w->handed = w->durable =
        (imgpack__writer_counts){w->packed, w->rejected, w->bytes};
    /* A complete store has nothing left to pack: finishing it again is
       harmless and keeps one path for both cases. */
    if (!append && strcmp(state, IMGPACK_META_STATE_COMPLETE) == 0)
        *next_position = info->end;
out:
    if (status != IMGPACK_OK)
        imgpack__writer_close(w);
    return status;
}

imgpack_status imgpack__writer_resume(imgpack__writer *w, const char *out_dir,
                                      const imgpack__source *source,
                                      const imgpack__writer_info *info,
                                      uint64_t *next_position,
                                      imgpack__error *err) {
    return reopen(w, out_dir, source, info, 0, next_position, err);
}

imgpack_status imgpack__writer_append(imgpack__writer *w, const char *out_dir,
                                      const imgpack__source *source,
                                      const imgpack__writer_info *info,
                                      imgpack__error *err) {
    uint64_t first;
    return reopen(w, out_dir, source, info, 1, &first, err);
}

imgpack_status imgpack__writer_discard_unstarted(const char *out_dir,
                                                 imgpack__error *err) {
    char path[4096];
    imgpack_status status;
    if (!imgpack__store_is_unstarted(out_dir))
        return imgpack__error_set(
            err, IMGPACK_ERR_NOT_A_STORE,
            "%s: holds an LMDB environment without an imgpack header that "
            "is not what a pack stopped while starting leaves: not an "
            "imgpack store, left as it is",
            out_dir);
    /* The catalog first: a store killed while this runs is still one that
       a resume clears, never a catalog without its store. */
    snprintf(path, sizeof path, "%s/catalog.db", out_dir);
    if ((status = imgpack__catalog_remove(path, err)))
        return status;
    return imgpack__store_remove(out_dir, err);
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
