/*
 * Tests of the batcher's training features on stores written with LMDB
 * directly (teststore.c): augmentation keyed by sample (the same images
 * whatever the batch split, order or thread count), imgpack_augment_params
 * (validation, determinism, the fallback, its flips in every crop mode),
 * the 16-bit output types, and prefetch (FIFO order, a full queue, errors
 * naming the record, mixing with run, destroy with batches in flight,
 * fork). The pixels of
 * RandomResizedCrop against torchvision are tests/python's
 * test_augment_exact.py; the box distribution is
 * test_augment_distribution.py.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "imgpack/reader.h"
#include "record.h"
#include "teststore.h"

/* Records 24..26 x 17..18, as a --crop 0 store. */
#define COUNT 40
#define SIDE 12

static imgpack_batcher *make_batcher(imgpack_reader *r, int32_t mode,
                                     int32_t dtype, uint32_t threads,
                                     uint32_t prefetch) {
    imgpack_batch_options *o;
    imgpack_batcher *b;
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_OK(imgpack_batch_options_set_layout(o, IMGPACK_LAYOUT_NHWC));
    CHECK_OK(imgpack_batch_options_set_dtype(o, dtype));
    CHECK_OK(imgpack_batch_options_set_crop(o, SIDE, SIDE, mode));
    CHECK_OK(imgpack_batch_options_set_flip(o, 1));
    CHECK_OK(imgpack_batch_options_set_threads(o, threads));
    CHECK_OK(imgpack_batch_options_set_prefetch(o, prefetch));
    CHECK_OK(imgpack_batcher_create(&b, r, o));
    imgpack_batch_options_destroy(o);
    return b;
}

