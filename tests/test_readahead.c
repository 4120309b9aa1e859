/*
 * Read-ahead and the windowed order: imgpack_reader_prefetch's arguments
 * and limit, prefetch racing reads, limit changes and batches on several
 * threads (for TSan) with every pixel checked, batches equal with
 * read-ahead on and off, and imgpack_sampler_indices_windowed's
 * permutation, windows and rank partition.
 */
#include <pthread.h>

#include "check.h"
#include "imgpack/reader.h"
#include "teststore.h"

#define W 40
#define H 30
#define COUNT 300
#define THREADS 4

static imgpack_reader *shared_reader;

static void expect_pixels(uint64_t index, const uint8_t *px) {
    for (uint32_t y = 0; y < H; y++)
        for (uint32_t x = 0; x < W; x++)
            for (uint32_t c = 0; c < 3; c++)
                CHECK_EQ(px[(y * W + x) * 3 + c], pixel(index, y, x, c));
}

static void test_arguments(imgpack_reader *r) {
    uint64_t ok[3] = {0, 7, COUNT - 1}, bad[2] = {3, COUNT};
    CHECK_OK(imgpack_reader_prefetch(r, ok, 3));
    CHECK_OK(imgpack_reader_prefetch(r, NULL, 0));
    CHECK_EQ(imgpack_reader_prefetch(r, NULL, 2), IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_reader_prefetch(r, bad, 2), IMGPACK_ERR_RANGE);
    CHECK(strstr(imgpack_reader_errmsg(r), "out of range") != NULL);
    CHECK_EQ(
        imgpack_reader_set_prefetch_limit(r, IMGPACK_PREFETCH_MAX_LIMIT + 1),
        IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_reader_set_prefetch_limit(NULL, 0),
             IMGPACK_ERR_INVALID_ARG);
    /* Off: nothing is located, so not even a bad index is noticed. */
    CHECK_OK(imgpack_reader_set_prefetch_limit(r, 0));
    CHECK_OK(imgpack_reader_prefetch(r, bad, 2));
    CHECK_OK(
        imgpack_reader_set_prefetch_limit(r, IMGPACK_PREFETCH_DEFAULT_LIMIT));
}

/* Prefetches a window of records, then decodes and checks each; thread t
   also flips the limit between off, tiny and the default. */
static void *reader_thread(void *arg) {
    uintptr_t t = (uintptr_t)arg;
    uint8_t px[W * H * 3];
    uint64_t indices[32];
    imgpack_record rec;
    for (uint64_t round = 0; round < 20; round++) {
        for (uint64_t i = 0; i < 32; i++)
            indices[i] = (t * 977 + round * 131 + i * 7) % COUNT;
        if (t == 0)
            CHECK_OK(imgpack_reader_set_prefetch_limit(
                shared_reader, round % 3 == 0 ? 0
                               : round % 3 == 1
                                   ? 4096
                                   : IMGPACK_PREFETCH_DEFAULT_LIMIT));
        CHECK_OK(imgpack_reader_prefetch(shared_reader, indices, 32));
        for (uint64_t i = 0; i < 32; i++) {
            CHECK_OK(imgpack_reader_decode(shared_reader, indices[i], px,
                                           sizeof px, &rec));
            CHECK_EQ(rec.label, label_of(indices[i]));
            expect_pixels(indices[i], px);
        }
    }
    return NULL;
}

static void test_threads(const char *dir, uint32_t flags) {
    pthread_t threads[THREADS];
    CHECK_OK(imgpack_reader_open(&shared_reader, dir, flags));
    test_arguments(shared_reader);
    for (uintptr_t t = 0; t < THREADS; t++)
        CHECK_EQ(pthread_create(&threads[t], NULL, reader_thread, (void *)t),
                 0);
    for (int t = 0; t < THREADS; t++)
        CHECK_EQ(pthread_join(threads[t], NULL), 0);
    imgpack_reader_close(shared_reader);
}

/* Batches with read-ahead (the batcher's own, per batch) equal batches
   without, and hold the right pixels. */
