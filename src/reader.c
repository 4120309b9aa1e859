/*
 * The reader: an LMDB environment opened read-only, the store's metadata
 * loaded once, and one slot per calling thread.
 *
 * Slots. LMDB read transactions belong to one thread at a time; with
 * MDB_NOTLS they belong to us rather than to the thread's TLS, so each
 * thread that calls in gets a slot holding its own transaction (plus its
 * decoder and its error message). Slots live on a list under `lock` until
 * close; a small thread-local cache keyed by the reader's unique id finds
 * the calling thread's slot without taking the lock. A slot whose thread
 * exited is picked up by the next thread that gets the same pthread_t,
 * which is safe since only one live thread can have it.
 *
 * Transactions. A call renews its slot's transaction only when the store
 * can change: for a complete store the snapshot is final, so the
 * transaction stays open between calls and a get is a bare mdb_get. For a
 * store still being packed every call resets and renews it, which keeps an
 * idle reader from pinning old pages and lets refresh() widen the range.
 *
 * Remapping. Each slot has a mutex that its thread holds for the length
 * of every call (uncontended, on a cache line no other thread touches, so
 * it costs a few nanoseconds where a shared rwlock would bounce between
 * cores). MDB_MAP_RESIZED (a writer grew the file past our map) makes the
 * thread take every slot's mutex, so no other thread is inside a call,
 * and remap with mdb_env_set_mapsize(env, 0), which adopts the writer's
 * size.
 *
 * Header checks. A record's header CRC is checked the first time the
 * reader reads it; in a complete store nothing ever rewrites a record, so
 * a bitmap remembers which headers passed and later reads only parse the
 * fields and check magic and sizes. (The CRC of 28 bytes costs a third of
 * an mdb_get on a small store.) IMGPACK_OPEN_VERIFY still checks the
 * payload CRC on every read.
 *
 * fork(). A handler registered with pthread_atfork counts forks in the
 * child. Every call compares that count with the one the environment was
 * opened under; on a mismatch the child drops the parent's slots and
 * environment without closing them (LMDB's close would clear the parent's
 * reader slots in the shared lock file, and the parent's transactions are
 * its own) and opens the store again.
 */
#include "reader_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "decode.h"
#include "store.h"

/* Slots for read transactions in the lock file. Honoured only when this
   reader creates lock.mdb; LMDB's default of 126 is too few for many
   DataLoader workers times threads. */
#define READER_MAX_READERS 1024

/* Recently used (reader, slot) pairs per thread: a training process reads
   one or two stores, and a miss only costs a locked list walk. */
#define SLOT_CACHE_SIZE 4

/* Remaps in a row before giving up: each one adopts the writer's latest
   map size, so a second is needed only if it grew again meanwhile. */
#define MAX_REMAPS 8

struct imgpack__read_slot {
    imgpack__read_slot *next;
    pthread_t thread;
    pthread_mutex_t busy; /* held by the thread during each call */
    MDB_txn *txn; /* NULL until first use, or after a failed renew */
    int live;     /* txn is current: its views are valid */
    uint64_t snapshot; /* the reader's `snapshot` when txn was renewed */
    imgpack__decoder *decoder; /* made by this thread on its first decode */
    imgpack__error err;
};

struct imgpack_reader {
    imgpack__error err; /* open failures, and callers without a slot */
    char *dir;
    uint32_t flags;
    int nolock;
    MDB_env *env;
    MDB_dbi records;
    MDB_dbi meta;
    /* Lock order: lock, then the slots' busy mutexes in list order. */
    pthread_mutex_t lock; /* slots, err */
    imgpack__read_slot *slots;
    uint64_t id; /* unique in the process per environment: the cache key */
    atomic_uint generation; /* fork generation the environment belongs to */

    uint64_t count;
    uint32_t num_classes;
    char **class_names;
    int32_t format;
    uint32_t width, height, channels, resize, crop;
    int complete;
    uint32_t *labels; /* all labels of a complete store; else NULL */
    /* Bit i: record i's header CRC passed. Only for complete stores. */
    _Atomic uint64_t *verified;
    /* Bumped by refresh: a transaction renewed before it may predate the
       count, so it is renewed again even in a complete store. */
    uint64_t snapshot;
};

