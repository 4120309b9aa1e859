/*
 * Opening the writer: a new store's header and catalog, and an existing
 * store reopened to resume its pack or to append to it, after checking
 * that it was made with the same settings (batching is writer.c).
 */
#include "writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imgpack/imgpack.h"
#include "imgpack/verify.h"
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
        (status = imgpack__writer_reserve_labels(w, count, err)) ||
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
