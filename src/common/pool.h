/*
 * The worker pool: N named threads that claim item numbers from a queue,
 * run a job on each with their own scratch state, and complete the queue
 * with the results. The pool owns no globals; several can run at once.
 */
#ifndef IMGPACK_SRC_POOL_H
#define IMGPACK_SRC_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "imgpack/imgpack.h"
#include "parallel.h" /* IMGPACK__MAX_THREADS */
#include "queue.h"

typedef struct imgpack__pool_job {
    void *context;
    /* Makes a thread's scratch state, on that thread; NULL on failure. */
    void *(*make_scratch)(void *context);
    void (*free_scratch)(void *scratch);
    /* Fills `slot` with the result of item `number`. */
    void (*run)(void *context, void *scratch, uint64_t number, void *slot);
} imgpack__pool_job;

typedef struct imgpack__pool {
    pthread_t *threads;
    uint32_t started;
    imgpack__queue *queue;
    imgpack__pool_job job;
    atomic_int failed; /* a thread could not make its scratch */
} imgpack__pool;

/* Starts `threads` workers on `queue`. IMGPACK_ERR_THREAD if none could
   start; on success the caller must call imgpack__pool_join. */
imgpack_status imgpack__pool_start(imgpack__pool *pool, uint32_t threads,
                                   imgpack__queue *queue,
                                   const imgpack__pool_job *job);

/* Waits for every worker to finish. Returns IMGPACK_ERR_NOMEM if a worker
   could not make its scratch state (the queue was stopped then). */
imgpack_status imgpack__pool_join(imgpack__pool *pool);

#endif