static atomic_uint fork_count;
static atomic_uint_fast64_t next_reader_id = 1;
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

/* ---- Opening ---------------------------------------------------------- */

/* Opens the environment read-only, falling back to MDB_NOLOCK where the
   lock file cannot be written and to the writer's map size where the
   system refuses IMGPACK_READER_MAP_SIZE. */
static int open_env(imgpack_reader *r) {
    size_t map_size = (size_t)IMGPACK_READER_MAP_SIZE;
    int rc;
    for (;;) {
        unsigned flags = MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD |
                         (r->nolock ? MDB_NOLOCK : 0);
        if ((rc = mdb_env_create(&r->env)) != 0) {
            r->env = NULL;
            break;
        }
        if ((rc = mdb_env_set_maxdbs(r->env, 2)) == 0 &&
            (rc = mdb_env_set_maxreaders(r->env, READER_MAX_READERS)) == 0 &&
            (rc = mdb_env_set_mapsize(r->env, map_size)) == 0 &&
            (rc = mdb_env_open(r->env, r->dir, flags, 0644)) == 0)
            break;
        mdb_env_close(r->env);
        r->env = NULL;
        if ((rc == EACCES || rc == EROFS) && !r->nolock)
            r->nolock = 1;
        else if (rc == ENOMEM && map_size != 0)
            map_size = 0;
        else
            break;
    }
    return rc;
}

/* Opens the two databases; a store without them is not ours. */
static imgpack_status open_dbs(imgpack_reader *r) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
    imgpack_status status = IMGPACK_OK;
    if (rc != 0) {
        status = imgpack__store_fail(&r->err, rc, r->dir, "cannot begin a read");
        goto out;
    }
    if ((rc = mdb_dbi_open(txn, IMGPACK__STORE_RECORDS_DB, 0, &r->records)) ||
        (rc = mdb_dbi_open(txn, IMGPACK__STORE_META_DB, 0, &r->meta))) {
        if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
            status = imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                        "%s: no imgpack databases in data.mdb",
                                        r->dir);
        else
            status = imgpack__store_fail(&r->err, rc, r->dir, "cannot open databases");
        goto out;
    }
    /* Committing a read transaction keeps its database handles open for
       every later transaction of the environment. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        status = imgpack__store_fail(&r->err, rc, r->dir, "cannot open databases");
out:
    if (txn)
        mdb_txn_abort(txn);
    return status;
}

static imgpack_status open_store(imgpack_reader *r) {
    int rc = open_env(r);
    if (rc != 0)
        return imgpack__store_fail(&r->err, rc, r->dir, "cannot open LMDB");
    if (!r->nolock) {
        /* Frees slots that crashed readers left behind; best effort. */
        int dead;
        mdb_reader_check(r->env, &dead);
    }
    return open_dbs(r);
}

/* ---- Metadata --------------------------------------------------------- */

/* The value of meta `key`, or MDB_NOTFOUND. */
static int meta_value(imgpack_reader *r, MDB_txn *txn, const char *key,
                      MDB_val *value) {
    MDB_val k = {strlen(key), (void *)key};
    return mdb_get(txn, r->meta, &k, value);
}

static int value_is(const MDB_val *v, const char *text) {
    return v->mv_size == strlen(text) && memcmp(v->mv_data, text, v->mv_size) == 0;
}

/* Parses a decimal meta number no larger than `max`. */
static imgpack_status meta_number(imgpack_reader *r, MDB_txn *txn,
                                  const char *key, uint64_t max,
                                  uint64_t *out) {
    MDB_val v;
    uint64_t n = 0;
    int rc = meta_value(r, txn, key, &v);
    if (rc == MDB_NOTFOUND)
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                  "%s: metadata has no \"%s\"", r->dir, key);
    if (rc != 0)
        return imgpack__store_fail(&r->err, rc, r->dir, "cannot read metadata");
    const uint8_t *p = v.mv_data;
    int ok = v.mv_size > 0 && v.mv_size <= 20;
    for (size_t i = 0; ok && i < v.mv_size; i++) {
        ok = p[i] >= '0' && p[i] <= '9' && n <= (max - (p[i] - '0')) / 10;
        n = n * 10 + (uint64_t)(p[i] - '0');
    }
    if (!ok)
        return imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                  "%s: metadata \"%s\" is not a number up to "
                                  "%" PRIu64,
                                  r->dir, key, max);
    *out = n;
    return IMGPACK_OK;
}

