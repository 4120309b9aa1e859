/*
 * imgpack bench: how fast a store reads, in batches, in the order a
 * training loop would use. Uses the public reader API only.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "imgpack/reader.h"

#define DEFAULT_BATCH 256
#define DEFAULT_SECONDS 5
/* Beyond this a batch of float32 224x224 images needs over 2 GB. */
#define MAX_BATCH 4096
/* Stores whose records differ in size are cropped to torchvision's usual
   training size unless --crop says otherwise. */
#define DEFAULT_VARYING_CROP 224

static void print_help(void) {
    printf("Usage: imgpack bench OUT_DIR [OPTIONS]\n\n"
           "Reads the store OUT_DIR in batches for a while and reports\n"
           "records/s and MB/s, for the access pattern chosen.\n\n"
           "Options:\n"
           "  --order O      random (a shuffled epoch, default) or sequential\n"
           "  --batch B      records per batch (default %d, at most %d)\n"
           "  --threads T    threads filling a batch (default 1; 0 = all "
           "cores)\n"
           "  --layout L     f32: float32 NCHW normalized with ImageNet's\n"
           "                 mean/std (default); u8: uint8 NHWC pixels\n"
           "  --crop N       center crop to NxN (default: the record size, or\n"
           "                 %d when records differ in size)\n"
           "  --seconds S    how long to read (default %d)\n"
           "  --help         this text\n\n"
           "MB/s counts stored bytes read, at the store's mean record size\n"
           "(data.mdb size / records), and bytes of batches written.\n"
           "Exit status: 0 done, 1 failed, 2 bad command line.\n",
           DEFAULT_BATCH, MAX_BATCH, DEFAULT_VARYING_CROP, DEFAULT_SECONDS);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct bench_args {
    int random;
    uint64_t batch;
    uint64_t threads;
    int32_t layout, dtype;
    uint64_t crop;
    uint64_t seconds;
} bench_args;

static int parse_args(int argc, char **argv, bench_args *a) {
    static const struct option options[] = {
        {"order", required_argument, NULL, 'o'},
        {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"layout", required_argument, NULL, 'l'},
        {"crop", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int option;
    *a = (bench_args){
        1, DEFAULT_BATCH,  1, IMGPACK_LAYOUT_NCHW, IMGPACK_DTYPE_FLOAT32,
        0, DEFAULT_SECONDS};
    opterr = 0;
    /* Options may follow OUT_DIR, as in the usage line: let getopt permute. */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'h':
            print_help();
            return -1;
        case 'o':
            if (strcmp(optarg, "random") && strcmp(optarg, "sequential"))
                return cli_usage_error("bench",
                                       "--order takes random or "
                                       "sequential, not '%s'",
                                       optarg);
            a->random = strcmp(optarg, "random") == 0;
            break;
        case 'b':
            if (cli_parse_u64(optarg, 1, MAX_BATCH, &a->batch))
                return cli_usage_error("bench",
                                       "--batch takes 1 to %d, not "
                                       "'%s'",
                                       MAX_BATCH, optarg);
            break;
        case 't':
            if (cli_parse_u64(optarg, 0, 256, &a->threads))
                return cli_usage_error("bench",
                                       "--threads takes 0 to 256, "
                                       "not '%s'",
                                       optarg);
            break;
        case 'l':
            if (strcmp(optarg, "u8") && strcmp(optarg, "f32"))
                return cli_usage_error("bench",
                                       "--layout takes u8 or f32, "
                                       "not '%s'",
                                       optarg);
            if (strcmp(optarg, "u8") == 0) {
                a->layout = IMGPACK_LAYOUT_NHWC;
                a->dtype = IMGPACK_DTYPE_UINT8;
            }
            break;
        case 'c':
            if (cli_parse_u64(optarg, 1, 16384, &a->crop))
                return cli_usage_error("bench",
                                       "--crop takes 1 to 16384, "
                                       "not '%s'",
                                       optarg);
            break;
        case 's':
            if (cli_parse_u64(optarg, 1, 86400, &a->seconds))
                return cli_usage_error("bench",
                                       "--seconds takes 1 to 86400, "
                                       "not '%s'",
                                       optarg);
            break;
        default:
            return cli_usage_error("bench",
                                   "unknown or incomplete option "
                                   "'%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("bench", "expected OUT_DIR, the store");
    return 0;
}

static imgpack_batcher *make_batcher(imgpack_reader *r, const bench_args *a) {
    imgpack_batch_options *o = NULL;
    imgpack_batcher *b = NULL;
    uint64_t crop = a->crop;
    if (!crop && !imgpack_reader_width(r))
        crop = DEFAULT_VARYING_CROP;
    if (imgpack_batch_options_create(&o) ||
        imgpack_batch_options_set_layout(o, a->layout) ||
        imgpack_batch_options_set_dtype(o, a->dtype) ||
        imgpack_batch_options_set_threads(o, (uint32_t)a->threads) ||
        imgpack_batch_options_set_crop(o, (uint32_t)crop, (uint32_t)crop,
                                       IMGPACK_CROP_CENTER)) {
        cli_error(imgpack_reader_path(r), "cannot set batch options");
        goto out;
    }
    if (imgpack_batcher_create(&b, r, o)) {
        cli_error(NULL, "%s", imgpack_batcher_errmsg(b));
        imgpack_batcher_destroy(b);
        b = NULL;
    }
out:
    imgpack_batch_options_destroy(o);
    return b;
}

/* Reads batches for a->seconds; returns 0 and the records read, or -1. */
static int run(imgpack_batcher *b, const uint64_t *order, uint64_t count,
               const bench_args *a, uint8_t *out, uint64_t capacity,
               uint64_t *records, double *seconds) {
    uint64_t *indices = malloc(a->batch * sizeof *indices);
    int64_t *labels = malloc(a->batch * sizeof *labels);
    uint64_t pos = 0, done = 0;
    int rc = -1;
    double t0 = now(), t = t0;
    if (!indices || !labels) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    while ((t = now()) - t0 < (double)a->seconds) {
        for (uint64_t i = 0; i < a->batch; i++, pos = (pos + 1) % count)
            indices[i] = order[pos];
        if (imgpack_batcher_run(b, indices, a->batch, 0, 0, out, capacity,
                                labels)) {
            cli_error(NULL, "%s", imgpack_batcher_errmsg(b));
            goto out;
        }
        done += a->batch;
    }
    *records = done;
    *seconds = t - t0;
    rc = 0;
out:
    free(indices);
    free(labels);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    bench_args a;
    imgpack_reader *r = NULL;
    imgpack_batcher *b = NULL;
    uint64_t *order = NULL, records, count;
    uint8_t *out = NULL;
    double seconds;
    int code = parse_args(argc, argv, &a);
    char path[4096];
    struct stat st;

    if (code != 0) {
        code = code < 0 ? EXIT_OK : code;
        goto done;
    }
    code = EXIT_FAILED;
    const char *dir = argv[optind];
    if (imgpack_reader_open(&r, dir, 0)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(r));
        goto done;
    }
    count = imgpack_reader_count(r);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (count == 0 || stat(path, &st) != 0) {
        cli_error(dir, "no records to read");
        goto done;
    }
    if (!(b = make_batcher(r, &a)))
        goto done;
    uint64_t capacity = a.batch * imgpack_batcher_image_bytes(b);
    order = malloc(count * sizeof *order);
    out = malloc(capacity);
    if (!order || !out ||
        imgpack_sampler_indices(count, 0, 0, a.random, 0, 1, 0, order, count)) {
        cli_error(NULL, "out of memory");
        goto done;
    }
    if (run(b, order, count, &a, out, capacity, &records, &seconds))
        goto done;
    double rate = (double)records / seconds;
    double in_mb = rate * ((double)st.st_size / (double)count) / 1e6;
    double out_mb = rate * (double)imgpack_batcher_image_bytes(b) / 1e6;
    printf("%s: %" PRIu64 " records, %s; %s order, batch %" PRIu64 ", %" PRIu64
           " thread%s, %s %ux%u\n",
           dir, count, imgpack_format_name(imgpack_reader_format(r)),
           a.random ? "random" : "sequential", a.batch, a.threads,
           a.threads == 1 ? "" : "s",
           a.dtype == IMGPACK_DTYPE_UINT8 ? "uint8 NHWC" : "float32 NCHW",
           imgpack_batcher_width(b), imgpack_batcher_height(b));
    printf("%.0f records/s, %.1f MB/s read, %.1f MB/s of batches "
           "(%" PRIu64 " records in %.1f s)\n",
           rate, in_mb, out_mb, records, seconds);
    code = EXIT_OK;
done:
    free(order);
    free(out);
    imgpack_batcher_destroy(b);
    imgpack_reader_close(r);
    return code;
}
