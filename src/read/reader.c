/*
 * The reader's records: where a global index lies, the checks on each
 * record, and the calls beneath get, decode, labels and batches. The
 * thread's slot and read transactions are reader_session.c's;
 * reader_open.c opens the store or shards and loads the metadata; the
 * state they share is in reader_open.h.
 *
 * Shards. A global index maps to (shard, local index) by a binary search
 * of the shards' first indices; a single store is one shard and skips the
 * search. A thread's transaction on a shard is begun the first time the
 * thread reads that shard, so a thread that reads few shards holds few
 * transactions.
 *
 * Checks. The first read of a record checks everything: that the value
 * lies within data.mdb (a damaged page can point LMDB anywhere in the
 * map), the header CRC, the payload CRC (unless IMGPACK_OPEN_NO_VERIFY),
 * and in a complete dataset that label and payload CRC are the ones the
 * `labels` and `payload_crcs` metadata hold for the index, which catches
 * a damaged leaf filing one record under another's key. In a complete
 * dataset nothing ever rewrites a record, so a bitmap (in memory shared
 * with forked children) remembers which records passed, and later reads
 * only parse the header fields and check sizes. IMGPACK_OPEN_VERIFY
 * checks the payload CRC on every read. A store still being packed has
 * no bitmap and no tables: every read checks header and payload.
 */
#include "reader_internal.h"

#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "reader_open.h"
#include "store.h"

/* Room for where() below: a shard's name and a local index. */
#define WHERE_SIZE 64

/* ---- Records ---------------------------------------------------------- */

/* The shard holding global index `index` (< r->count). */
static uint32_t locate(const imgpack_reader *r, uint64_t index) {
    /* Invariant first[lo] <= index < first[hi]. An empty shard's first
       equals the next one's, so the search never ends on it. */
    uint32_t lo = 0, hi = r->num_shards;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->first[mid] <= index)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* What follows a global index in a message: which record of which shard
   it is, or "" for a single store, where the two are the same. */
static const char *where(const imgpack_reader *r, uint32_t k, uint64_t local,
                         char buf[WHERE_SIZE]) {
    if (r->num_shards == 1)
        return "";
    const char *slash = strrchr(r->shards[k].dir, '/');
    snprintf(buf, WHERE_SIZE, " (%s record %" PRIu64 ")",
             slash ? slash + 1 : r->shards[k].dir, local);
    return buf;
}

/* Finds the value of record `index` (global) and the shard holding it,
   unchecked. */
static imgpack_status lookup(imgpack_reader *r, imgpack__read_slot *s,
                             uint64_t index, uint32_t *shard, MDB_val *value) {
    uint8_t key_bytes[IMGPACK__KEY_SIZE];
    MDB_val key = {sizeof key_bytes, key_bytes};
    char at[WHERE_SIZE];
    if (index >= r->count)
        return imgpack__error_set(&s->err, IMGPACK_ERR_RANGE,
                                  "%s: record %" PRIu64
                                  " is out of range (%" PRIu64 " records)",
                                  r->dir, index, r->count);
    /* A single store skips the search: global and local indices agree. */
    uint32_t k = 0;
    uint64_t local = index;
    if (r->num_shards > 1) {
        k = locate(r, index);
        local = index - r->first[k];
    }
    MDB_txn *txn = imgpack__reader_txn(r, s, k);
    if (!txn)
        return s->err.code;
    imgpack__record_key(local, key_bytes);
    int rc = mdb_get(txn, r->shards[k].records, &key, value);
    if (rc == MDB_NOTFOUND)
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64 "%s is missing", r->dir,
                                  index, where(r, k, local, at));
    if (rc != 0)
        return imgpack__store_fail(&s->err, rc, r->shards[k].dir,
                                   "cannot read a record");
    *shard = k;
    return IMGPACK_OK;
}

imgpack_status imgpack__reader_locate(imgpack_reader *r, imgpack__read_slot *s,
                                      uint64_t index, uint32_t *shard,
                                      const uint8_t **data, size_t *size) {
    MDB_val value;
    imgpack_status status = lookup(r, s, index, shard, &value);
    if (status == IMGPACK_OK) {
        *data = value.mv_data;
        *size = value.mv_size;
    }
    return status;
}

/* The checked value of record `index` (global): header fields and
   payload. */