static imgpack_status load_classes(imgpack_reader *r, MDB_txn *txn) {
    r->class_names = calloc(r->num_classes ? r->num_classes : 1,
                            sizeof *r->class_names);
    if (!r->class_names)
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                  "%s: out of memory", r->dir);
    for (uint32_t c = 0; c < r->num_classes; c++) {
        char key[32];
        MDB_val v;
        snprintf(key, sizeof key, "class/%08" PRIu32, c);
        int rc = meta_value(r, txn, key, &v);
        if (rc == MDB_NOTFOUND)
            return imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                      "%s: metadata has no name for class %" PRIu32,
                                      r->dir, c);
        if (rc != 0)
            return imgpack__store_fail(&r->err, rc, r->dir, "cannot read metadata");
        r->class_names[c] = malloc(v.mv_size + 1);
        if (!r->class_names[c])
            return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                      "%s: out of memory", r->dir);
        memcpy(r->class_names[c], v.mv_data, v.mv_size);
        r->class_names[c][v.mv_size] = '\0';
    }
    return IMGPACK_OK;
}

/* The part of the metadata that grows while a store is packed: count,
   state and, once complete, the labels. */
static imgpack_status load_progress(imgpack_reader *r, MDB_txn *txn) {
    uint64_t count;
    MDB_val v;
    imgpack_status status = meta_number(r, txn, "count", UINT64_MAX / 8, &count);
    if (status)
        return status;
    int rc = meta_value(r, txn, "state", &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return imgpack__store_fail(&r->err, rc, r->dir, "cannot read metadata");
    int complete = rc == 0 && value_is(&v, "complete");
    uint32_t *labels = NULL;
    if (complete) {
        rc = meta_value(r, txn, "labels", &v);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return imgpack__store_fail(&r->err, rc, r->dir, "cannot read metadata");
        if (rc == MDB_NOTFOUND || v.mv_size != count * 4)
            return imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                      "%s: metadata \"labels\" does not hold "
                                      "%" PRIu64 " labels",
                                      r->dir, count);
        labels = malloc(count ? count * 4 : 1);
        if (!labels)
            return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                      "%s: out of memory", r->dir);
        const uint8_t *p = v.mv_data;
        for (uint64_t i = 0; i < count; i++, p += 4) {
            labels[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                        (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (labels[i] >= r->num_classes) {
                uint32_t bad = labels[i];
                free(labels);
                return imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                          "%s: label of record %" PRIu64
                                          " is %" PRIu32 ", past the %" PRIu32
                                          " classes",
                                          r->dir, i, bad, r->num_classes);
            }
        }
    }
    _Atomic uint64_t *verified = NULL;
    if (complete && !(verified = calloc(count / 64 + 1, sizeof *verified))) {
        free(labels);
        return imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                  "%s: out of memory", r->dir);
    }
    free(r->labels);
    free(r->verified);
    r->labels = labels;
    r->verified = verified;
    r->count = count;
    r->complete = complete;
    return IMGPACK_OK;
}

