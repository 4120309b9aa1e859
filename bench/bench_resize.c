/*
 * bench_resize: time imgpack__resize_crop, Resize(256) + CenterCrop(224) by
 * default, on synthetic images of typical dataset sizes (random samples;
 * the cost does not depend on the values), gray and RGB, with the vector
 * kernels and without. Prints the median time per image in milliseconds
 * over many repetitions on one core, plus "cold": the first call on a new
 * resizer, which also builds the coefficient tables and allocates the
 * intermediate rows.
 *
 *   bench_resize [REPEATS [RESIZE CROP]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "resize.h"

#define DEFAULT_REPEATS 400

static const uint32_t sizes[][2] = {
    {500, 375}, {375, 500}, {640, 480}, {1024, 768}, {200, 150},
};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of `repeats` timed calls; the first (cold cache) call is timed
   apart into *cold. */
static double time_one(imgpack__resizer *rs, const imgpack__pixels *px,
                       const imgpack__geometry *g, uint8_t *out, int repeats,
                       double *samples, double *cold) {
    size_t stride = (size_t)g->out_width * px->channels;
    double t0 = now_ms();
    imgpack__resize_crop(rs, px, g, out, stride);
    *cold = now_ms() - t0;
    for (int i = 0; i < repeats; i++) {
        t0 = now_ms();
        imgpack__resize_crop(rs, px, g, out, stride);
        samples[i] = now_ms() - t0;
    }
    qsort(samples, (size_t)repeats, sizeof(double), cmp_double);
    return samples[repeats / 2];
}

int main(int argc, char **argv) {
    int rc = 1;
    int repeats = argc > 1 ? atoi(argv[1]) : DEFAULT_REPEATS;
    uint32_t resize = argc > 3 ? (uint32_t)atoi(argv[2]) : 256;
    uint32_t crop = argc > 3 ? (uint32_t)atoi(argv[3]) : 224;
    uint8_t *data = NULL, *out = NULL;
    double *samples = NULL;
    uint64_t state = 0x9e3779b97f4a7c15u;
    imgpack__resizer *rs = NULL;

    if (repeats < 1)
        repeats = 1;
    data = malloc((size_t)1024 * 768 * 3);
    out = malloc((size_t)1024 * 1024 * 3);
    samples = malloc(sizeof(double) * (size_t)repeats);
    if (data == NULL || out == NULL || samples == NULL ||
        imgpack__resizer_create(&rs) != IMGPACK_OK) {
        fprintf(stderr, "bench_resize: out of memory\n");
        goto done;
    }
    /* Fault the output in once so that "cold" measures the resizer. */
    memset(out, 0, (size_t)1024 * 1024 * 3);
    for (size_t i = 0; i < (size_t)1024 * 768 * 3; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data[i] = (uint8_t)(state >> 24);
    }
    printf("Resize(%u) + CenterCrop(%u), median of %d, ms per image\n", resize,
           crop, repeats);
    printf("%-10s %-4s %-9s %-9s %-9s %s\n", "source", "mode", "avx2", "scalar",
           "cold", "output");
    for (size_t s = 0; s < NSIZES; s++) {
        for (uint32_t ch = 1; ch <= 3; ch += 2) {
            imgpack__pixels px = {data, sizes[s][0], sizes[s][1], ch,
                                  (size_t)sizes[s][0] * ch};
            imgpack__geometry g;
            double cold, cold_scalar, fast, slow;
            imgpack__geometry_plan(px.width, px.height, resize, crop, &g);
            /* A fresh resizer per row so `cold` includes building the
               coefficient tables. */
            imgpack__resizer_destroy(rs);
            rs = NULL;
            if (imgpack__resizer_create(&rs) != IMGPACK_OK)
                goto done;
            fast = time_one(rs, &px, &g, out, repeats, samples, &cold);
            imgpack__resizer_set_simd(rs, 0);
            slow = time_one(rs, &px, &g, out, repeats, samples, &cold_scalar);
            printf("%4ux%-5u %-4s %-9.4f %-9.4f %-9.4f %ux%u\n", px.width,
                   px.height, ch == 3 ? "RGB" : "L", fast, slow, cold,
                   g.out_width, g.out_height);
        }
    }
    rc = 0;
done:
    imgpack__resizer_destroy(rs);
    free(samples);
    free(out);
    free(data);
    return rc;
}
