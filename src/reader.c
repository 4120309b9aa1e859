/*
 * The reader at training time: one slot per calling thread, read
 * transactions, and the record access beneath get, decode, labels and
 * batches. reader_open.c opens the store or shards and loads the
 * metadata; the state both share is in reader_open.h.
 *
 * Slots. LMDB read transactions belong to one thread at a time; with
 * MDB_NOTLS they belong to us rather than to the thread's TLS, so each
 * thread that calls in gets a slot holding its own transaction per shard
 * (plus its decoder and its error message). Slots live on a list under
 * `lock` until close; a small thread-local cache keyed by the reader's
 * unique id finds the calling thread's slot without taking the lock. A
 * slot whose thread exited is picked up by the next thread that gets the
 * same pthread_t, which is safe since only one live thread can have it.
 *
 * Shards. A global index maps to (shard, local index) by a binary search
 * of the shards' first indices; a single store is one shard and skips the
 * search. A thread's transaction on a shard is begun the first time the
 * thread reads that shard, so a thread that reads few shards holds few
 * transactions.
 *
 * Transactions. A transaction is renewed only when the data can change:
 * for a complete dataset the snapshot is final, so it stays open between
 * calls and a get is a bare mdb_get. For a dataset still being packed
 * every call bumps the slot's stamp, and each transaction is reset and
 * renewed at its first use in the call, which keeps an idle reader from
 * pinning old pages and lets refresh() widen the range.
 *
 * Remapping. Each slot has a mutex that its thread holds for the length
 * of every call (uncontended, on a cache line no other thread touches, so
 * it costs a few nanoseconds where a shared rwlock would bounce between
 * cores). MDB_MAP_RESIZED (a writer grew a shard's file past our map)
 * makes the thread let go of its own mutex and take every slot's, so no
 * other thread is inside a call, and remap that shard with
 * mdb_env_set_mapsize(env, 0), which adopts the writer's size.
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
 *
 * fork(). A handler registered with pthread_atfork counts forks in the
 * child. Every call compares that count with the one the environments were
 * opened under; on a mismatch the child drops the parent's slots and
 * environments without closing them (LMDB's close would clear the parent's
 * reader slots in the shared lock files, and the parent's transactions are
 * its own) and opens every shard again.
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
#include "meta_sum.h"
#include "reader_open.h"
#include "store.h"
#include "store_meta.h"

/* Recently used (reader, slot) pairs per thread: a training process reads
   one or two stores, and a miss only costs a locked list walk. */
#define SLOT_CACHE_SIZE 4

/* Remaps in a row before giving up: each one adopts the writer's latest
   map size, so a second is needed only if it grew again meanwhile. */
#define MAX_REMAPS 8

/* Room for where() below: a shard's name and a local index. */
#define WHERE_SIZE 64

/* Not an LMDB code: a meta lookup had no transaction; the slot says why. */
#define NO_TXN (-1)

