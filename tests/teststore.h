/*
 * Test stores for the reader tests, written with LMDB directly
 * (docs/FORMAT.md) so that every record's pixels are known and damage can
 * be placed exactly. Record i of a dataset holds pixel(i, y, x, c) and
 * label_of(i); a store made as a shard holds records first.. of its
 * dataset under local keys 0.., as `imgpack pack --shard` writes them.
 */
#ifndef IMGPACK_TESTS_TESTSTORE_H
#define IMGPACK_TESTS_TESTSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "imgpack/reader.h"

/* The test's temp dir; teststore_init makes it, teststore_cleanup removes
   it. */
extern char tmp_root[4096];

typedef struct store_spec {
    uint64_t count;
    uint32_t width, height; /* of every record; meta says 0 if vary */
    int vary;               /* record i is (width + i%3) x (height + i%2) */
    int32_t format;         /* raw or jpeg */
    int complete;
    const char *format_version;
} store_spec;

/* Where a store sits in a sharded dataset. */
typedef struct shard_spec {
    uint64_t first;       /* the dataset index of the store's record 0 */
    const char *shard;    /* meta `shard` ("K/N") */
    const char *settings; /* meta `settings` */
} shard_spec;

/* Makes tmp_root under $TMPDIR, named after the test. */
void teststore_init(const char *test);

/* Removes tmp_root and everything in it. */
void teststore_cleanup(void);

/* The pixel every synthetic record holds at (y, x, c): distinct per record
   so that a wrong index, offset or channel shows. */
uint8_t pixel(uint64_t index, uint32_t y, uint32_t x, uint32_t c);

uint32_t label_of(uint64_t index);

/* The LMDB value of dataset record i: header + raw or jpeg payload;
   malloc'ed, *size bytes. */
uint8_t *make_value(const store_spec *spec, uint64_t i, size_t *size);

/* Appends records from..count-1 and sets count (and, if complete, the
   state and labels) in one transaction, as the writer does. */
void append_records(const char *dir, const store_spec *spec, uint64_t from);

/* The same for a shard: local records from..count-1, holding dataset
   records shard->first + from... */
void append_shard_records(const char *dir, const store_spec *spec,
                          const shard_spec *shard, uint64_t from);

/* Makes a fresh store directory `name` (a path under tmp_root whose parent
   exists); returns its path, valid for the next 31 calls. */
char *make_store(const char *name, const store_spec *spec);

/* The same for a shard of a dataset. */
char *make_shard(const char *name, const store_spec *spec,
                 const shard_spec *shard);

/* Overwrites local record `index` of a closed store with `value`. */
void replace_record(const char *dir, uint64_t index, const uint8_t *value,
                    size_t size);

/* Sets meta `key` of a closed store to `value`. */
void set_meta(const char *dir, const char *key, const char *value);

/* Checks that `data` holds record i's pixels (HWC, 3 channels); exits if
   not. */
void check_pixels(const uint8_t *data, uint64_t i, uint32_t w, uint32_t h);

/* Reads records of `r` (count records of width x height, made by this
   file) from four threads at once, gets and decodes at random, and checks
   every pixel read and each thread's own error message. */
void check_concurrent_reads(imgpack_reader *r, uint64_t count, uint32_t width,
                            uint32_t height);

#endif
