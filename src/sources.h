/*
 * What to pack: the listing of a source, made before any image is read.
 * An ImageFolder tree gives classes (first-level directories) and items in
 * exactly the order torchvision's ImageFolder(root).samples has them, so
 * record i and sample i are the same file whenever nothing was rejected.
 */
#ifndef IMGPACK_SRC_SOURCES_H
#define IMGPACK_SRC_SOURCES_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct imgpack__source_item {
    char *path; /* relative to the source root */
    uint32_t class_id;
} imgpack__source_item;

typedef struct imgpack__source {
    char *root;
    char **class_names; /* class_id -> name */
    char **class_descriptions; /* class_id -> description or NULL */
    uint32_t num_classes;
    imgpack__source_item *items;
    size_t num_items;
    uint64_t skipped; /* files that are not images by their extension */
    uint64_t loops;   /* directories skipped because they close a symlink loop */
} imgpack__source;

/* Lists the ImageFolder tree at `root` into *src. */
imgpack_status imgpack__source_scan_folder(const char *root,
                                           imgpack__source *src,
                                           imgpack__error *err);

/*
 * Fills class descriptions from a synsets file: lines "wnid description".
 * Lines whose wnid is not a class are ignored.
 */
imgpack_status imgpack__source_load_synsets(imgpack__source *src,
                                            const char *path,
                                            imgpack__error *err);

/* Whether a file name has an image extension: jpg, jpeg, png, webp, any case. */
int imgpack__is_image_name(const char *name);

/* SHA-256 (hex) of the listing: class names, then each item's path and
   class. A resumed pack must see the same listing as the one it resumes. */
void imgpack__source_digest(const imgpack__source *src, char hex[65]);

void imgpack__source_free(imgpack__source *src);

#endif
