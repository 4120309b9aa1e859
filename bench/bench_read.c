/*
 * bench_read: reading speed of one store, imgpack against the limits of
 * bare LMDB (and bare libjpeg-turbo for jpeg stores), in one process on
 * the same data. bench/run_read_bench.sh runs it next to the Python
 * baselines of bench/bench_read.py and prints the ratios.
 *
 *   bench_read STORE [SECONDS [REPEATS]]
 *
 * Every case walks a random permutation of all records (repeated while
 * the time lasts) and is timed REPEATS times for SECONDS each; one line
 * per case gives the median records/s and MB/s of stored values read:
 *
 *   mdb_get          mdb_get alone, one reused read transaction
 *   mdb_get+memcpy   the same plus a copy of the value into successive
 *                    slots of a batch-sized (256 records) buffer
 *   jpeg_decode      (jpeg stores) mdb_get + libjpeg decode into a buffer,
 *                    one reused decompressor: the decode limit
 *   get              imgpack_reader_get (zero-copy view, header checked)
 *   batch_u8_t1      imgpack_batcher_run, uint8 NHWC, 256 per batch
 *   batch_f32_t1     float32 NCHW normalized, 256 per batch, 1 thread
 *   batch_f32_t2     the same with 2 threads
 *
 * Batches go to one reused output buffer: the cost measured is reading
 * and converting, not the page faults of fresh memory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* After stdio.h: jpeglib.h uses FILE and size_t without including them. */
#include <jpeglib.h>
#include <lmdb.h>

#include "imgpack/reader.h"

#define BATCH 256
#define MAX_REPEATS 64

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench {
    const char *dir;
    double seconds;
    int repeats;
    uint64_t count;
    uint64_t *order;   /* a random permutation of 0..count-1 */
    double mean_value; /* bytes per stored value, for MB/s */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi records;
    imgpack_reader *reader;
    uint8_t *buffer; /* room for one batch of float32 images */
    size_t buffer_size;
    size_t slot_size;       /* the largest value, for mdb_get+memcpy */
    volatile uint64_t sink; /* keeps results observable */
} bench;

/* One case: a function that processes records from position *pos of the
   order onwards and returns how many it did. */
typedef uint64_t (*step_fn)(bench *b, void *ctx, uint64_t *pos);

static void report(bench *b, const char *name, step_fn step, void *ctx) {
    double rates[MAX_REPEATS];
    for (int r = 0; r < b->repeats; r++) {
        uint64_t done = 0, pos = 0;
        double t0 = now(), t;
        while ((t = now()) - t0 < b->seconds)
            done += step(b, ctx, &pos);
        rates[r] = (double)done / (t - t0);
    }
    qsort(rates, (size_t)b->repeats, sizeof *rates, cmp_double);
    double median = rates[b->repeats / 2];
    printf("%-16s %12.0f records/s %10.1f MB/s\n", name, median,
           median * b->mean_value / 1e6);
    fflush(stdout);
}

static MDB_val value_at(bench *b, uint64_t index) {
    uint8_t key[8];
    MDB_val k = {8, key}, v = {0, NULL};
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(index >> (8 * (7 - i)));
    if (mdb_get(b->txn, b->records, &k, &v) != 0) {
        fprintf(stderr, "bench_read: record %" PRIu64 " missing\n", index);
        exit(1);
    }
    return v;
}

/* Chunks of this many records between clock reads. */
#define CHUNK 64

static uint64_t step_mdb_get(bench *b, void *ctx, uint64_t *pos) {
    uint64_t sum = 0;
    for (int i = 0; i < CHUNK; i++, *pos = (*pos + 1) % b->count)
        sum += value_at(b, b->order[*pos]).mv_size;
    b->sink += sum;
    return CHUNK;
}

/* Copies go to successive slots of a batch-sized buffer, as a loader's
   would: copying into one small buffer would stay in the cache and
   measure a traffic no batch has. */