static void test_batches(const char *dir) {
    imgpack_reader *r;
    imgpack_batch_options *o;
    imgpack_batcher *b;
    static uint8_t on[64 * W * H * 3], off[64 * W * H * 3];
    int64_t labels[64];
    uint64_t order[COUNT];
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_OK(imgpack_batch_options_set_dtype(o, IMGPACK_DTYPE_UINT8));
    CHECK_OK(imgpack_batch_options_set_layout(o, IMGPACK_LAYOUT_NHWC));
    CHECK_OK(imgpack_batch_options_set_threads(o, 3));
    CHECK_OK(imgpack_batcher_create(&b, r, o));
    CHECK_OK(imgpack_sampler_indices_windowed(COUNT, 4, 1, 1, 16, 0, 1, 0,
                                              order, COUNT));
    for (uint64_t start = 0; start + 64 <= COUNT; start += 64) {
        CHECK_OK(imgpack_reader_set_prefetch_limit(
            r, IMGPACK_PREFETCH_DEFAULT_LIMIT));
        CHECK_OK(imgpack_batcher_run(b, order + start, 64, 9, 0, on, sizeof on,
                                     labels));
        CHECK_OK(imgpack_reader_set_prefetch_limit(r, 0));
        CHECK_OK(imgpack_batcher_run(b, order + start, 64, 9, 0, off,
                                     sizeof off, NULL));
        CHECK(memcmp(on, off, sizeof on) == 0);
        for (uint64_t i = 0; i < 64; i++) {
            CHECK_EQ(labels[i], label_of(order[start + i]));
            expect_pixels(order[start + i], on + i * W * H * 3);
        }
    }
    imgpack_batcher_destroy(b);
    imgpack_batch_options_destroy(o);
    imgpack_reader_close(r);
}

static void test_windowed_order(void) {
    enum { N = 1003, WIN = 50, RANKS = 4 };
    static uint64_t plain[N], order[N], full[N], rank_out[N / RANKS + 1];
    static int seen[N];
    /* Window 0, 1 and >= n: the plain order. */
    CHECK_OK(imgpack_sampler_indices(N, 7, 3, 1, 0, 1, 0, plain, N));
    uint64_t same[] = {0, 1, N, N + 9};
    for (int k = 0; k < 4; k++) {
        CHECK_OK(imgpack_sampler_indices_windowed(N, 7, 3, 1, same[k], 0, 1, 0,
                                                  order, N));
        CHECK(memcmp(order, plain, sizeof plain) == 0);
    }
    CHECK_OK(
        imgpack_sampler_indices_windowed(N, 7, 3, 1, WIN, 0, 1, 0, order, N));
    CHECK(memcmp(order, plain, sizeof plain) != 0);
    /* A permutation whose windows are runs: the window changes exactly
       N / WIN times, and the first window to come is not always 0. */
    uint64_t changes = 0, ascending_runs = 0;
    for (uint64_t i = 0; i < N; i++) {
        CHECK(order[i] < N && !seen[order[i]]);
        seen[order[i]] = 1;
        if (i > 0 && order[i] / WIN != order[i - 1] / WIN)
            changes++;
        if (i > 0 && order[i] / WIN == order[i - 1] / WIN &&
            order[i] > order[i - 1])
            ascending_runs++;
    }
    CHECK_EQ(changes, N / WIN);
    CHECK(ascending_runs < N * 3 / 4); /* shuffled within windows */
    /* Without shuffle, window is ignored. */
    CHECK_OK(
        imgpack_sampler_indices_windowed(N, 7, 3, 0, WIN, 0, 1, 0, order, N));
    for (uint64_t i = 0; i < N; i++)
        CHECK_EQ(order[i], i);
    /* Ranks: DistributedSampler's padding and partition of the order. */
    CHECK_OK(
        imgpack_sampler_indices_windowed(N, 7, 3, 1, WIN, 0, 1, 0, full, N));
    for (uint32_t rank = 0; rank < RANKS; rank++) {
        uint64_t count = imgpack_sampler_count(N, RANKS, 0);
        CHECK_OK(imgpack_sampler_indices_windowed(N, 7, 3, 1, WIN, rank, RANKS,
                                                  0, rank_out, count));
        for (uint64_t i = 0; i < count; i++)
            CHECK_EQ(rank_out[i], full[(rank + i * RANKS) % N]);
    }
    CHECK_EQ(imgpack_sampler_indices_windowed(N, 7, 3, 1, WIN, RANKS, RANKS, 0,
                                              rank_out, N),
             IMGPACK_ERR_INVALID_ARG);
}

int main(void) {
    teststore_init("test_readahead");
    store_spec raw = {COUNT, W, H, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    store_spec packing = {COUNT, W, H, 0, IMGPACK_FORMAT_RAW, 0, NULL};
    const char *raw_dir = make_store("raw", &raw);
    test_threads(raw_dir, 0);
    test_threads(make_store("packing", &packing), IMGPACK_OPEN_INCOMPLETE);
    test_batches(raw_dir);
    test_windowed_order();
    teststore_cleanup();
    printf("test_readahead: all passed\n");
    return 0;
}
