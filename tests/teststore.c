/*
 * Writing the reader tests' stores with LMDB alone, as docs/FORMAT.md
 * describes them: the same layout the packer writes, with pixels and
 * labels that a test can predict from the record's dataset index.
 */
#include "teststore.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "encode.h"
#include "imgpack/imgpack.h"
#include "record.h"

char tmp_root[4096];

void teststore_init(const char *test) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmp_root, sizeof tmp_root, "%s/%s.XXXXXX", base, test);
    CHECK(mkdtemp(tmp_root) != NULL);
}

void teststore_cleanup(void) {
    char command[4200];
    snprintf(command, sizeof command, "rm -rf '%s'", tmp_root);
    CHECK_EQ(system(command), 0);
}

uint8_t pixel(uint64_t index, uint32_t y, uint32_t x, uint32_t c) {
    return (uint8_t)(index * 37 + y * 7 + x * 3 + c * 101);
}

uint32_t label_of(uint64_t index) {
    return (uint32_t)(index % 3);
}

static void put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_size,
                const void *value, size_t size) {
    MDB_val k = {key_size, (void *)key}, v = {size, (void *)value};
    CHECK_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void put_text(MDB_txn *txn, MDB_dbi meta, const char *key,
                     const char *value) {
    put(txn, meta, key, strlen(key), value, strlen(value));
}

static void put_number(MDB_txn *txn, MDB_dbi meta, const char *key,
                       uint64_t n) {
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)n);
    put_text(txn, meta, key, text);
}

static void record_size(const store_spec *spec, uint64_t i, uint32_t *w,
                        uint32_t *h) {
    *w = spec->width + (spec->vary ? (uint32_t)(i % 3) : 0);
    *h = spec->height + (spec->vary ? (uint32_t)(i % 2) : 0);
}

uint8_t *make_value(const store_spec *spec, uint64_t i, size_t *size) {
    uint32_t w, h;
    record_size(spec, i, &w, &h);
    size_t n = (size_t)w * h * 3;
    uint8_t *px = malloc(n), *value;
    size_t payload;
    CHECK(px != NULL);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (uint32_t c = 0; c < 3; c++)
                px[((size_t)y * w + x) * 3 + c] = pixel(i, y, x, c);
    if (spec->format == IMGPACK_FORMAT_RAW) {
        value = malloc(IMGPACK__RECORD_HEADER_SIZE + n);
        CHECK(value != NULL);
        memcpy(value + IMGPACK__RECORD_HEADER_SIZE, px, n);
        payload = n;
    } else {
        char reason[IMGPACK__REASON_SIZE];
        imgpack__pixels image = {px, w, h, 3, (size_t)w * 3};
        CHECK_OK(imgpack__encode(spec->format, 90, &image,
                                 IMGPACK__RECORD_HEADER_SIZE, &value, &payload,
                                 reason));
    }
    imgpack__record_header hdr = {
        (uint8_t)spec->format,
        3,
        w,
        h,
        label_of(i),
        (uint32_t)payload,
        imgpack__crc32(value + IMGPACK__RECORD_HEADER_SIZE, payload)};
    imgpack__record_header_write(value, &hdr);
    free(px);
    *size = IMGPACK__RECORD_HEADER_SIZE + payload;
    return value;
}

static void open_env(const char *dir, MDB_env **env, MDB_txn **txn,
                     MDB_dbi *records, MDB_dbi *meta) {
    CHECK_EQ(mdb_env_create(env), 0);
    CHECK_EQ(mdb_env_set_maxdbs(*env, 2), 0);
    CHECK_EQ(mdb_env_set_mapsize(*env, (size_t)64 << 20), 0);
    CHECK_EQ(mdb_env_open(*env, dir, 0, 0644), 0);
    CHECK_EQ(mdb_txn_begin(*env, NULL, 0, txn), 0);
    CHECK_EQ(mdb_dbi_open(*txn, "records", MDB_CREATE, records), 0);
    CHECK_EQ(mdb_dbi_open(*txn, "meta", MDB_CREATE, meta), 0);
}

