/*
 * A bounded, ordered hand-off between the worker threads and the writer.
 *
 * Work items are numbered 0..count-1. Workers claim numbers in order and
 * may finish them in any order; the consumer takes results strictly in
 * number order. A worker may claim item n only while n < taken + capacity,
 * so at most `capacity` results wait in memory whatever the dataset size,
 * and what the consumer sees does not depend on the number of workers.
 *
 * Results live in the queue's own slots (fixed size, set at init): a
 * worker fills the slot it claimed, so handing over a result allocates
 * nothing.
 */
#ifndef IMGPACK_SRC_QUEUE_H
#define IMGPACK_SRC_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct imgpack__queue {
    pthread_mutex_t lock;
    pthread_cond_t can_claim; /* half the ring is free, or stop */
    pthread_cond_t can_take;  /* the next result arrived, or stop */
    unsigned char *slots;     /* capacity slots of item_size bytes */
    bool *ready;              /* slot holds a completed result */
    size_t item_size;
    uint32_t capacity;
    uint64_t count;   /* items in all */
    uint64_t claimed; /* next number to hand out */
    uint64_t taken;   /* next number the consumer takes */
    bool stopped;
} imgpack__queue;

/* Returns 0 or a pthread/ENOMEM error number. */
int imgpack__queue_init(imgpack__queue *q, uint64_t count, uint32_t capacity,
                        size_t item_size);
void imgpack__queue_destroy(imgpack__queue *q);

/* Hands out the next item number and its slot, waiting for room; false when
   every item has been handed out or the queue was stopped. The slot is the
   caller's to fill until it calls complete. */
bool imgpack__queue_claim(imgpack__queue *q, uint64_t *number, void **slot);

/* Marks item `number`'s slot as holding its result. */
void imgpack__queue_complete(imgpack__queue *q, uint64_t number);

/* Copies the next result in order into *out and frees its slot, waiting for
   it; false when all were taken or the queue was stopped. */
bool imgpack__queue_take(imgpack__queue *q, void *out);

/* Wakes every waiter and makes claim and take return false. */
void imgpack__queue_stop(imgpack__queue *q);

/* After stop, with the workers joined: returns a completed result that was
   never taken, in no particular order, so the caller can free what it
   owns; NULL when none is left. */
void *imgpack__queue_drain(imgpack__queue *q);

#endif
