/*
 * Opening a reader: finding what the directory holds, opening each LMDB
 * environment read-only, loading and checking the metadata once, and the
 * getters that answer from it. Reads at training time are in reader.c.
 *
 * Layout. A directory with data.mdb is one store: the reader has one shard,
 * the directory itself. Without data.mdb the reader looks for
 * subdirectories named shard-K-of-N: all N must be there, for a single N,
 * and each must be a store that says it is shard K/N (meta `shard`) of the
 * same dataset (same format version, format, geometry, settings, source
 * digest and class table). Their records, in shard order, are the dataset's
 * global indices; their labels are concatenated the same way.
 * reader_shards.c finds the shards and opens their environments.
 */
#include "reader_open.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "meta_sum.h"
#include "store.h"
#include "store_meta.h"

/* Records a dataset may hold: the sampler's permutation takes 8 bytes per
   record, which must not overflow. */
#define MAX_RECORDS (UINT64_MAX / 8)

/* Longest meta value quoted in a message about shards that disagree. */
#define QUOTE_MAX 200

static atomic_uint_fast64_t next_reader_id = 1;

uint64_t imgpack__reader_new_id(void) {
    return atomic_fetch_add(&next_reader_id, 1);
}

/* The last path component of a shard's directory, for messages. */
static const char *base_name(const char *dir) {
    const char *slash = strrchr(dir, '/');
    return slash ? slash + 1 : dir;
}

/* ---- Metadata --------------------------------------------------------- */

/* Shard `sh`'s metadata as `txn` sees it. */
static imgpack__meta_view view(imgpack__shard *sh, MDB_txn *txn) {
    return (imgpack__meta_view){sh->dir, txn, sh->meta, &sh->bounds,
                                sh->meta_sums};
}

/* The value of meta `key`, checked (imgpack__meta_sum_get), or
   MDB_NOTFOUND. */
static int meta_value(imgpack__shard *sh, MDB_txn *txn, const char *key,
                      MDB_val *value) {
    imgpack__meta_view m = view(sh, txn);
    return imgpack__meta_get(&m, key, value);
}

/* The store-wide metadata, from the first shard (the others must agree). */
static imgpack_status load_static(imgpack_reader *r, MDB_txn *txn) {
    imgpack__meta_view m = view(&r->shards[0], txn);
    imgpack__store_header h;
    imgpack_status status = imgpack__store_header_read(&m, 0, &h, &r->err);
    if (status != IMGPACK_OK)
        return status;
    r->format = h.format;
    r->channels = h.channels;
    r->width = h.width;
    r->height = h.height;
    r->resize = h.resize;
    r->crop = h.crop;
    r->num_classes = h.num_classes;
    r->class_names = h.class_names; /* the reader's now */
    free(h.class_descriptions);     /* unread: all NULL */
    return IMGPACK_OK;
}

/* Checks that meta `key` of shard k equals shard 0's (both may lack it). */
static imgpack_status same_meta(imgpack_reader *r, uint32_t k,
                                MDB_txn *const *txns, const char *key) {
    imgpack__shard *a = &r->shards[0], *b = &r->shards[k];
    MDB_val va = {0, NULL}, vb = {0, NULL};
    int ra = meta_value(a, txns[0], key, &va);
    int rb = meta_value(b, txns[k], key, &vb);
    if (ra != 0 && ra != MDB_NOTFOUND)
        return imgpack__meta_fail(&r->err, ra, a->dir, key);
    if (rb != 0 && rb != MDB_NOTFOUND)
        return imgpack__meta_fail(&r->err, rb, b->dir, key);
    if (ra == rb &&
        (ra != 0 || (va.mv_size == vb.mv_size &&
                     memcmp(va.mv_data, vb.mv_data, va.mv_size) == 0)))
        return IMGPACK_OK;
    /* Quoted, since the values (settings, above all) say what differs. */
    return imgpack__error_set(
        &r->err, IMGPACK_ERR_NOT_A_STORE,
        "%s: not one dataset: \"%s\" is \"%.*s\" here, \"%.*s\" in %s", b->dir,
        key, (int)(vb.mv_size < QUOTE_MAX ? vb.mv_size : QUOTE_MAX),
        rb ? "" : (const char *)vb.mv_data,
        (int)(va.mv_size < QUOTE_MAX ? va.mv_size : QUOTE_MAX),
        ra ? "" : (const char *)va.mv_data, base_name(a->dir));
}

