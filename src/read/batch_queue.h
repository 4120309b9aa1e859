/*
 * Prefetch for the batcher: a FIFO of up to `depth` batches that a driver
 * thread fills one after the other, through the batcher's own fill
 * function, while the caller does something else. The queue owns copies
 * of the indices; the output buffers stay the caller's.
 */
#ifndef IMGPACK_SRC_BATCH_QUEUE_H
#define IMGPACK_SRC_BATCH_QUEUE_H

#include <stdint.h>

#include "error.h"
#include "imgpack/imgpack.h"

/* One batch: what imgpack_batcher_run takes, past its checks. */
typedef struct imgpack__batch_job {
    const uint64_t *indices;
    uint64_t n;
    uint64_t seed, epoch;
    uint8_t *out;
    int64_t *labels;
} imgpack__batch_job;

/* Fills `job`; on failure returns the status and writes the message. Runs
   on the driver thread, with no lock of the queue held. */
typedef imgpack_status (*imgpack__batch_fill)(void *context,
                                              const imgpack__batch_job *job,
                                              char *message);

typedef struct imgpack__batch_queue imgpack__batch_queue;

/* Makes a queue of `depth` (1..IMGPACK_MAX_PREFETCH) batches; the driver
   starts with the first submit. IMGPACK_ERR_NOMEM, IMGPACK_ERR_THREAD. */
imgpack_status imgpack__batch_queue_create(imgpack__batch_queue **out,
                                           uint32_t depth,
                                           imgpack__batch_fill fill,
                                           void *context);

/* Stops the driver after the batch it is filling (the caller makes that
   one stop early), drops the queued ones and frees the queue; NULL is
   accepted. In a forked child it only frees memory. */
void imgpack__batch_queue_destroy(imgpack__batch_queue *q);

/* Queues a copy of `job`. IMGPACK_ERR_RANGE when full, IMGPACK_ERR_NOMEM,
   IMGPACK_ERR_THREAD (no driver); `err` says why. */
imgpack_status imgpack__batch_queue_submit(imgpack__batch_queue *q,
                                           const imgpack__batch_job *job,
                                           imgpack__error *err);

/* Waits for the oldest batch and returns its status, its message in `err`
   on failure. IMGPACK_ERR_INVALID_ARG when none is in flight. */
imgpack_status imgpack__batch_queue_wait(imgpack__batch_queue *q,
                                         imgpack__error *err);

/* Batches submitted and not yet waited for (0 in a forked child). */
uint32_t imgpack__batch_queue_in_flight(imgpack__batch_queue *q);

#endif
