/*
 * Worker threads. Each makes its own scratch (decoder, resizer, buffers)
 * once and reuses it for every item, then loops: claim a number under the
 * queue's lock, work unlocked, complete under the lock. Stopping is the
 * queue's job: a stopped queue makes claim return false and workers exit.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct worker_start {
    imgpack__pool *pool;
    uint32_t id;
} worker_start;

static void *worker_main(void *arg) {
    imgpack__pool *pool = ((worker_start *)arg)->pool;
    char name[16];
    snprintf(name, sizeof name, "imgpack-w%u", ((worker_start *)arg)->id);
    pthread_setname_np(pthread_self(), name);
    free(arg);

    void *scratch = pool->job.make_scratch(pool->job.context);
    if (!scratch) {
        atomic_store(&pool->failed, 1);
        imgpack__queue_stop(pool->queue);
        return NULL;
    }
    uint64_t number;
    void *slot;
    while (imgpack__queue_claim(pool->queue, &number, &slot)) {
        pool->job.run(pool->job.context, scratch, number, slot);
        imgpack__queue_complete(pool->queue, number);
    }
    pool->job.free_scratch(scratch);
    return NULL;
}

imgpack_status imgpack__pool_start(imgpack__pool *pool, uint32_t threads,
                                   imgpack__queue *queue,
                                   const imgpack__pool_job *job) {
    pool->threads = calloc(threads, sizeof *pool->threads);
    pool->started = 0;
    pool->queue = queue;
    pool->job = *job;
    atomic_init(&pool->failed, 0);
    if (!pool->threads)
        return IMGPACK_ERR_NOMEM;
    for (uint32_t i = 0; i < threads; i++) {
        worker_start *start = malloc(sizeof *start);
        if (!start)
            break;
        *start = (worker_start){pool, i};
        if (pthread_create(&pool->threads[i], NULL, worker_main, start) != 0) {
            free(start);
            break;
        }
        pool->started++;
    }
    if (pool->started == 0) {
        free(pool->threads);
        pool->threads = NULL;
        return IMGPACK_ERR_THREAD;
    }
    return IMGPACK_OK;
}

imgpack_status imgpack__pool_join(imgpack__pool *pool) {
    for (uint32_t i = 0; i < pool->started; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pool->threads = NULL;
    pool->started = 0;
    return atomic_load(&pool->failed) ? IMGPACK_ERR_NOMEM : IMGPACK_OK;
}
