/*
 * The encodings of store_meta.h: shard names and the u32 tables; and the
 * records' format names (<imgpack/imgpack.h>), as the metadata and the
 * settings line spell them.
 */
#include "store_meta.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpack/pack.h"

void imgpack__shard_name(char out[IMGPACK__SHARD_NAME_SIZE], uint32_t k,
                         uint32_t n) {
    snprintf(out, IMGPACK__SHARD_NAME_SIZE, "shard-%" PRIu32 "-of-%" PRIu32, k,
             n);
}

void imgpack__shard_value(char out[IMGPACK__SHARD_NAME_SIZE], uint32_t k,
                          uint32_t n) {
    snprintf(out, IMGPACK__SHARD_NAME_SIZE, "%" PRIu32 "/%" PRIu32, k, n);
}

/* Parses decimal digits at *p without leading zeros into a value up to
   `max`, advancing *p. */
static int parse_count(const char **p, uint32_t max, uint32_t *out) {
    const char *s = *p;
    uint64_t n = 0;
    while (*s >= '0' && *s <= '9' && n <= max)
        n = n * 10 + (uint64_t)(*s++ - '0');
    if (s == *p || n > max || (**p == '0' && s - *p > 1))
        return 0;
    *p = s;
    *out = (uint32_t)n;
    return 1;
}

int imgpack__shard_name_parse(const char *name, uint32_t *k, uint32_t *n) {
    const char *p = name;
    if (strncmp(p, "shard-", 6) != 0)
        return 0;
    p += 6;
    if (!parse_count(&p, IMGPACK_MAX_SHARDS, k) || strncmp(p, "-of-", 4) != 0)
        return 0;
    p += 4;
    return parse_count(&p, IMGPACK_MAX_SHARDS, n) && *p == '\0' && *k < *n;
}

int imgpack__shard_value_parse(const char *value, uint32_t *k, uint32_t *n) {
    const char *p = value;
    if (!parse_count(&p, IMGPACK_MAX_SHARDS, k) || *p++ != '/')
        return 0;
    return parse_count(&p, IMGPACK_MAX_SHARDS, n) && *p == '\0' && *k < *n;
}

void imgpack__meta_u32_encode(uint8_t *out, const uint32_t *values,
                              uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            out[4 * i + b] = (uint8_t)(values[i] >> (8 * b));
}

