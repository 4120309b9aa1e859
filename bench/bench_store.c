/*
 * bench_store: what the writer's LMDB half costs per record at a given
 * batch size. Appends RECORDS records of a 224x224 RGB record's size
 * (150,576 bytes) to a new store in batches of BATCH, through the store
 * API the writer uses (begin, put, commit), with the allocator tuned as the
 * imgpack command tunes it, then prints CPU and wall milliseconds per
 * record, the final sync included. Run each batch size in a fresh process:
 * a pack meets its heap fresh, and the cost of faulting in LMDB's pages for
 * the first batch is part of what is measured.
 *
 *   bench_store BATCH [RECORDS]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "store.h"

#define RECORD_BYTES (16 + 224 * 224 * 3)

static double cpu_ms(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e3 +
           (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e3;
}

static double wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    int batch = argc > 1 ? atoi(argv[1]) : 0;
    int records = argc > 2 ? atoi(argv[2]) : 320;
    char dir[] = "/tmp/imgpack-bench-store-XXXXXX";
    uint8_t *value = malloc(RECORD_BYTES);
    imgpack__store s;
    imgpack__error err;
    if (batch < 1 || records < 1) {
        fprintf(stderr, "usage: bench_store BATCH [RECORDS]\n");
        return 2;
    }
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (!value || !mkdtemp(dir) || imgpack__store_create(&s, dir, &err)) {
        fprintf(stderr, "bench_store: cannot create a store in /tmp\n");
        return 1;
    }
    memset(value, 7, RECORD_BYTES);
    imgpack__meta_entry meta = {"count", "0", 1};
    double cpu0 = cpu_ms(), wall0 = wall_ms();
    for (int first = 0; first < records; first += batch) {
        int n = records - first < batch ? records - first : batch;
        imgpack_status status = imgpack__store_begin(
            &s, (size_t)n * RECORD_BYTES + 1, (size_t)n + 1, &err);
        for (int i = 0; i < n && status == IMGPACK_OK; i++)
            status = imgpack__store_put(&s, (uint64_t)(first + i), value,
                                        RECORD_BYTES, &err);
        if (status == IMGPACK_OK)
            status = imgpack__store_commit(&s, &meta, 1, &err);
        if (status != IMGPACK_OK) {
            fprintf(stderr, "bench_store: %s\n", err.message);
            return 1;
        }
    }
    imgpack__store_sync(&s, &err);
    printf("batch %d: %.3f ms CPU, %.3f ms wall per record\n", batch,
           (cpu_ms() - cpu0) / records, (wall_ms() - wall0) / records);
    imgpack__store_close(&s);
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    free(value);
    return system(command) == 0 ? 0 : 1;
}