static atomic_uint fork_count;
/* Held across fork() so that no child inherits a reopen half done. */
static pthread_mutex_t reopen_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* initial-exec: a direct %fs-relative access instead of a
   __tls_get_addr call per get, which costs as much as the rest of the
   lookup. The 72 bytes fit the static TLS that glibc keeps spare for
   libraries loaded by dlopen (as Python's ctypes does). */
#define SLOT_CACHE_TLS _Thread_local __attribute__((tls_model("initial-exec")))
static SLOT_CACHE_TLS struct {
    uint64_t id;
    imgpack__read_slot *slot;
} slot_cache[SLOT_CACHE_SIZE];
static SLOT_CACHE_TLS unsigned slot_cache_next;

static void before_fork(void) { pthread_mutex_lock(&reopen_lock); }

static void after_fork_parent(void) { pthread_mutex_unlock(&reopen_lock); }

static void after_fork_child(void) {
    atomic_fetch_add(&fork_count, 1);
    pthread_mutex_unlock(&reopen_lock);
}

static void register_fork_handler(void) {
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

unsigned imgpack__fork_generation(void) {
    pthread_once(&fork_once, register_fork_handler);
    return atomic_load_explicit(&fork_count, memory_order_acquire);
}

/* Frees the slots. Their transactions are aborted only when they belong
   to this process's environments: a child must not touch its parent's. */
static void drop_slots(imgpack_reader *r, int abort_txns) {
    imgpack__read_slot *s = r->slots, *next;
    for (; s; s = next) {
        next = s->next;
        for (uint32_t k = 0; abort_txns && k < r->num_shards; k++)
            if (s->txns[k].txn)
                mdb_txn_abort(s->txns[k].txn);
        if (abort_txns)
            pthread_mutex_destroy(&s->busy);
        imgpack__decoder_destroy(s->decoder);
        free(s);
    }
    r->slots = NULL;
}

void imgpack_reader_close(imgpack_reader *r) {
    if (!r)
        return;
    int same_process =
        atomic_load(&r->generation) == imgpack__fork_generation();
    drop_slots(r, same_process);
    imgpack__reader_free(r, same_process);
}

/* ---- Per-thread sessions ---------------------------------------------- */

/* In a forked child: forget the parent's environments and open our own. */
static imgpack_status reopen_in_child(imgpack_reader *r, unsigned generation) {
    imgpack_status status = IMGPACK_OK;
    pthread_mutex_lock(&reopen_lock);
    if (atomic_load_explicit(&r->generation, memory_order_acquire) ==
        generation)
        goto out;
    /* The parent's threads do not exist here; any lock they held at the
       fork would stay held forever, so the locks start afresh. */
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                    "%s: cannot make locks after fork", r->dir);
        goto out;
    }
    drop_slots(r, 0);
    for (uint32_t k = 0; k < r->num_shards; k++)
        r->shards[k].env = NULL; /* the parent's; see the top of this file */
    if ((status = imgpack__reader_open_envs(r)))
        goto out;
    r->id = imgpack__reader_new_id();
    atomic_store_explicit(&r->generation, generation, memory_order_release);
out:
    pthread_mutex_unlock(&reopen_lock);
    return status;
}

/* The calling thread's slot, made on first use; NULL without memory. With
   `create` 0, NULL when the thread has none. */
