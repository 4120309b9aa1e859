/*
 * What imgpack_pack_options holds, for the packer that reads it (pack.c);
 * the setters that check and fill it are in pack_options.c.
 */
#ifndef IMGPACK_SRC_PACK_OPTIONS_H
#define IMGPACK_SRC_PACK_OPTIONS_H

#include <stdint.h>

#include "imgpack/pack.h"
#include "transform.h"

struct imgpack_pack_options {
    imgpack__transform_settings settings;
    uint32_t jobs;
    int32_t strict;
    int32_t resume;
    int32_t append; /* add SRC's new files to the store in OUT_DIR */
    uint32_t shard_index, shard_count;
    char *synsets;
    char *command;
    char *list;               /* a list file naming the files, or NULL */
    int32_t sort_list;        /* pack a list's files in path order */
    char *classes_from;       /* a store whose class table to use, or NULL */
    char *checksums;          /* a sha256sum list to verify first, or NULL */
    char *labels;             /* an IDX labels file, or NULL to look beside */
    char *class_names;        /* "fashion-mnist", "mnist", a file, or NULL */
    uint32_t channels;        /* 0: 1 for gray sources, 3 for images */
    int resize_set, crop_set; /* else gray sources keep their size */
};

#endif