/* Checks that shard k says it is shard k of N and agrees with shard 0 on
   everything that shapes records or indices. */
static imgpack_status check_shard(imgpack_reader *r, uint32_t k,
                                  MDB_txn *const *txns) {
    static const char *const shared[] = {
        IMGPACK_META_FORMAT_VERSION, IMGPACK_META_FORMAT,
        IMGPACK_META_CHANNELS,       IMGPACK_META_WIDTH,
        IMGPACK_META_HEIGHT,         IMGPACK_META_RESIZE,
        IMGPACK_META_CROP,           IMGPACK_META_SETTINGS,
        IMGPACK_META_SOURCE_DIGEST,  IMGPACK_META_NUM_CLASSES};
    imgpack__shard *sh = &r->shards[k];
    char want[IMGPACK__SHARD_NAME_SIZE], key[32];
    MDB_val v;
    imgpack_status status = IMGPACK_OK;
    imgpack__shard_value(want, k, r->num_shards);
    int rc = meta_value(sh, txns[k], IMGPACK_META_SHARD, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return imgpack__meta_fail(&r->err, rc, sh->dir, IMGPACK_META_SHARD);
    if (rc == MDB_NOTFOUND || !imgpack__meta_is(&v, want))
        return imgpack__error_set(
            &r->err, IMGPACK_ERR_NOT_A_STORE,
            "%s: metadata \"" IMGPACK_META_SHARD "\" is \"%.*s\", not "
            "\"%s\": not this shard of the dataset",
            sh->dir,
            rc ? 0 : (int)(v.mv_size < QUOTE_MAX ? v.mv_size : QUOTE_MAX),
            rc ? "" : (const char *)v.mv_data, want);
    for (size_t i = 0;
         k > 0 && i < sizeof shared / sizeof shared[0] && status == IMGPACK_OK;
         i++)
        status = same_meta(r, k, txns, shared[i]);
    /* num_classes agreed, so both have r->num_classes names. */
    for (uint32_t c = 0; k > 0 && c < r->num_classes && status == IMGPACK_OK;
         c++) {
        snprintf(key, sizeof key, IMGPACK_META_CLASS_FORMAT, c);
        status = same_meta(r, k, txns, key);
    }
    return status;
}

/* Shard `sh`'s `count` labels into `labels`, each checked. */
static imgpack_status shard_labels(const imgpack_reader *r, imgpack__shard *sh,
                                   MDB_txn *txn, uint64_t count,
                                   uint32_t *labels, imgpack__error *err) {
    imgpack__meta_view m = view(sh, txn);
    imgpack_status status =
        imgpack__meta_table(&m, IMGPACK_META_LABELS, count, labels, err);
    if (status != IMGPACK_OK)
        return status;
    for (uint64_t i = 0; i < count; i++) {
        if (labels[i] >= r->num_classes)
            return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                      "%s: label of record %" PRIu64
                                      " is %" PRIu32 ", past the %" PRIu32
                                      " classes",
                                      sh->dir, i, labels[i], r->num_classes);
    }
    return IMGPACK_OK;
}

/*
 * The bitmap of records that passed their checks: shared memory, so that
 * processes forked after open (DataLoader workers, made anew each epoch)
 * share what any of them checked. Sound because a complete store never
 * changes. NULL without memory; *bytes gets its size for munmap.
 */