static imgpack_status fetch(imgpack_reader *r, imgpack__read_slot *s,
                            uint64_t index, imgpack__record_header *h,
                            const uint8_t **payload) {
    MDB_val value;
    char at[WHERE_SIZE];
    uint32_t k;
    imgpack_status found = lookup(r, s, index, &k, &value);
    if (found)
        return found;
    uint64_t local = index - r->first[k];
    if (!imgpack__map_contains(r->shards[k].env, &r->shards[k].bounds,
                               value.mv_data, value.mv_size))
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64
                                  "%s lies outside data.mdb (damaged LMDB "
                                  "page)",
                                  r->dir, index, where(r, k, local, at));
    int always = (r->flags & IMGPACK_OPEN_VERIFY) != 0;
    int check_payload = (r->flags & IMGPACK_OPEN_NO_VERIFY) == 0;
    _Atomic uint64_t *word = r->verified ? &r->verified[index / 64] : NULL;
    uint64_t bit = (uint64_t)1 << (index % 64);
    imgpack_status status;
    if (word && !always &&
        (atomic_load_explicit(word, memory_order_relaxed) & bit)) {
        status =
            imgpack__record_parse_verified(value.mv_data, value.mv_size, h);
        if (status != IMGPACK_OK)
            return imgpack__error_set(&s->err, status,
                                      "%s: record %" PRIu64
                                      "%s is corrupt (bad size)",
                                      r->dir, index, where(r, k, local, at));
        goto checked;
    }
    status =
        imgpack__record_parse(value.mv_data, value.mv_size, check_payload, h);
    if (status == IMGPACK_ERR_VERSION_MISMATCH)
        return imgpack__error_set(&s->err, status,
                                  "%s: record %" PRIu64
                                  "%s has an unknown layout version",
                                  r->dir, index, where(r, k, local, at));
    /* A header that parses without the payload check points at the
       payload: name it, since verify reports which part was damaged. */
    if (status != IMGPACK_OK && check_payload &&
        imgpack__record_parse(value.mv_data, value.mv_size, 0, h) == IMGPACK_OK)
        return imgpack__error_set(&s->err, status,
                                  "%s: record %" PRIu64
                                  "%s is corrupt (payload checksum mismatch)",
                                  r->dir, index, where(r, k, local, at));
    if (status != IMGPACK_OK)
        return imgpack__error_set(&s->err, status,
                                  "%s: record %" PRIu64
                                  "%s is corrupt (bad magic, checksum or size)",
                                  r->dir, index, where(r, k, local, at));
    if (r->labels && h->label != r->labels[index])
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64 "%s: label %" PRIu32
                                  ", the labels metadata says %" PRIu32,
                                  r->dir, index, where(r, k, local, at),
                                  h->label, r->labels[index]);
    if (r->payload_crcs && h->payload_crc != r->payload_crcs[index])
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64
                                  "%s is not the record packed at this index "
                                  "(its payload CRC is not the one "
                                  "payload_crcs holds: damaged LMDB page)",
                                  r->dir, index, where(r, k, local, at));
    if (h->label >= r->num_classes)
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64 "%s has label %" PRIu32
                                  ", past the %" PRIu32 " classes",
                                  r->dir, index, where(r, k, local, at),
                                  h->label, r->num_classes);
    if (h->width == 0 || h->height == 0 || h->width > IMGPACK_MAX_RECORD_SIDE ||
        h->height > IMGPACK_MAX_RECORD_SIDE ||
        (h->channels != r->channels && h->channels != 1))
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64 "%s claims %" PRIu32
                                  "x%" PRIu32 "x%u pixels",
                                  r->dir, index, where(r, k, local, at),
                                  h->width, h->height, (unsigned)h->channels);
    if (word)
        atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
checked:
    *payload = (const uint8_t *)value.mv_data + IMGPACK__RECORD_HEADER_SIZE;
    return IMGPACK_OK;
}