static imgpack__read_slot *find_slot(const imgpack_reader *cr, int create) {
    imgpack_reader *r = (imgpack_reader *)cr;
    pthread_t self = pthread_self();
    imgpack__read_slot *s;
    for (unsigned i = 0; i < SLOT_CACHE_SIZE; i++)
        if (slot_cache[i].id == r->id)
            return slot_cache[i].slot;
    pthread_mutex_lock(&r->lock);
    for (s = r->slots; s; s = s->next)
        if (pthread_equal(s->thread, self))
            break;
    if (!s && create &&
        (s = calloc(1, sizeof *s + r->num_shards * sizeof s->txns[0])) !=
            NULL) {
        if (pthread_mutex_init(&s->busy, NULL) != 0) {
            free(s);
            s = NULL;
        } else {
            s->thread = self;
            s->stamp = 1; /* newer than the 0 of transactions never begun */
            s->snapshot = r->snapshot;
            s->next = r->slots;
            r->slots = s;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (s) {
        unsigned i = slot_cache_next++ % SLOT_CACHE_SIZE;
        slot_cache[i].id = r->id;
        slot_cache[i].slot = s;
    }
    return s;
}

/* Begins or renews the slot's transaction on shard k. */
static int renew(imgpack_reader *r, imgpack__read_slot *s, uint32_t k) {
    imgpack__slot_txn *t = &s->txns[k];
    int rc;
    if (!t->txn) {
        rc = mdb_txn_begin(r->shards[k].env, NULL, MDB_RDONLY, &t->txn);
        if (rc != 0)
            t->txn = NULL;
    } else {
        if (t->live)
            mdb_txn_reset(t->txn);
        rc = mdb_txn_renew(t->txn);
        if (rc != 0) {
            mdb_txn_abort(t->txn);
            t->txn = NULL;
        }
    }
    t->live = rc == 0;
    t->stamp = s->stamp;
    return rc;
}

/* After MDB_MAP_RESIZED on shard k: with every other call kept out, adopt
   the writer's map size. Other threads' views into that shard end here,
   which the documented validity allows only because no call of theirs is
   running. */
static int remap(imgpack_reader *r, uint32_t k) {
    imgpack__read_slot *s;
    pthread_mutex_lock(&r->lock);
    for (s = r->slots; s; s = s->next)
        pthread_mutex_lock(&s->busy);
    for (s = r->slots; s; s = s->next)
        if (s->txns[k].txn && s->txns[k].live) {
            mdb_txn_reset(s->txns[k].txn);
            s->txns[k].live = 0;
        }
    int rc = mdb_env_set_mapsize(r->shards[k].env, 0);
    for (s = r->slots; s; s = s->next)
        pthread_mutex_unlock(&s->busy);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* The slow path of current(): renews the transaction on shard k, remapping
   the shard if a writer outgrew our map. The calling thread holds its busy
   mutex on entry and on return, but not during a remap. */
static imgpack_status refresh_txn(imgpack_reader *r, imgpack__read_slot *s,
                                  uint32_t k) {
    imgpack_status status = IMGPACK_OK;
    int rc;
    for (int remaps = 0;; remaps++) {
        rc = renew(r, s, k);
        if (rc != MDB_MAP_RESIZED || remaps == MAX_REMAPS)
            break;
        pthread_mutex_unlock(&s->busy);
        rc = remap(r, k);
        pthread_mutex_lock(&s->busy);
        if (rc != 0) {
            status = imgpack__store_fail(&s->err, rc, r->shards[k].dir,
                                         "cannot remap the store");
            goto out;
        }
    }
    if (rc != 0)
        status = imgpack__store_fail(&s->err, rc, r->shards[k].dir,
                                     "cannot begin a read");
out:
    return status;
}

/* The slot's transaction on shard k, current for this call, or NULL with
   the reason in the slot. */
static inline MDB_txn *current(imgpack_reader *r, imgpack__read_slot *s,
                               uint32_t k) {
    imgpack__slot_txn *t = &s->txns[k];
    /* Expected: in a complete dataset the transaction stays current, and
       laying that path out straight is worth a few percent of a get. */
    if (__builtin_expect(t->live && t->stamp == s->stamp, 1))
        return t->txn;
    return refresh_txn(r, s, k) == IMGPACK_OK ? t->txn : NULL;
}

imgpack_status imgpack__reader_begin(imgpack_reader *r,
                                     imgpack__read_slot **slot) {
    imgpack_status status = IMGPACK_OK;
    imgpack__read_slot *s = NULL;
    /* open registered the fork handler: a plain load is enough here. */
    unsigned generation =
        atomic_load_explicit(&fork_count, memory_order_acquire);

    *slot = NULL;
    if (atomic_load_explicit(&r->generation, memory_order_acquire) !=
            generation &&
        (status = reopen_in_child(r, generation)))
        goto out;
    if (!(s = find_slot(r, 1))) {
        pthread_mutex_lock(&r->lock);
        status = imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                    "%s: out of memory", r->dir);
        pthread_mutex_unlock(&r->lock);
        goto out;
    }
    imgpack__error_clear(&s->err);
    pthread_mutex_lock(&s->busy);
    /* Transactions renewed before this call are stale where the data may
       have changed since: always while packing, and after a refresh. */
    if (!r->complete || s->snapshot != r->snapshot) {
        s->stamp++;
        s->snapshot = r->snapshot;
    }
    *slot = s;
out:
    return status;
}

void imgpack__reader_end(imgpack_reader *r, imgpack__read_slot *slot) {
    pthread_mutex_unlock(&slot->busy);
}

const char *imgpack__reader_message(const imgpack_reader *r) {
    const imgpack__read_slot *s = find_slot(r, 0);
    if (s && s->err.code != IMGPACK_OK)
        return imgpack__error_text(&s->err);
    return imgpack__error_text(&r->err);
}

imgpack_status imgpack__reader_fail(imgpack_reader *r, imgpack_status code,
                                   const char *message) {
    imgpack__read_slot *s = find_slot(r, 1);
    if (s) {
        imgpack__error_set(&s->err, code, "%s", message);
    } else {
        pthread_mutex_lock(&r->lock);
        imgpack__error_set(&r->err, code, "%s", message);
        pthread_mutex_unlock(&r->lock);
    }
    return code;
}

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
    MDB_txn *txn = current(r, s, k);
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

imgpack_status imgpack__reader_locate(imgpack_reader *r,
                                      imgpack__read_slot *s, uint64_t index,
                                      uint32_t *shard, const uint8_t **data,
                                      size_t *size) {
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
    status = imgpack__record_parse(value.mv_data, value.mv_size,
                                   check_payload, h);
    if (status == IMGPACK_ERR_VERSION_MISMATCH)
        return imgpack__error_set(&s->err, status,
                                  "%s: record %" PRIu64
                                  "%s has an unknown layout version",
                                  r->dir, index, where(r, k, local, at));
    /* A header that parses without the payload check points at the
       payload: name it, since verify reports which part was damaged. */
    if (status != IMGPACK_OK && check_payload &&
        imgpack__record_parse(value.mv_data, value.mv_size, 0, h) ==
            IMGPACK_OK)
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
        h->height > IMGPACK_MAX_RECORD_SIDE || (h->channels != r->channels && h->channels != 1))
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

imgpack_status imgpack__reader_pixels(imgpack_reader *r,
                                      imgpack__read_slot *s, uint64_t index,
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
        return imgpack__error_set(&s->err, IMGPACK_ERR_DECODE,
                                  "%s: record %" PRIu64 " decodes to %" PRIu32
                                  "x%" PRIu32 ", its header says %" PRIu32
                                  "x%" PRIu32,
                                  r->dir, index, px->width, px->height,
                                  h->width, h->height);
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
        *out = (imgpack_record){payload, h.payload_size, h.format,
                                h.width, h.height, h.channels, h.label};
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
    *out = (imgpack_record){pixels, row * h.height, IMGPACK_FORMAT_RAW,
                            h.width, h.height, h.channels, h.label};
out:
    imgpack__reader_end(r, s);
    return status;
}

imgpack_status imgpack_reader_labels(imgpack_reader *r, uint32_t *labels,
                                     uint64_t n) {
    imgpack__read_slot *s;
    imgpack__record_header h;
    const uint8_t *payload = NULL;
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
            if ((status = fetch(r, s, i, &h, &payload)) == IMGPACK_OK)
                labels[i] = h.label;
    }
    imgpack__reader_end(r, s);
    return status;
}

imgpack_status imgpack_reader_label(imgpack_reader *r, uint64_t index,
                                    uint32_t *label) {
    imgpack__read_slot *s;
    imgpack__record_header h;
    const uint8_t *payload = NULL;
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    if (r->labels && index < r->count)
        *label = r->labels[index];
    else if ((status = fetch(r, s, index, &h, &payload)) == IMGPACK_OK)
        *label = h.label;
    imgpack__reader_end(r, s);
    return status;
}

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
    MDB_txn *txn = current(r, s, k);
    if (!txn)
        return NO_TXN;
    imgpack__shard *sh = &r->shards[k];
    return imgpack__meta_sum_get(txn, sh->meta, &sh->bounds, sh->meta_sums,
                                 key, value);
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
        MDB_txn *txn = current(r, s, 0);
        imgpack__shard *sh = &r->shards[0];
        rc = txn ? imgpack__meta_sum_get(txn, sh->meta, &sh->bounds,
                                         sh->meta_sums, key, &value)
                 : NO_TXN;
    }
    if (rc == NO_TXN) {
        status = s->err.code; /* no transaction; the slot says why */
    } else if (rc == IMGPACK__META_SUM_MISMATCH || rc == IMGPACK__META_OUTSIDE) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                    "%s: metadata \"%s\" %s", r->dir, key,
                                    imgpack__meta_sum_strerror(rc));
    } else if (rc == MDB_NOTFOUND) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_NOT_FOUND,
                                    "%s: no metadata \"%s\"", r->dir, key);
    } else if (rc != 0) {
        status = imgpack__store_fail(&s->err, rc, r->dir, "cannot read metadata");
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

/* ---- Release and refresh ---------------------------------------------- */

void imgpack_reader_release(imgpack_reader *r) {
    imgpack__read_slot *s = find_slot(r, 0);
    if (!s || atomic_load(&r->generation) != imgpack__fork_generation())
        return;
    pthread_mutex_lock(&s->busy);
    for (uint32_t k = 0; k < r->num_shards; k++)
        if (s->txns[k].txn && s->txns[k].live) {
            mdb_txn_reset(s->txns[k].txn);
            s->txns[k].live = 0;
        }
    pthread_mutex_unlock(&s->busy);
}

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
        if (!(txns[k] = current(r, s, k))) {
            status = s->err.code;
            goto out;
        }
    status = imgpack__reader_load_progress(r, txns, &s->err);
out:
    free(txns);
    imgpack__reader_end(r, s);
    return status;
}

const char *imgpack_reader_errmsg(const imgpack_reader *r) {
    return r ? imgpack__reader_message(r) : "out of memory";
}