static uint64_t step_memcpy(bench *b, void *ctx, uint64_t *pos) {
    for (int i = 0; i < CHUNK; i++, *pos = (*pos + 1) % b->count) {
        MDB_val v = value_at(b, b->order[*pos]);
        memcpy(b->buffer + (*pos % BATCH) * b->slot_size, v.mv_data, v.mv_size);
    }
    b->sink += b->buffer[0];
    return CHUNK;
}

typedef struct jpeg_ctx {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr err;
} jpeg_ctx;

static uint64_t step_jpeg(bench *b, void *ctx, uint64_t *pos) {
    jpeg_ctx *j = ctx;
    for (int i = 0; i < CHUNK; i++, *pos = (*pos + 1) % b->count) {
        MDB_val v = value_at(b, b->order[*pos]);
        /* The payload follows the 32-byte record header. */
        jpeg_mem_src(&j->cinfo, (unsigned char *)v.mv_data + 32,
                     (unsigned long)(v.mv_size - 32));
        jpeg_read_header(&j->cinfo, TRUE);
        j->cinfo.out_color_space = JCS_RGB;
        jpeg_start_decompress(&j->cinfo);
        size_t row = (size_t)j->cinfo.output_width * 3;
        while (j->cinfo.output_scanline < j->cinfo.output_height) {
            JSAMPROW rows[16];
            for (int r = 0; r < 16; r++)
                rows[r] = b->buffer + (j->cinfo.output_scanline + r) * row;
            jpeg_read_scanlines(&j->cinfo, rows, 16);
        }
        jpeg_finish_decompress(&j->cinfo);
    }
    b->sink += b->buffer[0];
    return CHUNK;
}

static uint64_t step_get(bench *b, void *ctx, uint64_t *pos) {
    imgpack_record rec;
    uint64_t sum = 0;
    for (int i = 0; i < CHUNK; i++, *pos = (*pos + 1) % b->count) {
        if (imgpack_reader_get(b->reader, b->order[*pos], &rec)) {
            fprintf(stderr, "bench_read: %s\n",
                    imgpack_reader_errmsg(b->reader));
            exit(1);
        }
        sum += rec.size;
    }
    b->sink += sum;
    return CHUNK;
}

static uint64_t step_batch(bench *b, void *ctx, uint64_t *pos) {
    imgpack_batcher *batcher = ctx;
    uint64_t indices[BATCH];
    int64_t labels[BATCH];
    for (int i = 0; i < BATCH; i++, *pos = (*pos + 1) % b->count)
        indices[i] = b->order[*pos];
    if (imgpack_batcher_run(batcher, indices, BATCH, 0, 0, b->buffer,
                            b->buffer_size, labels)) {
        fprintf(stderr, "bench_read: %s\n", imgpack_batcher_errmsg(batcher));
        exit(1);
    }
    b->sink += (uint64_t)labels[0];
    return BATCH;
}

static imgpack_batcher *make_batcher(bench *b, int32_t layout, int32_t dtype,
                                     uint32_t threads) {
    imgpack_batch_options *o;
    imgpack_batcher *batcher = NULL;
    uint32_t side = imgpack_reader_width(b->reader) ? 0 : 224;
    if (imgpack_batch_options_create(&o) ||
        imgpack_batch_options_set_layout(o, layout) ||
        imgpack_batch_options_set_dtype(o, dtype) ||
        imgpack_batch_options_set_crop(o, side, side, IMGPACK_CROP_CENTER) ||
        imgpack_batch_options_set_threads(o, threads) ||
        imgpack_batcher_create(&batcher, b->reader, o)) {
        fprintf(stderr, "bench_read: %s\n", imgpack_batcher_errmsg(batcher));
        exit(1);
    }
    imgpack_batch_options_destroy(o);
    return batcher;
}

