/*
 * The batcher's prefetch queue: a ring of `depth` slots and one driver
 * thread ("imgpack-bq").
 *
 * Three counters, only ever growing, tell the slots' states: `submitted`
 * batches were queued, the driver has `taken` (begun) and `finished` some
 * of them, and the caller has `collected` the first few with wait. Slot k
 * % depth holds batch k; submit refuses a batch when submitted - collected
 * reaches depth, so a slot is rewritten only after its batch was
 * collected, and the driver, which finished it before, no longer reads it.
 * The submitting thread writes a slot without the lock (it is nobody
 * else's then) and publishes it by bumping `submitted` under the lock;
 * the driver reads it after seeing that bump, under the same lock, and
 * fills it unlocked. Batches finish in order, so wait only compares
 * counters.
 *
 * The driver starts with the first submit rather than at create, so that
 * a queue used first in a forked child starts its driver there; a child's
 * copy of a queue its parent used forgets the parent's batches (their
 * buffers are the parent's to wait for) and starts over.
 */
#include "batch_queue.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpack/reader.h"
#include "reader_internal.h"

typedef struct slot {
    imgpack__batch_job job;
    uint64_t *indices; /* the job's copy, grown as needed, kept */
    uint64_t capacity; /* indices it holds */
    imgpack_status status;
    char message[IMGPACK__ERRMSG_SIZE];
} slot;

struct imgpack__batch_queue {
    imgpack__batch_fill fill;
    void *context;
    uint32_t depth;
    slot slots[IMGPACK_MAX_PREFETCH];

    pthread_mutex_t lock;
    pthread_cond_t work; /* a batch was submitted, or stop */
    pthread_cond_t done; /* the driver finished a batch */
    uint64_t submitted, taken, finished, collected;
    int stopping;
    int running;         /* the driver thread exists */
    unsigned generation; /* fork generation of the lock and counters */
    pthread_t driver;
};

static int init_sync(imgpack__batch_queue *q) {
    int rc = pthread_mutex_init(&q->lock, NULL);
    if (rc != 0)
        goto fail;
    if ((rc = pthread_cond_init(&q->work, NULL)) != 0)
        goto fail_work;
    if ((rc = pthread_cond_init(&q->done, NULL)) != 0)
        goto fail_done;
    return 0;
fail_done:
    pthread_cond_destroy(&q->work);
fail_work:
    pthread_mutex_destroy(&q->lock);
fail:
    return rc;
}

imgpack_status imgpack__batch_queue_create(imgpack__batch_queue **out,
                                           uint32_t depth,
                                           imgpack__batch_fill fill,
                                           void *context) {
    imgpack__batch_queue *q = calloc(1, sizeof *q);
    *out = NULL;
    if (!q)
        return IMGPACK_ERR_NOMEM;
    if (init_sync(q) != 0) {
        free(q);
        return IMGPACK_ERR_THREAD;
    }
    q->fill = fill;
    q->context = context;
    q->depth = depth;
    q->generation = imgpack__fork_generation();
    *out = q;
    return IMGPACK_OK;
}

static void *driver_main(void *arg) {
    imgpack__batch_queue *q = arg;
    pthread_setname_np(pthread_self(), "imgpack-bq");
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->stopping && q->taken == q->submitted)
            pthread_cond_wait(&q->work, &q->lock);
        if (q->stopping)
            break;
        slot *s = &q->slots[q->taken++ % q->depth];
        pthread_mutex_unlock(&q->lock);
        imgpack_status status = q->fill(q->context, &s->job, s->message);
        pthread_mutex_lock(&q->lock);
        s->status = status;
        q->finished++;
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* In a forked child: the parent's driver is gone and its lock may have
   been held at the fork. The slots' index copies are still ours. */
