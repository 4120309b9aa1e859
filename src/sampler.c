/*
 * Epoch order: which record indices rank r reads in epoch e, following
 * torch.utils.data.DistributedSampler's partition rule exactly (pad by
 * repeating the start, or drop the tail; rank r takes every world_size-th
 * position from r) over either 0..n-1 or our own seeded permutation.
 *
 * The permutation is Fisher-Yates driven by splitmix64 from (seed, epoch),
 * with rejection sampling so every permutation is equally likely. It is not
 * torch's generator: the same seed gives a different order than torch's,
 * but the same order on every rank and machine, which is what partitioning
 * needs.
 */
#include <stdlib.h>

#include "imgpack/reader.h"
#include "random.h"

uint64_t imgpack_sampler_count(uint64_t n, uint32_t world_size,
                               int32_t drop_last) {
    if (world_size == 0)
        return 0;
    /* DistributedSampler: ceil((n - W) / W) with drop_last when W does not
       divide n, which is n / W; otherwise ceil(n / W). */
    return drop_last ? n / world_size : n / world_size + (n % world_size != 0);
}

imgpack_status imgpack_sampler_indices(uint64_t n, uint64_t seed,
                                       uint64_t epoch, int32_t shuffle,
                                       uint32_t rank, uint32_t world_size,
                                       int32_t drop_last, uint64_t *out,
                                       uint64_t capacity) {
    imgpack_status status = IMGPACK_OK;
    uint64_t *perm = NULL;
    uint64_t count = imgpack_sampler_count(n, world_size, drop_last);

    if (world_size == 0 || rank >= world_size || capacity < count ||
        (count > 0 && !out)) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    if (count == 0)
        goto done;
    if (shuffle) {
        uint64_t state = imgpack__mix64(seed) ^ imgpack__mix64(epoch + 0x632be59bd9b4e019u);
        if (n > SIZE_MAX / sizeof *perm || !(perm = malloc(n * sizeof *perm))) {
            status = IMGPACK_ERR_NOMEM;
            goto done;
        }
        for (uint64_t i = 0; i < n; i++)
            perm[i] = i;
        for (uint64_t i = n - 1; i > 0; i--) {
            uint64_t j = imgpack__uniform(&state, i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    }
    /* Position k of the padded list is position k mod n of the order: the
       padding repeats the start, as many times over as it takes. */
    for (uint64_t i = 0; i < count; i++) {
        uint64_t k = (rank + i * world_size) % n;
        out[i] = perm ? perm[k] : k;
    }
done:
    free(perm);
    return status;
}