static imgpack_status load_meta(imgpack_reader *r) {
    MDB_txn *txn = NULL;
    MDB_val v;
    uint64_t n;
    imgpack_status status = IMGPACK_OK;
    int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        txn = NULL;
        status = imgpack__store_fail(&r->err, rc, r->dir, "cannot begin a read");
        goto out;
    }
    if ((status = meta_number(r, txn, "format_version", UINT32_MAX, &n)))
        goto out;
    if (n != IMGPACK__STORE_FORMAT_VERSION) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_VERSION_MISMATCH,
                                    "%s: store format version %" PRIu64
                                    ", this library reads %d",
                                    r->dir, n, IMGPACK__STORE_FORMAT_VERSION);
        goto out;
    }
    rc = meta_value(r, txn, "format", &v);
    char name[32] = "";
    if (rc == 0 && v.mv_size < sizeof name)
        memcpy(name, v.mv_data, v.mv_size);
    if (rc != 0 || imgpack_format_parse(name, &r->format) != IMGPACK_OK) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                    "%s: metadata \"format\" is missing or "
                                    "unknown",
                                    r->dir);
        goto out;
    }
    /* Sides are capped like the packer's options; 65536 leaves room. */
    if ((status = meta_number(r, txn, "channels", 4, &n)))
        goto out;
    r->channels = (uint32_t)n;
    if ((status = meta_number(r, txn, "width", 65536, &n)))
        goto out;
    r->width = (uint32_t)n;
    if ((status = meta_number(r, txn, "height", 65536, &n)))
        goto out;
    r->height = (uint32_t)n;
    if ((status = meta_number(r, txn, "resize", 65536, &n)))
        goto out;
    r->resize = (uint32_t)n;
    if ((status = meta_number(r, txn, "crop", 65536, &n)))
        goto out;
    r->crop = (uint32_t)n;
    if ((status = meta_number(r, txn, "num_classes", UINT32_MAX, &n)))
        goto out;
    r->num_classes = (uint32_t)n;
    if (r->channels != 1 && r->channels != 3) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_CORRUPT,
                                    "%s: metadata \"channels\" is %" PRIu32,
                                    r->dir, r->channels);
        goto out;
    }
    if ((status = load_classes(r, txn)))
        goto out;
    status = load_progress(r, txn);
out:
    if (txn)
        mdb_txn_abort(txn);
    return status;
}

static imgpack_status check_dir(imgpack_reader *r) {
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
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return imgpack__error_set(&r->err, IMGPACK_ERR_NOT_A_STORE,
                                      "%s: no data.mdb: not an imgpack store",
                                      r->dir);
        return imgpack__error_set(&r->err, imgpack__status_from_errno(errno),
                                  "%s: %s", path, strerror(errno));
    }
    return IMGPACK_OK;
}


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
    r->id = atomic_fetch_add(&next_reader_id, 1);
    r->flags = flags;
    if (!dir || (flags & ~(IMGPACK_OPEN_INCOMPLETE | IMGPACK_OPEN_VERIFY))) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_INVALID_ARG,
                                    "reader_open: %s",
                                    dir ? "unknown flags" : "no directory");
        goto done;
    }
    r->dir = strdup(dir);
    if (!r->dir) {
        status = imgpack__error_set(&r->err, IMGPACK_ERR_NOMEM,
                                    "%s: out of memory", dir);
        goto done;
    }
    if ((status = check_dir(r)) || (status = open_store(r)) ||
        (status = load_meta(r)))
        goto done;
    if (!r->complete && !(flags & IMGPACK_OPEN_INCOMPLETE))
        status = imgpack__error_set(&r->err, IMGPACK_ERR_INCOMPLETE,
                                    "%s: store is not complete (still being "
                                    "packed, or the pack stopped)",
                                    dir);
done:
    return status;
}

/* Frees the slots. Their transactions are aborted only when they belong
   to this process's environment: a child must not touch its parent's. */
