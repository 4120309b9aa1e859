/*
 * Tests of the reader, batcher and sampler on stores written with LMDB
 * directly (teststore.c), so that every record's pixels are known and
 * damage can be placed exactly: metadata, zero-copy gets, decodes of
 * raw and jpeg records, corrupt records, incomplete stores and refresh
 * while another process appends, concurrent gets from threads, use after
 * fork(), read-only directories (no lock file), batches in every layout
 * with crops and flips, and the DistributedSampler partition.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "decode.h"
#include "imgpack/reader.h"
#include "record.h"
#include "teststore.h"

/* ---- Reader ----------------------------------------------------------- */

static void test_open_errors(void) {
    imgpack_reader *r;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/missing", tmp_root);
    CHECK_EQ(imgpack_reader_open(&r, dir, 0), IMGPACK_ERR_NOT_FOUND);
    CHECK(strstr(imgpack_reader_errmsg(r), "missing") != NULL);
    imgpack_reader_close(r);

    snprintf(dir, sizeof dir, "%s/empty", tmp_root);
    CHECK_EQ(mkdir(dir, 0755), 0);
    CHECK_EQ(imgpack_reader_open(&r, dir, 0), IMGPACK_ERR_NOT_A_STORE);
    imgpack_reader_close(r);

    store_spec v2 = {4, 8, 8, 0, IMGPACK_FORMAT_RAW, 1, "2"};
    CHECK_EQ(imgpack_reader_open(&r, make_store("v2", &v2), 0),
             IMGPACK_ERR_VERSION_MISMATCH);
    imgpack_reader_close(r);
    CHECK_EQ(imgpack_reader_open(&r, dir, 0x80), IMGPACK_ERR_INVALID_ARG);
    imgpack_reader_close(r);
    imgpack_reader_close(NULL);
    CHECK_STR_EQ(imgpack_reader_errmsg(NULL), "out of memory");
}

