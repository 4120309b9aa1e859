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
 *
 * Environments. Each is opened MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD,
 * falling back to MDB_NOLOCK where lock.mdb cannot be written and to the
 * writer's map size where the system refuses ours. N shards share the
 * address space one store would map (IMGPACK_READER_MAP_SIZE / N each);
 * LMDB raises a map that is smaller than its data file, and reader.c
 * remaps when a writer grows one past it.
 */
#include "reader_open.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "meta_sum.h"
#include "store.h"
#include "store_meta.h"

/* Slots for read transactions in each lock file. Honoured only when this
   reader creates lock.mdb; LMDB's default of 126 is too few for many
   DataLoader workers times threads. */
#define READER_MAX_READERS 1024

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

/* ---- Environments ----------------------------------------------------- */

static int open_env(imgpack_reader *r, imgpack__shard *sh) {
    size_t map_size = (size_t)(IMGPACK_READER_MAP_SIZE / r->num_shards);
    int rc;
    for (;;) {
        unsigned flags = MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD |
                         (sh->nolock ? MDB_NOLOCK : 0);
        if ((rc = mdb_env_create(&sh->env)) != 0) {
            sh->env = NULL;
            break;
        }
        if ((rc = mdb_env_set_maxdbs(sh->env, 2)) == 0 &&
            (rc = mdb_env_set_maxreaders(sh->env, READER_MAX_READERS)) == 0 &&
            (rc = mdb_env_set_mapsize(sh->env, map_size)) == 0 &&
            (rc = mdb_env_open(sh->env, sh->dir, flags, 0644)) == 0)
            break;
        mdb_env_close(sh->env);
        sh->env = NULL;
        if ((rc == EACCES || rc == EROFS) && !sh->nolock)
            sh->nolock = 1;
        else if (rc == ENOMEM && map_size != 0)
            map_size = 0;
        else
            break;
    }
    return rc;
}

/* Opens the two databases; a store without them is not ours. */
static imgpack_status open_dbs(imgpack_reader *r, imgpack__shard *sh) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(sh->env, NULL, MDB_RDONLY, &txn);
    imgpack_status status = IMGPACK_OK;
    if (rc != 0) {
        txn = NULL;
        status = imgpack__store_fail(&r->err, rc, sh->dir, "cannot begin a read");
        goto out;
    }
    if ((rc = mdb_dbi_open(txn, IMGPACK__STORE_RECORDS_DB, 0, &sh->records)) ||
        (rc = mdb_dbi_open(txn, IMGPACK__STORE_META_DB, 0, &sh->meta))) {
        if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
            status = imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                        "%s: no imgpack databases in data.mdb",
                                        sh->dir);
        else
            status = imgpack__store_fail(&r->err, rc, sh->dir, "cannot open databases");
        goto out;
    }
    /* Committing a read transaction keeps its database handles open for
       every later transaction of the environment. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        status = imgpack__store_fail(&r->err, rc, sh->dir, "cannot open databases");
out:
    if (txn)
        mdb_txn_abort(txn);
    return status;
}

imgpack_status imgpack__reader_open_envs(imgpack_reader *r) {
    imgpack_status status = IMGPACK_OK;
    for (uint32_t k = 0; k < r->num_shards && status == IMGPACK_OK; k++) {
        imgpack__shard *sh = &r->shards[k];
        int rc = open_env(r, sh);
        if (rc != 0) {
            status = imgpack__store_fail(&r->err, rc, sh->dir, "cannot open LMDB");
        } else {
            if (!sh->nolock) {
                /* Frees slots that crashed readers left; best effort. */
                int dead;
                mdb_reader_check(sh->env, &dead);
            }
            status = open_dbs(r, sh);
        }
    }
    return status;
}

/* ---- Metadata --------------------------------------------------------- */

/* The value of meta `key`, checked (imgpack__meta_sum_get), or
   MDB_NOTFOUND. */
static int meta_value(imgpack__shard *sh, MDB_txn *txn, const char *key,
                      MDB_val *value) {
    return imgpack__meta_sum_get(txn, sh->meta, &sh->bounds, sh->meta_sums,
                                 key, value);
}

/* Why meta `key` could not be read: damage (IMGPACK_ERR_CORRUPT, naming
   the key) or LMDB's error. */
static imgpack_status meta_fail(imgpack__error *err, int rc,
                                const imgpack__shard *sh, const char *key) {
    if (rc == IMGPACK__META_SUM_MISMATCH || rc == IMGPACK__META_OUTSIDE)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"%s\" %s", sh->dir, key,
                                  imgpack__meta_sum_strerror(rc));
    return imgpack__store_fail(err, rc, sh->dir, "cannot read metadata");
}

