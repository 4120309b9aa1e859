/*
 * Tests of imgpack_reader_select and the weighted sampler through the C
 * API alone, beside the Python tests (test_select.py, test_sampling.py)
 * that check results against sqlite3 and frequencies against weights:
 * here, argument checks, the bound by the store's count, and selects from
 * four threads at once on one reader, each with its own error message
 * (this test is `quick`, so TSan runs it).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "imgpack/reader.h"
#include "teststore.h"

extern const char imgpack__catalog_schema[];

#define RECORDS 40
/* Rows the catalog holds past the store's count, as after a crash. */
#define EXTRA_ROWS 3

/* A catalog for a teststore store: three classes, record i in class
   label_of(i), src_width 100 + i. */
static void write_catalog(const char *dir) {
    char path[4200], text[256];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/catalog.db", dir);
    CHECK_EQ(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ(sqlite3_exec(db, imgpack__catalog_schema, NULL, NULL, NULL),
             SQLITE_OK);
    CHECK_EQ(sqlite3_exec(db,
                          "INSERT INTO classes (class_id, name) VALUES "
                          "(0, 'zero'), (1, 'one'), (2, 'two')",
                          NULL, NULL, NULL),
             SQLITE_OK);
    for (uint64_t i = 0; i < RECORDS + EXTRA_ROWS; i++) {
        snprintf(text, sizeof text,
                 "INSERT INTO images (idx, class_id, path, src_width) "
                 "VALUES (%llu, %u, 'f%llu.jpg', %llu)",
                 (unsigned long long)i, label_of(i), (unsigned long long)i,
                 (unsigned long long)(100 + i));
        CHECK_EQ(sqlite3_exec(db, text, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_close(db);
}

static void test_select(imgpack_reader *r) {
    uint64_t out[RECORDS], count = 99;
    const char *params[] = {"two", "120"};

    CHECK_OK(imgpack_reader_select(r, "name = ? AND src_width >= ?", params, 2,
                                   out, RECORDS, &count));
    /* Records 20..39 in class 2: 20, 23, ..., 38. */
    CHECK_EQ(count, 7);
    for (uint64_t k = 0; k < count; k++)
        CHECK_EQ(out[k], 20 + 3 * k);
    CHECK_STR_EQ(imgpack_reader_errmsg(r), "");

    /* Every catalog row, but only the store's records. */
    CHECK_OK(imgpack_reader_select(r, "1", NULL, 0, out, RECORDS, &count));
    CHECK_EQ(count, RECORDS);
    CHECK_EQ(out[RECORDS - 1], RECORDS - 1);

    CHECK_EQ(imgpack_reader_select(r, "1", NULL, 0, out, RECORDS - 1, &count),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(count, 0);
    CHECK(strstr(imgpack_reader_errmsg(r), "capacity"));
    CHECK_EQ(imgpack_reader_select(r, NULL, NULL, 0, out, RECORDS, &count),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_reader_select(r, "?", NULL, 1, out, RECORDS, &count),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_reader_select(NULL, "1", NULL, 0, out, RECORDS, &count),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(
        imgpack_reader_select(r, "1) OR (1", NULL, 0, out, RECORDS, &count),
        IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_reader_select(r, "no_such_column", NULL, 0, out, RECORDS,
                                   &count),
             IMGPACK_ERR_CATALOG);
    CHECK(strstr(imgpack_reader_errmsg(r), "catalog.db: select: no such "
                                           "column: no_such_column"));
}

typedef struct select_thread {
    imgpack_reader *r;
    uint64_t residue; /* selects idx % 4 = residue */
} select_thread;

static void *select_loop(void *arg) {
    select_thread *t = arg;
    uint64_t out[RECORDS], count;
    char value[8], reason[64];
    const char *params[] = {value};
    snprintf(value, sizeof value, "%llu", (unsigned long long)t->residue);
    for (int round = 0; round < 30; round++) {
        CHECK_OK(imgpack_reader_select(t->r, "idx % 4 = ?", params, 1, out,
                                       RECORDS, &count));
        CHECK_EQ(count, RECORDS / 4);
        for (uint64_t k = 0; k < count; k++)
            CHECK_EQ(out[k], t->residue + 4 * k);
        /* A failure of this thread's own, named in its own message. */
        snprintf(reason, sizeof reason, "no such column: c%llu",
                 (unsigned long long)t->residue);
        CHECK_EQ(imgpack_reader_select(t->r, reason + 16, NULL, 0, out, RECORDS,
                                       &count),
                 IMGPACK_ERR_CATALOG);
        CHECK(strstr(imgpack_reader_errmsg(t->r), reason));
    }
    return NULL;
}

static void test_select_threads(imgpack_reader *r) {
    pthread_t threads[4];
    select_thread args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (select_thread){r, (uint64_t)i};
        CHECK_EQ(pthread_create(&threads[i], NULL, select_loop, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(threads[i], NULL), 0);
}

static void test_weighted_arguments(void) {
    double weights[4] = {0.0, 1.0, 0.0, 2.0}, none[2] = {0.0, 0.0};
    uint64_t out[8];
    uint32_t labels[5] = {2, 0, 2, 2, 7};
    double balanced[5];

    CHECK_OK(imgpack_sampler_weighted(weights, 4, 8, 1, 0, 0, 1, out, 8));
    for (int i = 0; i < 8; i++)
        CHECK(out[i] == 1 || out[i] == 3);
    /* 7 samples over 2 ranks: 4 each, the stream rounded up to 8. */
    CHECK_EQ(imgpack_sampler_count(7, 2, 0), 4);
    CHECK_OK(imgpack_sampler_weighted(weights, 4, 7, 1, 0, 1, 2, out, 4));
    CHECK_EQ(imgpack_sampler_weighted(weights, 4, 7, 1, 0, 1, 2, out, 3),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_sampler_weighted(weights, 4, 7, 1, 0, 2, 2, out, 4),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_sampler_weighted(weights, 4, 7, 1, 0, 0, 0, out, 8),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_sampler_weighted(none, 2, 1, 1, 0, 0, 1, out, 8),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_EQ(imgpack_sampler_weighted(NULL, 0, 1, 1, 0, 0, 1, out, 8),
             IMGPACK_ERR_INVALID_ARG);
    /* Nothing to draw is not an error, whatever the weights. */
    CHECK_OK(imgpack_sampler_weighted(NULL, 0, 0, 1, 0, 0, 1, NULL, 0));

    CHECK_OK(imgpack_sampler_balanced_weights(labels, 5, balanced));
    CHECK(balanced[0] == 1.0 / 3 && balanced[1] == 1.0 && balanced[4] == 1.0);
    CHECK_EQ(imgpack_sampler_balanced_weights(NULL, 5, balanced),
             IMGPACK_ERR_INVALID_ARG);
    CHECK_OK(imgpack_sampler_balanced_weights(NULL, 0, NULL));
}

int main(void) {
    store_spec spec = {.count = RECORDS,
                       .width = 4,
                       .height = 4,
                       .format = IMGPACK_FORMAT_RAW,
                       .complete = 1};
    imgpack_reader *r = NULL;
    char *dir;

    teststore_init("test_subset");
    dir = make_store("store", &spec);
    write_catalog(dir);
    CHECK_OK(imgpack_reader_open(&r, dir, 0));
    test_select(r);
    test_select_threads(r);
    imgpack_reader_close(r);
    test_weighted_arguments();
    teststore_cleanup();
    printf("test_subset: all passed\n");
    return 0;
}