static _Atomic uint64_t *bitmap_new(uint64_t bits, size_t *bytes) {
    *bytes = (size_t)(bits / 64 + 1) * sizeof(uint64_t);
    void *p = mmap(NULL, *bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void bitmap_free(_Atomic uint64_t *bitmap, size_t bytes) {
    if (bitmap)
        munmap((void *)bitmap, bytes);
}

/* A complete dataset's tables: labels, and the payload CRCs (NULL where a
   shard predates them). */
static imgpack_status load_tables(imgpack_reader *r, MDB_txn *const *txns,
                                  const uint64_t *counts, uint64_t total,
                                  uint32_t *labels, uint32_t **crcs,
                                  imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    uint64_t at = 0;
    int with_crcs = 1;
    for (uint32_t k = 0; k < r->num_shards; k++)
        with_crcs = with_crcs && r->shards[k].meta_sums;
    if (with_crcs && !(*crcs = malloc(total * 4 + 4)))
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "%s: out of memory",
                                  r->dir);
    for (uint32_t k = 0; k < r->num_shards && status == IMGPACK_OK;
         at += counts[k], k++) {
        status = shard_labels(r, &r->shards[k], txns[k], counts[k], labels + at,
                              err);
        imgpack__meta_view m = view(&r->shards[k], txns[k]);
        if (status == IMGPACK_OK && *crcs)
            status = imgpack__meta_table(&m, IMGPACK_META_PAYLOAD_CRCS,
                                         counts[k], *crcs + at, err);
    }
    return status;
}

imgpack_status imgpack__reader_load_progress(imgpack_reader *r,
                                             MDB_txn *const *txns,
                                             imgpack__error *err) {
    uint32_t n = r->num_shards;
    uint64_t *counts = malloc(n * sizeof *counts), total = 0;
    unsigned char *done = malloc(n);
    uint32_t *labels = NULL, *crcs = NULL;
    _Atomic uint64_t *verified = NULL;
    size_t verified_bytes = 0;
    int complete = 1;
    MDB_val v;
    imgpack_status status = IMGPACK_OK;
    if (!counts || !done) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "%s: out of memory",
                                    r->dir);
        goto out;
    }
    for (uint32_t k = 0; k < n; k++) {
        imgpack__shard *sh = &r->shards[k];
        imgpack__meta_view m = view(sh, txns[k]);
        if ((status = imgpack__meta_number(&m, IMGPACK_META_COUNT, MAX_RECORDS,
                                           &counts[k], err)))
            goto out;
        if (counts[k] > MAX_RECORDS - total) {
            status = imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                        "%s: more than %" PRIu64 " records",
                                        r->dir, MAX_RECORDS);
            goto out;
        }
        total += counts[k];
        int rc = meta_value(sh, txns[k], IMGPACK_META_STATE, &v);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            status = imgpack__meta_fail(err, rc, sh->dir, IMGPACK_META_STATE);
            goto out;
        }
        done[k] = rc == 0 && imgpack__meta_is(&v, IMGPACK_META_STATE_COMPLETE);
        complete = complete && done[k];
    }
    /* Labels and header checks only once nothing can change. */
    if (complete) {
        labels = malloc(total ? total * 4 : 1);
        verified = bitmap_new(total, &verified_bytes);
        if (!labels || !verified) {
            status = imgpack__error_set(err, IMGPACK_ERR_NOMEM,
                                        "%s: out of memory", r->dir);
            goto out;
        }
        if ((status = load_tables(r, txns, counts, total, labels, &crcs, err)))
            goto out;
    }
    free(r->labels);
    free(r->payload_crcs);
    bitmap_free(r->verified, r->verified_bytes);
    r->labels = labels;
    r->payload_crcs = crcs;
    r->verified = verified;
    r->verified_bytes = verified_bytes;
    labels = crcs = NULL;
    verified = NULL;
    r->first[0] = 0;
    for (uint32_t k = 0; k < n; k++) {
        r->shards[k].count = counts[k];
        r->shards[k].complete = done[k];
        r->first[k + 1] = r->first[k] + counts[k];
    }
    r->count = total;
    r->complete = complete;
out:
    free(counts);
    free(done);
    free(labels);
    free(crcs);
    bitmap_free(verified, verified_bytes);
    return status;
}

/* Reads and checks every shard's metadata, in one read of each. */
static imgpack_status load_meta(imgpack_reader *r) {
    uint32_t n = r->num_shards;
    MDB_txn **txns = calloc(n, sizeof *txns);
    imgpack_status status = IMGPACK_OK;
    if (!txns) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                    "%s: out of memory", r->dir);
        goto out;
    }
    for (uint32_t k = 0; k < n; k++) {
        int rc = mdb_txn_begin(r->shards[k].env, NULL, MDB_RDONLY, &txns[k]);
        if (rc != 0) {
            txns[k] = NULL;
            status = imgpack__store_fail(&r->err, rc, r->shards[k].dir,
                                         "cannot begin a read");
            goto out;
        }
        if ((rc = imgpack__meta_sum_present(txns[k], r->shards[k].meta,
                                            &r->shards[k].meta_sums))) {
            status = imgpack__store_fail(&r->err, rc, r->shards[k].dir,
                                         "cannot read metadata");
            goto out;
        }
    }
    if ((status = load_static(r, txns[0])))
        goto out;
    /* A single store is not checked for a `shard` key: one shard opened
       on its own is a store of its slice. */
    for (uint32_t k = 0; n > 1 && k < n && status == IMGPACK_OK; k++)
        status = check_shard(r, k, txns);
    if (status == IMGPACK_OK)
        status = imgpack__reader_load_progress(r, txns, &r->err);