void imgpack__meta_u32_decode(uint32_t *out, const uint8_t *bytes, uint64_t n) {
    for (uint64_t i = 0; i < n; i++, bytes += 4)
        out[i] = (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 |
                 (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

const char *imgpack_format_name(int format) {
    switch (format) {
    case IMGPACK_FORMAT_RAW:
        return "raw";
    case IMGPACK_FORMAT_JPEG:
        return "jpeg";
    case IMGPACK_FORMAT_WEBP:
        return "webp";
    case IMGPACK_FORMAT_WEBP_LOSSLESS:
        return "webp-lossless";
    }
    return NULL;
}

imgpack_status imgpack_format_parse(const char *name, int32_t *format) {
    for (int32_t f = IMGPACK_FORMAT_RAW; f <= IMGPACK_FORMAT_WEBP_LOSSLESS;
         f++) {
        if (strcmp(name, imgpack_format_name(f)) == 0) {
            *format = f;
            return IMGPACK_OK;
        }
    }
    return IMGPACK_ERR_INVALID_ARG;
}

/* ---- Entries ---------------------------------------------------------- */

imgpack__meta_entry imgpack__meta_number_entry(imgpack__meta_decimal *m,
                                               const char *key,
                                               uint64_t value) {
    snprintf(m->key, sizeof m->key, "%s", key);
    snprintf(m->value, sizeof m->value, "%" PRIu64, value);
    return (imgpack__meta_entry){m->key, m->value, strlen(m->value)};
}

imgpack__meta_entry imgpack__meta_text_entry(const char *key,
                                             const char *value) {
    return (imgpack__meta_entry){key, value, strlen(value)};
}

/* The header's numbers; the order is the entries' order. */
enum {
    N_VERSION,
    N_CHANNELS,
    N_WIDTH,
    N_HEIGHT,
    N_RESIZE,
    N_CROP,
    N_CLASSES,
    N_COUNT,
    N_NEXT,
    N_SHARD_FIRST,
    N_NUMBERS
};

/* The entries of classes [first, end): class/NNNNNNNN then
   description/NNNNNNNN where there is one, their keys in keys[2 * c] and
   keys[2 * c + 1]; returns how many. */
static size_t class_entries(imgpack__meta_entry *meta, char (*keys)[32],
                            char *const *names, char *const *descriptions,
                            uint32_t first, uint32_t end) {
    size_t n = 0;
    for (uint32_t c = first; c < end; c++) {
        snprintf(keys[2 * c], sizeof keys[0], IMGPACK_META_CLASS_FORMAT, c);
        meta[n++] = imgpack__meta_text_entry(keys[2 * c], names[c]);
        if (descriptions && descriptions[c]) {
            snprintf(keys[2 * c + 1], sizeof keys[0],
                     IMGPACK_META_DESCRIPTION_FORMAT, c);
            meta[n++] =
                imgpack__meta_text_entry(keys[2 * c + 1], descriptions[c]);
        }
    }
    return n;
}

imgpack_status
imgpack__store_classes_write(imgpack__store *s, char *const *names,
                             char *const *descriptions, uint32_t first,
                             uint32_t end, const imgpack__meta_entry *more,
                             size_t n_more, imgpack__error *err) {
    imgpack__meta_entry *meta =
        calloc(2 * (size_t)end + n_more + 1, sizeof *meta);
    char(*keys)[32] = calloc(2 * (size_t)end + 1, sizeof *keys);
    imgpack_status status =
        meta && keys
            ? IMGPACK_OK
            : imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    if (status == IMGPACK_OK) {
        size_t n = class_entries(meta, keys, names, descriptions, first, end);
        memcpy(meta + n, more, n_more * sizeof *more);
        status = imgpack__store_set_meta(s, meta, n + n_more, err);
    }
    free(meta);
    free(keys);
    return status;
}

imgpack_status imgpack__store_header_write(imgpack__store *s,
                                           const imgpack__store_header *h,
                                           imgpack__error *err) {
    char shard[IMGPACK__SHARD_NAME_SIZE];
    size_t n = 0, capacity = 20 + 2 * (size_t)h->num_classes;
    imgpack__meta_entry *meta = calloc(capacity, sizeof *meta);
    imgpack__meta_decimal *numbers = calloc(N_NUMBERS, sizeof *numbers);
    /* Class keys: class/NNNNNNNN then description/NNNNNNNN per class. */
    char(*keys)[32] = calloc(2 * (size_t)h->num_classes + 1, sizeof *keys);
    imgpack_status status = IMGPACK_ERR_NOMEM;
    if (!meta || !numbers || !keys) {
        imgpack__error_set(err, status, "out of memory");
        goto out;
    }
    meta[n++] = imgpack__meta_number_entry(&numbers[N_VERSION],
                                           IMGPACK_META_FORMAT_VERSION,
                                           IMGPACK__STORE_FORMAT_VERSION);
    meta[n++] = imgpack__meta_text_entry(IMGPACK_META_FORMAT,
                                         imgpack_format_name(h->format));
    meta[n++] = imgpack__meta_number_entry(&numbers[N_CHANNELS],
                                           IMGPACK_META_CHANNELS, h->channels);
    meta[n++] = imgpack__meta_number_entry(&numbers[N_WIDTH],
                                           IMGPACK_META_WIDTH, h->width);
    meta[n++] = imgpack__meta_number_entry(&numbers[N_HEIGHT],
                                           IMGPACK_META_HEIGHT, h->height);
    meta[n++] = imgpack__meta_number_entry(&numbers[N_RESIZE],
                                           IMGPACK_META_RESIZE, h->resize);
    meta[n++] = imgpack__meta_number_entry(&numbers[N_CROP], IMGPACK_META_CROP,
                                           h->crop);
    meta[n++] = imgpack__meta_number_entry(
        &numbers[N_CLASSES], IMGPACK_META_NUM_CLASSES, h->num_classes);
    meta[n++] =
        imgpack__meta_number_entry(&numbers[N_COUNT], IMGPACK_META_COUNT, 0);
    meta[n++] = imgpack__meta_number_entry(
        &numbers[N_NEXT], IMGPACK_META_NEXT_POSITION, h->first_position);
    if (h->shard_count > 1) {
        imgpack__shard_value(shard, h->shard_index, h->shard_count);
        meta[n++] = imgpack__meta_text_entry(IMGPACK_META_SHARD, shard);
        meta[n++] = imgpack__meta_number_entry(
            &numbers[N_SHARD_FIRST], IMGPACK_META_SHARD_FIRST_POSITION,
            h->first_position);
    }
    meta[n++] = imgpack__meta_text_entry(IMGPACK_META_STATE,
                                         IMGPACK_META_STATE_PACKING);
    meta[n++] = imgpack__meta_text_entry(IMGPACK_META_SETTINGS, h->settings);
    meta[n++] =
        imgpack__meta_text_entry(IMGPACK_META_SOURCE_DIGEST, h->source_digest);
    meta[n++] = imgpack__meta_text_entry(IMGPACK_META_TOOL_VERSION,
                                         IMGPACK_VERSION_STRING);
    meta[n++] = imgpack__meta_text_entry(IMGPACK_META_CATALOG_DATASET_DIGEST,
                                         h->catalog_dataset_digest);
    n += class_entries(meta + n, keys, h->class_names, h->class_descriptions, 0,
                       h->num_classes);
    status = imgpack__store_set_meta(s, meta, n, err);
out:
    free(meta);
    free(numbers);
    free(keys);
    return status;
}

/* ---- Reading ---------------------------------------------------------- */

int imgpack__meta_get(const imgpack__meta_view *m, const char *key,
                      MDB_val *value) {
    return imgpack__meta_sum_get(m->txn, m->dbi, m->bounds, m->sums, key,
                                 value);
}

imgpack_status imgpack__meta_fail(imgpack__error *err, int rc, const char *dir,
                                  const char *key) {
    if (rc == IMGPACK__META_SUM_MISMATCH || rc == IMGPACK__META_OUTSIDE)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"%s\" %s", dir, key,
                                  imgpack__meta_sum_strerror(rc));
    return imgpack__store_fail(err, rc, dir, "cannot read metadata");
}

int imgpack__meta_is(const MDB_val *v, const char *text) {
    return v->mv_size == strlen(text) &&
           memcmp(v->mv_data, text, v->mv_size) == 0;
}

imgpack_status imgpack__meta_number(const imgpack__meta_view *m,
                                    const char *key, uint64_t max,
                                    uint64_t *out, imgpack__error *err) {
    MDB_val v;
    uint64_t n = 0;
    int rc = imgpack__meta_get(m, key, &v);
    if (rc == MDB_NOTFOUND)
        return imgpack__error_set(err, IMGPACK_ERR_NOT_A_STORE,
                                  "%s: metadata has no \"%s\"", m->dir, key);
    if (rc != 0)
        return imgpack__meta_fail(err, rc, m->dir, key);
    const uint8_t *p = v.mv_data;
    int ok = v.mv_size > 0 && v.mv_size <= 20;
    for (size_t i = 0; ok && i < v.mv_size; i++) {
        ok = p[i] >= '0' && p[i] <= '9' && n <= (max - (p[i] - '0')) / 10;
        n = n * 10 + (uint64_t)(p[i] - '0');
    }
    if (!ok)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"%s\" is not a number up to "
                                  "%" PRIu64,
                                  m->dir, key, max);
    *out = n;
    return IMGPACK_OK;
}

imgpack_status imgpack__meta_table(const imgpack__meta_view *m, const char *key,
                                   uint64_t count, uint32_t *out,
                                   imgpack__error *err) {
    MDB_val v;
    int rc = imgpack__meta_get(m, key, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return imgpack__meta_fail(err, rc, m->dir, key);
    if (rc == MDB_NOTFOUND || v.mv_size != count * 4)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"%s\" does not hold "
                                  "%" PRIu64 " values",
                                  m->dir, key, count);
    imgpack__meta_u32_decode(out, v.mv_data, count);
    return IMGPACK_OK;
}

/* The value of `key` as a new NUL-terminated string into *out; NULL when
   the key is missing. */
static imgpack_status meta_string(const imgpack__meta_view *m, const char *key,
                                  char **out, imgpack__error *err) {
    MDB_val v;
    int rc = imgpack__meta_get(m, key, &v);
    *out = NULL;
    if (rc == MDB_NOTFOUND)
        return IMGPACK_OK;
    if (rc != 0)
        return imgpack__meta_fail(err, rc, m->dir, key);
    if (!(*out = malloc(v.mv_size + 1)))
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "%s: out of memory",
                                  m->dir);
    memcpy(*out, v.mv_data, v.mv_size);
    (*out)[v.mv_size] = '\0';
    return IMGPACK_OK;
}

