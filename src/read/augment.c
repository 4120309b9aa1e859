/*
 * Sample-keyed augmentation draws: RandomResizedCrop boxes, RandomCrop
 * offsets and flips.
 *
 * A sample's key mixes seed, epoch and index through splitmix64's
 * finalizer; each kind of draw has its own stream from that key (a
 * counter mixed again per draw), so the flip never shifts the box draws
 * and a batcher with flips cuts the same boxes as one without.
 *
 * The box is torchvision 0.14's RandomResizedCrop.get_params, step for
 * step, in double precision (torch draws float32 uniforms; the law is the
 * same, the values are not). Python's round() rounds halves to even, and
 * that matters: sqrt(area * r) lands on a half often enough in small
 * images to shift the distribution. This file is built with
 * -ffp-contract=off so that every build cuts the same boxes.
 */
#include "augment.h"

#include <math.h>

#include "random.h"

/* Salts telling a sample's streams apart: arbitrary odd constants. */
#define STREAM_BOX 0x6a09e667f3bcc909u
#define STREAM_FLIP 0xbb67ae8584caa73bu

/* Attempts before the fallback: torchvision's constant. */
#define RRC_ATTEMPTS 10

int imgpack__rrc_ranges_valid(const imgpack__rrc_ranges *r) {
    /* Written so that NaN fails every comparison. */
    return r->scale_min > 0.0 && r->scale_min <= r->scale_max &&
           isfinite(r->scale_max) && r->ratio_min > 0.0 &&
           r->ratio_min <= r->ratio_max && isfinite(r->ratio_max);
}

uint64_t imgpack__augment_key(uint64_t seed, uint64_t epoch, uint64_t index) {
    return imgpack__mix64(imgpack__mix64(imgpack__mix64(seed) ^ epoch) ^ index);
}

/* Python's round() to an integer: halves go to the even neighbour. */
static double round_half_even(double x) {
    double f = floor(x), d = x - f; /* exact: x and f are close */
    if (d > 0.5 || (d == 0.5 && fmod(f, 2.0) != 0.0))
        f += 1.0;
    return f;
}

void imgpack__augment_box(uint64_t key, uint32_t width, uint32_t height,
                          const imgpack__rrc_ranges *r, imgpack_augment *out) {
    uint64_t state = imgpack__mix64(key ^ STREAM_BOX);
    double area = (double)width * (double)height;
    double log_min = log(r->ratio_min), log_max = log(r->ratio_max);
    double w, h, in_ratio;

    for (int attempt = 0; attempt < RRC_ATTEMPTS; attempt++) {
        double target = area * (r->scale_min + (r->scale_max - r->scale_min) *
                                                   imgpack__uniform01(&state));
        double ratio =
            exp(log_min + (log_max - log_min) * imgpack__uniform01(&state));
        w = round_half_even(sqrt(target * ratio));
        h = round_half_even(sqrt(target / ratio));
        if (w > 0.0 && w <= width && h > 0.0 && h <= height) {
            out->height = (uint32_t)h;
            out->width = (uint32_t)w;
            out->top =
                (uint32_t)imgpack__uniform(&state, height - out->height + 1);
            out->left =
                (uint32_t)imgpack__uniform(&state, width - out->width + 1);
            return;
        }
    }
    /* The fallback: the whole image, its ratio clamped into the range,
       centred. The clamped side is never longer than the image's. */
    in_ratio = (double)width / (double)height;
    w = width;
    h = height;
    if (in_ratio < r->ratio_min)
        h = round_half_even(w / r->ratio_min);
    else if (in_ratio > r->ratio_max)
        w = round_half_even(h * r->ratio_max);
    /* torchvision would cut an empty box (and fail) where a side rounds
       to 0: take one pixel. */
    out->width = w < 1.0 ? 1 : (uint32_t)w;
    out->height = h < 1.0 ? 1 : (uint32_t)h;
    out->top = (height - out->height) / 2;
    out->left = (width - out->width) / 2;
}

void imgpack__augment_offsets(uint64_t key, uint32_t slack_top,
                              uint32_t slack_left, uint32_t *top,
                              uint32_t *left) {
    uint64_t state = imgpack__mix64(key ^ STREAM_BOX);
    *top = (uint32_t)imgpack__uniform(&state, (uint64_t)slack_top + 1);
    *left = (uint32_t)imgpack__uniform(&state, (uint64_t)slack_left + 1);
}

int32_t imgpack__augment_flip(uint64_t key) {
    return (int32_t)(imgpack__mix64(imgpack__mix64(key ^ STREAM_FLIP)) >> 63);
}

imgpack_status imgpack_augment_params(uint64_t seed, uint64_t epoch,
                                      uint64_t index, uint32_t width,
                                      uint32_t height, double scale_min,
                                      double scale_max, double ratio_min,
                                      double ratio_max, int32_t flip,
                                      imgpack_augment *out) {
    imgpack__rrc_ranges ranges = {scale_min, scale_max, ratio_min, ratio_max};
    uint64_t key;
    if (!out || width == 0 || height == 0 ||
        !imgpack__rrc_ranges_valid(&ranges))
        return IMGPACK_ERR_INVALID_ARG;
    key = imgpack__augment_key(seed, epoch, index);
    imgpack__augment_box(key, width, height, &ranges, out);
    out->flip = flip ? imgpack__augment_flip(key) : 0;
    return IMGPACK_OK;
}
