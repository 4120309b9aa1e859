/*
 * Weighted epoch order: indices drawn with replacement, each with
 * probability weight[i] / sum(weights), as torch's WeightedRandomSampler
 * draws them, and the weights that make every class equally likely.
 *
 * An epoch is one stream of imgpack_sampler_count(num_samples, W, 0) * W
 * draws; draw k depends on (seed, epoch, k) alone (the counter-based
 * generator of random.h), so rank r computes only its own draws k = r,
 * r+W, r+2W, ... and the ranks' lists interleave into the stream a single
 * process would draw. A draw is a uniform value in [0, total) located by
 * binary search in the cumulative weights: O(n) to set up per call and
 * O(log n) per draw, with no table beyond the n prefix sums.
 */
#include <math.h>
#include <stdlib.h>

#include "imgpack/reader.h"
#include "random.h"

/* Keeps this stream apart from the shuffle's (sampler.c) for one seed. */
#define WEIGHTED_STREAM 0x5851f42d4c957f2du

imgpack_status imgpack_sampler_weighted(const double *weights, uint64_t n,
                                        uint64_t num_samples, uint64_t seed,
                                        uint64_t epoch, uint32_t rank,
                                        uint32_t world_size, uint64_t *out,
                                        uint64_t capacity) {
    imgpack_status status = IMGPACK_OK;
    double *cumulative = NULL, total = 0.0;
    uint64_t count = imgpack_sampler_count(num_samples, world_size, 0);
    uint64_t last_positive = 0, base;

    if (world_size == 0 || rank >= world_size || capacity < count ||
        (count > 0 && !out) || (n > 0 && !weights) || (n == 0 && count > 0)) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    if (count == 0)
        goto done;
    if (n > SIZE_MAX / sizeof *cumulative ||
        !(cumulative = malloc(n * sizeof *cumulative))) {
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!(weights[i] >= 0.0) || isinf(weights[i])) {
            status = IMGPACK_ERR_INVALID_ARG;
            goto done;
        }
        if (weights[i] > 0.0)
            last_positive = i;
        cumulative[i] = total += weights[i];
    }
    if (!(total > 0.0) || isinf(total)) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    base = imgpack__mix64(seed ^ WEIGHTED_STREAM) ^
           imgpack__mix64(epoch + 0x632be59bd9b4e019u);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t k = rank + i * world_size;
        /* 53 random bits: a double in [0, 1), scaled to [0, total). */
        double u = (double)(imgpack__mix64(base + k) >> 11) * 0x1p-53 * total;
        /* The first record whose cumulative weight exceeds u: zero-weight
           records never are. Rounding can put u at total; the last
           positive record takes it. */
        uint64_t lo = 0, hi = n;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (cumulative[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        out[i] = lo < n ? lo : last_positive;
    }
done:
    free(cumulative);
    return status;
}

imgpack_status imgpack_sampler_balanced_weights(const uint32_t *labels,
                                                uint64_t n, double *weights) {
    uint64_t *per_class = NULL;
    uint64_t classes = 0;

    if (n > 0 && (!labels || !weights))
        return IMGPACK_ERR_INVALID_ARG;
    for (uint64_t i = 0; i < n; i++)
        if (labels[i] >= classes)
            classes = (uint64_t)labels[i] + 1;
    if (n == 0)
        return IMGPACK_OK;
    if (classes > SIZE_MAX / sizeof *per_class ||
        !(per_class = calloc(classes, sizeof *per_class)))
        return IMGPACK_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++)
        per_class[labels[i]]++;
    /* Each class sums to 1, so a draw picks every present class with
       probability 1 / (classes present), then a record within it
       uniformly. */
    for (uint64_t i = 0; i < n; i++)
        weights[i] = 1.0 / (double)per_class[labels[i]];
    free(per_class);
    return IMGPACK_OK;
}
