/*
 * Tests of sharded datasets: shard-K-of-N stores written with LMDB
 * directly (teststore.c), each holding a contiguous slice of one synthetic
 * dataset, read as one dataset. Global indices, labels, metadata, errors
 * naming the shard, concurrent gets across shards, fork(), batches, the
 * sets of shards open refuses, and an incomplete shard growing under
 * refresh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "imgpack/reader.h"
#include "record.h"
#include "teststore.h"

/* The dataset the tests split: 50 records of 20x10, and where each shard
   starts. Shard 1 is empty, as the packer's split makes when there are
   more shards than files. */
#define COUNT 50
#define WIDTH 20
#define HEIGHT 10
#define SHARDS 4
static const uint64_t bounds[SHARDS + 1] = {0, 17, 17, 34, COUNT};
#define SETTINGS "resize=0 crop=20 format=raw"

/* Writes `name`/shard-K-of-SHARDS for every K; shard `incomplete` (or
   none, if SHARDS) holds only its first record and is still packing. */
static char *make_dataset(const char *name, uint32_t incomplete) {
    static char dir[4200];
    char shard[4300], tag[32];
    snprintf(dir, sizeof dir, "%s/%s", tmp_root, name);
    CHECK_EQ(mkdir(dir, 0755), 0);
    for (uint32_t k = 0; k < SHARDS; k++) {
        store_spec spec = {k == incomplete ? 1 : bounds[k + 1] - bounds[k],
                           WIDTH,
                           HEIGHT,
                           0,
                           IMGPACK_FORMAT_RAW,
                           k != incomplete,
                           NULL};
        shard_spec where = {bounds[k], tag, SETTINGS};
        snprintf(tag, sizeof tag, "%u/%u", k, SHARDS);
        snprintf(shard, sizeof shard, "%s/shard-%u-of-%u", name, k, SHARDS);
        make_shard(shard, &spec, &where);
    }
    return dir;
}

static void test_global_indices(void) {
    const char *dir = make_dataset("dataset", SHARDS);
    imgpack_reader *r;
    imgpack_record rec;
    uint32_t labels[COUNT], label;
    uint8_t buf[WIDTH * HEIGHT * 3], meta[4 * COUNT + 8];
    uint64_t size;

    CHECK_OK(imgpack_reader_open(&r, dir, IMGPACK_OPEN_VERIFY));
    CHECK_EQ(imgpack_reader_count(r), COUNT);
    CHECK_EQ(imgpack_reader_num_shards(r), SHARDS);
    CHECK_EQ(imgpack_reader_is_complete(r), 1);
    CHECK_STR_EQ(imgpack_reader_class_name(r, 2), "emu");
    CHECK_EQ(imgpack_reader_width(r), WIDTH);
    CHECK_OK(imgpack_reader_labels(r, labels, COUNT));
    /* Backwards, so that consecutive reads change shards. */
    for (uint64_t i = COUNT; i-- > 0;) {
        CHECK_EQ(labels[i], label_of(i));
        CHECK_OK(imgpack_reader_label(r, i, &label));
        CHECK_EQ(label, label_of(i));
        CHECK_OK(imgpack_reader_get(r, i, &rec));
        CHECK_EQ(rec.label, label_of(i));
        CHECK_EQ((uintptr_t)rec.data % 2, 0);
        check_pixels(rec.data, i, WIDTH, HEIGHT);
        CHECK_OK(imgpack_reader_decode(r, i, buf, sizeof buf, &rec));
        check_pixels(buf, i, WIDTH, HEIGHT);
    }
    CHECK_EQ(imgpack_reader_get(r, COUNT, &rec), IMGPACK_ERR_RANGE);
    CHECK(strstr(imgpack_reader_errmsg(r), "record 50") != NULL);

    /* Metadata answers as one store of the whole dataset would. */
    CHECK_OK(imgpack_reader_meta(r, "count", meta, sizeof meta, &size));
    CHECK_EQ(size, 2);
    CHECK(memcmp(meta, "50", 2) == 0);
    CHECK_OK(imgpack_reader_meta(r, "labels", meta, sizeof meta, &size));
    CHECK_EQ(size, 4 * COUNT);
    for (uint64_t i = 0; i < COUNT; i++)
        CHECK_EQ(meta[4 * i] | meta[4 * i + 1] << 8, label_of(i));
    CHECK_OK(imgpack_reader_meta(r, "labels", meta, 6, &size));
    CHECK_EQ(size, 4 * COUNT);
    CHECK_OK(imgpack_reader_meta(r, "state", meta, sizeof meta, &size));
    CHECK(size == 8 && memcmp(meta, "complete", 8) == 0);
    CHECK_OK(imgpack_reader_meta(r, "settings", meta, sizeof meta, &size));
    CHECK(size == strlen(SETTINGS) && memcmp(meta, SETTINGS, size) == 0);
    CHECK_EQ(imgpack_reader_meta(r, "shard", meta, sizeof meta, &size),
             IMGPACK_ERR_NOT_FOUND);
    imgpack_reader_close(r);

    /* One shard opened alone is a store of its slice. */
    char one[4300];
    snprintf(one, sizeof one, "%s/shard-2-of-4", dir);
    CHECK_OK(imgpack_reader_open(&r, one, 0));
    CHECK_EQ(imgpack_reader_num_shards(r), 1);
    CHECK_EQ(imgpack_reader_count(r), 17);
    CHECK_OK(imgpack_reader_get(r, 0, &rec));
    check_pixels(rec.data, 17, WIDTH, HEIGHT);
    imgpack_reader_close(r);
}

