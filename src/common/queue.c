/*
 * The ordered queue: a ring of `capacity` slots indexed by item number.
 * Lock discipline: claim, complete and take hold the lock only to update
 * counters and flags; filling and copying slots happens unlocked, which is
 * safe because a slot belongs to exactly one side at a time.
 */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int imgpack__queue_init(imgpack__queue *q, uint64_t count, uint32_t capacity,
                        size_t item_size) {
    int rc;
    memset(q, 0, sizeof *q);
    q->slots = calloc(capacity, item_size);
    q->ready = calloc(capacity, sizeof *q->ready);
    if (!q->slots || !q->ready) {
        rc = ENOMEM;
        goto fail_alloc;
    }
    q->item_size = item_size;
    q->capacity = capacity;
    q->count = count;
    if ((rc = pthread_mutex_init(&q->lock, NULL)) != 0)
        goto fail_alloc;
    if ((rc = pthread_cond_init(&q->can_claim, NULL)) != 0)
        goto fail_claim;
    if ((rc = pthread_cond_init(&q->can_take, NULL)) != 0)
        goto fail_take;
    return 0;
fail_take:
    pthread_cond_destroy(&q->can_claim);
fail_claim:
    pthread_mutex_destroy(&q->lock);
fail_alloc:
    free(q->slots);
    free(q->ready);
    q->slots = NULL;
    return rc;
}

void imgpack__queue_destroy(imgpack__queue *q) {
    if (!q->slots)
        return;
    pthread_cond_destroy(&q->can_take);
    pthread_cond_destroy(&q->can_claim);
    pthread_mutex_destroy(&q->lock);
    free(q->slots);
    free(q->ready);
    q->slots = NULL;
}

static void *slot_of(imgpack__queue *q, uint64_t number) {
    return q->slots + (number % q->capacity) * q->item_size;
}

bool imgpack__queue_claim(imgpack__queue *q, uint64_t *number, void **slot) {
    bool claimed = false;
    pthread_mutex_lock(&q->lock);
    while (!q->stopped && q->claimed < q->count &&
           q->claimed >= q->taken + q->capacity)
        pthread_cond_wait(&q->can_claim, &q->lock);
    if (!q->stopped && q->claimed < q->count) {
        *number = q->claimed++;
        *slot = slot_of(q, *number);
        claimed = true;
    }
    pthread_mutex_unlock(&q->lock);
    return claimed;
}

void imgpack__queue_complete(imgpack__queue *q, uint64_t number) {
    pthread_mutex_lock(&q->lock);
    q->ready[number % q->capacity] = true;
    if (number == q->taken)
        pthread_cond_signal(&q->can_take);
    pthread_mutex_unlock(&q->lock);
}

bool imgpack__queue_take(imgpack__queue *q, void *out) {
    uint64_t number;
    pthread_mutex_lock(&q->lock);
    while (!q->stopped && q->taken < q->count &&
           !q->ready[q->taken % q->capacity])
        pthread_cond_wait(&q->can_take, &q->lock);
    bool available = !q->stopped && q->taken < q->count;
    number = q->taken;
    pthread_mutex_unlock(&q->lock);
    if (!available)
        return false;
    /* The slot is ours until `taken` moves past it. */
    memcpy(out, slot_of(q, number), q->item_size);
    pthread_mutex_lock(&q->lock);
    q->ready[number % q->capacity] = false;
    q->taken++;
    /* Workers waiting for a slot are woken together once half the ring is
       free, not one per slot taken: with tiny results (28x28 digits) a
       wake-up per result cost two context switches per record, a third of
       a pack's CPU. A worker still working claims freed slots itself. */
    if (q->claimed + q->capacity / 2 <= q->taken + q->capacity)
        pthread_cond_broadcast(&q->can_claim);
    pthread_mutex_unlock(&q->lock);
    return true;
}

void imgpack__queue_stop(imgpack__queue *q) {
    pthread_mutex_lock(&q->lock);
    q->stopped = true;
    pthread_cond_broadcast(&q->can_claim);
    pthread_cond_broadcast(&q->can_take);
    pthread_mutex_unlock(&q->lock);
}

void *imgpack__queue_drain(imgpack__queue *q) {
    for (uint32_t i = 0; i < q->capacity; i++) {
        if (q->ready[i]) {
            q->ready[i] = false;
            return q->slots + (size_t)i * q->item_size;
        }
    }
    return NULL;
}
