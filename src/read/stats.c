/*
 * Per-channel statistics of a store: the mean and std that
 * torchvision's Normalize wants, computed from the records themselves.
 *
 * One pass, shared per record: one loop of a team (parallel.h), whose
 * threads claim positions of the index list, each inside one read
 * session on the reader (raw records are read in place from the
 * map, jpeg/webp ones decoded by the thread's own decoder), and add every
 * value into its own partial: per channel the sum and the sum of squares
 * as 64-bit integers, which is exact for 8-bit values (see
 * IMGPACK_STATS_MAX_PIXELS). The partials are merged after the join, so
 * the sums, and with them the result, are the same for any thread count
 * and claiming order. Only the final mean and variance are floating point.
 *
 * A failure stops the claiming; the first one's message, written by
 * whichever thread met it, becomes the reader's errmsg.
 */
#include <math.h>
#include <stdlib.h>

#include "parallel.h"
#include "reader_internal.h"

/* Channels a record may have: gray or RGB. */
#define MAX_CHANNELS 3

/* One thread's exact sums. */
typedef struct partial {
    uint64_t sum[MAX_CHANNELS];
    uint64_t sumsq[MAX_CHANNELS];
    uint64_t pixels;
} partial;

/* The pass, as every thread sees it. */
typedef struct stats_run {
    imgpack_reader *reader;
    const uint64_t *indices; /* NULL: position i is record i */
    imgpack__parallel team;
    partial *parts; /* one per thread of the team */
} stats_run;

/* Adds the values of one image to `part`. Per row the sums fit 32 bits,
   which keeps the inner loop narrow: the reader admits rows of at most
   65536 pixels, and 65536 * 255^2 < 2^32. */
static void accumulate(partial *part, const imgpack__pixels *px) {
    for (uint32_t y = 0; y < px->height; y++) {
        const uint8_t *p = px->data + (size_t)y * px->stride;
        uint32_t s0 = 0, s1 = 0, s2 = 0, q0 = 0, q1 = 0, q2 = 0;
        if (px->channels == 3) {
            for (uint32_t x = 0; x < px->width; x++, p += 3) {
                uint32_t r = p[0], g = p[1], b = p[2];
                s0 += r;
                s1 += g;
                s2 += b;
                q0 += r * r;
                q1 += g * g;
                q2 += b * b;
            }
        } else {
            for (uint32_t x = 0; x < px->width; x++, p++) {
                s0 += *p;
                q0 += (uint32_t)*p * *p;
            }
            s1 = s2 = s0;
            q1 = q2 = q0;
        }
        part->sum[0] += s0;
        part->sum[1] += s1;
        part->sum[2] += s2;
        part->sumsq[0] += q0;
        part->sumsq[1] += q1;
        part->sumsq[2] += q2;
    }
    part->pixels += (uint64_t)px->width * px->height;
}

/* Claims and adds records until none are left or the pass failed: the
   body of the team's loop. */
static void work(void *context, uint32_t thread) {
    stats_run *run = context;
    imgpack__read_slot *s;
    imgpack__record_header h;
    imgpack__pixels px;
    uint64_t i;
    imgpack_status status = imgpack__reader_begin(run->reader, &s);
    if (status) {
        imgpack__parallel_fail(&run->team, status,
                               imgpack__reader_message(run->reader));
        return;
    }
    while (imgpack__parallel_claim(&run->team, &i)) {
        uint64_t index = run->indices ? run->indices[i] : i;
        status = imgpack__reader_pixels(run->reader, s, index, NULL, &h, &px);
        if (status) {
            imgpack__parallel_fail(&run->team, status,
                                   imgpack__reader_message(run->reader));
            break;
        }
        accumulate(&run->parts[thread], &px);
    }
    imgpack__reader_end(run->reader, s);
}

static void merge(partial *into, const partial *from) {
    for (int c = 0; c < MAX_CHANNELS; c++) {
        into->sum[c] += from->sum[c];
        into->sumsq[c] += from->sumsq[c];
    }
    into->pixels += from->pixels;
}

imgpack_status imgpack_reader_channel_stats(imgpack_reader *r,
                                            const uint64_t *indices, uint64_t n,
                                            uint32_t threads, double *mean,
                                            double *std, uint32_t n_values) {
    imgpack_status status = IMGPACK_OK;
    stats_run run = {0};
    partial total = {0};
    char message[IMGPACK__ERRMSG_SIZE];
    uint32_t channels;

    if (!r)
        return IMGPACK_ERR_INVALID_ARG;
    run.reader = r;
    run.indices = indices;
    channels = imgpack_reader_channels(r);
    if (n == 0 || !mean || !std || n_values < channels ||
        channels > MAX_CHANNELS || threads > IMGPACK__MAX_THREADS)
        return imgpack__reader_fail(r, IMGPACK_ERR_INVALID_ARG,
                                    "channel stats: no records, no output "
                                    "or too many threads");
    if (threads == 0)
        threads = imgpack__parallel_cores();
    if (threads > n)
        threads = (uint32_t)n;
    if (!(run.parts = calloc(threads, sizeof *run.parts)))
        return imgpack__reader_fail(r, IMGPACK_ERR_NOMEM,
                                    "channel stats: out of memory");
    if ((status = imgpack__parallel_create(&run.team, threads, "imgpack-s"))) {
        status = imgpack__reader_fail(r, status,
                                      "channel stats: cannot make threads");
        goto out;
    }
    status = imgpack__parallel_run(&run.team, n, work, &run, message);
    imgpack__parallel_destroy(&run.team);
    if (status != IMGPACK_OK) {
        status = imgpack__reader_fail(r, status, message);
        goto out;
    }
    for (uint32_t t = 0; t < threads; t++)
        merge(&total, &run.parts[t]);
    if (total.pixels > IMGPACK_STATS_MAX_PIXELS) {
        status = imgpack__reader_fail(r, IMGPACK_ERR_RANGE,
                                      "channel stats: more pixels than the "
                                      "sums can hold exactly");
        goto out;
    }
    /* E[v^2] - E[v]^2 in doubles loses at most a few ulps of E[v^2] (under
       65025) to cancellation: far below 1e-9 of the 0..1 std. */
    for (uint32_t c = 0; c < channels; c++) {
        double m = (double)total.sum[c] / (double)total.pixels;
        double var = (double)total.sumsq[c] / (double)total.pixels - m * m;
        mean[c] = m / 255.0;
        std[c] = (var > 0 ? sqrt(var) : 0.0) / 255.0;
    }
out:
    free(run.parts);
    return status;
}
