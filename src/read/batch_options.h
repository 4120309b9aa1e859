/*
 * What a batcher is configured with: the public imgpack_batch_options,
 * defined here so that batch.c can copy it into the batcher it makes.
 */
#ifndef IMGPACK_SRC_BATCH_OPTIONS_H
#define IMGPACK_SRC_BATCH_OPTIONS_H

#include <stdint.h>

#include "augment.h"
#include "batch_convert.h"

struct imgpack_batch_options {
    int32_t layout;
    int32_t dtype;
    float mean[IMGPACK__CONVERT_MAX_CHANNELS];
    float std[IMGPACK__CONVERT_MAX_CHANNELS];
    uint32_t n_norm; /* values given in mean/std: 1 or the channel count */
    uint32_t crop_width, crop_height;
    int32_t crop_mode;
    imgpack__rrc_ranges rrc;
    int32_t flip;
    uint32_t threads;
    uint32_t prefetch;
};

#endif
