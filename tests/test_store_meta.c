/*
 * The store's format in store_meta.c: shard directory names round-trip
 * and nothing else parses as one; the u32 tables are little-endian; a
 * header written by the writer's function reads back field for field
 * through imgpack__store_peek, which refuses an unfinished store and a
 * store of another format version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "store.h"
#include "store_meta.h"
#include "store_peek.h"

static void test_shard_names(void) {
    static const uint32_t pairs[][2] = {
        {0, 1}, {1, 2}, {9, 10}, {41, 1000}, {65535, 65536}};
    char name[IMGPACK__SHARD_NAME_SIZE];
    uint32_t k, n;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        imgpack__shard_name(name, pairs[i][0], pairs[i][1]);
        CHECK(imgpack__shard_name_parse(name, &k, &n));
        CHECK_EQ(k, pairs[i][0]);
        CHECK_EQ(n, pairs[i][1]);
    }
    imgpack__shard_name(name, 3, 8);
    CHECK_STR_EQ(name, "shard-3-of-8");
    imgpack__shard_value(name, 3, 8);
    CHECK_STR_EQ(name, "3/8");
    /* What sscanf("shard-%u-of-%u") took and no pack writes. */
    static const char *const bad[] = {
        "shard-01-of-2",    "shard-1-of-02", "shard-2-of-2",  "shard-1-of-2x",
        "shard--1-of-2",    "shard-+1-of-2", "shard-1-of-",   "shard-1of-2",
        "shard-0-of-65537", "Shard-0-of-1",  "shard- 1-of-2", "shard-1-of-2/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!imgpack__shard_name_parse(bad[i], &k, &n));
}

static void test_u32_tables(void) {
    const uint32_t values[3] = {0, 0x01020304u, 0xfffffffeu};
    const uint8_t want[12] = {0, 0, 0, 0, 4, 3, 2, 1, 0xfe, 0xff, 0xff, 0xff};
    uint8_t bytes[12];
    uint32_t back[3];
    imgpack__meta_u32_encode(bytes, values, 3);
    CHECK(memcmp(bytes, want, sizeof want) == 0);
    imgpack__meta_u32_decode(back, bytes, 3);
    CHECK(memcmp(back, values, sizeof values) == 0);
}

static void set_text(imgpack__store *s, const char *key, const char *value) {
    imgpack__error err;
    imgpack__meta_entry e = imgpack__meta_text_entry(key, value);
    CHECK_OK(imgpack__store_set_meta(s, &e, 1, &err));
}

static void test_header_round_trip(void) {
    char dir[] = "/tmp/imgpack-test-store-meta-XXXXXX", command[128];
    char *names[2] = {"cat", "dog"}, *descriptions[2] = {NULL, "a dog"};
    imgpack__store s = {0};
    imgpack__store_summary got;
    imgpack__error err;
    CHECK(mkdtemp(dir));
    CHECK_OK(imgpack__store_create(&s, dir, &err));
    imgpack__store_header h = {.format = IMGPACK_FORMAT_JPEG,
                               .channels = 3,
                               .width = 224,
                               .height = 224,
                               .resize = 256,
                               .crop = 224,
                               .num_classes = 2,
                               .class_names = names,
                               .class_descriptions = descriptions,
                               .settings = "resize=256 crop=224",
                               .source_digest = "ab12",
                               .catalog_dataset_digest = "cd34",
                               .shard_index = 1,
                               .shard_count = 3,
                               .first_position = 7};
    CHECK_OK(imgpack__store_header_write(&s, &h, &err));
    CHECK_EQ(imgpack__store_peek(dir, &got, &err), IMGPACK_ERR_INCOMPLETE);
    set_text(&s, IMGPACK_META_STATE, IMGPACK_META_STATE_COMPLETE);
    set_text(&s, IMGPACK_META_COUNT, "5");
    CHECK_OK(imgpack__store_peek(dir, &got, &err));
    CHECK_EQ(got.count, 5);
    CHECK_EQ(got.header.format, IMGPACK_FORMAT_JPEG);
    CHECK_EQ(got.header.channels, 3);
    CHECK_EQ(got.header.width, 224);
    CHECK_EQ(got.header.height, 224);
    CHECK_EQ(got.header.resize, 256);
    CHECK_EQ(got.header.crop, 224);
    CHECK_EQ(got.header.num_classes, 2);
    CHECK_STR_EQ(got.header.class_names[0], "cat");
    CHECK_STR_EQ(got.header.class_names[1], "dog");
    CHECK(got.header.class_descriptions[0] == NULL);
    CHECK_STR_EQ(got.header.class_descriptions[1], "a dog");
    CHECK_STR_EQ(got.header.settings, "resize=256 crop=224");
    CHECK_STR_EQ(got.header.source_digest, "ab12");
    CHECK_STR_EQ(got.header.catalog_dataset_digest, "cd34");
    imgpack__store_header_free(&got.header);
    set_text(&s, IMGPACK_META_FORMAT_VERSION, "2");
    CHECK_EQ(imgpack__store_peek(dir, &got, &err),
             IMGPACK_ERR_VERSION_MISMATCH);
    imgpack__store_close(&s);
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    CHECK_EQ(system(command), 0);
}

int main(void) {
    test_shard_names();
    test_u32_tables();
    test_header_round_trip();
    printf("store_meta: ok\n");
    return 0;
}
