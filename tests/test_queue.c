/*
 * The ordered queue under real threads: results arrive in number order
 * whatever order workers finish in, the window bounds how far workers run
 * ahead, and stop releases everyone.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "check.h"
#include "pool.h"
#include "queue.h"

#define ITEMS 5000
#define CAPACITY 8

typedef struct job_state {
    imgpack__queue *queue;
    atomic_uint_fast64_t max_ahead; /* largest claimed - taken seen */
} job_state;

static void *make_scratch(void *context) {
    return context;
}
static void free_scratch(void *scratch) {
    (void)scratch;
}

static void run(void *context, void *scratch, uint64_t number, void *slot) {
    job_state *state = context;
    (void)scratch;
    /* Uneven work so that completions come out of order. */
    if (number % 7 == 0) {
        struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
    pthread_mutex_lock(&state->queue->lock);
    uint64_t ahead = state->queue->claimed - state->queue->taken;
    pthread_mutex_unlock(&state->queue->lock);
    if (ahead > atomic_load(&state->max_ahead))
        atomic_store(&state->max_ahead, ahead);
    *(uint64_t *)slot = number * 3 + 1;
}

static void test_results_come_in_order(uint32_t threads) {
    imgpack__queue q;
    imgpack__pool pool;
    job_state state = {&q, 0};
    imgpack__pool_job job = {&state, make_scratch, free_scratch, run};
    CHECK_EQ(imgpack__queue_init(&q, ITEMS, CAPACITY, sizeof(uint64_t)), 0);
    CHECK_OK(imgpack__pool_start(&pool, threads, &q, &job));
    uint64_t value, expected = 0;
    while (imgpack__queue_take(&q, &value)) {
        CHECK_EQ(value, expected * 3 + 1);
        expected++;
    }
    CHECK_EQ(expected, ITEMS);
    CHECK_OK(imgpack__pool_join(&pool));
    CHECK(atomic_load(&state.max_ahead) <= CAPACITY);
    imgpack__queue_destroy(&q);
}

static void test_stop_releases_waiting_workers(void) {
    imgpack__queue q;
    imgpack__pool pool;
    job_state state = {&q, 0};
    imgpack__pool_job job = {&state, make_scratch, free_scratch, run};
    uint64_t value;
    CHECK_EQ(imgpack__queue_init(&q, ITEMS, CAPACITY, sizeof(uint64_t)), 0);
    CHECK_OK(imgpack__pool_start(&pool, 4, &q, &job));
    CHECK(imgpack__queue_take(&q, &value));
    imgpack__queue_stop(&q);
    CHECK_OK(imgpack__pool_join(&pool));
    CHECK(!imgpack__queue_take(&q, &value));
    int left = 0;
    while (imgpack__queue_drain(&q))
        left++;
    CHECK(left <= CAPACITY);
    imgpack__queue_destroy(&q);
}

int main(void) {
    test_results_come_in_order(1);
    test_results_come_in_order(2);
    test_results_come_in_order(7);
    test_stop_releases_waiting_workers();
    printf("queue: ok\n");
    return 0;
}
