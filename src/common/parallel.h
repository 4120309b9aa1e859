/*
 * A data-parallel loop: a team of threads-1 named workers and the calling
 * thread that run one body per loop, each thread claiming item numbers
 * 0..n-1 from one atomic counter until none are left, the loop failing
 * as a whole at the first failure. The team persists between loops (the
 * batcher runs one per batch) and restarts itself in a forked child. The
 * thread limit and the default thread count (the online cores) live here
 * too, for every pool in the library.
 *
 * pool.c is the other shape: a stream of numbered results through a
 * bounded queue to a consumer (the packer); a loop here has a fixed
 * output its threads write in place.
 */
#ifndef IMGPACK_SRC_PARALLEL_H
#define IMGPACK_SRC_PARALLEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "error.h"

/* More threads than this gain nothing on any machine we know of and only
   multiply the memory the queue window holds. */
#define IMGPACK__MAX_THREADS 256

/* The online cores, clamped to 1..IMGPACK__MAX_THREADS: the thread count
   that 0 ("as many as the machine has") means everywhere. */
uint32_t imgpack__parallel_cores(void);

/* Runs once per loop on each thread of the team; `thread` is 0..threads-1
   (the calling thread is threads-1), for per-thread scratch. Claims items
   with imgpack__parallel_claim. */
typedef void (*imgpack__parallel_body)(void *context, uint32_t thread);

typedef struct imgpack__parallel {
    uint32_t threads; /* the team, the calling thread included */
    pthread_t *workers;
    uint32_t started;
    char name[12];       /* workers are "<name><n>" */
    unsigned generation; /* fork generation the workers run in */
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* a loop was published, or stop */
    pthread_cond_t done;    /* the last worker finished the loop */
    uint64_t loop_id;       /* bumped per loop */
    uint64_t start_loop_id; /* loop_id when the workers started */
    int stopping;
    uint32_t running; /* workers not yet done with the loop */
    imgpack__parallel_body body;
    void *context;
    uint64_t n;
    atomic_uint_fast64_t next; /* next item to claim */
    atomic_int failed;         /* stop claiming: the loop failed */
    atomic_int cancelled;      /* stop claiming: the team is going */
    imgpack_status status;     /* first failure, under lock */
    char message[IMGPACK__ERRMSG_SIZE];
} imgpack__parallel;

/* Makes a team of `threads` (1..IMGPACK__MAX_THREADS; 0: the online
   cores), workers named `name` and a number (at most 11 bytes). Fewer
   workers than asked only slow loops down, so a failed pthread_create is
   not an error. IMGPACK_ERR_NOMEM or IMGPACK_ERR_THREAD when the team
   cannot be made; destroying it then does nothing, as it does for a
   zeroed team. */
imgpack_status imgpack__parallel_create(imgpack__parallel *p, uint32_t threads,
                                        const char *name);

/* Stops the workers (not in a forked child, where they never existed)
   and frees the team; a zeroed or failed team is fine. */
void imgpack__parallel_destroy(imgpack__parallel *p);

/* In a forked child, starts new workers (the parent's are gone, their
   lock perhaps held at the fork); elsewhere nothing. IMGPACK_ERR_THREAD
   if the locks cannot be made. */
imgpack_status imgpack__parallel_after_fork(imgpack__parallel *p);

/* Runs `body` on every thread of the team over items 0..n-1 and waits for
   all. Returns the first failure's status, its message in `message`
   (IMGPACK__ERRMSG_SIZE bytes), or IMGPACK_OK. One loop at a time. */
imgpack_status imgpack__parallel_run(imgpack__parallel *p, uint64_t n,
                                     imgpack__parallel_body body, void *context,
                                     char *message);

/* The next item into *item: 1, or 0 when none are left, the loop failed
   or the team is cancelled. */
int imgpack__parallel_claim(imgpack__parallel *p, uint64_t *item);

/* Fails the loop: the first failure's status and message win; every
   thread stops claiming. */
void imgpack__parallel_fail(imgpack__parallel *p, imgpack_status status,
                            const char *message);

/* Stops the claiming of the loop running and of any later one; any
   thread. */
void imgpack__parallel_cancel(imgpack__parallel *p);

#endif
