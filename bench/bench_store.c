/*
 * bench_store: the writer alone, fed precomputed records as fast as it
 * takes them, and what the machine under it can do at all.
 *
 * For each record size (default 816, 150,560 and 602,144 bytes: a 28x28
 * digit, a 224x224 and a 448x448 RGB record with their 32-byte header),
 * ROUNDS rounds, interleaved, of:
 *   writer   records through imgpack__writer_add into a new store and
 *            catalog, as a pack's writer thread takes them (catalog rows,
 *            batches of IMGPACK__BATCH_BYTES, the final syncs), and
 *   lmdb     the same records through the store API alone (begin, put,
 *            commit per 32 MiB): the writer minus the catalog;
 * and, once per round, the floors under both, on the same bytes:
 *   memcpy   copying the records into a 32 MiB buffer (what a put does),
 *   write    write(2) of 32 MiB chunks into a new file (the page cache),
 *   +sync    the same with an fdatasync per chunk (a batch's commit).
 * The records are made before each timed run, each in its own buffer as
 * a worker makes it; the run is timed whole, store creation and final
 * syncs included. Prints medians: records/s, MB/s, and the CPU of the
 * process (the writer's threads) per record.
 *
 *   bench_store [DIR [ROUNDS [MB_PER_SIZE [RECORD_BYTES...]]]]
 *
 * DIR (default /tmp) must be on the disk to measure.
 */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "record.h"
#include "sources.h"
#include "store.h"
#include "transform.h"
#include "writer.h"

#define MAX_SIZES 8
#define MAX_ROUNDS 15
#define CHUNK ((size_t)32 << 20)
#define CLASSES 10

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall and CPU seconds (of the whole process: the writer's threads) of
   one timed run. */
typedef struct timer {
    double wall, cpu;
} timer;

static void start(timer *t) {
    t->wall = -now(CLOCK_MONOTONIC);
    t->cpu = -now(CLOCK_PROCESS_CPUTIME_ID);
}

static void stop(timer *t) {
    t->wall += now(CLOCK_MONOTONIC);
    t->cpu += now(CLOCK_PROCESS_CPUTIME_ID);
}

static void fail(const char *what, const imgpack__error *err) {
    fprintf(stderr, "bench_store: %s: %s\n", what, err ? err->message : "");
    exit(1);
}

static void make_dir(const char *base, char dir[4200]) {
    snprintf(dir, 4200, "%s/imgpack-bench-store-XXXXXX", base);
    if (!mkdtemp(dir))
        fail(dir, NULL);
}

static void remove_dir(const char *dir) {
    char command[4300];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0)
        fail(dir, NULL);
}

/* A source of `n` items in CLASSES classes, as a folder listing gives. */
static void make_source(imgpack__source *src, size_t n) {
    memset(src, 0, sizeof *src);
    src->ops = &imgpack__source_folder;
    src->root = strdup("bench");
    src->num_classes = CLASSES;
    src->class_names = calloc(CLASSES, sizeof *src->class_names);
    src->class_descriptions = calloc(CLASSES, sizeof *src->class_names);
    src->items = calloc(n, sizeof *src->items);
    if (!src->root || !src->class_names || !src->class_descriptions ||
        !src->items)
        fail("out of memory", NULL);
    for (uint32_t c = 0; c < CLASSES; c++)
        if (asprintf(&src->class_names[c], "class%u", c) < 0)
            fail("out of memory", NULL);
    for (size_t i = 0; i < n; i++) {
        src->items[i].class_id = (uint32_t)(i * CLASSES / n);
        if (asprintf(&src->items[i].path, "class%u/image_%08zu.JPEG",
                     src->items[i].class_id, i) < 0)
            fail("out of memory", NULL);
    }
    src->num_items = n;
}

/* A record as a worker hands it over: its own buffer, filled,
   behind a header the writer accepts (a jpeg payload of any size). */
static uint8_t *make_record(const uint8_t *model, size_t size, size_t i) {
    uint8_t *value = malloc(size);
    if (!value)
        fail("out of memory", NULL);
    memcpy(value, model, size);
    memcpy(value + size - sizeof i, &i, sizeof i);
    imgpack__record_header h = {IMGPACK_FORMAT_JPEG,
                                3,
                                1,
                                1,
                                0,
                                (uint32_t)(size - IMGPACK__RECORD_HEADER_SIZE),
                                0};
    imgpack__record_header_write(value, &h);
    return value;
}

typedef struct records_job {
    const uint8_t *model;
    size_t size, n;
    uint8_t **values;
} records_job;

static void *make_records_main(void *arg) {
    records_job *job = arg;
    for (size_t i = 0; i < job->n; i++)
        job->values[i] = make_record(job->model, job->size, i);
    return NULL;
}

