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

/* The class id of an item that has none (see `reject`). */
#define IMGPACK__NO_CLASS UINT32_MAX

typedef struct imgpack__source_item {
    char *path; /* relative to the source root; for archives, the member */
    uint32_t class_id; /* or IMGPACK__NO_CLASS */
    /* Why the item is rejected without being read (its label names no
       class, the archive broke off there), or NULL. */
    char *reject;
    /* An archive member's data: its offset in the file (ARCHIVE), or its
       place in the stream (STREAM); and its size. */
    uint64_t offset, size;
} imgpack__source_item;

/* Where the items' bytes are. */
typedef enum imgpack__source_kind {
    IMGPACK__SOURCE_FILES,   /* files under root */
    IMGPACK__SOURCE_ARCHIVE, /* members of an uncompressed archive (fd) */
    IMGPACK__SOURCE_STREAM,  /* members of a compressed archive, streamed */
    IMGPACK__SOURCE_PIXELS,  /* gray pixels in memory (IDX, CSV) */
} imgpack__source_kind;

typedef struct imgpack__source {
    imgpack__source_kind kind;
    char *root;
    int archive_fd;          /* ARCHIVE: read with pread, by any thread */
    /* STREAM: the reader thread handing members out while packing. */
    struct imgpack__archive_stream *stream;
    uint8_t *pixels;         /* PIXELS: item i at i * width * height */
    uint32_t width, height;  /* PIXELS: every item's size */
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

/* Whether `s` ends with `suffix` (case matters). */
int imgpack__ends_with(const char *s, const char *suffix);

/* Whether a file name has an image extension: jpg, jpeg, png, webp, any case. */
int imgpack__is_image_name(const char *name);

/* Replaces the class names by `count` names (count >= num_classes). */
imgpack_status imgpack__source_set_class_names(imgpack__source *src,
                                              const char *const *names,
                                              uint32_t count,
                                              imgpack__error *err);

/* Replaces the class names by a file's lines, one name each. */
imgpack_status imgpack__source_read_class_names(imgpack__source *src,
                                               const char *path,
                                               imgpack__error *err);

/*
 * Lists an MNIST-style IDX pair: `images_path` (train-images-idx3-ubyte,
 * gzip or not) and `labels_path`, or when NULL the labels-idx1 file beside
 * it. Checks magic numbers, 28x28 images and equal counts; the pixels are
 * read into memory (a PIXELS source), classes named "0".."max".
 */
imgpack_status imgpack__source_scan_idx(const char *images_path,
                                        const char *labels_path,
                                        imgpack__source *src,
                                        imgpack__error *err);

/* Lists a Kaggle-style MNIST CSV: a "label,pixel1,...,pixel784" header,
   then a label and 784 values per row. */
imgpack_status imgpack__source_scan_pixel_csv(const char *csv_path,
                                              imgpack__source *src,
                                              imgpack__error *err);

/* Names a source's numbered classes: "fashion-mnist", "mnist", or a file
   of names, one a line. IMGPACK_ERR_INVALID_ARG if a label is not below
   the number of names, or the source's labels are not ids. */
imgpack_status imgpack__source_name_classes(imgpack__source *src,
                                            const char *names,
                                            imgpack__error *err);

/* Whether a path names a tar archive, compressed or not. */
int imgpack__is_archive_name(const char *path);

/*
 * Lists a tar archive (compressed or not): members "class/.../file" as a
 * folder's, and inner "<class>.tar" members (ImageNet's train layout) as
 * that class's images, in the order the extracted tree would pack in.
 * Uncompressed: an ARCHIVE source whose items keep their data's offset.
 * Compressed: a STREAM source whose items keep their place in the stream.
 */
imgpack_status imgpack__source_scan_archive(const char *path,
                                            imgpack__source *src,
                                            imgpack__error *err);

/* SHA-256 (hex) of the listing: class names, then each item's path and
   class. A resumed pack must see the same listing as the one it resumes. */
void imgpack__source_digest(const imgpack__source *src, char hex[65]);

void imgpack__source_free(imgpack__source *src);

#endif