void append_shard_records(const char *dir, const store_spec *spec,
                          const shard_spec *shard, uint64_t from) {
    uint64_t first = shard ? shard->first : 0;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi records, meta;
    open_env(dir, &env, &txn, &records, &meta);
    for (uint64_t i = from; i < spec->count; i++) {
        uint8_t key[IMGPACK__KEY_SIZE];
        size_t size;
        uint8_t *value = make_value(spec, first + i, &size);
        imgpack__record_key(i, key);
        put(txn, records, key, sizeof key, value, size);
        free(value);
    }
    put_number(txn, meta, "count", spec->count);
    if (spec->complete) {
        uint8_t *labels = malloc(spec->count * 4 + 1);
        CHECK(labels != NULL);
        for (uint64_t i = 0; i < spec->count; i++)
            for (int b = 0; b < 4; b++)
                labels[4 * i + b] = (uint8_t)(label_of(first + i) >> (8 * b));
        put(txn, meta, "labels", 6, labels, spec->count * 4);
        put_text(txn, meta, "state", "complete");
        free(labels);
    }
    CHECK_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

void append_records(const char *dir, const store_spec *spec, uint64_t from) {
    append_shard_records(dir, spec, NULL, from);
}

char *make_shard(const char *name, const store_spec *spec,
                 const shard_spec *shard) {
    static char paths[32][4200];
    static int used;
    char *dir = paths[used++ % 32];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi records, meta;
    snprintf(dir, sizeof paths[0], "%s/%s", tmp_root, name);
    CHECK_EQ(mkdir(dir, 0755), 0);
    open_env(dir, &env, &txn, &records, &meta);
    put_text(txn, meta, "format_version",
             spec->format_version ? spec->format_version : "1");
    put_text(txn, meta, "format", imgpack_format_name(spec->format));
    put_number(txn, meta, "channels", 3);
    put_number(txn, meta, "width", spec->vary ? 0 : spec->width);
    put_number(txn, meta, "height", spec->vary ? 0 : spec->height);
    put_number(txn, meta, "resize", 0);
    put_number(txn, meta, "crop", spec->vary ? 0 : spec->width);
    put_number(txn, meta, "num_classes", 3);
    put_text(txn, meta, "class/00000000", "cat");
    put_text(txn, meta, "class/00000001", "dog");
    put_text(txn, meta, "class/00000002", "emu");
    put_number(txn, meta, "count", 0);
    put_text(txn, meta, "state", "packing");
    if (shard) {
        put_text(txn, meta, "shard", shard->shard);
        put_text(txn, meta, "settings", shard->settings);
    }
    CHECK_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    append_shard_records(dir, spec, shard, 0);
    return dir;
}

char *make_store(const char *name, const store_spec *spec) {
    return make_shard(name, spec, NULL);
}

void replace_record(const char *dir, uint64_t index, const uint8_t *value,
                    size_t size) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi records, meta;
    uint8_t key[IMGPACK__KEY_SIZE];
    open_env(dir, &env, &txn, &records, &meta);
    imgpack__record_key(index, key);
    put(txn, records, key, sizeof key, value, size);
    CHECK_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

void set_meta(const char *dir, const char *key, const char *value) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi records, meta;
    open_env(dir, &env, &txn, &records, &meta);
    put_text(txn, meta, key, value);
    CHECK_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

void check_pixels(const uint8_t *data, uint64_t i, uint32_t w, uint32_t h) {
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (uint32_t c = 0; c < 3; c++)
                if (data[((size_t)y * w + x) * 3 + c] != pixel(i, y, x, c)) {
                    fprintf(stderr, "record %llu differs at y=%u x=%u c=%u\n",
                            (unsigned long long)i, y, x, c);
                    exit(1);
                }
}

/* One reading thread of check_concurrent_reads. */
typedef struct reading_thread {
    imgpack_reader *r;
    uint64_t seed, count;
    uint32_t width, height;
    int failures;
} reading_thread;

static void *read_at_random(void *p) {
    reading_thread *a = p;
    size_t bytes = (size_t)a->width * a->height * 3;
    uint8_t *buf = malloc(bytes);
    imgpack_record rec;
    uint64_t x = a->seed, beyond = a->count + 49;
    char expected[64];
    snprintf(expected, sizeof expected, "record %llu",
             (unsigned long long)beyond);
    for (int k = 0; buf && k < 2000; k++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint64_t i = (x >> 33) % a->count;
        if (k % 2 == 0) {
            if (imgpack_reader_get(a->r, i, &rec) != IMGPACK_OK ||
                rec.data[0] != pixel(i, 0, 0, 0) ||
                rec.data[rec.size - 1] !=
                    pixel(i, a->height - 1, a->width - 1, 2))
                a->failures++;
        } else if (imgpack_reader_decode(a->r, i, buf, bytes, &rec) !=
                       IMGPACK_OK ||
                   buf[100] != pixel(i, 1, 13, 1)) {
            a->failures++;
        }
        /* Each thread's error message is its own. */
        if (k == 1000 &&
            (imgpack_reader_get(a->r, beyond, &rec) != IMGPACK_ERR_RANGE ||
             strstr(imgpack_reader_errmsg(a->r), expected) == NULL))
            a->failures++;
    }
    if (!buf)
        a->failures++;
    free(buf);
    return NULL;
}

void check_concurrent_reads(imgpack_reader *r, uint64_t count, uint32_t width,
                            uint32_t height) {
    pthread_t threads[4];
    reading_thread args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (reading_thread){r, (uint64_t)t + 1, count, width, height, 0};
        CHECK_EQ(pthread_create(&threads[t], NULL, read_at_random, &args[t]),
                 0);
    }
    for (int t = 0; t < 4; t++) {
        CHECK_EQ(pthread_join(threads[t], NULL), 0);
        CHECK_EQ(args[t].failures, 0);
    }
}