/* A damaged record is named by its global index and its place in the
   shard. */
static void test_corrupt_record_names_its_shard(void) {
    const char *dir = make_dataset("corrupt", SHARDS);
    char shard[4300];
    imgpack_reader *r;
    imgpack_record rec;
    store_spec spec = {17, WIDTH, HEIGHT, 0, IMGPACK_FORMAT_RAW, 1, NULL};
    size_t size;
    uint8_t *value = make_value(&spec, 20, &size);
    value[9] ^= 1;
    snprintf(shard, sizeof shard, "%s/shard-2-of-4", dir);
    replace_record(shard, 3, value, size);
    free(value);
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    CHECK_OK(imgpack_reader_get(r, 19, &rec));
    CHECK_EQ(imgpack_reader_get(r, 20, &rec), IMGPACK_ERR_CORRUPT);
    CHECK(strstr(imgpack_reader_errmsg(r),
                 "record 20 (shard-2-of-4 record 3) is corrupt") != NULL);
    imgpack_reader_close(r);
}

static void expect_refused(const char *dir, imgpack_status code,
                           const char *message) {
    imgpack_reader *r;
    CHECK_EQ(imgpack_reader_open(&r, dir, 0), code);
    if (strstr(imgpack_reader_errmsg(r), message) == NULL) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n",
                imgpack_reader_errmsg(r), message);
        exit(1);
    }
    imgpack_reader_close(r);
}

static void test_refused_sets(void) {
    char from[4300], to[4300];
    const char *dir = make_dataset("missing", SHARDS);
    snprintf(from, sizeof from, "%s/shard-3-of-4", dir);
    snprintf(to, sizeof to, "%s/elsewhere", dir);
    CHECK_EQ(rename(from, to), 0);
    expect_refused(dir, IMGPACK_ERR_NOT_A_STORE, "shard-3-of-4 is missing");
    /* shard-3-of-3 is no shard name (3 is not below 3), so only the three
       of another N count, and they disagree with the fourth. */
    snprintf(from, sizeof from, "%s/shard-3-of-3", dir);
    CHECK_EQ(rename(to, from), 0);
    expect_refused(dir, IMGPACK_ERR_NOT_A_STORE, "shard-3-of-4 is missing");
    snprintf(to, sizeof to, "%s/shard-0-of-3", dir);
    CHECK_EQ(rename(from, to), 0);
    expect_refused(dir, IMGPACK_ERR_NOT_A_STORE,
                   "shards disagree on their number");

    static const char *const keys[][2] = {
        {"settings", "resize=256 crop=224 format=raw"},
        {"class/00000001", "wolf"},
        {"format", "jpeg"},
        {"shard", "3/4"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "differs%zu", i);
        dir = make_dataset(name, SHARDS);
        snprintf(from, sizeof from, "%s/shard-2-of-4", dir);
        set_meta(from, keys[i][0], keys[i][1]);
        expect_refused(dir, IMGPACK_ERR_NOT_A_STORE, "shard-2-of-4");
        expect_refused(dir, IMGPACK_ERR_NOT_A_STORE, keys[i][0]);
    }
    snprintf(from, sizeof from, "%s/nothing", tmp_root);
    CHECK_EQ(mkdir(from, 0755), 0);
    expect_refused(from, IMGPACK_ERR_NOT_A_STORE, "no data.mdb");
}

/* Shard 2 is still packing: refused, or read with OPEN_INCOMPLETE; when
   it grows, refresh moves shard 3's records to their final indices. */