/* The value of `key` into out[capacity] ("" when missing): a longer one
   is no value this library wrote. */
static imgpack_status meta_text(const imgpack__meta_view *m, const char *key,
                                char *out, size_t capacity,
                                imgpack__error *err) {
    MDB_val v;
    int rc = imgpack__meta_get(m, key, &v);
    out[0] = '\0';
    if (rc == MDB_NOTFOUND)
        return IMGPACK_OK;
    if (rc != 0)
        return imgpack__meta_fail(err, rc, m->dir, key);
    if (v.mv_size >= capacity)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"%s\" is longer than %zu "
                                  "bytes",
                                  m->dir, key, capacity - 1);
    memcpy(out, v.mv_data, v.mv_size);
    out[v.mv_size] = '\0';
    return IMGPACK_OK;
}

static imgpack_status read_classes(const imgpack__meta_view *m,
                                   int descriptions, imgpack__store_header *h,
                                   imgpack__error *err) {
    uint32_t count = h->num_classes ? h->num_classes : 1;
    imgpack_status status = IMGPACK_OK;
    char key[32];
    h->class_names = calloc(count, sizeof *h->class_names);
    h->class_descriptions = calloc(count, sizeof *h->class_descriptions);
    if (!h->class_names || !h->class_descriptions)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "%s: out of memory",
                                  m->dir);
    for (uint32_t c = 0; c < h->num_classes && status == IMGPACK_OK; c++) {
        snprintf(key, sizeof key, IMGPACK_META_CLASS_FORMAT, c);
        status = meta_string(m, key, &h->class_names[c], err);
        if (status == IMGPACK_OK && !h->class_names[c])
            status = imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                        "%s: metadata has no name for class "
                                        "%" PRIu32,
                                        m->dir, c);
        snprintf(key, sizeof key, IMGPACK_META_DESCRIPTION_FORMAT, c);
        if (status == IMGPACK_OK && descriptions)
            status = meta_string(m, key, &h->class_descriptions[c], err);
    }
    return status;
}

