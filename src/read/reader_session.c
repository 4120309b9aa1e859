/*
 * The reader's per-thread sessions: one slot per calling thread, its read
 * transactions, their renewal and remapping, and the reader's life across
 * fork(). reader.c reads records through them.
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
 * fork(). A handler registered with pthread_atfork counts forks in the
 * child. Every call compares that count with the one the environments were
 * opened under; on a mismatch the child drops the parent's slots and
 * environments without closing them (LMDB's close would clear the parent's
 * reader slots in the shared lock files, and the parent's transactions are
 * its own) and opens every shard again.
 */
#include "reader_internal.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "reader_open.h"
#include "store.h"

/* Recently used (reader, slot) pairs per thread: a training process reads
   one or two stores, and a miss only costs a locked list walk. */
#define SLOT_CACHE_SIZE 4

/* Remaps in a row before giving up: each one adopts the writer's latest
   map size, so a second is needed only if it grew again meanwhile. */
#define MAX_REMAPS 8

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

static void before_fork(void) {
    pthread_mutex_lock(&reopen_lock);
}

static void after_fork_parent(void) {
    pthread_mutex_unlock(&reopen_lock);
}

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

imgpack_status imgpack__reader_renew_txn(imgpack_reader *r,
                                         imgpack__read_slot *s, uint32_t k) {
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

/* ---- Release ---------------------------------------------------------- */

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

const char *imgpack_reader_errmsg(const imgpack_reader *r) {
    return r ? imgpack__reader_message(r) : "out of memory";
}