static void test_incomplete_shard_and_refresh(void) {
    const char *dir = make_dataset("growing", 2);
    char shard[4300];
    imgpack_reader *r;
    imgpack_record rec;
    uint32_t labels[COUNT];
    int status;
    expect_refused(dir, IMGPACK_ERR_INCOMPLETE, "shard-2-of-4");
    CHECK_OK(imgpack_reader_open(&r, dir, IMGPACK_OPEN_INCOMPLETE));
    CHECK_EQ(imgpack_reader_is_complete(r), 0);
    CHECK_EQ(imgpack_reader_count(r), 17 + 1 + 16);
    CHECK_OK(imgpack_reader_get(r, 18, &rec)); /* shard 3's record 0 */
    check_pixels(rec.data, 34, WIDTH, HEIGHT);
    CHECK_OK(imgpack_reader_labels(r, labels, 34));
    CHECK_EQ(labels[17], label_of(17));
    CHECK_EQ(labels[18], label_of(34));

    snprintf(shard, sizeof shard, "%s/shard-2-of-4", dir);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        store_spec spec = {17, WIDTH, HEIGHT, 0, IMGPACK_FORMAT_RAW, 1, NULL};
        shard_spec where = {17, "2/4", SETTINGS};
        append_shard_records(shard, &spec, &where, 1);
        _exit(0);
    }
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_OK(imgpack_reader_get(r, 18, &rec)); /* unchanged until refresh */
    check_pixels(rec.data, 34, WIDTH, HEIGHT);
    CHECK_OK(imgpack_reader_refresh(r));
    CHECK_EQ(imgpack_reader_count(r), COUNT);
    CHECK_EQ(imgpack_reader_is_complete(r), 1);
    for (uint64_t i = 0; i < COUNT; i++) {
        CHECK_OK(imgpack_reader_get(r, i, &rec));
        check_pixels(rec.data, i, WIDTH, HEIGHT);
    }
    CHECK_OK(imgpack_reader_labels(r, labels, COUNT));
    CHECK_EQ(labels[40], label_of(40));
    imgpack_reader_close(r);
}

static void test_threads(void) {
    const char *dir = make_dataset("threads", SHARDS);
    imgpack_reader *r;
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    check_concurrent_reads(r, COUNT, WIDTH, HEIGHT);
    imgpack_reader_close(r);
}

/* TSan cannot follow a process that forks while other threads run, so
   under TSan the forked batcher has no worker threads. */
#if defined(__SANITIZE_THREAD__)
#define FORK_BATCH_THREADS 1
#else
#define FORK_BATCH_THREADS 2
#endif

/* Batches across shards, before and after fork(): the child reopens every
   shard. */
static void test_batches_and_fork(void) {
    const char *dir = make_dataset("fork", SHARDS);
    imgpack_reader *r;
    imgpack_batcher *b;
    imgpack_batch_options *o;
    imgpack_record rec;
    uint64_t idx[6] = {49, 0, 17, 16, 34, 33};
    int64_t labels[6];
    enum { IMAGE = WIDTH * HEIGHT * 3 };
    static uint8_t out[6 * IMAGE];
    int status;

    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    CHECK_OK(imgpack_batch_options_create(&o));
    CHECK_OK(imgpack_batch_options_set_dtype(o, IMGPACK_DTYPE_UINT8));
    CHECK_OK(imgpack_batch_options_set_layout(o, IMGPACK_LAYOUT_NHWC));
    CHECK_OK(imgpack_batch_options_set_threads(o, FORK_BATCH_THREADS));
    CHECK_OK(imgpack_batcher_create(&b, r, o));
    CHECK_OK(imgpack_batcher_run(b, idx, 6, 0, 0, out, sizeof out, labels));
    for (int k = 0; k < 6; k++) {
        check_pixels(out + k * IMAGE, idx[k], WIDTH, HEIGHT);
        CHECK_EQ(labels[k], label_of(idx[k]));
    }
    CHECK_OK(imgpack_reader_get(r, 40, &rec));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int ok = imgpack_reader_get(r, 5, &rec) == IMGPACK_OK &&
                 rec.data[0] == pixel(5, 0, 0, 0) &&
                 imgpack_reader_get(r, 45, &rec) == IMGPACK_OK &&
                 rec.data[0] == pixel(45, 0, 0, 0);
        memset(out, 0, sizeof out);
        ok = ok && imgpack_batcher_run(b, idx, 6, 0, 0, out, sizeof out,
                                       NULL) == IMGPACK_OK;
        for (int k = 0; ok && k < 6; k++)
            ok = out[k * IMAGE + IMAGE - 1] ==
                 pixel(idx[k], HEIGHT - 1, WIDTH - 1, 2);
        imgpack_batcher_destroy(b);
        imgpack_reader_close(r);
        _exit(ok ? 0 : 1);
    }
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_OK(imgpack_reader_get(r, 20, &rec));
    check_pixels(rec.data, 20, WIDTH, HEIGHT);
    imgpack_batcher_destroy(b);
    imgpack_batch_options_destroy(o);
    imgpack_reader_close(r);
}

int main(void) {
    teststore_init("test_reader_shards");
    test_global_indices();
    test_corrupt_record_names_its_shard();
    test_refused_sets();
    test_incomplete_shard_and_refresh();
    test_threads();
    test_batches_and_fork();
    teststore_cleanup();
    printf("test_reader_shards: all passed\n");
    return 0;
}