imgpack_status imgpack__reader_pixels(imgpack_reader *r, imgpack__read_slot *s,
                                      uint64_t index,
                                      const imgpack__window *window,
                                      imgpack__record_header *h,
                                      imgpack__pixels *px) {
    const uint8_t *payload = NULL;
    char reason[IMGPACK__REASON_SIZE];
    imgpack_status status = fetch(r, s, index, h, &payload);
    if (status)
        return status;
    imgpack__reader_rearm(r, payload, h->payload_size);
    if (h->format == IMGPACK_FORMAT_RAW) {
        *px = (imgpack__pixels){payload, h->width, h->height, h->channels,
                                (size_t)h->width * h->channels};
        return IMGPACK_OK;
    }
    if (!s->decoder && imgpack__decoder_create(&s->decoder) != IMGPACK_OK)
        return imgpack__error_set(&s->err, IMGPACK_ERR_NOMEM,
                                  "%s: out of memory", r->dir);
    /* The header's size is the pixel limit: a payload claiming more is
       damaged, and must not make us allocate for it. */
    status = imgpack__decode_window(s->decoder, payload, h->payload_size,
                                    (uint64_t)h->width * h->height, window, px,
                                    reason);
    if (status == IMGPACK_ERR_TOO_LARGE)
        status = IMGPACK_ERR_DECODE;
    if (status != IMGPACK_OK)
        return imgpack__error_set(&s->err, status, "%s: record %" PRIu64 ": %s",
                                  r->dir, index, reason);
    if (px->width != h->width || px->height != h->height ||
        (px->channels != h->channels && px->channels != 1))
        return imgpack__error_set(
            &s->err, IMGPACK_ERR_DECODE,
            "%s: record %" PRIu64 " decodes to %" PRIu32 "x%" PRIu32
            ", its header says %" PRIu32 "x%" PRIu32,
            r->dir, index, px->width, px->height, h->width, h->height);
    return IMGPACK_OK;
}

imgpack_status imgpack_reader_get(imgpack_reader *r, uint64_t index,
                                  imgpack_record *out) {
    imgpack__read_slot *s;
    imgpack__record_header h;
    const uint8_t *payload = NULL;
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    if ((status = fetch(r, s, index, &h, &payload)) == IMGPACK_OK)
        *out = (imgpack_record){payload,  h.payload_size, h.format, h.width,
                                h.height, h.channels,     h.label};
    imgpack__reader_end(r, s);
    return status;
}

imgpack_status imgpack_reader_decode(imgpack_reader *r, uint64_t index,
                                     uint8_t *pixels, uint64_t capacity,
                                     imgpack_record *out) {
    imgpack__read_slot *s;
    imgpack__record_header h;
    imgpack__pixels px;
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    if ((status = imgpack__reader_pixels(r, s, index, NULL, &h, &px)))
        goto out;
    uint64_t row = (uint64_t)h.width * h.channels;
    if (!pixels || capacity < row * h.height) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: record %" PRIu64 " needs %" PRIu64
                                    " bytes, the buffer has %" PRIu64,
                                    r->dir, index, row * h.height, capacity);
        goto out;
    }
    for (uint32_t y = 0; y < h.height; y++) {
        const uint8_t *src = px.data + y * px.stride;
        uint8_t *dst = pixels + y * row;
        if (px.channels == h.channels) {
            memcpy(dst, src, row);
        } else {
            /* A gray JPEG in an RGB record: replicate, as the packer did. */
            for (uint32_t x = 0; x < h.width; x++)
                for (uint32_t c = 0; c < h.channels; c++)
                    dst[x * h.channels + c] = src[x];
        }
    }
    *out = (imgpack_record){pixels,  row * h.height, IMGPACK_FORMAT_RAW,
                            h.width, h.height,       h.channels,
                            h.label};
out:
    imgpack__reader_end(r, s);
    return status;
}

/* Label of record `index` inside session `s`: from the labels metadata once
   packing has written it, else from the record's header. */
static imgpack_status label_of(imgpack_reader *r, imgpack__read_slot *s,
                               uint64_t index, uint32_t *label) {
    imgpack__record_header h;
    const uint8_t *payload = NULL;
    imgpack_status status = IMGPACK_OK;
    if (r->labels && index < r->count)
        *label = r->labels[index];
    else if ((status = fetch(r, s, index, &h, &payload)) == IMGPACK_OK)
        *label = h.label;
    return status;
}

imgpack_status imgpack_reader_labels(imgpack_reader *r, uint32_t *labels,
                                     uint64_t n) {
    imgpack__read_slot *s;
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    if (n > r->count || (n > 0 && !labels)) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_RANGE,
                                    "%s: %" PRIu64 " labels asked, the store "
                                    "has %" PRIu64 " records",
                                    r->dir, n, r->count);
    } else if (r->labels) {
        memcpy(labels, r->labels, n * sizeof *labels);
    } else {
        /* Still packing: no labels metadata yet, so read each header. */
        for (uint64_t i = 0; i < n && status == IMGPACK_OK; i++)
            status = label_of(r, s, i, &labels[i]);
    }
    imgpack__reader_end(r, s);
    return status;
}

imgpack_status imgpack_reader_label(imgpack_reader *r, uint64_t index,
                                    uint32_t *label) {
    imgpack__read_slot *s;
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    status = label_of(r, s, index, label);
    imgpack__reader_end(r, s);
    return status;
}
