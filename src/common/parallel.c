/*
 * The data-parallel loop of parallel.h. A loop is published under the
 * lock and the workers woken; then the workers and the calling thread run
 * the body, claiming items from one atomic counter, and the calling
 * thread waits until every worker has reported back. Workers wait for a
 * new loop id, so a wake-up without a new loop is slept through, and a
 * worker started after some loops ran starts from the id it was born at.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parallel.h"
#include "reader_internal.h" /* imgpack__fork_generation */

uint32_t imgpack__parallel_cores(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1                      ? 1
           : cores > IMGPACK__MAX_THREADS ? IMGPACK__MAX_THREADS
                                          : (uint32_t)cores;
}

typedef struct worker_start {
    imgpack__parallel *p;
    uint32_t id;
} worker_start;

static void *worker_main(void *arg) {
    imgpack__parallel *p = ((worker_start *)arg)->p;
    uint32_t id = ((worker_start *)arg)->id;
    char name[16];
    snprintf(name, sizeof name, "%s%u", p->name, id);
    pthread_setname_np(pthread_self(), name);
    free(arg);

    pthread_mutex_lock(&p->lock);
    uint64_t seen = p->start_loop_id;
    for (;;) {
        while (!p->stopping && p->loop_id == seen)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stopping)
            break;
        seen = p->loop_id;
        pthread_mutex_unlock(&p->lock);
        p->body(p->context, id);
        pthread_mutex_lock(&p->lock);
        if (--p->running == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int init_sync(imgpack__parallel *p) {
    int rc = pthread_mutex_init(&p->lock, NULL);
    if (rc != 0)
        goto fail;
    if ((rc = pthread_cond_init(&p->wake, NULL)) != 0)
        goto fail_wake;
    if ((rc = pthread_cond_init(&p->done, NULL)) != 0)
        goto fail_done;
    return 0;
fail_done:
    pthread_cond_destroy(&p->wake);
fail_wake:
    pthread_mutex_destroy(&p->lock);
fail:
    return rc;
}

/* Starts threads-1 workers; the calling thread is the last one. */
static void start_workers(imgpack__parallel *p) {
    p->started = 0;
    p->stopping = 0;
    p->start_loop_id = p->loop_id;
    p->generation = imgpack__fork_generation();
    for (uint32_t i = 0; i + 1 < p->threads; i++) {
        worker_start *start = malloc(sizeof *start);
        if (!start)
            break;
        *start = (worker_start){p, i};
        if (pthread_create(&p->workers[i], NULL, worker_main, start) != 0) {
            free(start);
            break;
        }
        p->started++;
    }
}

imgpack_status imgpack__parallel_create(imgpack__parallel *p, uint32_t threads,
                                        const char *name) {
    memset(p, 0, sizeof *p);
    p->threads = threads ? threads : imgpack__parallel_cores();
    snprintf(p->name, sizeof p->name, "%s", name);
    if (p->threads > 1 &&
        !(p->workers = calloc(p->threads - 1, sizeof *p->workers))) {
        p->threads = 0;
        return IMGPACK_ERR_NOMEM;
    }
    if (init_sync(p) != 0) {
        free(p->workers);
        p->workers = NULL;
        p->threads = 0;
        return IMGPACK_ERR_THREAD;
    }
    start_workers(p);
    return IMGPACK_OK;
}

void imgpack__parallel_destroy(imgpack__parallel *p) {
    if (p->threads == 0)
        return; /* never made */
    imgpack__parallel_cancel(p);
    if (p->generation == imgpack__fork_generation()) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        for (uint32_t i = 0; i < p->started; i++)
            pthread_join(p->workers[i], NULL);
    }
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    p->workers = NULL;
    p->started = 0;
}

imgpack_status imgpack__parallel_after_fork(imgpack__parallel *p) {
    if (p->generation == imgpack__fork_generation())
        return IMGPACK_OK;
    if (init_sync(p) != 0)
        return IMGPACK_ERR_THREAD;
    start_workers(p);
    return IMGPACK_OK;
}

imgpack_status imgpack__parallel_run(imgpack__parallel *p, uint64_t n,
                                     imgpack__parallel_body body, void *context,
                                     char *message) {
    imgpack_status status;
    pthread_mutex_lock(&p->lock);
    p->body = body;
    p->context = context;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->failed, 0);
    p->status = IMGPACK_OK;
    p->running = p->started;
    p->loop_id++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    body(context, p->threads - 1);

    pthread_mutex_lock(&p->lock);
    while (p->running > 0)
        pthread_cond_wait(&p->done, &p->lock);
    status = p->status;
    if (status)
        snprintf(message, IMGPACK__ERRMSG_SIZE, "%s", p->message);
    pthread_mutex_unlock(&p->lock);
    return status;
}

int imgpack__parallel_claim(imgpack__parallel *p, uint64_t *item) {
    uint64_t i = atomic_fetch_add(&p->next, 1);
    if (i >= p->n || atomic_load_explicit(&p->failed, memory_order_relaxed) ||
        atomic_load_explicit(&p->cancelled, memory_order_relaxed))
        return 0;
    *item = i;
    return 1;
}

void imgpack__parallel_fail(imgpack__parallel *p, imgpack_status status,
                            const char *message) {
    pthread_mutex_lock(&p->lock);
    if (p->status == IMGPACK_OK) {
        p->status = status;
        snprintf(p->message, sizeof p->message, "%s", message);
    }
    pthread_mutex_unlock(&p->lock);
    atomic_store(&p->failed, 1);
}

void imgpack__parallel_cancel(imgpack__parallel *p) {
    atomic_store(&p->cancelled, 1);
}
