/*
 * The store's own thread: runs the LMDB half of the writer's batches
 * (begin, puts, commit) in the order the writer hands them over, so that
 * the writer goes on with the next batch's catalog rows while a commit's
 * writev and fdatasync run, and the next batch's records wait in memory
 * for the commit to end (LMDB has one write transaction at a time, owned
 * by the thread that began it). A pack's writer alone then takes records
 * at the rate of the slower of its CPU and the disk, not of their sum.
 *
 * Only the writer's thread calls these functions, and it touches the
 * store's write transactions only through them once the thread runs.
 * Ordering is the caller's: it commits a batch's catalog rows before
 * handing over the batch's commit (docs/FORMAT.md, "Crash consistency").
 */
#ifndef IMGPACK_SRC_STORE_THREAD_H
#define IMGPACK_SRC_STORE_THREAD_H

#include <pthread.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

/*
 * Record bytes handed over and not yet put, at most: one batch, so a pack
 * holds at most two batches (one in LMDB's pages, one waiting) however
 * slow the disk is. Handed-over work is published to the thread in
 * chunks of IMGPACK__STORE_THREAD_CHUNK bytes (or at a commit), so tiny
 * records do not cost a wake-up each.
 */
#define IMGPACK__STORE_THREAD_BYTES ((size_t)32 << 20)
#define IMGPACK__STORE_THREAD_CHUNK ((size_t)1 << 20)

typedef struct imgpack__store_op imgpack__store_op;

typedef struct imgpack__store_thread {
    imgpack__store *store;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;     /* ops published, or stopping */
    pthread_cond_t progress; /* ops done */
    /* Published ops, oldest first; under lock. */
    imgpack__store_op *head, *tail;
    size_t waiting_bytes; /* record bytes published and not yet put */
    size_t writer_wants;  /* bytes the writer waits to publish, or 0 */
    uint64_t commits_published, commits_done;
    int stopping;
    imgpack__error error; /* the thread's first failure */
    /* Ops the writer made and has not published yet; its own. */
    imgpack__store_op *draft_head, *draft_tail;
    size_t draft_bytes;
    int running;
} imgpack__store_thread;

/* Starts the thread for `store` (open, with no batch begun). */
imgpack_status imgpack__store_thread_start(imgpack__store_thread *t,
                                           imgpack__store *store,
                                           imgpack__error *err);

/* Queues a batch's begin with `room` (imgpack__store_begin). */
imgpack_status imgpack__store_thread_begin(imgpack__store_thread *t,
                                           size_t room, imgpack__error *err);

/* Queues record `index`, taking `value` (malloc'd, `size` bytes): the
   thread frees it once put, or on failure. Blocks while the thread has a
   batch's bytes waiting. Fails with the thread's first failure, if any. */
imgpack_status imgpack__store_thread_put(imgpack__store_thread *t,
                                         uint64_t index, uint8_t *value,
                                         size_t size, imgpack__error *err);

/* Queues the commit of the batch with its metadata (copied) and hands it
   to the thread at once; returns without waiting for it. */
imgpack_status imgpack__store_thread_commit(imgpack__store_thread *t,
                                            const imgpack__meta_entry *meta,
                                            size_t n_meta, imgpack__error *err);

/* Waits until every commit queued so far is done; fails with the
   thread's first failure, if any. */
imgpack_status imgpack__store_thread_wait(imgpack__store_thread *t,
                                          imgpack__error *err);

/* Runs what is queued, drops a batch begun and not committed, and ends
   the thread; accepts a thread never started. */
void imgpack__store_thread_stop(imgpack__store_thread *t);

#endif