static int value_is(const MDB_val *v, const char *text) {
    return v->mv_size == strlen(text) && memcmp(v->mv_data, text, v->mv_size) == 0;
}

/* Parses a decimal meta number no larger than `max`. */
static imgpack_status meta_number(imgpack__shard *sh, MDB_txn *txn,
                                  const char *key, uint64_t max, uint64_t *out,
                                  imgpack__error *err) {
    MDB_val v;
    uint64_t n = 0;
    int rc = meta_value(sh, txn, key, &v);
    if (rc == MDB_NOTFOUND)
        return imgpack__error_set(err, IMGPACK_ERR_NOT_A_STORE,
                                  "%s: metadata has no \"%s\"", sh->dir, key);
    if (rc != 0)
        return meta_fail(err, rc, sh, key);
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
                                  sh->dir, key, max);
    *out = n;
    return IMGPACK_OK;
}

static imgpack_status load_classes(imgpack_reader *r, imgpack__shard *sh,
                                   MDB_txn *txn) {
    r->class_names = calloc(r->num_classes ? r->num_classes : 1,
                            sizeof *r->class_names);
    if (!r->class_names)
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                  "%s: out of memory", sh->dir);
    for (uint32_t c = 0; c < r->num_classes; c++) {
        char key[32];
        MDB_val v;
        snprintf(key, sizeof key, IMGPACK_META_CLASS_FORMAT, c);
        int rc = meta_value(sh, txn, key, &v);
        if (rc == MDB_NOTFOUND)
            return imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                      "%s: metadata has no name for class %" PRIu32,
                                      sh->dir, c);
        if (rc != 0)
            return meta_fail(&r->err, rc, sh, key);
        r->class_names[c] = malloc(v.mv_size + 1);
        if (!r->class_names[c])
            return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                      "%s: out of memory", sh->dir);
        memcpy(r->class_names[c], v.mv_data, v.mv_size);
        r->class_names[c][v.mv_size] = '\0';
    }
    return IMGPACK_OK;
}

/* The store-wide metadata, from the first shard (the others must agree). */
static imgpack_status load_static(imgpack_reader *r, MDB_txn *txn) {
    imgpack__shard *sh = &r->shards[0];
    MDB_val v;
    uint64_t n;
    imgpack_status status;
    if ((status = meta_number(sh, txn, IMGPACK_META_FORMAT_VERSION, UINT32_MAX, &n,
                              &r->err)))
        return status;
    if (n != IMGPACK__STORE_FORMAT_VERSION)
        return imgpack__error_set(&r->err, IMGPACK_ERR_VERSION_MISMATCH,
                                  "%s: store format version %" PRIu64
                                  ", this library reads %d",
                                  sh->dir, n, IMGPACK__STORE_FORMAT_VERSION);
    int rc = meta_value(sh, txn, IMGPACK_META_FORMAT, &v);
    char name[32] = "";
    if (rc != 0 && rc != MDB_NOTFOUND)
        return meta_fail(&r->err, rc, sh, IMGPACK_META_FORMAT);
    if (rc == 0 && v.mv_size < sizeof name)
        memcpy(name, v.mv_data, v.mv_size);
    if (rc != 0 || imgpack_format_parse(name, &r->format) != IMGPACK_OK)
        return imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"" IMGPACK_META_FORMAT
                                  "\" is missing or unknown",
                                  sh->dir);
    static const struct {
        const char *key;
        uint64_t max;
        size_t offset;
    } numbers[] = {
        {IMGPACK_META_CHANNELS, 4, offsetof(imgpack_reader, channels)},
        {IMGPACK_META_WIDTH, IMGPACK_MAX_RECORD_SIDE,
         offsetof(imgpack_reader, width)},
        {IMGPACK_META_HEIGHT, IMGPACK_MAX_RECORD_SIDE,
         offsetof(imgpack_reader, height)},
        {IMGPACK_META_RESIZE, IMGPACK_MAX_RECORD_SIDE,
         offsetof(imgpack_reader, resize)},
        {IMGPACK_META_CROP, IMGPACK_MAX_RECORD_SIDE,
         offsetof(imgpack_reader, crop)},
        {IMGPACK_META_NUM_CLASSES, UINT32_MAX,
         offsetof(imgpack_reader, num_classes)},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if ((status = meta_number(sh, txn, numbers[i].key, numbers[i].max, &n,
                                  &r->err)))
            return status;
        *(uint32_t *)((char *)r + numbers[i].offset) = (uint32_t)n;
    }
    if (r->channels != 1 && r->channels != 3)
        return imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"" IMGPACK_META_CHANNELS
                                  "\" is %" PRIu32,
                                  sh->dir, r->channels);
    return load_classes(r, sh, txn);
}

