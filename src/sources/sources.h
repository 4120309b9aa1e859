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
#include <sys/types.h>

#include "decode.h"
#include "error.h"

/* The class id of an item that has none (see `reject`). */
#define IMGPACK__NO_CLASS UINT32_MAX

typedef struct imgpack__source_item {
    char *path; /* relative to the source root; for archives, the member */
    uint32_t class_id; /* or IMGPACK__NO_CLASS */
    /* Why the item is rejected without being read (its label names no
       class, the archive broke off there), or NULL. */
    char *reject;
    /* An archive member's data: its offset in the file (a tar), or its
       place in the stream (a compressed tar); and its size. */
    uint64_t offset, size;
} imgpack__source_item;

struct imgpack__source;

/* Where the file opened for an item goes: the caller's buffers, reused
   from item to item by one thread (a worker) and freed with
   imgpack__item_buffer_free. */
typedef struct imgpack__item_buffer {
    uint8_t *bytes;
    size_t capacity;
    char *path; /* root/relative path of a file item */
    size_t path_capacity;
} imgpack__item_buffer;

/* One item as its source gives it: a file's encoded bytes (to decode), or
   pixels the source already holds. `data` and `size` are what the catalog
   hashes either way. */
typedef struct imgpack__item_data {
    const uint8_t *data;
    size_t size;
    int decoded; /* `pixels` holds the image; else decode data */
    imgpack__pixels pixels;
} imgpack__item_data;

/* What is to be listed: the SRC argument and the options that say how. */
typedef struct imgpack__source_request {
    const char *path;   /* the SRC argument */
    int is_dir;         /* it names a directory (else a regular file) */
    const char *list;   /* --list: a list file naming the files, or NULL */
    int sort_list;      /* --sort: the list's files in path order */
    const char *labels; /* --labels: an IDX labels file, or NULL */
} imgpack__source_request;

/* What the packer asks of a source, whatever its kind. Each kind is one
   table in its own file, which lists the source (`open`) and reads its
   items, and one line in imgpack__source_open's list of kinds. start,
   stop and close may be NULL when reading needs nothing beyond the
   listing. */
typedef struct imgpack__source_ops {
    /* Whether this kind reads what `request` names. */
    int (*claims)(const imgpack__source_request *request);
    /* Lists the source into *src (which it clears first) and sets
       src->ops; frees what it made when it fails. */
    imgpack_status (*open)(const imgpack__source_request *request,
                           struct imgpack__source *src, imgpack__error *err);
    /* Readies reading items [first, end) before the workers start. */
    imgpack_status (*start)(struct imgpack__source *src, uint64_t first,
                            uint64_t end, imgpack__error *err);
    /* Item `index` into *out, `buffer` holding what it reads; any worker
       thread, between start and stop. IMGPACK_OK, or why not in `reason`. */
    imgpack_status (*read)(const struct imgpack__source *src, size_t index,
                           imgpack__item_buffer *buffer,
                           imgpack__item_data *out,
                           char reason[IMGPACK__REASON_SIZE]);
    /* Ends what start began, once the workers are done; sets `err` if
       reading failed as a whole. */
    void (*stop)(struct imgpack__source *src, imgpack__error *err);
    /* Releases what the kind holds beyond the listing (a file, pixels). */
    void (*close)(struct imgpack__source *src);
    /* Items are gray pixels (digit sets): packed as one channel, at their
       own size unless resize or crop is asked for. */
    int gray;
} imgpack__source_ops;

typedef struct imgpack__source {
    const imgpack__source_ops *ops; /* its kind */
    char *root;
    int archive_fd; /* a tar: read with pread, by any thread */
    /* A compressed tar: the reader thread handing members out while
       packing. */
    struct imgpack__archive_stream *stream;
    uint8_t *pixels; /* IDX, CSV: item i at i * width * height */
    /* Every item's size when the source's items share one (IDX, CSV);
       else 0. */
    uint32_t width, height;
    char **class_names;        /* class_id -> name */
    char **class_descriptions; /* class_id -> description or NULL */
    uint32_t num_classes;
    imgpack__source_item *items;
    size_t num_items;
    uint64_t skipped; /* files that are not images by their extension */
    uint64_t loops; /* directories skipped because they close a symlink loop */
    int labels_are_ids; /* a list's labels were class ids, not names */
} imgpack__source;

/* Appends an item (taking `path`); `*capacity` tracks the array's size. */
imgpack_status imgpack__source_add_item(imgpack__source *src, char *path,
                                        uint32_t class_id, size_t *capacity);

/*
 * Replaces the class table with the one of the store in `store_dir` and
 * maps every item to it by class name (a list's numeric labels by id), so
 * labels mean what they mean there. Items whose class is not in that table
 * get IMGPACK__NO_CLASS and are rejected, not given a new class.
 */
imgpack_status imgpack__source_use_classes(imgpack__source *src,
                                           const char *store_dir,
                                           imgpack__error *err);

