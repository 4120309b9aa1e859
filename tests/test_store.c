/*
 * The LMDB store: batches land whole, keys sort as indices, the map grows
 * by itself however small it starts, and an existing store is not touched.
 */
#include <lmdb.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "record.h"
#include "store.h"

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

int main(void) {
    char dir[] = "/tmp/imgpack-test-store-XXXXXX";
    imgpack__store s;
    imgpack__error err;
    uint8_t *data = malloc((size_t)BATCH * RECORD_BYTES);
    imgpack__store_value values[BATCH];
    CHECK(data && mkdtemp(dir));

    CHECK_OK(imgpack__store_create(&s, dir, &err));
    /* Start tiny so that growth happens many times. */
    CHECK_EQ(mdb_env_set_mapsize(s.env, 1 << 20), 0);
    s.map_size = 1 << 20;
    for (uint64_t b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            uint64_t index = b * BATCH + (uint64_t)i;
            uint8_t *value = data + (size_t)i * RECORD_BYTES;
            value[0] = (uint8_t)index;
            value[RECORD_BYTES - 1] = (uint8_t)(index * 3);
            values[i] = (imgpack__store_value){value, RECORD_BYTES};
        }
        imgpack__meta_entry meta = {"count", "x", 1};
        CHECK_OK(imgpack__store_append(&s, b * BATCH, values, BATCH, &meta, 1,
                                       &err));
    }
    CHECK(s.map_size >= (size_t)BATCH * BATCHES * RECORD_BYTES);
    CHECK_EQ(count_records(&s), BATCH * BATCHES);
    for (uint64_t i = 0; i < BATCH * BATCHES; i += 37)
        check_record(&s, i);

    /* Appending out of order is refused and leaves the store as it was. */
    CHECK(imgpack__store_append(&s, 3, values, 1, NULL, 0, &err) != IMGPACK_OK);
    CHECK_EQ(count_records(&s), BATCH * BATCHES);
    imgpack__store_close(&s);

    imgpack__store again;
    CHECK_EQ(imgpack__store_create(&again, dir, &err), IMGPACK_ERR_EXISTS);
    CHECK(strstr(err.message, dir) != NULL);

    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    CHECK_EQ(system(command), 0);
    free(data);
    printf("store: ok\n");
    return 0;
}