/* Checks that meta `key` of shard k equals shard 0's (both may lack it). */
static imgpack_status same_meta(imgpack_reader *r, uint32_t k,
                                MDB_txn *const *txns, const char *key) {
    imgpack__shard *a = &r->shards[0], *b = &r->shards[k];
    MDB_val va = {0, NULL}, vb = {0, NULL};
    int ra = meta_value(a, txns[0], key, &va);
    int rb = meta_value(b, txns[k], key, &vb);
    if (ra != 0 && ra != MDB_NOTFOUND)
        return meta_fail(&r->err, ra, a, key);
    if (rb != 0 && rb != MDB_NOTFOUND)
        return meta_fail(&r->err, rb, b, key);
    if (ra == rb && (ra != 0 || (va.mv_size == vb.mv_size &&
                                 memcmp(va.mv_data, vb.mv_data, va.mv_size) == 0)))
        return IMGPACK_OK;
    /* Quoted, since the values (settings, above all) say what differs. */
    return imgpack__error_set(
        &r->err, IMGPACK_ERR_NOT_A_STORE,
        "%s: not one dataset: \"%s\" is \"%.*s\" here, \"%.*s\" in %s",
        b->dir, key, (int)(vb.mv_size < QUOTE_MAX ? vb.mv_size : QUOTE_MAX),
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
        return meta_fail(&r->err, rc, sh, IMGPACK_META_SHARD);
    if (rc == MDB_NOTFOUND || !value_is(&v, want))
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                  "%s: metadata \"" IMGPACK_META_SHARD
                                  "\" is \"%.*s\", not "
                                  "\"%s\": not this shard of the dataset",
                                  sh->dir,
                                  rc ? 0 : (int)(v.mv_size < QUOTE_MAX ? v.mv_size : QUOTE_MAX),
                                  rc ? "" : (const char *)v.mv_data, want);
    for (size_t i = 0; k > 0 && i < sizeof shared / sizeof shared[0] &&
                       status == IMGPACK_OK;
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

/* Shard `sh`'s meta `key`, `count` little-endian u32s (labels,
   payload_crcs), into `out`. */
static imgpack_status shard_table(imgpack__shard *sh, MDB_txn *txn,
                                  const char *key, uint64_t count,
                                  uint32_t *out, imgpack__error *err) {
    MDB_val v;
    int rc = meta_value(sh, txn, key, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return meta_fail(err, rc, sh, key);
    if (rc == MDB_NOTFOUND || v.mv_size != count * 4)
        return imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"%s\" does not hold "
                                  "%" PRIu64 " values",
                                  sh->dir, key, count);
    imgpack__meta_u32_decode(out, v.mv_data, count);
    return IMGPACK_OK;
}

/* Shard `sh`'s `count` labels into `labels`, each checked. */
static imgpack_status shard_labels(const imgpack_reader *r,
                                   imgpack__shard *sh, MDB_txn *txn,
                                   uint64_t count, uint32_t *labels,
                                   imgpack__error *err) {
    imgpack_status status = shard_table(sh, txn, IMGPACK_META_LABELS, count, labels, err);
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
                                  uint32_t *labels,
                                  uint32_t **crcs, imgpack__error *err) {
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
        status = shard_labels(r, &r->shards[k], txns[k], counts[k],
                              labels + at, err);
        if (status == IMGPACK_OK && *crcs)
            status = shard_table(&r->shards[k], txns[k],
                                 IMGPACK_META_PAYLOAD_CRCS,
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
        if ((status = meta_number(sh, txns[k], IMGPACK_META_COUNT, MAX_RECORDS, &counts[k],
                                  err)))
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
            status = meta_fail(err, rc, sh, IMGPACK_META_STATE);
            goto out;
        }
        done[k] = rc == 0 && value_is(&v, IMGPACK_META_STATE_COMPLETE);
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
        if ((status = load_tables(r, txns, counts, total, labels, &crcs,
                                  err)))
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

/* ---- Layout ----------------------------------------------------------- */

/* Makes r->shards: the one store in r->dir, or its `n` shard-K-of-N
   subdirectories. */
static imgpack_status make_shards(imgpack_reader *r, uint32_t n, int sharded) {
    /* "/", the shard's name and its NUL. */
    size_t size = strlen(r->dir) + 1 + IMGPACK__SHARD_NAME_SIZE;
    char name[IMGPACK__SHARD_NAME_SIZE];
    r->shards = calloc(n, sizeof *r->shards);
    r->first = calloc((size_t)n + 1, sizeof *r->first);
    if (!r->shards || !r->first)
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                  "%s: out of memory", r->dir);
    r->num_shards = n;
    for (uint32_t k = 0; k < n; k++) {
        if (!(r->shards[k].dir = malloc(size)))
            return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                      "%s: out of memory", r->dir);
        imgpack__shard_name(name, k, n);
        if (sharded)
            snprintf(r->shards[k].dir, size, "%s/%s", r->dir, name);
        else
            snprintf(r->shards[k].dir, size, "%s", r->dir);
    }
    return IMGPACK_OK;
}

/* Finds shard-K-of-N subdirectories: one N, every K. */
static imgpack_status find_shards(imgpack_reader *r) {
    DIR *d = opendir(r->dir);
    unsigned char *seen = NULL;
    uint32_t n = 0, k, count, first_k = 0;
    char name[IMGPACK__SHARD_NAME_SIZE];
    struct dirent *e;
    imgpack_status status = IMGPACK_OK;
    if (!d) {
        status = imgpack__error_set(&r->err, imgpack__status_from_errno(errno),
                                    "%s: %s", r->dir, strerror(errno));
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        if (!imgpack__shard_name_parse(e->d_name, &k, &count))
            continue;
        if (n == 0) {
            n = count;
            first_k = k;
            if (!(seen = calloc(n, 1))) {
                status = imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                            "%s: out of memory", r->dir);
                goto out;
            }
        } else if (count != n) {
            imgpack__shard_name(name, first_k, n);
            status = imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                        "%s: shards disagree on their number: "
                                        "%s and %s",
                                        r->dir, name, e->d_name);
            goto out;
        }
        seen[k] = 1;
    }
    if (n == 0) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                    "%s: no data.mdb and no shard-K-of-N "
                                    "directories: not an imgpack store",
                                    r->dir);
        goto out;
    }
    for (k = 0; k < n; k++)
        if (!seen[k]) {
            imgpack__shard_name(name, k, n);
            status = imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                        "%s/%s is missing", r->dir, name);
            goto out;
        }
    status = make_shards(r, n, 1);
