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
 *
 * The windowed order (imgpack_sampler_indices_windowed) shuffles windows
 * of consecutive records and the records within each window, for devices
 * where reading neighbours is much cheaper than reading at random.
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

/* Fisher-Yates over a[0..len-1], drawing from *state. */
static void shuffle_in_place(uint64_t *a, uint64_t len, uint64_t *state) {
    for (uint64_t i = len; i > 1; i--) {
        uint64_t j = imgpack__uniform(state, i), t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/*
 * The epoch's order into perm[0..n-1]. Windowed: the windows [0, W),
 * [W, 2W), ... (the last may be shorter) in a shuffled order, each one's
 * records shuffled within it; the window order is drawn first, then each
 * window's shuffle in the order the windows come out. With W <= 1 or
 * W >= n one side draws nothing, so the order is the plain permutation.
 */
static imgpack_status permutation(uint64_t n, uint64_t seed, uint64_t epoch,
                                  uint64_t window, uint64_t *perm) {
    uint64_t state =
        imgpack__mix64(seed) ^ imgpack__mix64(epoch + 0x632be59bd9b4e019u);
    if (window <= 1 || window >= n) {
        for (uint64_t i = 0; i < n; i++)
            perm[i] = i;
        shuffle_in_place(perm, n, &state);
        return IMGPACK_OK;
    }
    uint64_t windows = n / window + (n % window != 0);
    uint64_t *order = malloc(windows * sizeof *order);
    if (!order)
        return IMGPACK_ERR_NOMEM;
    for (uint64_t w = 0; w < windows; w++)
        order[w] = w;
    shuffle_in_place(order, windows, &state);
    uint64_t *p = perm;
    for (uint64_t w = 0; w < windows; w++) {
        uint64_t first = order[w] * window;
        uint64_t len = n - first < window ? n - first : window;
        for (uint64_t i = 0; i < len; i++)
            p[i] = first + i;
        shuffle_in_place(p, len, &state);
        p += len;
    }
    free(order);
    return IMGPACK_OK;
}

imgpack_status imgpack_sampler_indices(uint64_t n, uint64_t seed,
                                       uint64_t epoch, int32_t shuffle,
                                       uint32_t rank, uint32_t world_size,
                                       int32_t drop_last, uint64_t *out,
                                       uint64_t capacity) {
    return imgpack_sampler_indices_windowed(
        n, seed, epoch, shuffle, 0, rank, world_size, drop_last, out, capacity);
}

imgpack_status imgpack_sampler_indices_windowed(
    uint64_t n, uint64_t seed, uint64_t epoch, int32_t shuffle, uint64_t window,
    uint32_t rank, uint32_t world_size, int32_t drop_last, uint64_t *out,
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
        if (n > SIZE_MAX / sizeof *perm || !(perm = malloc(n * sizeof *perm))) {
            status = IMGPACK_ERR_NOMEM;
            goto done;
        }
        if ((status = permutation(n, seed, epoch, window, perm)))
            goto done;
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
