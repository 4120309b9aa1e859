/*
 * Batch options: defaults and validated setters (include/imgpack/reader.h
 * documents each). Memory only; the batcher copies them at create.
 */
#include "batch_options.h"

#include <stdlib.h>
#include <string.h>

#include "imgpack/pack.h"
#include "pool.h"

imgpack_status imgpack_batch_options_create(imgpack_batch_options **out) {
    imgpack_status status = IMGPACK_OK;
    imgpack_batch_options *o = NULL;
    if (!out) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    *out = NULL;
    if (!(o = calloc(1, sizeof *o))) {
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    o->layout = IMGPACK_LAYOUT_NCHW;
    o->dtype = IMGPACK_DTYPE_FLOAT32;
    o->mean[0] = IMGPACK_IMAGENET_MEAN_R;
    o->mean[1] = IMGPACK_IMAGENET_MEAN_G;
    o->mean[2] = IMGPACK_IMAGENET_MEAN_B;
    o->std[0] = IMGPACK_IMAGENET_STD_R;
    o->std[1] = IMGPACK_IMAGENET_STD_G;
    o->std[2] = IMGPACK_IMAGENET_STD_B;
    o->n_norm = 3;
    o->crop_mode = IMGPACK_CROP_CENTER;
    o->rrc =
        (imgpack__rrc_ranges){IMGPACK_RRC_SCALE_MIN, IMGPACK_RRC_SCALE_MAX,
                              IMGPACK_RRC_RATIO_MIN, IMGPACK_RRC_RATIO_MAX};
    o->threads = 1;
    *out = o;
done:
    return status;
}

void imgpack_batch_options_destroy(imgpack_batch_options *opts) {
    free(opts);
}

imgpack_status imgpack_batch_options_set_layout(imgpack_batch_options *opts,
                                                int32_t layout) {
    if (!opts ||
        (layout != IMGPACK_LAYOUT_NHWC && layout != IMGPACK_LAYOUT_NCHW))
        return IMGPACK_ERR_INVALID_ARG;
    opts->layout = layout;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_dtype(imgpack_batch_options *opts,
                                               int32_t dtype) {
    if (!opts || dtype < IMGPACK_DTYPE_UINT8 || dtype > IMGPACK_DTYPE_BFLOAT16)
        return IMGPACK_ERR_INVALID_ARG;
    opts->dtype = dtype;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_normalize(imgpack_batch_options *opts,
                                                   const float *mean,
                                                   const float *std,
                                                   uint32_t n) {
    if (!opts || !mean || !std || n == 0 || n > IMGPACK__CONVERT_MAX_CHANNELS)
        return IMGPACK_ERR_INVALID_ARG;
    for (uint32_t c = 0; c < n; c++)
        if (std[c] == 0.0f || std[c] != std[c] || mean[c] != mean[c])
            return IMGPACK_ERR_INVALID_ARG;
    memcpy(opts->mean, mean, n * sizeof *mean);
    memcpy(opts->std, std, n * sizeof *std);
    opts->n_norm = n;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_crop(imgpack_batch_options *opts,
                                              uint32_t width, uint32_t height,
                                              int32_t mode) {
    if (!opts || (width == 0) != (height == 0) || width > IMGPACK_MAX_SIDE ||
        height > IMGPACK_MAX_SIDE || mode < IMGPACK_CROP_CENTER ||
        mode > IMGPACK_CROP_RANDOM_RESIZED ||
        (mode == IMGPACK_CROP_RANDOM_RESIZED && width == 0))
        return IMGPACK_ERR_INVALID_ARG;
    opts->crop_width = width;
    opts->crop_height = height;
    opts->crop_mode = mode;
    return IMGPACK_OK;
}

imgpack_status
imgpack_batch_options_set_random_resized(imgpack_batch_options *opts,
                                         double scale_min, double scale_max,
                                         double ratio_min, double ratio_max) {
    imgpack__rrc_ranges r = {scale_min, scale_max, ratio_min, ratio_max};
    if (!opts || !imgpack__rrc_ranges_valid(&r))
        return IMGPACK_ERR_INVALID_ARG;
    opts->rrc = r;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_flip(imgpack_batch_options *opts,
                                              int32_t flip) {
    if (!opts)
        return IMGPACK_ERR_INVALID_ARG;
    opts->flip = flip != 0;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_threads(imgpack_batch_options *opts,
                                                 uint32_t threads) {
    if (!opts || threads > IMGPACK__MAX_THREADS)
        return IMGPACK_ERR_INVALID_ARG;
    opts->threads = threads;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_prefetch(imgpack_batch_options *opts,
                                                  uint32_t depth) {
    if (!opts || depth > IMGPACK_MAX_PREFETCH)
        return IMGPACK_ERR_INVALID_ARG;
    opts->prefetch = depth;
    return IMGPACK_OK;
}