out:
    if (d)
        closedir(d);
    free(seen);
    return status;
}

/* One store in r->dir, or shards beneath it. */
static imgpack_status find_layout(imgpack_reader *r) {
    struct stat st;
    char path[4096];
    if (stat(r->dir, &st) != 0)
        return imgpack__error_set(&r->err, imgpack__status_from_errno(errno),
                                  "%s: %s", r->dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                  "%s: not a directory", r->dir);
    if (snprintf(path, sizeof path, "%s/data.mdb", r->dir) >= (int)sizeof path)
        return imgpack__error_set(&r->err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: path too long", r->dir);
    if (stat(path, &st) == 0)
        return make_shards(r, 1, 0);
    if (errno != ENOENT)
        return imgpack__error_set(&r->err, imgpack__status_from_errno(errno),
                                  "%s: %s", path, strerror(errno));
    return find_shards(r);
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
        status = imgpack__error_set(&r->err, IMGPACK_ERR_INVALID_ARG,
                                    "reader_open: %s",
                                    dir ? "unknown or contradicting flags"
                                        : "no directory");
        goto done;
    }
    r->dir = strdup(dir);
    if (!r->dir) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                    "%s: out of memory", dir);
        goto done;
    }
    if ((status = find_layout(r)) || (status = imgpack__reader_open_envs(r)) ||
        (status = load_meta(r)))
        goto done;
    for (uint32_t k = 0; k < r->num_shards && !(flags & IMGPACK_OPEN_INCOMPLETE);
         k++)
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

const char *imgpack_reader_path(const imgpack_reader *r) { return r->dir; }

uint64_t imgpack_reader_count(const imgpack_reader *r) { return r->count; }

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

int32_t imgpack_reader_format(const imgpack_reader *r) { return r->format; }

uint32_t imgpack_reader_width(const imgpack_reader *r) { return r->width; }

uint32_t imgpack_reader_height(const imgpack_reader *r) { return r->height; }

uint32_t imgpack_reader_channels(const imgpack_reader *r) {
    return r->channels;
}

uint32_t imgpack_reader_resize(const imgpack_reader *r) { return r->resize; }

uint32_t imgpack_reader_crop(const imgpack_reader *r) { return r->crop; }

int32_t imgpack_reader_is_complete(const imgpack_reader *r) {
    return r->complete;
}

int32_t imgpack_reader_is_nolock(const imgpack_reader *r) {
    int32_t nolock = 0;
    for (uint32_t k = 0; k < r->num_shards; k++)
        nolock = nolock || r->shards[k].nolock;
    return nolock;
}
