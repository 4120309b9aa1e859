/*
 * The random augmentations of training batches, keyed by sample: every
 * draw for record `index` in epoch `epoch` comes from streams of one key
 * made of (seed, epoch, index), so it never depends on batches or threads.
 * imgpack_augment_params (include/imgpack/reader.h) documents the
 * generator and the box algorithm.
 */
#ifndef IMGPACK_SRC_AUGMENT_H
#define IMGPACK_SRC_AUGMENT_H

#include <stdint.h>

#include "imgpack/reader.h"

/* RandomResizedCrop's ranges: scale (of the area) and ratio (w/h). */
typedef struct imgpack__rrc_ranges {
    double scale_min, scale_max;
    double ratio_min, ratio_max;
} imgpack__rrc_ranges;

/* 1 if the ranges are finite with 0 < min <= max, else 0. */
int imgpack__rrc_ranges_valid(const imgpack__rrc_ranges *r);

/* The key of one sample's streams. */
uint64_t imgpack__augment_key(uint64_t seed, uint64_t epoch, uint64_t index);

/* The RandomResizedCrop box of a width x height record (both > 0) into
   out's top, left, height and width; out->flip is left alone. */
void imgpack__augment_box(uint64_t key, uint32_t width, uint32_t height,
                          const imgpack__rrc_ranges *r, imgpack_augment *out);

/* RandomCrop's offsets: top uniform in 0..slack_top, then left in
   0..slack_left, from the box stream (torchvision draws top first). */
void imgpack__augment_offsets(uint64_t key, uint32_t slack_top,
                              uint32_t slack_left, uint32_t *top,
                              uint32_t *left);

/* RandomHorizontalFlip's coin: 1 with probability 1/2. */
int32_t imgpack__augment_flip(uint64_t key);

#endif