static void test_metadata_and_get(void) {
    store_spec spec = {50, 20, 10, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    const char *dir = make_store("raw", &spec);
    imgpack_reader *r;
    imgpack_record rec;
    uint32_t labels[50];
    uint8_t buf[20 * 10 * 3], meta[16];
    uint64_t size;

    CHECK_OK(imgpack_reader_open(&r, dir, IMGPACK_OPEN_VERIFY));
    CHECK_STR_EQ(imgpack_reader_errmsg(r), "");
    CHECK_EQ(imgpack_reader_count(r), 50);
    CHECK_EQ(imgpack_reader_num_classes(r), 3);
    CHECK_STR_EQ(imgpack_reader_class_name(r, 1), "dog");
    CHECK(imgpack_reader_class_name(r, 3) == NULL);
    CHECK_EQ(imgpack_reader_format(r), IMGPACK_FORMAT_RAW);
    CHECK_EQ(imgpack_reader_width(r), 20);
    CHECK_EQ(imgpack_reader_height(r), 10);
    CHECK_EQ(imgpack_reader_channels(r), 3);
    CHECK_EQ(imgpack_reader_is_complete(r), 1);
    CHECK_EQ(imgpack_reader_is_nolock(r), 0);
    CHECK_OK(imgpack_reader_meta(r, "format", meta, sizeof meta, &size));
    CHECK_EQ(size, 3);
    CHECK(memcmp(meta, "raw", 3) == 0);
    CHECK_EQ(imgpack_reader_meta(r, "nope", meta, sizeof meta, &size),
             IMGPACK_ERR_NOT_FOUND);

    CHECK_OK(imgpack_reader_labels(r, labels, 50));
    for (uint64_t i = 0; i < 50; i++) {
        uint32_t label;
        CHECK_EQ(labels[i], label_of(i));
        CHECK_OK(imgpack_reader_label(r, i, &label));
        CHECK_EQ(label, label_of(i));
        CHECK_OK(imgpack_reader_get(r, i, &rec));
        CHECK_EQ(rec.size, sizeof buf);
        CHECK_EQ(rec.format, IMGPACK_FORMAT_RAW);
        CHECK_EQ(rec.width, 20);
        CHECK_EQ(rec.height, 10);
        CHECK_EQ(rec.label, label_of(i));
        check_pixels(rec.data, i, 20, 10);
        memset(buf, 0, sizeof buf);
        CHECK_OK(imgpack_reader_decode(r, i, buf, sizeof buf, &rec));
        CHECK(rec.data == buf);
        check_pixels(buf, i, 20, 10);
    }
    CHECK_EQ(imgpack_reader_get(r, 50, &rec), IMGPACK_ERR_RANGE);
    CHECK(strstr(imgpack_reader_errmsg(r), "record 50") != NULL);
    CHECK_EQ(imgpack_reader_decode(r, 0, buf, sizeof buf - 1, &rec),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_reader_labels(r, labels, 51), IMGPACK_ERR_RANGE);
    imgpack_reader_release(r);
    CHECK_OK(imgpack_reader_get(r, 3, &rec));
    CHECK_STR_EQ(imgpack_reader_errmsg(r), "");
    imgpack_reader_close(r);
}

static void test_corrupt_records(void) {
    store_spec spec = {6, 8, 4, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    char *dir = make_store("corrupt", &spec);
    imgpack_reader *r;
    imgpack_record rec;
    uint8_t buf[8 * 4 * 3];
    size_t size;
    uint8_t *value = make_value(&spec, 1, &size);

    value[IMGPACK__RECORD_HEADER_SIZE + 5] ^= 1; /* payload CRC now wrong */
    replace_record(dir, 1, value, size);
    free(value);
    value = make_value(&spec, 2, &size);
    value[9] ^= 1; /* width: header CRC wrong */
    replace_record(dir, 2, value, size);
    free(value);
    value = make_value(&spec, 3, &size);
    value[4] = 2; /* layout version 2, header CRC redone */
    {
        uint32_t crc = imgpack__crc32(value, 28);
        for (int b = 0; b < 4; b++)
            value[28 + b] = (uint8_t)(crc >> (8 * b));
    }
    replace_record(dir, 3, value, size);
    free(value);
    value = make_value(&spec, 4, &size);
    replace_record(dir, 4, value, size - 7); /* truncated */
    free(value);
    replace_record(dir, 5, (const uint8_t *)"IPK", 3);

    /* The default checks the payload on the first read, and a record
       that failed is checked again, never remembered as good. */
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    CHECK_OK(imgpack_reader_get(r, 0, &rec));
    CHECK_EQ(imgpack_reader_get(r, 1, &rec), IMGPACK_ERR_CORRUPT);
    CHECK(strstr(imgpack_reader_errmsg(r), "payload checksum") != NULL);
    CHECK_EQ(imgpack_reader_get(r, 1, &rec), IMGPACK_ERR_CORRUPT);
    CHECK_EQ(imgpack_reader_get(r, 2, &rec), IMGPACK_ERR_CORRUPT);
    CHECK(strstr(imgpack_reader_errmsg(r), "record 2") != NULL);
    CHECK_EQ(imgpack_reader_get(r, 3, &rec), IMGPACK_ERR_VERSION_MISMATCH);
    CHECK_EQ(imgpack_reader_decode(r, 4, buf, sizeof buf, &rec),
             IMGPACK_ERR_CORRUPT);
    CHECK_EQ(imgpack_reader_get(r, 5, &rec), IMGPACK_ERR_CORRUPT);
    imgpack_reader_close(r);

    CHECK_OK(imgpack_reader_open(&r, dir, IMGPACK_OPEN_VERIFY));
    CHECK_OK(imgpack_reader_get(r, 0, &rec));
    CHECK_EQ(imgpack_reader_get(r, 1, &rec), IMGPACK_ERR_CORRUPT);
    imgpack_reader_close(r);

    /* The opt-out: the header is still checked, the payload not. */
    CHECK_OK(imgpack_reader_open(&r, dir, IMGPACK_OPEN_NO_VERIFY));
    CHECK_OK(imgpack_reader_get(r, 1, &rec));
    CHECK_EQ(imgpack_reader_get(r, 2, &rec), IMGPACK_ERR_CORRUPT);
    imgpack_reader_close(r);
    CHECK_EQ(imgpack_reader_open(&r, dir,
                                 IMGPACK_OPEN_VERIFY | IMGPACK_OPEN_NO_VERIFY),
             IMGPACK_ERR_INVALID_ARG);
    imgpack_reader_close(r);
}

static void test_jpeg_store(void) {
    store_spec spec = {12, 33, 17, 0, IMGPACK_FORMAT_JPEG, 1, NULL};
    const char *dir = make_store("jpeg", &spec);
    imgpack_reader *r;
    imgpack__decoder *dec;
    imgpack_record rec, view;
    uint8_t buf[33 * 17 * 3];
    char reason[IMGPACK__REASON_SIZE];

    CHECK_OK(imgpack__decoder_create(&dec));
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    CHECK_EQ(imgpack_reader_format(r), IMGPACK_FORMAT_JPEG);
    for (uint64_t i = 0; i < 12; i++) {
        imgpack__pixels px;
        CHECK_OK(imgpack_reader_get(r, i, &view));
        CHECK_EQ(view.format, IMGPACK_FORMAT_JPEG);
        CHECK_OK(imgpack__decode(dec, view.data, view.size, 0, &px, reason));
        CHECK_OK(imgpack_reader_decode(r, i, buf, sizeof buf, &rec));
        CHECK_EQ(rec.format, IMGPACK_FORMAT_RAW);
        CHECK_EQ(rec.size, sizeof buf);
        for (uint32_t y = 0; y < 17; y++)
            CHECK(memcmp(buf + y * 33 * 3, px.data + y * px.stride, 33 * 3) ==
                  0);
    }
    imgpack_reader_close(r);
    imgpack__decoder_destroy(dec);
}

/* An incomplete store, and a second process appending while we read. */
static void test_incomplete_and_refresh(void) {
    store_spec spec = {5, 6, 6, 0, IMGPACK_FORMAT_RAW, 0, NULL};
    const char *dir = make_store("growing", &spec);
    imgpack_reader *r;
    imgpack_record rec;
    uint32_t labels[9], label;
    int status;

    CHECK_EQ(imgpack_reader_open(&r, dir, 0), IMGPACK_ERR_INCOMPLETE);
    imgpack_reader_close(r);
    CHECK_OK(imgpack_reader_open(&r, dir, IMGPACK_OPEN_INCOMPLETE));
    CHECK_EQ(imgpack_reader_is_complete(r), 0);
    CHECK_EQ(imgpack_reader_count(r), 5);
    CHECK_OK(imgpack_reader_labels(r, labels, 5));
    CHECK_EQ(labels[4], label_of(4));
    CHECK_OK(imgpack_reader_get(r, 4, &rec));

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        spec.count = 9;
        append_records(dir, &spec, 5);
        _exit(0);
    }
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Not visible until a refresh. */
    CHECK_EQ(imgpack_reader_get(r, 7, &rec), IMGPACK_ERR_RANGE);
    CHECK_OK(imgpack_reader_refresh(r));
    CHECK_EQ(imgpack_reader_count(r), 9);
    CHECK_OK(imgpack_reader_get(r, 7, &rec));
    check_pixels(rec.data, 7, 6, 6);
    CHECK_OK(imgpack_reader_label(r, 8, &label));
    CHECK_EQ(label, label_of(8));

    /* Now the writer finishes: complete, with labels metadata. */
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        spec.count = 9;
        spec.complete = 1;
        append_records(dir, &spec, 9);
        _exit(0);
    }
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_OK(imgpack_reader_refresh(r));
    CHECK_EQ(imgpack_reader_is_complete(r), 1);
    CHECK_OK(imgpack_reader_labels(r, labels, 9));
    for (int i = 0; i < 9; i++)
        CHECK_EQ(labels[i], label_of((uint64_t)i));
    imgpack_reader_close(r);
}