static void drop_slots(imgpack_reader *r, int abort_txns) {
    imgpack__read_slot *s = r->slots, *next;
    for (; s; s = next) {
        next = s->next;
        if (abort_txns && s->txn)
            mdb_txn_abort(s->txn);
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
    if (r->env && same_process)
        mdb_env_close(r->env);
    if (r->class_names)
        for (uint32_t c = 0; c < r->num_classes; c++)
            free(r->class_names[c]);
    free(r->class_names);
    free(r->labels);
    free(r->verified);
    free(r->dir);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- Per-thread sessions ---------------------------------------------- */

/* In a forked child: forget the parent's environment and open our own. */
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
    r->env = NULL; /* the parent's; see the top of this file */
    if ((status = open_store(r)))
        goto out;
    r->id = atomic_fetch_add(&next_reader_id, 1);
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
    if (!s && create && (s = calloc(1, sizeof *s)) != NULL) {
        if (pthread_mutex_init(&s->busy, NULL) != 0) {
            free(s);
            s = NULL;
        } else {
            s->thread = self;
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

/* Makes the slot's transaction current. */
static int renew(imgpack_reader *r, imgpack__read_slot *s) {
    int rc = 0;
    if (s->txn && s->live && r->complete && s->snapshot == r->snapshot)
        return 0;
    if (!s->txn) {
        rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &s->txn);
        if (rc != 0)
            s->txn = NULL;
    } else {
        if (s->live)
            mdb_txn_reset(s->txn);
        rc = mdb_txn_renew(s->txn);
        if (rc != 0) {
            mdb_txn_abort(s->txn);
            s->txn = NULL;
        }
    }
    s->live = rc == 0;
    s->snapshot = r->snapshot;
    return rc;
}

/* After MDB_MAP_RESIZED: with every other call kept out, adopt the
   writer's map size. Other threads' views end here, which the documented
   validity allows only because no call of theirs is running. */
static int remap(imgpack_reader *r) {
    imgpack__read_slot *s;
    pthread_mutex_lock(&r->lock);
    for (s = r->slots; s; s = s->next)
        pthread_mutex_lock(&s->busy);
    for (s = r->slots; s; s = s->next)
        if (s->txn && s->live) {
            mdb_txn_reset(s->txn);
            s->live = 0;
        }
    int rc = mdb_env_set_mapsize(r->env, 0);
    for (s = r->slots; s; s = s->next)
        pthread_mutex_unlock(&s->busy);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

imgpack_status imgpack__reader_begin(imgpack_reader *r,
                                     imgpack__read_slot **slot) {
    imgpack_status status = IMGPACK_OK;
    imgpack__read_slot *s = NULL;
    /* open registered the fork handler: a plain load is enough here. */
    unsigned generation =
        atomic_load_explicit(&fork_count, memory_order_acquire);
    int rc = 0;

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
    for (int remaps = 0;; remaps++) {
        pthread_mutex_lock(&s->busy);
        rc = renew(r, s);
        if (rc != MDB_MAP_RESIZED || remaps == MAX_REMAPS)
            break;
        pthread_mutex_unlock(&s->busy);
        if ((rc = remap(r)) != 0) {
            status = imgpack__store_fail(&s->err, rc, r->dir, "cannot remap the store");
            goto out;
        }
    }
    if (rc != 0) {
        pthread_mutex_unlock(&s->busy);
        status = imgpack__store_fail(&s->err, rc, r->dir, "cannot begin a read");
        goto out;
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

/* ---- Records ---------------------------------------------------------- */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* The fields of a header that passed imgpack__record_parse before (see
   "Header checks" above); the size check keeps every later access to the
   payload within the value even so. */
static imgpack_status parse_verified(const uint8_t *value, size_t size,
                                     imgpack__record_header *h) {
    h->format = value[6];
    h->channels = value[7];
    h->width = le32(value + 8);
    h->height = le32(value + 12);
    h->label = le32(value + 16);
    h->payload_size = le32(value + 20);
    h->payload_crc = le32(value + 24);
    return h->payload_size == size - IMGPACK__RECORD_HEADER_SIZE
               ? IMGPACK_OK
               : IMGPACK_ERR_CORRUPT;
}

/* The checked value of record `index`: header fields and payload. */
static imgpack_status fetch(imgpack_reader *r, imgpack__read_slot *s,
                            uint64_t index, imgpack__record_header *h,
                            const uint8_t **payload) {
    uint8_t key_bytes[IMGPACK__KEY_SIZE];
    MDB_val key = {sizeof key_bytes, key_bytes}, value;
    if (index >= r->count)
        return imgpack__error_set(&s->err, IMGPACK_ERR_RANGE,
                                  "%s: record %" PRIu64
                                  " is out of range (%" PRIu64 " records)",
                                  r->dir, index, r->count);
    imgpack__record_key(index, key_bytes);
    int rc = mdb_get(s->txn, r->records, &key, &value);
    if (rc == MDB_NOTFOUND)
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64 " is missing", r->dir,
                                  index);
    if (rc != 0)
        return imgpack__store_fail(&s->err, rc, r->dir, "cannot read a record");
    int verify = (r->flags & IMGPACK_OPEN_VERIFY) != 0;
    _Atomic uint64_t *word = r->verified ? &r->verified[index / 64] : NULL;
    uint64_t bit = (uint64_t)1 << (index % 64);
    imgpack_status status;
    if (word && !verify &&
        (atomic_load_explicit(word, memory_order_relaxed) & bit)) {
        status = parse_verified(value.mv_data, value.mv_size, h);
    } else {
        status = imgpack__record_parse(value.mv_data, value.mv_size, verify, h);
        if (status == IMGPACK_OK && word)
            atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
    }
    if (status == IMGPACK_ERR_VERSION_MISMATCH)
        return imgpack__error_set(&s->err, status,
                                  "%s: record %" PRIu64
                                  " has an unknown layout version",
                                  r->dir, index);
    if (status != IMGPACK_OK)
        return imgpack__error_set(&s->err, status,
                                  "%s: record %" PRIu64
                                  " is corrupt (bad magic, checksum or size)",
                                  r->dir, index);
    if (h->label >= r->num_classes)
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64 " has label %" PRIu32
                                  ", past the %" PRIu32 " classes",
                                  r->dir, index, h->label, r->num_classes);
    if (h->width == 0 || h->height == 0 || h->width > 65536 ||
        h->height > 65536 || (h->channels != r->channels && h->channels != 1))
        return imgpack__error_set(&s->err, IMGPACK_ERR_CORRUPT,
                                  "%s: record %" PRIu64 " claims %" PRIu32
                                  "x%" PRIu32 "x%u pixels",
                                  r->dir, index, h->width, h->height,
                                  (unsigned)h->channels);
    *payload = (const uint8_t *)value.mv_data + IMGPACK__RECORD_HEADER_SIZE;
    return IMGPACK_OK;
}

imgpack_status imgpack__reader_pixels(imgpack_reader *r,
                                      imgpack__read_slot *s, uint64_t index,
                                      imgpack__record_header *h,
                                      imgpack__pixels *px) {
    const uint8_t *payload = NULL;
    char reason[IMGPACK__REASON_SIZE];
    imgpack_status status = fetch(r, s, index, h, &payload);
    if (status)
        return status;
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
    status = imgpack__decode(s->decoder, payload, h->payload_size,
                             (uint64_t)h->width * h->height, px, reason);
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
    if ((status = imgpack__reader_pixels(r, s, index, &h, &px)))
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

imgpack_status imgpack_reader_meta(imgpack_reader *r, const char *key,
                                   uint8_t *buf, uint64_t capacity,
                                   uint64_t *size) {
    imgpack__read_slot *s;
    MDB_val value;
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    if (!key || !size || (capacity > 0 && !buf)) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: reader_meta: no key, size or buffer",
                                    r->dir);
        goto out;
    }
    int rc = meta_value(r, s->txn, key, &value);
    if (rc == MDB_NOTFOUND) {
        status = imgpack__error_set(&s->err, IMGPACK_ERR_NOT_FOUND,
                                    "%s: no metadata \"%s\"", r->dir, key);
    } else if (rc != 0) {
        status = imgpack__store_fail(&s->err, rc, r->dir, "cannot read metadata");
    } else {
        *size = value.mv_size;
        if (capacity > 0)
            memcpy(buf, value.mv_data,
                   value.mv_size < capacity ? value.mv_size : capacity);
    }
out:
    imgpack__reader_end(r, s);
    return status;
}

void imgpack_reader_release(imgpack_reader *r) {
    imgpack__read_slot *s = find_slot(r, 0);
    if (!s || atomic_load(&r->generation) != imgpack__fork_generation())
        return;
    pthread_mutex_lock(&s->busy);
    if (s->txn && s->live) {
        mdb_txn_reset(s->txn);
        s->live = 0;
    }
    pthread_mutex_unlock(&s->busy);
}

imgpack_status imgpack_reader_refresh(imgpack_reader *r) {
    imgpack__read_slot *s;
    imgpack_status status;
    /* Every thread's next call renews its transaction, this one first, so
       none reads with a snapshot older than the count read here. */
    r->snapshot++;
    if ((status = imgpack__reader_begin(r, &s)))
        return status;
    if ((status = load_progress(r, s->txn)))
        imgpack__error_set(&s->err, status, "%s", imgpack__error_text(&r->err));
    imgpack__reader_end(r, s);
    return status;
}

const char *imgpack_reader_errmsg(const imgpack_reader *r) {
    return r ? imgpack__reader_message(r) : "out of memory";
}

const char *imgpack_reader_path(const imgpack_reader *r) { return r->dir; }

uint64_t imgpack_reader_count(const imgpack_reader *r) { return r->count; }

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
    return r->nolock;
}