int main(int argc, char **argv) {
    bench b = {0};
    int rc;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_read STORE [SECONDS [REPEATS]]\n");
        return 2;
    }
    b.dir = argv[1];
    b.seconds = argc > 2 ? atof(argv[2]) : 2.0;
    b.repeats = argc > 3 ? atoi(argv[3]) : 5;
    if (b.repeats < 1 || b.repeats > MAX_REPEATS)
        b.repeats = 5;
    if (imgpack_reader_open(&b.reader, b.dir, 0)) {
        fprintf(stderr, "bench_read: %s\n", imgpack_reader_errmsg(b.reader));
        return 1;
    }
    b.count = imgpack_reader_count(b.reader);
    b.order = malloc(b.count * sizeof *b.order);
    if (!b.order || !b.count ||
        imgpack_sampler_indices(b.count, 1, 0, 1, 0, 1, 0, b.order, b.count)) {
        fprintf(stderr, "bench_read: empty store or out of memory\n");
        return 1;
    }

    /* The bare LMDB side, opened as the reader opens it; without a lock
       file, since two environments on one file in one process must not
       share fcntl locks (LMDB forbids it), and nothing writes here. */
    if ((rc = mdb_env_create(&b.env)) || (rc = mdb_env_set_maxdbs(b.env, 2)) ||
        (rc = mdb_env_open(b.env, b.dir,
                           MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD | MDB_NOLOCK,
                           0644)) ||
        (rc = mdb_txn_begin(b.env, NULL, MDB_RDONLY, &b.txn)) ||
        (rc = mdb_dbi_open(b.txn, "records", 0, &b.records))) {
        fprintf(stderr, "bench_read: %s: %s\n", b.dir, mdb_strerror(rc));
        return 1;
    }
    uint64_t total = 0, largest = 0;
    for (uint64_t i = 0; i < b.count; i++) {
        MDB_val v = value_at(&b, i);
        total += v.mv_size;
        largest = v.mv_size > largest ? v.mv_size : largest;
    }
    b.mean_value = (double)total / (double)b.count;
    uint32_t w = imgpack_reader_width(b.reader),
             h = imgpack_reader_height(b.reader);
    uint64_t image = (uint64_t)(w ? w : 224) * (h ? h : 224) * 3 * 4;
    b.slot_size = largest;
    b.buffer_size = BATCH * (image > largest ? image : largest);
    if (b.buffer_size < largest * 4)
        b.buffer_size = largest * 4; /* a decoded --crop 0 image */
    b.buffer = malloc(b.buffer_size);
    if (!b.buffer)
        return 1;
    memset(b.buffer, 1, b.buffer_size);

    printf("store %s: %" PRIu64 " records, %s, %.0f bytes per value, "
           "%.1fs x %d runs, median\n",
           b.dir, b.count, imgpack_format_name(imgpack_reader_format(b.reader)),
           b.mean_value, b.seconds, b.repeats);
    report(&b, "mdb_get", step_mdb_get, NULL);
    report(&b, "mdb_get+memcpy", step_memcpy, NULL);
    if (imgpack_reader_format(b.reader) == IMGPACK_FORMAT_JPEG) {
        jpeg_ctx j;
        j.cinfo.err = jpeg_std_error(&j.err);
        jpeg_create_decompress(&j.cinfo);
        report(&b, "jpeg_decode", step_jpeg, &j);
        jpeg_destroy_decompress(&j.cinfo);
    }
    report(&b, "get", step_get, NULL);
    imgpack_batcher *batcher =
        make_batcher(&b, IMGPACK_LAYOUT_NHWC, IMGPACK_DTYPE_UINT8, 1);
    report(&b, "batch_u8_t1", step_batch, batcher);
    imgpack_batcher_destroy(batcher);
    for (uint32_t threads = 1; threads <= 2; threads++) {
        char name[32];
        snprintf(name, sizeof name, "batch_f32_t%u", threads);
        batcher = make_batcher(&b, IMGPACK_LAYOUT_NCHW, IMGPACK_DTYPE_FLOAT32,
                               threads);
        report(&b, name, step_batch, batcher);
        imgpack_batcher_destroy(batcher);
    }
    mdb_txn_abort(b.txn);
    mdb_env_close(b.env);
    imgpack_reader_close(b.reader);
    free(b.order);
    free(b.buffer);
    return 0;
}