static void test_threads(void) {
    store_spec spec = {50, 20, 10, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    const char *dir = make_store("threads", &spec);
    imgpack_reader *r;
    CHECK_OK(imgpack_reader_open(&r, dir, IMGPACK_OPEN_VERIFY));
    check_concurrent_reads(r, spec.count, spec.width, spec.height);
    imgpack_reader_close(r);
}

/* TSan cannot follow a process that forks while other threads run, so
   under TSan the forked batcher has no worker threads. */
#if defined(__SANITIZE_THREAD__)
#define FORK_BATCH_THREADS 1
#else
#define FORK_BATCH_THREADS 2
#endif

/* A reader and a batcher made before fork() work in the child. */
static void test_fork(void) {
    store_spec spec = {20, 8, 8, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    const char *dir = make_store("fork", &spec);
    imgpack_reader *r;
    imgpack_batcher *b;
    imgpack_batch_options *o;
    imgpack_record rec;
    uint64_t idx[4] = {3, 1, 19, 0};
    uint8_t out[4 * 8 * 8 * 3];
    int status;

    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_OK(imgpack_batch_options_set_dtype(o, IMGPACK_DTYPE_UINT8));
    CHECK_OK(imgpack_batch_options_set_layout(o, IMGPACK_LAYOUT_NHWC));
    CHECK_OK(imgpack_batch_options_set_threads(o, FORK_BATCH_THREADS));
    CHECK_OK(imgpack_batcher_create(&b, r, o));
    CHECK_OK(imgpack_reader_get(r, 2, &rec));
    CHECK_OK(imgpack_batcher_run(b, idx, 4, 0, 0, out, sizeof out, NULL));
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            int ok = imgpack_reader_get(r, 5, &rec) == IMGPACK_OK &&
                     rec.data[0] == pixel(5, 0, 0, 0);
            memset(out, 0, sizeof out);
            ok = ok && imgpack_batcher_run(b, idx, 4, 0, 0, out, sizeof out,
                                           NULL) == IMGPACK_OK;
            for (int k = 0; ok && k < 4; k++)
                ok = out[k * 192 + 191] == pixel(idx[k], 7, 7, 2);
            imgpack_batcher_destroy(b);
            imgpack_reader_close(r);
            _exit(ok ? 0 : 1);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
    }
    CHECK_OK(imgpack_reader_get(r, 6, &rec));
    check_pixels(rec.data, 6, 8, 8);
    CHECK_OK(imgpack_batcher_run(b, idx, 4, 0, 0, out, sizeof out, NULL));
    check_pixels(out + 192, 1, 8, 8);
    imgpack_batcher_destroy(b);
    imgpack_batch_options_destroy(o);
    imgpack_reader_close(r);
}

/* A store in a directory we cannot write: LMDB cannot make lock.mdb, so
   the reader must fall back to MDB_NOLOCK. Root writes anywhere, so as
   root the check runs in a child that drops to "nobody". */
static void test_read_only_dir(void) {
    store_spec spec = {4, 8, 8, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    char *dir = make_store("readonly", &spec);
    char lock[4200], data[4200];
    int status;
    snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    unlink(lock);
    CHECK_EQ(chmod(data, 0444), 0);
    CHECK_EQ(chmod(dir, 0555), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        imgpack_reader *r;
        imgpack_record rec;
        if (geteuid() == 0 && (chmod(tmp_root, 0755) != 0 ||
                               setgid(65534) != 0 || setuid(65534) != 0))
            _exit(77);
        int ok = imgpack_reader_open(&r, dir, 0) == IMGPACK_OK &&
                 imgpack_reader_is_nolock(r) == 1 &&
                 imgpack_reader_get(r, 3, &rec) == IMGPACK_OK &&
                 rec.data[0] == pixel(3, 0, 0, 0);
        if (!ok)
            fprintf(stderr, "read-only open: %s\n", imgpack_reader_errmsg(r));
        imgpack_reader_close(r);
        _exit(ok ? 0 : 1);
    }
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        fprintf(stderr, "test_read_only_dir: cannot drop root; skipped\n");
    else
        CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK(access(lock, F_OK) != 0);
    chmod(dir, 0755);
}

/* ---- Batches ---------------------------------------------------------- */

static imgpack_batcher *batcher(imgpack_reader *r, int32_t layout,
                                int32_t dtype, uint32_t crop, int32_t mode,
                                int32_t flip, uint32_t threads) {
    imgpack_batch_options *o;
    imgpack_batcher *b;
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_OK(imgpack_batch_options_set_layout(o, layout));
    CHECK_OK(imgpack_batch_options_set_dtype(o, dtype));
    CHECK_OK(imgpack_batch_options_set_crop(o, crop, crop, mode));
    CHECK_OK(imgpack_batch_options_set_flip(o, flip));
    CHECK_OK(imgpack_batch_options_set_threads(o, threads));
    CHECK_OK(imgpack_batcher_create(&b, r, o));
    imgpack_batch_options_destroy(o);
    return b;
}

static float normalized(uint8_t v, int c) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float std[3] = {0.229f, 0.224f, 0.225f};
    return ((float)v / 255.0f - mean[c]) / std[c];
}

static void test_batch_layouts(void) {
    store_spec spec = {30, 12, 9, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    const char *dir = make_store("batch", &spec);
    imgpack_reader *r;
    uint64_t idx[7] = {29, 0, 5, 5, 17, 2, 11};
    int64_t labels[7];
    size_t image = 12 * 9 * 3;
    uint8_t *u8 = malloc(7 * image);
    float *f32 = malloc(7 * image * 4), *f32b = malloc(7 * image * 4);
    CHECK(u8 && f32 && f32b);
    CHECK_OK(imgpack_reader_open(&r, dir, 0));

    imgpack_batcher *b = batcher(r, IMGPACK_LAYOUT_NHWC, IMGPACK_DTYPE_UINT8, 0,
                                 IMGPACK_CROP_CENTER, 0, 1);
    CHECK_EQ(imgpack_batcher_image_bytes(b), image);
    CHECK_OK(imgpack_batcher_run(b, idx, 7, 0, 0, u8, 7 * image, labels));
    for (int k = 0; k < 7; k++) {
        check_pixels(u8 + k * image, idx[k], 12, 9);
        CHECK_EQ(labels[k], label_of(idx[k]));
    }
    CHECK_EQ(imgpack_batcher_run(b, idx, 7, 0, 0, u8, 7 * image - 1, labels),
             IMGPACK_ERR_INVALID_ARG);
    idx[3] = 30;
    CHECK_EQ(imgpack_batcher_run(b, idx, 7, 0, 0, u8, 7 * image, labels),
             IMGPACK_ERR_RANGE);
    CHECK(strstr(imgpack_batcher_errmsg(b), "record 30") != NULL);
    idx[3] = 5;
    imgpack_batcher_destroy(b);

    b = batcher(r, IMGPACK_LAYOUT_NCHW, IMGPACK_DTYPE_UINT8, 0,
                IMGPACK_CROP_CENTER, 0, 2);
    CHECK_OK(imgpack_batcher_run(b, idx, 7, 0, 0, u8, 7 * image, NULL));
    for (int k = 0; k < 7; k++)
        for (uint32_t c = 0; c < 3; c++)
            for (uint32_t y = 0; y < 9; y++)
                for (uint32_t x = 0; x < 12; x++)
                    CHECK_EQ(u8[k * image + (c * 9 + y) * 12 + x],
                             pixel(idx[k], y, x, c));
    imgpack_batcher_destroy(b);

    /* float32 NCHW: bit-equal to torch's arithmetic, for any thread count. */
    b = batcher(r, IMGPACK_LAYOUT_NCHW, IMGPACK_DTYPE_FLOAT32, 0,
                IMGPACK_CROP_CENTER, 0, 1);
    CHECK_OK(imgpack_batcher_run(b, idx, 7, 0, 0, f32, 7 * image * 4, labels));
    for (int k = 0; k < 7; k++)
        for (uint32_t c = 0; c < 3; c++)
            for (uint32_t y = 0; y < 9; y++)
                for (uint32_t x = 0; x < 12; x++) {
                    float want = normalized(pixel(idx[k], y, x, c), (int)c);
                    CHECK(memcmp(&f32[k * image + (c * 9 + y) * 12 + x], &want,
                                 4) == 0);
                }
    imgpack_batcher_destroy(b);
    b = batcher(r, IMGPACK_LAYOUT_NCHW, IMGPACK_DTYPE_FLOAT32, 0,
                IMGPACK_CROP_CENTER, 0, 3);
    CHECK_OK(imgpack_batcher_run(b, idx, 7, 0, 0, f32b, 7 * image * 4, labels));
    CHECK(memcmp(f32, f32b, 7 * image * 4) == 0);
    CHECK_EQ(labels[6], label_of(11));
    imgpack_batcher_destroy(b);

    b = batcher(r, IMGPACK_LAYOUT_NHWC, IMGPACK_DTYPE_FLOAT32, 0,
                IMGPACK_CROP_CENTER, 0, 1);
    CHECK_OK(imgpack_batcher_run(b, idx, 7, 0, 0, f32, 7 * image * 4, labels));
    for (int k = 0; k < 7; k++)
        for (uint32_t y = 0; y < 9; y++)
            for (uint32_t x = 0; x < 12; x++)
                for (uint32_t c = 0; c < 3; c++) {
                    float want = normalized(pixel(idx[k], y, x, c), (int)c);
                    CHECK(memcmp(&f32[k * image + (y * 12 + x) * 3 + c], &want,
                                 4) == 0);
                }
    imgpack_batcher_destroy(b);
    imgpack_reader_close(r);
    free(u8);
    free(f32);
    free(f32b);
}

/* Where output (y, x) of image k came from, given a crop at (top, left)
   and a flip; -1 outside the record (padding). */
static int expected(uint64_t index, uint32_t w, uint32_t h, int64_t top,
                    int64_t left, int flip, uint32_t out_w, uint32_t y,
                    uint32_t x, uint32_t c) {
    int64_t sy = top + y;
    int64_t sx = left + (flip ? (int64_t)(out_w - 1 - x) : (int64_t)x);
    if (sy < 0 || sy >= h || sx < 0 || sx >= w)
        return 0;
    return pixel(index, (uint32_t)sy, (uint32_t)sx, c);
}

static int matches(const uint8_t *img, uint64_t index, uint32_t w, uint32_t h,
                   int64_t top, int64_t left, int flip, uint32_t side) {
    for (uint32_t y = 0; y < side; y++)
        for (uint32_t x = 0; x < side; x++)
            for (uint32_t c = 0; c < 3; c++)
                if (img[(y * side + x) * 3 + c] !=
                    expected(index, w, h, top, left, flip, side, y, x, c))
                    return 0;
    return 1;
}

static void test_batch_crops(void) {
    /* Records 14..16 x 9..10, as a --crop 0 store. */
    store_spec spec = {12, 14, 9, 1, IMGPACK_FORMAT_RAW, 1, NULL};
    const char *dir = make_store("vary", &spec);
    imgpack_reader *r;
    imgpack_batcher *b;
    imgpack_batch_options *o;
    uint64_t idx[12];
    uint8_t out[12 * 12 * 12 * 3], again[sizeof out];
    int flips = 0, offsets = 0;

    for (int k = 0; k < 12; k++)
        idx[k] = (uint64_t)k;
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    CHECK_EQ(imgpack_reader_width(r), 0);
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_EQ(imgpack_batcher_create(&b, r, o), IMGPACK_ERR_INVALID_ARG);
    CHECK(strstr(imgpack_batcher_errmsg(b), "crop") != NULL);
    imgpack_batcher_destroy(b);
    imgpack_batch_options_destroy(o);

    /* Center 8x8: torchvision's offsets, halves rounded to even. */
    b = batcher(r, IMGPACK_LAYOUT_NHWC, IMGPACK_DTYPE_UINT8, 8,
                IMGPACK_CROP_CENTER, 0, 2);
    CHECK_OK(imgpack_batcher_run(b, idx, 12, 0, 0, out, sizeof out, NULL));
    for (uint64_t k = 0; k < 12; k++) {
        uint32_t w = 14 + (uint32_t)(k % 3), h = 9 + (uint32_t)(k % 2);
        /* w-8 = 6,7,8: offsets 3, round(3.5)=4, 4; h-8 = 1,2: 0, 1 */
        int64_t left = w == 14 ? 3 : 4, top = h == 9 ? 0 : 1;
        CHECK(matches(out + k * 192, k, w, h, top, left, 0, 8));
    }
    imgpack_batcher_destroy(b);

    /* Center 12x12 is taller than every record: padded with black. */
    b = batcher(r, IMGPACK_LAYOUT_NHWC, IMGPACK_DTYPE_UINT8, 12,
                IMGPACK_CROP_CENTER, 0, 1);
    CHECK_OK(imgpack_batcher_run(b, idx, 12, 0, 0, out, sizeof out, NULL));
    for (uint64_t k = 0; k < 12; k++) {
        uint32_t w = 14 + (uint32_t)(k % 3), h = 9 + (uint32_t)(k % 2);
        int64_t left = w == 14 ? 1 : w == 15 ? 2 : 2;
        int64_t top = -(int64_t)((12 - h) / 2);
        CHECK(matches(out + k * 432, k, w, h, top, left, 0, 12));
    }
    imgpack_batcher_destroy(b);

    /* Random 8x8 with flips: each image is some window, flipped or not;
       the same seed gives the same batch for any thread count. */
    b = batcher(r, IMGPACK_LAYOUT_NHWC, IMGPACK_DTYPE_UINT8, 8,
                IMGPACK_CROP_RANDOM, 1, 2);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        CHECK_OK(
            imgpack_batcher_run(b, idx, 12, seed, 0, out, sizeof out, NULL));
        for (uint64_t k = 0; k < 12; k++) {
            uint32_t w = 14 + (uint32_t)(k % 3), h = 9 + (uint32_t)(k % 2);
            int found = 0;
            for (int64_t top = 0; top <= h - 8 && !found; top++)
                for (int64_t left = 0; left <= w - 8 && !found; left++)
                    for (int flip = 0; flip < 2 && !found; flip++)
                        if (matches(out + k * 192, k, w, h, top, left, flip,
                                    8)) {
                            found = 1;
                            flips += flip;
                            offsets += left != (w == 14 ? 3 : 4);
                        }
            CHECK(found);
        }
    }
    CHECK(flips > 5 && flips < 43);
    CHECK(offsets > 5);
    imgpack_batcher_destroy(b);
    b = batcher(r, IMGPACK_LAYOUT_NHWC, IMGPACK_DTYPE_UINT8, 8,
                IMGPACK_CROP_RANDOM, 1, 1);
    CHECK_OK(imgpack_batcher_run(b, idx, 12, 4, 0, again, sizeof out, NULL));
    CHECK(memcmp(out, again, 12 * 192) == 0);
    imgpack_batcher_destroy(b);
    imgpack_reader_close(r);
}

static void test_batch_jpeg(void) {
    store_spec spec = {9, 16, 16, 0, IMGPACK_FORMAT_JPEG, 1, NULL};
    const char *dir = make_store("jpegbatch", &spec);
    imgpack_reader *r;
    imgpack_record rec;
    uint64_t idx[9] = {8, 7, 6, 5, 4, 3, 2, 1, 0};
    uint8_t out[9 * 768], one[768];
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    imgpack_batcher *b = batcher(r, IMGPACK_LAYOUT_NHWC, IMGPACK_DTYPE_UINT8, 0,
                                 IMGPACK_CROP_CENTER, 0, 2);
    CHECK_OK(imgpack_batcher_run(b, idx, 9, 0, 0, out, sizeof out, NULL));
    for (int k = 0; k < 9; k++) {
        CHECK_OK(imgpack_reader_decode(r, idx[k], one, sizeof one, &rec));
        CHECK(memcmp(out + k * 768, one, 768) == 0);
    }
    imgpack_batcher_destroy(b);
    imgpack_reader_close(r);
}

/* ---- Sampler ---------------------------------------------------------- */

static void check_partition(uint64_t n, uint32_t world, int drop_last,
                            int shuffle) {
    uint64_t count = imgpack_sampler_count(n, world, drop_last);
    uint64_t *all = malloc((n + 1) * sizeof *all);
    uint64_t *mine = malloc((count + 1) * sizeof *mine);
    uint32_t *seen = calloc(n + 1, sizeof *seen);
    CHECK(all && mine && seen);
    CHECK_OK(imgpack_sampler_indices(n, 7, 3, shuffle, 0, 1, 0, all, n));
    for (uint32_t rank = 0; rank < world; rank++) {
        CHECK_OK(imgpack_sampler_indices(n, 7, 3, shuffle, rank, world,
                                         drop_last, mine, count));
        for (uint64_t i = 0; i < count; i++) {
            /* DistributedSampler: (order + padding)[rank::world]. */
            CHECK_EQ(mine[i], all[(rank + i * world) % n]);
            seen[mine[i]]++;
        }
    }
    uint64_t total = count * world, covered = 0;
    for (uint64_t i = 0; i < n; i++) {
        covered += seen[i] > 0;
        CHECK(seen[i] <= (total + n - 1) / n);
    }
    CHECK_EQ(covered, drop_last ? total : n);
    free(all);
    free(mine);
    free(seen);
}

static void test_sampler(void) {
    uint64_t a[10], b[10];
    CHECK_EQ(imgpack_sampler_count(10, 3, 0), 4);
    CHECK_EQ(imgpack_sampler_count(10, 3, 1), 3);
    CHECK_EQ(imgpack_sampler_count(9, 3, 1), 3);
    CHECK_EQ(imgpack_sampler_count(2, 5, 0), 1);
    CHECK_EQ(imgpack_sampler_count(10, 0, 0), 0);
    CHECK_OK(imgpack_sampler_indices(10, 0, 0, 0, 1, 3, 0, a, 4));
    CHECK_EQ(a[0], 1);
    CHECK_EQ(a[1], 4);
    CHECK_EQ(a[2], 7);
    CHECK_EQ(a[3], 0); /* padding repeats the start */
    CHECK_EQ(imgpack_sampler_indices(10, 0, 0, 0, 3, 3, 0, a, 4),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_sampler_indices(10, 0, 0, 0, 0, 3, 0, a, 3),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_OK(imgpack_sampler_indices(10, 1, 0, 1, 0, 1, 0, a, 10));
    CHECK_OK(imgpack_sampler_indices(10, 1, 1, 1, 0, 1, 0, b, 10));
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK_OK(imgpack_sampler_indices(10, 1, 1, 1, 0, 1, 0, a, 10));
    CHECK(memcmp(a, b, sizeof a) == 0);
    for (int shuffle = 0; shuffle < 2; shuffle++)
        for (int drop = 0; drop < 2; drop++) {
            check_partition(1000, 1, drop, shuffle);
            check_partition(1000, 3, drop, shuffle);
            check_partition(1001, 8, drop, shuffle);
            check_partition(5, 8, drop, shuffle);
        }
}

int main(void) {
    teststore_init("test_reader");
    test_open_errors();
    test_metadata_and_get();
    test_corrupt_records();
    test_jpeg_store();
    test_incomplete_and_refresh();
    test_threads();
    test_fork();
    test_read_only_dir();
    test_batch_layouts();
    test_batch_crops();
    test_batch_jpeg();
    test_sampler();
    teststore_cleanup();
    printf("test_reader: all passed\n");
    return 0;
}