imgpack_status imgpack__store_header_read(const imgpack__meta_view *m, int all,
                                          imgpack__store_header *h,
                                          imgpack__error *err) {
    static const struct {
        const char *key;
        uint64_t max;
        size_t offset;
    } numbers[] = {
        {IMGPACK_META_CHANNELS, 4, offsetof(imgpack__store_header, channels)},
        {IMGPACK_META_WIDTH, IMGPACK_MAX_RECORD_SIDE,
         offsetof(imgpack__store_header, width)},
        {IMGPACK_META_HEIGHT, IMGPACK_MAX_RECORD_SIDE,
         offsetof(imgpack__store_header, height)},
        {IMGPACK_META_RESIZE, IMGPACK_MAX_RECORD_SIDE,
         offsetof(imgpack__store_header, resize)},
        {IMGPACK_META_CROP, IMGPACK_MAX_RECORD_SIDE,
         offsetof(imgpack__store_header, crop)},
        {IMGPACK_META_NUM_CLASSES, UINT32_MAX,
         offsetof(imgpack__store_header, num_classes)},
    };
    char name[32] = "";
    MDB_val v;
    uint64_t n;
    imgpack_status status;
    memset(h, 0, sizeof *h);
    if ((status = imgpack__meta_number(m, IMGPACK_META_FORMAT_VERSION,
                                       UINT32_MAX, &n, err)))
        return status;
    if (n != IMGPACK__STORE_FORMAT_VERSION)
        return imgpack__error_set(err, IMGPACK_ERR_VERSION_MISMATCH,
                                  "%s: store format version %" PRIu64
                                  ", this library reads %d",
                                  m->dir, n, IMGPACK__STORE_FORMAT_VERSION);
    int rc = imgpack__meta_get(m, IMGPACK_META_FORMAT, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return imgpack__meta_fail(err, rc, m->dir, IMGPACK_META_FORMAT);
    if (rc == 0 && v.mv_size < sizeof name)
        memcpy(name, v.mv_data, v.mv_size);
    if (rc != 0 || imgpack_format_parse(name, &h->format) != IMGPACK_OK)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"" IMGPACK_META_FORMAT
                                  "\" is missing or unknown",
                                  m->dir);
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if ((status = imgpack__meta_number(m, numbers[i].key, numbers[i].max,
                                           &n, err)))
            return status;
        *(uint32_t *)((char *)h + numbers[i].offset) = (uint32_t)n;
    }
    if (h->channels != 1 && h->channels != 3)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"" IMGPACK_META_CHANNELS
                                  "\" is %" PRIu32,
                                  m->dir, h->channels);
    if ((all &&
         ((status = meta_text(m, IMGPACK_META_SETTINGS, h->settings,
                              sizeof h->settings, err)) ||
          (status = meta_text(m, IMGPACK_META_SOURCE_DIGEST, h->source_digest,
                              sizeof h->source_digest, err)) ||
          (status = meta_text(m, IMGPACK_META_CATALOG_DATASET_DIGEST,
                              h->catalog_dataset_digest,
                              sizeof h->catalog_dataset_digest, err)))) ||
        (status = read_classes(m, all, h, err)))
        imgpack__store_header_free(h);
    return status;
}

void imgpack__store_header_free(imgpack__store_header *h) {
    for (uint32_t c = 0; c < h->num_classes; c++) {
        if (h->class_names)
            free(h->class_names[c]);
        if (h->class_descriptions)
            free(h->class_descriptions[c]);
    }
    free(h->class_names);
    free(h->class_descriptions);
    h->class_names = h->class_descriptions = NULL;
    h->num_classes = 0;
}