/* `n` records as workers hand them over: each in its own buffer, made by
   another thread (so in its malloc arena, as a worker's are) before the
   timed run, so that only the writer's work is timed. */
static uint8_t **make_records(const uint8_t *model, size_t size, size_t n) {
    records_job job = {model, size, n, malloc(n * sizeof(uint8_t *))};
    pthread_t thread;
    if (!job.values || pthread_create(&thread, NULL, make_records_main, &job))
        fail("out of memory", NULL);
    pthread_join(thread, NULL);
    return job.values;
}

static void run_writer(const char *dir, const imgpack__source *src,
                       uint8_t **values, size_t size, timer *t) {
    imgpack__transform_settings settings = {
        .resize = 256, .crop = 224, .quality = 90, .channels = 3};
    imgpack__writer_info info = {&settings, "bench_store",  0,   1,
                                 0,         src->num_items, 224, 224};
    imgpack__writer w;
    imgpack__error err;
    imgpack__result r;
    start(t);
    if (imgpack__writer_open(&w, dir, src, &info, &err))
        fail("cannot open the writer", &err);
    for (size_t i = 0; i < src->num_items; i++) {
        memset(&r, 0, sizeof r);
        r.value = values[i]; /* the writer frees it */
        r.value_size = size;
        r.src_width = 500;
        r.src_height = 375;
        r.src_bytes = 110000;
        memset(r.sha256, 'a', 64);
        if (imgpack__writer_add(&w, i, &r, &err))
            fail("cannot add a record", &err);
    }
    if (imgpack__writer_finish(&w, &err))
        fail("cannot finish", &err);
    imgpack__writer_close(&w);
    stop(t);
}

static void run_lmdb(const char *dir, size_t n, uint8_t **values, size_t size,
                     timer *t) {
    imgpack__store s;
    imgpack__error err;
    imgpack__meta_entry meta = {"count", "0", 1};
    size_t per_batch = CHUNK / size ? CHUNK / size : 1;
    start(t);
    if (imgpack__store_create(&s, dir, &err))
        fail("cannot create a store", &err);
    for (size_t first = 0; first < n; first += per_batch) {
        size_t batch = n - first < per_batch ? n - first : per_batch;
        imgpack_status status = imgpack__store_begin(
            &s,
            batch * imgpack__store_room(&s, size) + imgpack__store_room(&s, 1),
            &err);
        for (size_t i = 0; i < batch && status == IMGPACK_OK; i++)
            status = imgpack__store_put(&s, first + i, values[first + i], size,
                                        &err);
        if (status || (status = imgpack__store_commit(&s, &meta, 1, &err)))
            fail("cannot write a batch", &err);
    }
    if (imgpack__store_sync(&s, &err))
        fail("cannot sync", &err);
    imgpack__store_close(&s);
    stop(t);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
}

/* Copies `total` bytes of `size`-byte records into a CHUNK buffer,
   wrapping round: what LMDB's puts do with a batch of them. */
static double memcpy_seconds(const uint8_t *model, size_t size, size_t total) {
    uint8_t *chunk = malloc(CHUNK + size);
    if (!chunk)
        fail("out of memory", NULL);
    memset(chunk, 1, CHUNK + size); /* faulted in, as LMDB's reused pages */
    double t0 = now(CLOCK_MONOTONIC);
    for (size_t done = 0, at = 0; done < total; done += size) {
        memcpy(chunk + at, model, size);
        at = at + size > CHUNK ? 0 : at + size;
    }
    double seconds = now(CLOCK_MONOTONIC) - t0;
    if (chunk[CHUNK / 2] == 0) /* keep the copies */
        puts("");
    free(chunk);
    return seconds;
}

/* Writes `total` bytes in CHUNK writes to a new file, with an fdatasync
   after each when `sync`. */