static imgpack_status restart_after_fork(imgpack__batch_queue *q,
                                         imgpack__error *err) {
    if (q->generation == imgpack__fork_generation())
        return IMGPACK_OK;
    if (init_sync(q) != 0)
        return imgpack__error_set(err, IMGPACK_ERR_THREAD,
                                  "cannot make the prefetch locks after fork");
    q->submitted = q->taken = q->finished = q->collected = 0;
    q->stopping = 0;
    q->running = 0;
    q->generation = imgpack__fork_generation();
    return IMGPACK_OK;
}

void imgpack__batch_queue_destroy(imgpack__batch_queue *q) {
    if (!q)
        return;
    if (q->generation == imgpack__fork_generation()) {
        pthread_mutex_lock(&q->lock);
        q->stopping = 1;
        pthread_cond_broadcast(&q->work);
        pthread_mutex_unlock(&q->lock);
        if (q->running)
            pthread_join(q->driver, NULL);
        pthread_cond_destroy(&q->done);
        pthread_cond_destroy(&q->work);
        pthread_mutex_destroy(&q->lock);
    }
    for (uint32_t i = 0; i < q->depth; i++)
        free(q->slots[i].indices);
    free(q);
}

imgpack_status imgpack__batch_queue_submit(imgpack__batch_queue *q,
                                           const imgpack__batch_job *job,
                                           imgpack__error *err) {
    imgpack_status status = restart_after_fork(q, err);
    if (status)
        return status;
    /* Only this thread submits or collects, so the count read here cannot
       grow before the bump below, and the slot stays free. */
    pthread_mutex_lock(&q->lock);
    uint64_t in_flight = q->submitted - q->collected;
    slot *s = &q->slots[q->submitted % q->depth];
    pthread_mutex_unlock(&q->lock);
    if (in_flight >= q->depth)
        return imgpack__error_set(err, IMGPACK_ERR_RANGE,
                                  "%" PRIu64 " batches in flight: the "
                                  "prefetch depth; wait for one first",
                                  in_flight);
    if (!q->running) {
        int rc = pthread_create(&q->driver, NULL, driver_main, q);
        if (rc != 0)
            return imgpack__error_set(err, IMGPACK_ERR_THREAD,
                                      "cannot start the prefetch thread: %s",
                                      strerror(rc));
        q->running = 1;
    }
    if (job->n > s->capacity) {
        uint64_t *grown = job->n <= SIZE_MAX / sizeof *grown
                              ? realloc(s->indices, job->n * sizeof *grown)
                              : NULL;
        if (!grown)
            return imgpack__error_set(
                err, IMGPACK_ERR_NOMEM,
                "out of memory copying %" PRIu64 " indices", job->n);
        s->indices = grown;
        s->capacity = job->n;
    }
    if (job->n > 0)
        memcpy(s->indices, job->indices, job->n * sizeof *s->indices);
    s->job = *job;
    s->job.indices = s->indices;
    pthread_mutex_lock(&q->lock);
    q->submitted++;
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->lock);
    return IMGPACK_OK;
}

imgpack_status imgpack__batch_queue_wait(imgpack__batch_queue *q,
                                         imgpack__error *err) {
    imgpack_status status = restart_after_fork(q, err);
    if (status)
        return status;
    pthread_mutex_lock(&q->lock);
    if (q->collected == q->submitted) {
        pthread_mutex_unlock(&q->lock);
        return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                  "no batch in flight");
    }
    while (q->finished == q->collected)
        pthread_cond_wait(&q->done, &q->lock);
    slot *s = &q->slots[q->collected++ % q->depth];
    status = s->status;
    pthread_mutex_unlock(&q->lock);
    if (status)
        imgpack__error_set(err, status, "%s", s->message);
    return status;
}

uint32_t imgpack__batch_queue_in_flight(imgpack__batch_queue *q) {
    uint64_t n;
    if (q->generation != imgpack__fork_generation())
        return 0;
    pthread_mutex_lock(&q->lock);
    n = q->submitted - q->collected;
    pthread_mutex_unlock(&q->lock);
    return (uint32_t)n;
}
