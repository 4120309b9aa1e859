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

/* The class id of an item whose label names no class of the table: it is
   rejected without being read. */
#define IMGPACK__NO_CLASS UINT32_MAX

typedef struct imgpack__source_item {
    char *path; /* relative to the source root */
    uint32_t class_id; /* or IMGPACK__NO_CLASS */
    char *label; /* the label as given, kept only when it names no class */
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
    int labels_are_ids; /* a list's labels were class ids, not names */
} imgpack__source;

/* Appends an item (taking `path`); `*capacity` tracks the array's size. */
imgpack_status imgpack__source_add_item(imgpack__source *src, char *path,
                                        uint32_t class_id, size_t *capacity);

/*
 * Lists the files a list file names, under `root`, in the file's order (by
 * path with `sort`). Two forms: Caffe's convert_imageset lines "relative/
 * path label" (the label a class id or a class name; the path is all before
 * the last blank), and ImageNet's Kaggle LOC_val_solution.csv, recognised
 * by its "ImageId,PredictionString" header, whose rows name root/ImageId
 * .JPEG and whose first token is the class name (a WordNet id). Class names
 * make a table in byte order, as folders do; ids name classes "0".."N-1".
 */
imgpack_status imgpack__source_scan_list(const char *root,
                                         const char *list_path, int sort,
                                         imgpack__source *src,
                                         imgpack__error *err);

/*
 * Replaces the class table with the one of the store in `store_dir` and
 * maps every item to it by class name (a list's numeric labels by id), so
 * labels mean what they mean there. Items whose class is not in that table
 * get IMGPACK__NO_CLASS and are rejected, not given a new class.
 */
imgpack_status imgpack__source_use_classes(imgpack__source *src,
                                           const char *store_dir,
                                           imgpack__error *err);

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
