/*
 * The packing options: each setter checks its value and keeps it (strings
 * copied) for imgpack_packer_open, which reads them once.
 */
#include "pack_options.h"

#include <stdlib.h>
#include <string.h>

#include "pool.h"

imgpack_status imgpack_pack_options_create(imgpack_pack_options **out) {
    imgpack_pack_options *o = calloc(1, sizeof *o);
    *out = o;
    if (!o)
        return IMGPACK_ERR_NOMEM;
    o->shard_count = 1;
    o->settings = (imgpack__transform_settings){
        .resize = IMGPACK_DEFAULT_RESIZE,
        .crop = IMGPACK_DEFAULT_CROP,
        .format = IMGPACK_FORMAT_RAW,
        .quality = IMGPACK_DEFAULT_QUALITY,
        .channels = 3,
        .max_pixels = IMGPACK_DEFAULT_MAX_PIXELS,
    };
    return IMGPACK_OK;
}

void imgpack_pack_options_destroy(imgpack_pack_options *opts) {
    if (!opts)
        return;
    free(opts->synsets);
    free(opts->command);
    free(opts->list);
    free(opts->classes_from);
    free(opts->checksums);
    free(opts->labels);
    free(opts->class_names);
    free(opts);
}

imgpack_status imgpack_pack_options_set_resize(imgpack_pack_options *opts,
                                               uint32_t side) {
    if (side > IMGPACK_MAX_SIDE)
        return IMGPACK_ERR_INVALID_ARG;
    opts->settings.resize = side;
    opts->resize_set = 1;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_crop(imgpack_pack_options *opts,
                                             uint32_t side) {
    if (side > IMGPACK_MAX_SIDE)
        return IMGPACK_ERR_INVALID_ARG;
    opts->settings.crop = side;
    opts->crop_set = 1;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_format(imgpack_pack_options *opts,
                                               int32_t format) {
    if (!imgpack_format_name(format))
        return IMGPACK_ERR_INVALID_ARG;
    opts->settings.format = format;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_quality(imgpack_pack_options *opts,
                                                int32_t quality) {
    if (quality < 1 || quality > 100)
        return IMGPACK_ERR_INVALID_ARG;
    opts->settings.quality = quality;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_jobs(imgpack_pack_options *opts,
                                             uint32_t jobs) {
    if (jobs > IMGPACK__MAX_THREADS)
        return IMGPACK_ERR_INVALID_ARG;
    opts->jobs = jobs;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_max_pixels(imgpack_pack_options *opts,
                                                   uint64_t max_pixels) {
    opts->settings.max_pixels = max_pixels;
    return IMGPACK_OK;
}

static imgpack_status replace_string(char **slot, const char *value) {
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy)
        return IMGPACK_ERR_NOMEM;
    free(*slot);
    *slot = copy;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_synsets(imgpack_pack_options *opts,
                                                const char *path) {
    return replace_string(&opts->synsets, path);
}

imgpack_status imgpack_pack_options_set_list(imgpack_pack_options *opts,
                                             const char *path, int32_t sort) {
    opts->sort_list = sort != 0;
    return replace_string(&opts->list, path);
}

imgpack_status imgpack_pack_options_set_classes_from(imgpack_pack_options *opts,
                                                     const char *store_dir) {
    return replace_string(&opts->classes_from, store_dir);
}

imgpack_status imgpack_pack_options_set_checksums(imgpack_pack_options *opts,
                                                  const char *sums_path) {
    return replace_string(&opts->checksums, sums_path);
}

imgpack_status imgpack_pack_options_set_labels(imgpack_pack_options *opts,
                                               const char *path) {
    return replace_string(&opts->labels, path);
}

imgpack_status imgpack_pack_options_set_class_names(imgpack_pack_options *opts,
                                                    const char *names) {
    return replace_string(&opts->class_names, names);
}

imgpack_status imgpack_pack_options_set_channels(imgpack_pack_options *opts,
                                                 uint32_t channels) {
    if (channels != 0 && channels != 1 && channels != 3)
        return IMGPACK_ERR_INVALID_ARG;
    opts->channels = channels;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_strict(imgpack_pack_options *opts,
                                               int32_t strict) {
    opts->strict = strict != 0;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_resume(imgpack_pack_options *opts,
                                               int32_t resume) {
    opts->resume = resume != 0;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_append(imgpack_pack_options *opts,
                                               int32_t append) {
    opts->append = append != 0;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_shard(imgpack_pack_options *opts,
                                              uint32_t index, uint32_t count) {
    if (count == 0 || index >= count || count > IMGPACK_MAX_SHARDS)
        return IMGPACK_ERR_INVALID_ARG;
    opts->shard_index = index;
    opts->shard_count = count;
    return IMGPACK_OK;
}

imgpack_status imgpack_pack_options_set_command(imgpack_pack_options *opts,
                                                const char *command) {
    return replace_string(&opts->command, command);
}