static double write_seconds(const char *dir, const uint8_t *chunk, size_t total,
                            int sync) {
    char path[4300];
    snprintf(path, sizeof path, "%s/write.bin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fail(path, NULL);
    double t0 = now(CLOCK_MONOTONIC);
    for (size_t done = 0; done < total; done += CHUNK) {
        if (write(fd, chunk, CHUNK) != (ssize_t)CHUNK ||
            (sync && fdatasync(fd) != 0))
            fail(path, NULL);
    }
    double seconds = now(CLOCK_MONOTONIC) - t0;
    close(fd);
    unlink(path);
    return seconds;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    const char *base = argc > 1 ? argv[1] : "/tmp";
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    double mb = argc > 3 ? atof(argv[3]) : 480;
    size_t sizes[MAX_SIZES] = {32 + 28 * 28, 32 + 224 * 224 * 3,
                               32 + 448 * 448 * 3};
    int n_sizes = 3;
    if (argc > 4)
        for (n_sizes = 0; n_sizes + 4 < argc && n_sizes < MAX_SIZES; n_sizes++)
            sizes[n_sizes] = strtoull(argv[n_sizes + 4], NULL, 10);
    int sizes_ok = 1;
    for (int k = 0; k < n_sizes; k++)
        sizes_ok &= sizes[k] >= IMGPACK__RECORD_HEADER_SIZE + sizeof(size_t);
    if (rounds < 1 || rounds > MAX_ROUNDS || mb <= 0 || !sizes_ok) {
        fprintf(stderr,
                "usage: bench_store [DIR [ROUNDS [MB_PER_SIZE "
                "[RECORD_BYTES...]]]]\n"
                "  (a record holds at least %zu bytes)\n",
                IMGPACK__RECORD_HEADER_SIZE + sizeof(size_t));
        return 2;
    }
    /* As the imgpack command tunes the allocator (tools/imgpack.c). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    size_t total = (size_t)(mb * 1e6);
    uint8_t *model = malloc(sizes[0] > CHUNK ? sizes[0] : CHUNK);
    double writer_rate[MAX_SIZES][MAX_ROUNDS],
        writer_cpu[MAX_SIZES][MAX_ROUNDS];
    double lmdb_rate[MAX_SIZES][MAX_ROUNDS], lmdb_cpu[MAX_SIZES][MAX_ROUNDS];
    double copy_bw[MAX_ROUNDS], write_bw[MAX_ROUNDS], sync_bw[MAX_ROUNDS];
    size_t model_size = CHUNK;
    for (int k = 0; k < n_sizes; k++)
        if (sizes[k] > model_size)
            model_size = sizes[k];
    model = realloc(model, model_size);
    if (!model)
        fail("out of memory", NULL);
    for (size_t i = 0; i < model_size; i++)
        model[i] = (uint8_t)(i * 7 + (i >> 12));

    for (int round = 0; round < rounds; round++) {
        for (int k = 0; k < n_sizes; k++) {
            size_t n = total / sizes[k] ? total / sizes[k] : 1;
            imgpack__source src;
            timer t = {0};
            char dir[4200];
            make_dir(base, dir);
            make_source(&src, n);
            uint8_t **values = make_records(model, sizes[k], n);
            run_writer(dir, &src, values, sizes[k], &t);
            writer_rate[k][round] = (double)n / t.wall;
            writer_cpu[k][round] = t.cpu / (double)n * 1e6;
            imgpack__source_free(&src);
            free(values);
            remove_dir(dir);
            make_dir(base, dir);
            t = (timer){0};
            values = make_records(model, sizes[k], n);
            run_lmdb(dir, n, values, sizes[k], &t);
            free(values);
            lmdb_rate[k][round] = (double)n / t.wall;
            lmdb_cpu[k][round] = t.cpu / (double)n * 1e6;
            remove_dir(dir);
        }
        char dir[4200];
        make_dir(base, dir);
        copy_bw[round] = (double)total / memcpy_seconds(model, sizes[1], total);
        write_bw[round] = (double)total / write_seconds(dir, model, total, 0);
        sync_bw[round] = (double)total / write_seconds(dir, model, total, 1);
        remove_dir(dir);
    }

    printf("writer alone, %d rounds of %.0f MB per size, medians:\n", rounds,
           mb);
    printf("  %9s  %12s %9s %9s  %12s %9s %9s\n", "record", "writer rec/s",
           "MB/s", "CPU us", "lmdb rec/s", "MB/s", "CPU us");
    for (int k = 0; k < n_sizes; k++) {
        double wr = median(writer_rate[k], rounds);
        double lr = median(lmdb_rate[k], rounds);
        printf("  %9zu  %12.0f %9.0f %9.2f  %12.0f %9.0f %9.2f\n", sizes[k], wr,
               wr * (double)sizes[k] / 1e6, median(writer_cpu[k], rounds), lr,
               lr * (double)sizes[k] / 1e6, median(lmdb_cpu[k], rounds));
    }
    double copy = median(copy_bw, rounds), wr = median(write_bw, rounds),
           sy = median(sync_bw, rounds);
    printf("floors on the same bytes, MB/s (and %zu-byte records/s):\n",
           sizes[1]);
    printf("  memcpy into a 32 MiB buffer  %8.0f  (%.0f)\n", copy / 1e6,
           copy / (double)sizes[1]);
    printf("  write, 32 MiB chunks         %8.0f  (%.0f)\n", wr / 1e6,
           wr / (double)sizes[1]);
    printf("  write + fdatasync per chunk  %8.0f  (%.0f)\n", sy / 1e6,
           sy / (double)sizes[1]);
    free(model);
    return 0;
}