static void test_options(void) {
    imgpack_batch_options *o;
    imgpack_augment a;
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_EQ(
        imgpack_batch_options_set_crop(o, 0, 0, IMGPACK_CROP_RANDOM_RESIZED),
        IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_batch_options_set_crop(o, 8, 8, 3),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_batch_options_set_random_resized(o, 0.5, 0.4, 0.75, 1),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_batch_options_set_random_resized(o, 0, 1, 0.75, 1),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_batch_options_set_random_resized(o, 0.1, 1, 2, 1),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_batch_options_set_random_resized(o, 0.1, NAN, 1, 1),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_batch_options_set_random_resized(o, 0.1, 1, 1, INFINITY),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_OK(imgpack_batch_options_set_random_resized(o, 0.2, 2.0, 1, 1));
    CHECK_EQ(imgpack_batch_options_set_prefetch(o, IMGPACK_MAX_PREFETCH + 1),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_batch_options_set_dtype(o, 4), IMGPACK_ERR_INVALID_ARG);
    imgpack_batch_options_destroy(o);

    CHECK_EQ(
        imgpack_augment_params(1, 2, 3, 0, 10, 0.08, 1, 0.75, 4.0 / 3, 1, &a),
        IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_augment_params(1, 2, 3, 10, 10, 0.08, 1, 0.75, 4.0 / 3, 1,
                                    NULL),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(
        imgpack_augment_params(1, 2, 3, 10, 10, -1, 1, 0.75, 4.0 / 3, 1, &a),
        IMGPACK_ERR_INVALID_ARG);
}

static void test_augment_params(void) {
    imgpack_augment a, b;
    int flips = 0, moved = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        CHECK_OK(imgpack_augment_params(5, 1, i, 500, 375, 0.08, 1.0, 0.75,
                                        4.0 / 3, 1, &a));
        CHECK(a.width >= 1 && a.height >= 1);
        CHECK(a.left + a.width <= 500 && a.top + a.height <= 375);
        /* A pure function; the box does not depend on the flip setting. */
        CHECK_OK(imgpack_augment_params(5, 1, i, 500, 375, 0.08, 1.0, 0.75,
                                        4.0 / 3, 0, &b));
        CHECK(b.top == a.top && b.left == a.left && b.width == a.width &&
              b.height == a.height && b.flip == 0);
        flips += a.flip;
        /* Another epoch, another box. */
        CHECK_OK(imgpack_augment_params(5, 2, i, 500, 375, 0.08, 1.0, 0.75,
                                        4.0 / 3, 1, &b));
        moved += b.top != a.top || b.left != a.left || b.width != a.width;
    }
    CHECK(flips > 900 && flips < 1100);
    CHECK(moved > 1990);
    /* Nothing fits in 3000x20: torchvision's fallback, the ratio clamped
       to 4/3 and centred; in 20x3000 to 3/4. */
    CHECK_OK(imgpack_augment_params(0, 0, 0, 3000, 20, 0.08, 1.0, 0.75, 4.0 / 3,
                                    0, &a));
    CHECK(a.height == 20 && a.width == 27 && a.top == 0 && a.left == 1486);
    CHECK_OK(imgpack_augment_params(0, 0, 0, 20, 3000, 0.08, 1.0, 0.75, 4.0 / 3,
                                    0, &a));
    CHECK(a.width == 20 && a.height == 27 && a.left == 0 && a.top == 1486);
    /* A one-pixel image: the box is the image. */
    CHECK_OK(
        imgpack_augment_params(0, 0, 0, 1, 1, 0.08, 1.0, 0.75, 4.0 / 3, 0, &a));
    CHECK(a.width == 1 && a.height == 1 && a.top == 0 && a.left == 0);
    /* scale 1, ratio 1 on a square: always the whole image. */
    CHECK_OK(imgpack_augment_params(9, 9, 9, 64, 64, 1, 1, 1, 1, 0, &a));
    CHECK(a.width == 64 && a.height == 64 && a.top == 0 && a.left == 0);
}

/* In every crop mode the flip is augment_params': here, center crops of
   whole 7x5 records. */
static void test_flip_is_augment_params(void) {
    store_spec spec = {30, 7, 5, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    imgpack_reader *r;
    imgpack_batch_options *o;
    imgpack_batcher *b;
    uint64_t idx[30];
    uint8_t out[30 * 7 * 5 * 3];
    imgpack_augment a;
    int flips = 0;
    for (int i = 0; i < 30; i++)
        idx[i] = (uint64_t)(29 - i);
    CHECK_OK(imgpack_reader_open(&r, make_store("flip", &spec), 0));
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_OK(imgpack_batch_options_set_layout(o, IMGPACK_LAYOUT_NHWC));
    CHECK_OK(imgpack_batch_options_set_dtype(o, IMGPACK_DTYPE_UINT8));
    CHECK_OK(imgpack_batch_options_set_flip(o, 1));
    CHECK_OK(imgpack_batcher_create(&b, r, o));
    imgpack_batch_options_destroy(o);
    CHECK_OK(imgpack_batcher_run(b, idx, 30, 77, 5, out, sizeof out, NULL));
    for (int k = 0; k < 30; k++) {
        const uint8_t *img = out + k * 105;
        CHECK_OK(imgpack_augment_params(77, 5, idx[k], 7, 5, 0.08, 1, 0.75,
                                        4.0 / 3, 1, &a));
        for (uint32_t y = 0; y < 5; y++)
            for (uint32_t x = 0; x < 7; x++)
                for (uint32_t c = 0; c < 3; c++)
                    CHECK_EQ(img[(y * 7 + x) * 3 + c],
                             pixel(idx[k], y, a.flip ? 6 - x : x, c));
        flips += a.flip;
    }
    CHECK(flips > 5 && flips < 25);
    imgpack_batcher_destroy(b);
    imgpack_reader_close(r);
}

/* Images of records `order` filled in batches of `batch` by a batcher of
   `threads`, stored by record index into `by_record`. */
static void epoch_images(imgpack_reader *r, int32_t mode, int32_t dtype,
                         uint32_t threads, const uint64_t *order,
                         uint64_t batch, uint64_t seed, uint64_t epoch,
                         uint8_t *by_record) {
    imgpack_batcher *b = make_batcher(r, mode, dtype, threads, 0);
    uint64_t bytes = imgpack_batcher_image_bytes(b);
    uint8_t *out = malloc(batch * bytes);
    int64_t labels[COUNT];
    CHECK(out != NULL);
    for (uint64_t at = 0; at < COUNT; at += batch) {
        uint64_t n = COUNT - at < batch ? COUNT - at : batch;
        CHECK_OK(imgpack_batcher_run(b, order + at, n, seed, epoch, out,
                                     batch * bytes, labels));
        for (uint64_t k = 0; k < n; k++) {
            memcpy(by_record + order[at + k] * bytes, out + k * bytes, bytes);
            CHECK_EQ(labels[k], label_of(order[at + k]));
        }
    }
    free(out);
    imgpack_batcher_destroy(b);
}

static void test_keyed_by_sample(imgpack_reader *r) {
    const int32_t modes[] = {IMGPACK_CROP_RANDOM, IMGPACK_CROP_RANDOM_RESIZED};
    uint64_t forward[COUNT], shuffled[COUNT];
    size_t bytes = (size_t)COUNT * SIDE * SIDE * 3;
    uint8_t *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    CHECK(a && b && c);
    for (uint64_t i = 0; i < COUNT; i++) {
        forward[i] = i;
        shuffled[i] = (i * 17 + 5) % COUNT; /* 17 is prime to 40 */
    }
    for (int m = 0; m < 2; m++) {
        epoch_images(r, modes[m], IMGPACK_DTYPE_UINT8, 1, forward, COUNT, 3, 7,
                     a);
        epoch_images(r, modes[m], IMGPACK_DTYPE_UINT8, 3, shuffled, 7, 3, 7, b);
        CHECK(memcmp(a, b, bytes) == 0);
        epoch_images(r, modes[m], IMGPACK_DTYPE_UINT8, 2, shuffled, 1, 3, 7, b);
        CHECK(memcmp(a, b, bytes) == 0);
        /* Another epoch or seed: other images (some may coincide). */
        epoch_images(r, modes[m], IMGPACK_DTYPE_UINT8, 2, forward, 13, 3, 8, c);
        CHECK(memcmp(a, c, bytes) != 0);
        epoch_images(r, modes[m], IMGPACK_DTYPE_UINT8, 2, forward, 13, 4, 7, c);
        CHECK(memcmp(a, c, bytes) != 0);
    }
    free(a);
    free(b);
    free(c);
}

/* Python's float16 and bfloat16 rounding is checked against torch in
   test_augment_exact.py; here, that both are one rounding of the float32
   batch: every 16-bit value is one of the two neighbours of the float. */
static float from_half(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0    ? ldexpf((float)m, -24)
              : e == 31 ? (m ? NAN : INFINITY)
                        : ldexpf((float)(m | 1024), e - 25);
    return h & 0x8000 ? -v : v;
}

static float from_bfloat16(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float v;
    memcpy(&v, &x, sizeof v);
    return v;
}

static void test_16_bit_types(imgpack_reader *r) {
    uint64_t forward[COUNT];
    size_t n = (size_t)COUNT * SIDE * SIDE * 3;
    float *f = malloc(n * 4);
    uint16_t *h = malloc(n * 2), *bf = malloc(n * 2);
    CHECK(f && h && bf);
    for (uint64_t i = 0; i < COUNT; i++)
        forward[i] = i;
    epoch_images(r, IMGPACK_CROP_RANDOM_RESIZED, IMGPACK_DTYPE_FLOAT32, 2,
                 forward, COUNT, 1, 1, (uint8_t *)f);
    epoch_images(r, IMGPACK_CROP_RANDOM_RESIZED, IMGPACK_DTYPE_FLOAT16, 2,
                 forward, 9, 1, 1, (uint8_t *)h);
    epoch_images(r, IMGPACK_CROP_RANDOM_RESIZED, IMGPACK_DTYPE_BFLOAT16, 2,
                 forward, 9, 1, 1, (uint8_t *)bf);
    for (size_t k = 0; k < n; k++) {
        CHECK(fabsf(from_half(h[k]) - f[k]) <= ldexpf(fabsf(f[k]), -11));
        CHECK(fabsf(from_bfloat16(bf[k]) - f[k]) <= ldexpf(fabsf(f[k]), -8));
    }
    free(f);
    free(h);
    free(bf);
}

static void test_prefetch(imgpack_reader *r) {
    enum { DEPTH = 3, N = 16 };
    imgpack_batcher *sync = make_batcher(r, IMGPACK_CROP_RANDOM_RESIZED,
                                         IMGPACK_DTYPE_FLOAT32, 2, 0);
    imgpack_batcher *b = make_batcher(r, IMGPACK_CROP_RANDOM_RESIZED,
                                      IMGPACK_DTYPE_FLOAT32, 2, DEPTH);
    uint64_t bytes = imgpack_batcher_image_bytes(b);
    float *want = malloc(DEPTH * N * bytes), *got = malloc(DEPTH * N * bytes);
    int64_t labels[DEPTH][N];
    uint64_t idx[DEPTH][N];
    CHECK(want && got);
    for (int k = 0; k < DEPTH; k++)
        for (int i = 0; i < N; i++)
            idx[k][i] = (uint64_t)(k * N + i * 5) % COUNT;
    for (int k = 0; k < DEPTH; k++)
        CHECK_OK(imgpack_batcher_run(sync, idx[k], N, 11, (uint64_t)k,
                                     (uint8_t *)want + k * N * bytes, N * bytes,
                                     NULL));

    /* Submitted batches come back in order, equal to run's. */
    for (int round = 0; round < 2; round++) {
        memset(got, 0, DEPTH * N * bytes);
        for (int k = 0; k < DEPTH; k++) {
            uint64_t copy[N];
            memcpy(copy, idx[k], sizeof copy);
            CHECK_OK(imgpack_batcher_submit(b, copy, N, 11, (uint64_t)k,
                                            (uint8_t *)got + k * N * bytes,
                                            N * bytes, labels[k]));
            memset(copy, 0xff, sizeof copy); /* the batcher keeps a copy */
            CHECK_EQ(imgpack_batcher_in_flight(b), k + 1);
        }
        CHECK_EQ(
            imgpack_batcher_submit(b, idx[0], N, 0, 0, got, N * bytes, NULL),
            IMGPACK_ERR_RANGE);
        CHECK(strstr(imgpack_batcher_errmsg(b), "in flight") != NULL);
        CHECK_EQ(imgpack_batcher_run(b, idx[0], N, 0, 0, got, N * bytes, NULL),
                 IMGPACK_ERR_INVALID_ARG);
        for (int k = 0; k < DEPTH; k++)
            CHECK_OK(imgpack_batcher_wait(b));
        CHECK_EQ(imgpack_batcher_in_flight(b), 0);
        CHECK(memcmp(want, got, DEPTH * N * bytes) == 0);
        for (int k = 0; k < DEPTH; k++)
            for (int i = 0; i < N; i++)
                CHECK_EQ(labels[k][i], label_of(idx[k][i]));
    }
    CHECK_EQ(imgpack_batcher_wait(b), IMGPACK_ERR_INVALID_ARG);
    /* Run works again once nothing is in flight; an empty batch queues. */
    CHECK_OK(imgpack_batcher_run(b, idx[0], N, 11, 0, got, N * bytes, NULL));
    CHECK(memcmp(want, got, N * bytes) == 0);
    CHECK_OK(imgpack_batcher_submit(b, idx[0], 0, 0, 0, NULL, 0, NULL));
    CHECK_OK(imgpack_batcher_wait(b));
    CHECK_EQ(
        imgpack_batcher_submit(b, idx[0], N, 0, 0, got, N * bytes - 1, NULL),
        IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(
        imgpack_batcher_submit(sync, idx[0], N, 0, 0, got, N * bytes, NULL),
        IMGPACK_ERR_RANGE);
    CHECK_EQ(imgpack_batcher_wait(sync), IMGPACK_ERR_INVALID_ARG);

    /* Destroyed with batches in flight: cancelled, no thread left behind
       (the sanitizer builds check), buffers untouched afterwards. */
    for (int k = 0; k < DEPTH; k++)
        CHECK_OK(imgpack_batcher_submit(b, idx[k], N, 1, 1,
                                        (uint8_t *)got + k * N * bytes,
                                        N * bytes, NULL));
    imgpack_batcher_destroy(b);
    imgpack_batcher_destroy(sync);
    free(want);
    free(got);
}

static void test_prefetch_errors(void) {
    store_spec spec = {12, 16, 16, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    char *dir = make_store("damaged", &spec);
    imgpack_reader *r;
    size_t size;
    uint8_t *value = make_value(&spec, 7, &size);
    uint64_t good[4] = {0, 1, 2, 3}, bad[4] = {4, 5, 7, 6}, far[1] = {99};
    uint8_t out[3][4 * 16 * 16 * 3];
    value[9] ^= 1; /* header CRC wrong */
    replace_record(dir, 7, value, size);
    free(value);
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    imgpack_batch_options *o;
    imgpack_batcher *b;
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_OK(imgpack_batch_options_set_dtype(o, IMGPACK_DTYPE_UINT8));
    CHECK_OK(imgpack_batch_options_set_layout(o, IMGPACK_LAYOUT_NHWC));
    CHECK_OK(imgpack_batch_options_set_threads(o, 3));
    CHECK_OK(imgpack_batch_options_set_prefetch(o, 4));
    CHECK_OK(imgpack_batcher_create(&b, r, o));
    imgpack_batch_options_destroy(o);

    CHECK_OK(
        imgpack_batcher_submit(b, good, 4, 0, 0, out[0], sizeof out[0], NULL));
    CHECK_OK(
        imgpack_batcher_submit(b, bad, 4, 0, 0, out[1], sizeof out[1], NULL));
    CHECK_OK(
        imgpack_batcher_submit(b, far, 1, 0, 0, out[2], sizeof out[2], NULL));
    CHECK_OK(
        imgpack_batcher_submit(b, good, 4, 0, 0, out[2], sizeof out[2], NULL));
    CHECK_OK(imgpack_batcher_wait(b));
    CHECK_STR_EQ(imgpack_batcher_errmsg(b), "");
    for (int k = 0; k < 4; k++)
        check_pixels(out[0] + k * 768, good[k], 16, 16);
    CHECK_EQ(imgpack_batcher_wait(b), IMGPACK_ERR_CORRUPT);
    CHECK(strstr(imgpack_batcher_errmsg(b), "record 7") != NULL);
    CHECK_EQ(imgpack_batcher_wait(b), IMGPACK_ERR_RANGE);
    CHECK(strstr(imgpack_batcher_errmsg(b), "99") != NULL);
    CHECK_OK(imgpack_batcher_wait(b)); /* a failure stops no later batch */
    for (int k = 0; k < 4; k++)
        check_pixels(out[2] + k * 768, good[k], 16, 16);
    imgpack_batcher_destroy(b);
    imgpack_reader_close(r);
}

/* fork() with batches in flight: the child's copy has none, and starts
   its own threads for what it submits; the parent's batches finish. TSan
   cannot follow a process that forks while other threads run, and a
   prefetching batcher always has its driver running then. */
#if !defined(__SANITIZE_THREAD__)
static void test_prefetch_fork(imgpack_reader *r) {
    enum { N = 24 };
    imgpack_batcher *b =
        make_batcher(r, IMGPACK_CROP_RANDOM_RESIZED, IMGPACK_DTYPE_UINT8, 2, 2);
    imgpack_batcher *sync =
        make_batcher(r, IMGPACK_CROP_RANDOM_RESIZED, IMGPACK_DTYPE_UINT8, 1, 0);
    uint64_t bytes = imgpack_batcher_image_bytes(b), idx[N];
    uint8_t *want = malloc(N * bytes), *got = malloc(2 * N * bytes);
    int status;
    CHECK(want && got);
    for (int i = 0; i < N; i++)
        idx[i] = (uint64_t)(N - 1 - i);
    CHECK_OK(imgpack_batcher_run(sync, idx, N, 2, 2, want, N * bytes, NULL));
    for (int round = 0; round < 2; round++) {
        CHECK_OK(imgpack_batcher_submit(b, idx, N, 2, 2, got, N * bytes, NULL));
        CHECK_OK(imgpack_batcher_submit(b, idx, N, 2, 2, got + N * bytes,
                                        N * bytes, NULL));
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            uint8_t *mine = malloc(N * bytes);
            int ok = mine && imgpack_batcher_in_flight(b) == 0 &&
                     imgpack_batcher_wait(b) == IMGPACK_ERR_INVALID_ARG &&
                     imgpack_batcher_submit(b, idx, N, 2, 2, mine, N * bytes,
                                            NULL) == IMGPACK_OK &&
                     imgpack_batcher_wait(b) == IMGPACK_OK &&
                     memcmp(mine, want, N * bytes) == 0;
            imgpack_batcher_destroy(b);
            free(mine);
            _exit(ok ? 0 : 1);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
        CHECK_OK(imgpack_batcher_wait(b));
        CHECK_OK(imgpack_batcher_wait(b));
        CHECK(memcmp(got, want, N * bytes) == 0);
        CHECK(memcmp(got + N * bytes, want, N * bytes) == 0);
    }
    imgpack_batcher_destroy(b);
    imgpack_batcher_destroy(sync);
    free(want);
    free(got);
}
#endif

int main(void) {
    store_spec spec = {COUNT, 24, 17, 1, IMGPACK_FORMAT_RAW, 1, NULL};
    store_spec jpeg = {COUNT, 24, 17, 1, IMGPACK_FORMAT_JPEG, 1, NULL};
    imgpack_reader *r, *rj;
    teststore_init("test_batch");
    test_options();
    test_augment_params();
    test_flip_is_augment_params();
    CHECK_OK(imgpack_reader_open(&r, make_store("vary", &spec), 0));
    CHECK_OK(imgpack_reader_open(&rj, make_store("jpeg", &jpeg), 0));
    test_keyed_by_sample(r);
    test_keyed_by_sample(rj);
    test_16_bit_types(r);
    test_prefetch(r);
    test_prefetch(rj);
    test_prefetch_errors();
#if !defined(__SANITIZE_THREAD__)
    test_prefetch_fork(rj);
#endif
    imgpack_reader_close(r);
    imgpack_reader_close(rj);
    teststore_cleanup();
    printf("test_batch: all passed\n");
    return 0;
}