/*
 * The kinds, each in its file; imgpack__source_open picks one.
 *
 * folder (source_folder.c): an ImageFolder tree.
 *
 * list (source_list.c): the files a list file names, under the root, in
 * the file's order (by path with --sort). Two forms: Caffe's
 * convert_imageset lines "relative/path label" (the label a class id or a
 * class name; the path is all before the last blank), and ImageNet's
 * Kaggle LOC_val_solution.csv, recognised by its "ImageId,PredictionString"
 * header, whose rows name root/ImageId.JPEG and whose first token is the
 * class name (a WordNet id). Class names make a table in byte order, as
 * folders do; ids name classes "0".."N-1".
 *
 * pixels (source_idx.c): gray digits held in memory, from an MNIST-style
 * IDX pair, the images file (train-images-idx3-ubyte, gzip or not) and
 * --labels or the labels-idx1 file beside it (magic numbers, 28x28 images
 * and equal counts checked), or from a Kaggle-style MNIST CSV (a
 * "label,pixel1,...,pixel784" header, then a label and 784 values per
 * row). Classes are named "0".."max".
 *
 * tar (source_archive.c), and tar_stream (archive_stream.c) when it is
 * compressed: see imgpack__source_scan_archive.
 */
extern const imgpack__source_ops imgpack__source_folder;
extern const imgpack__source_ops imgpack__source_list;
extern const imgpack__source_ops imgpack__source_pixels;
extern const imgpack__source_ops imgpack__source_tar;
extern const imgpack__source_ops imgpack__source_tar_stream;

/* Source files larger than this are rejected before being read: no image
   we can decode within the default pixel limit needs a 1 GiB file. */
#define IMGPACK__MAX_FILE_BYTES ((uint64_t)1 << 30)

/* Lists what request->path names with the first kind that claims it;
   sets request->is_dir. IMGPACK_ERR_INVALID_ARG if none does. */
imgpack_status imgpack__source_open(imgpack__source_request *request,
                                    imgpack__source *src, imgpack__error *err);

/* The source's start and stop, for kinds that have them (else nothing). */
imgpack_status imgpack__source_start(imgpack__source *src, uint64_t first,
                                     uint64_t end, imgpack__error *err);
void imgpack__source_stop(imgpack__source *src, imgpack__error *err);

/* The read of a file under src->root, item->path: the folder's and the
   list's. */
imgpack_status imgpack__source_read_file(const imgpack__source *src,
                                         size_t index,
                                         imgpack__item_buffer *buffer,
                                         imgpack__item_data *out,
                                         char reason[IMGPACK__REASON_SIZE]);

/* Makes room for element `count` in `items`, an array of `size`-byte
   elements and *capacity slots, doubling it (to `first` slots when empty).
   Returns the array to use from now on, or NULL out of memory (`items` and
   *capacity are then unchanged). Every growing list in a source uses it. */
void *imgpack__grow_array(void *items, size_t count, size_t *capacity,
                          size_t size, size_t first);

/* Grows *buffer to at least `size` bytes (*capacity its size); 0, or -1
   out of memory (the buffer is then unchanged). */
int imgpack__grow_buffer(uint8_t **buffer, size_t *capacity, size_t size);

void imgpack__item_buffer_free(imgpack__item_buffer *buffer);

/*
 * Fills class descriptions from a synsets file: lines "wnid description".
 * Lines whose wnid is not a class are ignored.
 */
imgpack_status imgpack__source_load_synsets(imgpack__source *src,
                                            const char *path,
                                            imgpack__error *err);

/* A growing array of malloc'd strings, for listings. */
typedef struct imgpack__strings {
    char **items;
    size_t count, capacity;
} imgpack__strings;

/* Appends `s`, taken (freed if it cannot be added; NULL counts as out of
   memory): 0, or -1 out of memory. */
int imgpack__strings_push(imgpack__strings *l, char *s);

/* Sorts by bytes (qsort's order for C strings: imgpack__compare_strings). */
void imgpack__strings_sort(imgpack__strings *l);
int imgpack__compare_strings(const void *a, const void *b);

void imgpack__strings_free(imgpack__strings *l);

/* Whether `s` ends with `suffix` (case matters). */
int imgpack__ends_with(const char *s, const char *suffix);

/* Whether a file name has an image extension: jpg, jpeg, png, webp, any case.
 */
int imgpack__is_image_name(const char *name);

/* Cuts the line ending (LF, CRLF, any trailing CRs) off `line`, `n` bytes
   long; its new length. */
ssize_t imgpack__chomp(char *line, ssize_t n);

/* Installs `names` and `descriptions` (taken; `count` of each) as the
   class table, freeing the one before. */
void imgpack__source_take_classes(imgpack__source *src, char **names,
                                  char **descriptions, uint32_t count);

/* Replaces the class names by `count` names (count >= num_classes). */
imgpack_status imgpack__source_set_class_names(imgpack__source *src,
                                               const char *const *names,
                                               uint32_t count,
                                               imgpack__error *err);

/* Replaces the class names by a file's lines, one name each. */
imgpack_status imgpack__source_read_class_names(imgpack__source *src,
                                                const char *path,
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
 * Lists a tar archive (compressed or not), the tar kind's open: members
 * "class/.../file" as a folder's, and inner "<class>.tar" members
 * (ImageNet's train layout) as that class's images, in the order the
 * extracted tree would pack in. Uncompressed: imgpack__source_tar, whose
 * items keep their data's offset. Compressed: imgpack__source_tar_stream,
 * whose items keep their place in the stream.
 */
imgpack_status imgpack__source_scan_archive(const char *path,
                                            imgpack__source *src,
                                            imgpack__error *err);

/* Closes the archive a tar source reads (both tar kinds' close). */
void imgpack__source_close_archive(imgpack__source *src);

/* SHA-256 (hex) of the listing: class names, then each item's path and
   class. A resumed pack must see the same listing as the one it resumes. */
void imgpack__source_digest(const imgpack__source *src, char hex[65]);

void imgpack__source_free(imgpack__source *src);

#endif
