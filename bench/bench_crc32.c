/*
 * bench_crc32: CRC-32 speed of imgpack__crc32 (src/common/crc32.c),
 * libdeflate's libdeflate_crc32 and zlib's crc32 on the buffers a store
 * checksums: a 150 KB encoded image, a 4 KB one, and a 28x28 gray raw record
 * (MNIST). imgpack__crc32 calls libdeflate, so its column shows what the call
 * costs (nothing measurable); until commit 1872968 it was imgpack's own
 * carry-less multiply folding, and the figures that chose libdeflate over
 * it (docs/BENCHMARKS.md "CRC-32") come from this program at that commit.
 * The three run back to back in each round, in an order that rotates from
 * round to round, so that a busy machine slows them alike; it prints each
 * one's median GB/s over the rounds and the median of the per-round ratios
 * to libdeflate (above 1: faster than libdeflate). All three must give the
 * same value, or it fails.
 *
 *   bench_crc32 [ROUNDS]
 */
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zlib.h>

#include "crc32.h"

#define DEFAULT_ROUNDS 101
/* Bytes checksummed per timed measurement: long enough (about a
   millisecond) for the clock, short enough that a round is quick. */
#define BYTES_PER_MEASURE ((size_t)16 << 20)

static const size_t sizes[] = {150 * 1024, 4 * 1024, 28 * 28};
static const char *const size_names[] = {"150 KB", "4 KB", "28x28"};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static uint32_t run_imgpack(const uint8_t *p, size_t n) {
    return imgpack__crc32(p, n);
}
static uint32_t run_libdeflate(const uint8_t *p, size_t n) {
    return libdeflate_crc32(0, p, n);
}
static uint32_t run_zlib(const uint8_t *p, size_t n) {
    return (uint32_t)crc32(0, p, (uInt)n);
}

typedef uint32_t (*crc_fn)(const uint8_t *, size_t);
static const crc_fn impls[] = {run_imgpack, run_libdeflate, run_zlib};
static const char *const impl_names[] = {"imgpack", "libdeflate", "zlib"};
#define NIMPLS (sizeof(impls) / sizeof(impls[0]))
#define LIBDEFLATE 1

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* GB/s of `fn` over BYTES_PER_MEASURE bytes in buffers of `size`; the
   values are folded into *sink so that no call can be left out. */
static double measure(crc_fn fn, const uint8_t *data, size_t size,
                      uint32_t *sink) {
    size_t calls = BYTES_PER_MEASURE / size;
    uint32_t acc = 0;
    double t0 = now_s();
    for (size_t i = 0; i < calls; i++)
        acc ^= fn(data, size);
    double t = now_s() - t0;
    *sink ^= acc;
    return (double)(calls * size) / t / 1e9;
}

int main(int argc, char **argv) {
    int rc = 1;
    int rounds = argc > 1 ? atoi(argv[1]) : DEFAULT_ROUNDS;
    uint8_t *data = malloc(sizes[0]);
    double *gbps = NULL, *ratio = NULL, *column = NULL;
    uint32_t seed = 12345, sink = 0;

    if (rounds < 1)
        rounds = 1;
    gbps = malloc(sizeof(double) * NSIZES * NIMPLS * (size_t)rounds);
    ratio = malloc(sizeof(double) * NSIZES * NIMPLS * (size_t)rounds);
    column = malloc(sizeof(double) * (size_t)rounds);
    if (data == NULL || gbps == NULL || ratio == NULL || column == NULL) {
        fprintf(stderr, "bench_crc32: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < sizes[0]; i++) {
        seed = seed * 1103515245u + 12345u;
        data[i] = (uint8_t)(seed >> 16);
    }
    for (size_t s = 0; s < NSIZES; s++)
        for (size_t k = 1; k < NIMPLS; k++)
            if (impls[k](data, sizes[s]) != impls[0](data, sizes[s])) {
                fprintf(stderr, "bench_crc32: %s and %s differ on %zu bytes\n",
                        impl_names[0], impl_names[k], sizes[s]);
                goto done;
            }

#define AT(s, k, r) (((s)*NIMPLS + (k)) * (size_t)rounds + (size_t)(r))
    for (int r = 0; r < rounds; r++)
        for (size_t s = 0; s < NSIZES; s++) {
            for (size_t i = 0; i < NIMPLS; i++) {
                size_t k = (i + (size_t)r) % NIMPLS;
                gbps[AT(s, k, r)] = measure(impls[k], data, sizes[s], &sink);
            }
            for (size_t k = 0; k < NIMPLS; k++)
                ratio[AT(s, k, r)] =
                    gbps[AT(s, k, r)] / gbps[AT(s, LIBDEFLATE, r)];
        }

    printf("CRC-32, median of %d interleaved rounds, GB/s "
           "(x: median ratio to libdeflate in the same round)\n",
           rounds);
    printf("%-8s", "buffer");
    for (size_t k = 0; k < NIMPLS; k++)
        printf("  %-17s", impl_names[k]);
    printf("\n");
    for (size_t s = 0; s < NSIZES; s++) {
        printf("%-8s", size_names[s]);
        for (size_t k = 0; k < NIMPLS; k++) {
            for (int r = 0; r < rounds; r++)
                column[r] = gbps[AT(s, k, r)];
            double speed = median(column, rounds);
            for (int r = 0; r < rounds; r++)
                column[r] = ratio[AT(s, k, r)];
            printf("  %6.2f (x%.2f)    ", speed, median(column, rounds));
        }
        printf("\n");
    }
#undef AT
    /* Printed so that the compiler must compute every checksum. */
    printf("(checksum of all calls: %08x)\n", (unsigned)sink);
    rc = 0;
done:
    free(column);
    free(ratio);
    free(gbps);
    free(data);
    return rc;
}
