/*
 * The LMDB store: batches land whole, keys sort as indices, the map grows
 * by itself however small it starts, a batch takes no more than the room it
 * began with, and an existing store is not touched. The store's thread runs
 * batches in order, and a failure on it reaches the writer and drops only
 * the batch it hit.
 */
#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "record.h"
#include "store.h"
#include "store_thread.h"

#define RECORD_BYTES (150 * 1024)
#define BATCH 16
#define BATCHES 20 /* 48 MB in all: many times the 1 MiB map we start with */

static uint64_t count_records(imgpack__store *s) {
    MDB_txn *txn;
    MDB_stat st;
    CHECK_EQ(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    CHECK_EQ(mdb_stat(txn, s->records, &st), 0);
    mdb_txn_abort(txn);
    return st.ms_entries;
}

static void check_record(imgpack__store *s, uint64_t index) {
    MDB_txn *txn;
    uint8_t key_bytes[IMGPACK__KEY_SIZE];
    imgpack__record_key(index, key_bytes);
    MDB_val key = {sizeof key_bytes, key_bytes}, val;
    CHECK_EQ(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    CHECK_EQ(mdb_get(txn, s->records, &key, &val), 0);
    CHECK_EQ(val.mv_size, RECORD_BYTES);
    CHECK_EQ(((uint8_t *)val.mv_data)[0], (uint8_t)index);
    CHECK_EQ(((uint8_t *)val.mv_data)[RECORD_BYTES - 1], (uint8_t)(index * 3));
    mdb_txn_abort(txn);
}

/* Puts records [first, first + n) in one batch, each RECORD_BYTES long
   with its index in its first byte and three times it in its last, and
   commits it with a one-byte metadata entry. */
static imgpack_status put_batch(imgpack__store *s, uint64_t first, int n,
                                uint8_t *value, imgpack__error *err) {
    imgpack_status status =
        imgpack__store_begin(s,
                             (size_t)n * imgpack__store_room(s, RECORD_BYTES) +
                                 imgpack__store_room(s, 1),
                             err);
    for (int i = 0; i < n && status == IMGPACK_OK; i++) {
        uint64_t index = first + (uint64_t)i;
        value[0] = (uint8_t)index;
        value[RECORD_BYTES - 1] = (uint8_t)(index * 3);
        status = imgpack__store_put(s, index, value, RECORD_BYTES, err);
    }
    imgpack__meta_entry meta = {"count", "x", 1};
    return status ? status : imgpack__store_commit(s, &meta, 1, err);
}

int main(void) {
    char dir[] = "/tmp/imgpack-test-store-XXXXXX";
    imgpack__store s;
    imgpack__error err;
    uint8_t *value = malloc(RECORD_BYTES);
    CHECK(value && mkdtemp(dir));

    CHECK_OK(imgpack__store_create(&s, dir, &err));
    /* Start tiny so that growth happens many times: each batch's begin
       must grow the map before anything is put. */
    CHECK_EQ(mdb_env_set_mapsize(s.env, 1 << 20), 0);
    s.map_size = 1 << 20;
    for (uint64_t b = 0; b < BATCHES; b++)
        CHECK_OK(put_batch(&s, b * BATCH, BATCH, value, &err));
    CHECK(s.map_size >= (size_t)BATCH * BATCHES * RECORD_BYTES);
    CHECK_EQ(count_records(&s), BATCH * BATCHES);
    for (uint64_t i = 0; i < BATCH * BATCHES; i += 37)
        check_record(&s, i);

    /* A batch takes what it has room for and no more. */
    size_t room = imgpack__store_room(&s, RECORD_BYTES);
    CHECK(room >= RECORD_BYTES && room < RECORD_BYTES + 2 * s.page_size);
    CHECK_OK(imgpack__store_begin(&s, 2 * room, &err));
    CHECK(imgpack__store_fits(&s, 2 * room));
    CHECK(!imgpack__store_fits(&s, 2 * room + 1));
    imgpack__store_abort(&s);
    CHECK_EQ(count_records(&s), BATCH * BATCHES);

    /* A record beyond the room, or out of order, is refused, and the batch
       is dropped whole: the store stays as it was. */
    CHECK_EQ(put_batch(&s, BATCH * BATCHES, 1, value, &err), IMGPACK_OK);
    CHECK_OK(imgpack__store_begin(&s, room, &err));
    CHECK_OK(
        imgpack__store_put(&s, BATCH * BATCHES + 1, value, RECORD_BYTES, &err));
    CHECK(imgpack__store_put(&s, BATCH * BATCHES + 2, value, RECORD_BYTES,
                             &err) != IMGPACK_OK);
    CHECK(strstr(err.message, "room") != NULL);
    CHECK(s.txn == NULL);
    CHECK_OK(imgpack__store_begin(&s, room, &err));
    CHECK(imgpack__store_put(&s, 3, value, RECORD_BYTES, &err) != IMGPACK_OK);
    CHECK(s.txn == NULL);
    CHECK_EQ(count_records(&s), BATCH * BATCHES + 1);
    imgpack__store_close(&s);

    /* The room's bound holds for any value size, page-sized and
       leaf-sized ones included, from a map with no slack at all. */
    static const size_t sizes[] = {1, 2000, 2040, 4080, 4081, 4097, 12289};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        char sub[sizeof dir + 16];
        imgpack__store small;
        snprintf(sub, sizeof sub, "%s/%zu", dir, k);
        CHECK_EQ(mkdir(sub, 0755), 0);
        CHECK_OK(imgpack__store_create(&small, sub, &err));
        CHECK_EQ(mdb_env_set_mapsize(small.env, 64 << 10), 0);
        small.map_size = 64 << 10;
        for (uint64_t b = 0; b < 3; b++) {
            CHECK_OK(imgpack__store_begin(
                &small, 300 * imgpack__store_room(&small, sizes[k]), &err));
            for (uint64_t i = 0; i < 300; i++)
                CHECK_OK(imgpack__store_put(&small, b * 300 + i, value,
                                            sizes[k], &err));
            CHECK_OK(imgpack__store_commit(&small, NULL, 0, &err));
        }
        CHECK_EQ(count_records(&small), 900);
        imgpack__store_close(&small);
    }

    /* Through the store's thread: batches handed over land as they do
       directly, the records' buffers are taken; a put beyond the room
       fails on the thread, the writer sees it at its next wait, and
       stopping drops the failed batch and keeps the others. */
    {
        char sub[sizeof dir + 16];
        imgpack__store piped;
        imgpack__store_thread t;
        imgpack__meta_entry meta = {"count", "x", 1};
        snprintf(sub, sizeof sub, "%s/thread", dir);
        CHECK_EQ(mkdir(sub, 0755), 0);
        CHECK_OK(imgpack__store_create(&piped, sub, &err));
        CHECK_OK(imgpack__store_thread_start(&t, &piped, &err));
        for (uint64_t b = 0; b < 4; b++) {
            CHECK_OK(imgpack__store_thread_begin(
                &t, BATCH * room + imgpack__store_room(&piped, 1), &err));
            for (uint64_t i = b * BATCH; i < (b + 1) * BATCH; i++) {
                uint8_t *record = malloc(RECORD_BYTES);
                CHECK(record != NULL);
                record[0] = (uint8_t)i;
                record[RECORD_BYTES - 1] = (uint8_t)(i * 3);
                CHECK_OK(imgpack__store_thread_put(&t, i, record, RECORD_BYTES,
                                                   &err));
            }
            CHECK_OK(imgpack__store_thread_commit(&t, &meta, 1, &err));
        }
        CHECK_OK(imgpack__store_thread_wait(&t, &err));
        CHECK_EQ(count_records(&piped), 4 * BATCH);
        for (uint64_t i = 0; i < 4 * BATCH; i += 5)
            check_record(&piped, i);
        CHECK_OK(imgpack__store_thread_begin(&t, room, &err));
        for (uint64_t i = 4 * BATCH; i < 4 * BATCH + 2; i++)
            CHECK_OK(imgpack__store_thread_put(&t, i, malloc(RECORD_BYTES),
                                               RECORD_BYTES, &err));
        CHECK_OK(imgpack__store_thread_commit(&t, &meta, 1, &err));
        CHECK(imgpack__store_thread_wait(&t, &err) != IMGPACK_OK);
        CHECK(strstr(err.message, "room") != NULL);
        CHECK(imgpack__store_thread_commit(&t, &meta, 1, &err) != IMGPACK_OK);
        imgpack__store_thread_stop(&t);
        CHECK_EQ(count_records(&piped), 4 * BATCH);
        imgpack__store_close(&piped);
    }

    imgpack__store again;
    CHECK_EQ(imgpack__store_create(&again, dir, &err), IMGPACK_ERR_EXISTS);
    CHECK(strstr(err.message, dir) != NULL);

    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    CHECK_EQ(system(command), 0);
    free(value);
    printf("store: ok\n");
    return 0;
}