out:
    for (uint32_t k = 0; txns && k < n; k++)
        if (txns[k])
            mdb_txn_abort(txns[k]);
    free(txns);
    return status;
}

/* ---- Open and close --------------------------------------------------- */

imgpack_status imgpack_reader_open(imgpack_reader **out, const char *dir,
                                   uint32_t flags) {
    imgpack_status status = IMGPACK_OK;
    imgpack_reader *r = NULL;

    if (!out) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    *out = NULL;
    r = calloc(1, sizeof *r);
    if (!r) {
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        r = NULL;
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    *out = r;
    atomic_init(&r->generation, imgpack__fork_generation());
    r->id = imgpack__reader_new_id();
    r->flags = flags;
    atomic_init(&r->prefetch_limit, IMGPACK_PREFETCH_DEFAULT_LIMIT);
    if (!dir ||
        (flags & ~(IMGPACK_OPEN_INCOMPLETE | IMGPACK_OPEN_VERIFY |
                   IMGPACK_OPEN_NO_VERIFY)) ||
        (flags & IMGPACK_OPEN_VERIFY && flags & IMGPACK_OPEN_NO_VERIFY)) {
        status = imgpack__error_set(
            &r->err, IMGPACK_ERR_INVALID_ARG, "reader_open: %s",
            dir ? "unknown or contradicting flags" : "no directory");
        goto done;
    }
    r->dir = strdup(dir);
    if (!r->dir) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                    "%s: out of memory", dir);
        goto done;
    }
    if ((status = imgpack__reader_find_layout(r)) ||
        (status = imgpack__reader_open_envs(r)) || (status = load_meta(r)))
        goto done;
    for (uint32_t k = 0;
         k < r->num_shards && !(flags & IMGPACK_OPEN_INCOMPLETE); k++)
        if (!r->shards[k].complete) {
            status = imgpack__error_set(&r->err, IMGPACK_ERR_INCOMPLETE,
                                        "%s: store is not complete (still "
                                        "being packed, or the pack stopped)",
                                        r->shards[k].dir);
            break;
        }
done:
    return status;
}

void imgpack__reader_free(imgpack_reader *r, int same_process) {
    for (uint32_t k = 0; r->shards && k < r->num_shards; k++) {
        if (r->shards[k].env && same_process)
            mdb_env_close(r->shards[k].env);
        free(r->shards[k].dir);
    }
    free(r->shards);
    free(r->first);
    if (r->class_names)
        for (uint32_t c = 0; c < r->num_classes; c++)
            free(r->class_names[c]);
    free(r->class_names);
    free(r->labels);
    free(r->payload_crcs);
    bitmap_free(r->verified, r->verified_bytes);
    free(r->dir);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- Getters ---------------------------------------------------------- */

const char *imgpack_reader_path(const imgpack_reader *r) {
    return r->dir;
}

uint64_t imgpack_reader_count(const imgpack_reader *r) {
    return r->count;
}

uint32_t imgpack_reader_num_shards(const imgpack_reader *r) {
    return r->num_shards;
}

const char *imgpack_reader_shard_path(const imgpack_reader *r, uint32_t k) {
    return k < r->num_shards ? r->shards[k].dir : NULL;
}

uint32_t imgpack_reader_num_classes(const imgpack_reader *r) {
    return r->num_classes;
}

const char *imgpack_reader_class_name(const imgpack_reader *r,
                                      uint32_t class_id) {
    return r->class_names && class_id < r->num_classes
               ? r->class_names[class_id]
               : NULL;
}

int32_t imgpack_reader_format(const imgpack_reader *r) {
    return r->format;
}

uint32_t imgpack_reader_width(const imgpack_reader *r) {
    return r->width;
}

uint32_t imgpack_reader_height(const imgpack_reader *r) {
    return r->height;
}

uint32_t imgpack_reader_channels(const imgpack_reader *r) {
    return r->channels;
}

uint32_t imgpack_reader_resize(const imgpack_reader *r) {
    return r->resize;
}

uint32_t imgpack_reader_crop(const imgpack_reader *r) {
    return r->crop;
}

int32_t imgpack_reader_is_complete(const imgpack_reader *r) {
    return r->complete;
}

int32_t imgpack_reader_is_nolock(const imgpack_reader *r) {
    int32_t nolock = 0;
    for (uint32_t k = 0; k < r->num_shards; k++)
        nolock = nolock || r->shards[k].nolock;
    return nolock;
}
