/*
 * Packing: an image dataset in, an imgpack store out.
 *
 * A store is a directory holding an LMDB environment (data.mdb, lock.mdb)
 * with one record per image, and a SQLite catalog (catalog.db) saying which
 * file became which record, in which class, and why any file was rejected.
 * docs/FORMAT.md describes both byte for byte.
 *
 * Usage:
 *
 *     imgpack_pack_options *opts;
 *     imgpack_packer *packer;
 *     imgpack_pack_options_create(&opts);
 *     imgpack_pack_options_set_jobs(opts, 8);
 *     if (imgpack_packer_open(&packer, "train/", "train.imgpack", opts))
 *         fprintf(stderr, "%s\n", imgpack_packer_errmsg(packer));
 *     else if (imgpack_packer_run(packer))
 *         fprintf(stderr, "%s\n", imgpack_packer_errmsg(packer));
 *     imgpack_packer_close(packer);
 *     imgpack_pack_options_destroy(opts);
 *
 * Each image is decoded, converted to RGB, resized so that its short side
 * is 256 and center-cropped to 224x224, with the same bytes as torchvision's
 * Compose([Resize(256), CenterCrop(224)]) on PIL.Image.open(f).convert('RGB')
 * (Pillow 9.4, torchvision 0.14). Record i is the i-th image in the order of
 * torchvision's ImageFolder(root).samples, rejected files left out.
 *
 * Memory: at most a queue window of records is held at once, plus LMDB's
 * copy of one batch and the next one waiting while it commits (at most
 * 32 MiB of records each), and one source file and one decoded image per
 * job; see imgpack_pack_options_set_jobs.
 */
#ifndef IMGPACK_PACK_H
#define IMGPACK_PACK_H

#include "imgpack/imgpack.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pillow's decompression-bomb error limit: twice its 89,478,485-pixel
   warning threshold. */
#define IMGPACK_DEFAULT_MAX_PIXELS 178956970u
#define IMGPACK_DEFAULT_RESIZE 256u
#define IMGPACK_DEFAULT_CROP 224u
#define IMGPACK_DEFAULT_QUALITY 90

/*
 * Options for a pack: create, set what differs from the defaults, pass to
 * imgpack_packer_open, destroy. Memory only; not shared between threads.
 */
typedef struct imgpack_pack_options imgpack_pack_options;

/* Makes options holding every default. IMGPACK_ERR_NOMEM on failure. */
IMGPACK_API imgpack_status
imgpack_pack_options_create(imgpack_pack_options **out);

/* Frees the options; NULL is accepted. */
IMGPACK_API void imgpack_pack_options_destroy(imgpack_pack_options *opts);

/* Short side after resizing: default 256; 0 keeps the source size; at most
   IMGPACK_MAX_SIDE. IMGPACK_ERR_INVALID_ARG past that. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_resize(imgpack_pack_options *opts, uint32_t side);

/* Side of the center crop: default 224; 0 keeps the whole resized image (the
   records then differ in size); at most IMGPACK_MAX_SIDE. A crop larger than
   the resized image is padded with black, as torchvision's CenterCrop does. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_crop(imgpack_pack_options *opts, uint32_t side);

/* Record format (imgpack_format): default IMGPACK_FORMAT_RAW. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_format(imgpack_pack_options *opts, int32_t format);

/* Quality for jpeg and webp records, 1..100: default 90. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_quality(imgpack_pack_options *opts, int32_t quality);

/* Worker threads decoding and resizing: default (0) the number of online
   cores; at most 256. The writer runs on the thread that calls
   imgpack_packer_run. The queue between them holds at most 8 results per
   job (32 at least), so memory does not grow with the dataset. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_jobs(imgpack_pack_options *opts, uint32_t jobs);

/* Images with more pixels (width x height, read from the header before any
   pixel buffer exists) are rejected: default IMGPACK_DEFAULT_MAX_PIXELS;
   0 removes the limit. */
IMGPACK_API imgpack_status imgpack_pack_options_set_max_pixels(
    imgpack_pack_options *opts, uint64_t max_pixels);

/* A synsets file (lines "wnid description", as ImageNet's LOC_synset_mapping
   .txt) giving class descriptions. Copied; NULL clears it. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_synsets(imgpack_pack_options *opts, const char *path);

/* Packs the files a list file names, relative to SRC_DIR, instead of
   walking SRC_DIR as an ImageFolder tree: Caffe's convert_imageset lines
   "relative/path label" (label a class id or a class name) or ImageNet's
   Kaggle LOC_val_solution.csv (recognised by its header). Records follow
   the list's order, or the paths' byte order when `sort` is nonzero. A
   file the list names but that is missing is a reject. Copied; NULL goes
   back to the folder walk. */
IMGPACK_API imgpack_status imgpack_pack_options_set_list(
    imgpack_pack_options *opts, const char *path, int32_t sort);

/* Takes the class table (ids, names, descriptions) from the complete store
   in `store_dir`, so that labels mean what they mean there (a validation
   pack against its training pack). A file whose class is not in that
   table is a reject, never a new class. Copied; NULL clears it. */
IMGPACK_API imgpack_status imgpack_pack_options_set_classes_from(
    imgpack_pack_options *opts, const char *store_dir);

/* Before anything is listed or written, checks the files a sha256sum list
   names (paths relative to the list's directory) and refuses the pack on a
   mismatch or a missing file, naming it (IMGPACK_ERR_CORRUPT,
   IMGPACK_ERR_NOT_FOUND). Copied; NULL clears it. */
IMGPACK_API imgpack_status imgpack_pack_options_set_checksums(
    imgpack_pack_options *opts, const char *sums_path);

/* MNIST-style sources: SRC may be an IDX images file (*-images-idx3-ubyte,
   gzip or not; its labels file is found beside it, or named here) or a
   Kaggle CSV (label,pixel1,...,pixel784). Their records are gray 28x28
   (resize and crop off unless set), classes named "0".."9" unless named.
   Copied; NULL clears it. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_labels(imgpack_pack_options *opts, const char *path);

/* Names numbered classes: "fashion-mnist" (T-shirt/top, Trouser, ...),
   "mnist" (torchvision's "0 - zero", ...), or a file with one name a line.
   Copied; NULL clears it. */
IMGPACK_API imgpack_status imgpack_pack_options_set_class_names(
    imgpack_pack_options *opts, const char *names);

/* Channels of the records: 1 or 3, or 0 (default) for 1 with gray sources
   and 3 with images, which are always RGB. */
IMGPACK_API imgpack_status imgpack_pack_options_set_channels(
    imgpack_pack_options *opts, uint32_t channels);

/* Nonzero: stop at the first rejected file (imgpack_packer_run returns
   IMGPACK_ERR_REJECTED). Default 0: reject, record and go on. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_strict(imgpack_pack_options *opts, int32_t strict);

/* Nonzero: go on with the interrupted pack in OUT_DIR instead of creating
   a store. The options and the source listing must be the ones the pack
   began with (imgpack_packer_open refuses otherwise, saying which differ);
   what was committed stays, nothing is packed twice, and the finished
   store equals an uninterrupted pack's. Resuming a complete store changes
   nothing. Where there is nothing to resume (no store yet, or the store of
   a pack killed while starting, before anything was committed, which is
   then removed) a new pack starts, so the same call serves the first run
   and every retry; imgpack_packer_notice says so. Default 0. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_resume(imgpack_pack_options *opts, int32_t resume);

/* Nonzero: add to the complete store in OUT_DIR the files of SRC it does
   not hold yet (by path), as records after its own, in SRC's listing
   order; SRC's classes the store lacks get the next class ids, in SRC's
   class order. The store's class ids and record indices never change.
   The packing options must be the ones the store was packed with
   (imgpack_packer_open refuses otherwise, naming both); a sharded dataset
   is refused. Readers see the store as it was until the append's last
   commit publishes the new records and classes at once; an append that
   stopped is done again from its start by the same call (what it had
   written is replaced). Default 0. */
IMGPACK_API imgpack_status
imgpack_pack_options_set_append(imgpack_pack_options *opts, int32_t append);

/* Sharded packs cannot be split finer than this. */
#define IMGPACK_MAX_SHARDS 65536u

/* Packs shard `index` (0-based) of `count`: the index*M/count .. (index+1)*
   M/count - 1 items of the M the source lists, in the single pack's order,
   into OUT_DIR/shard-<index>-of-<count>, a complete store of its own. Every
   shard lists the whole source, so all agree on classes and order; none
   waits for another. imgpack_combine then writes the dataset's catalog, and
   readers open OUT_DIR as one dataset. Default: shard 0 of 1, the whole
   source straight into OUT_DIR. IMGPACK_ERR_INVALID_ARG unless
   index < count <= IMGPACK_MAX_SHARDS. */
IMGPACK_API imgpack_status imgpack_pack_options_set_shard(
    imgpack_pack_options *opts, uint32_t index, uint32_t count);

/* The command line to record in the catalog's dataset table. Copied. */
IMGPACK_API imgpack_status imgpack_pack_options_set_command(
    imgpack_pack_options *opts, const char *command);

/* Counters of a pack, filled by imgpack_packer_progress and passed to the
   progress callback. */
typedef struct imgpack_pack_progress {
    uint64_t total;    /* image files listed in the source (in the shard) */
    uint64_t done;     /* of those, handled: packed + rejected */
    uint64_t packed;   /* records written */
    uint64_t rejected; /* files that could not be packed */
    uint64_t skipped;  /* files that are not images by their name */
    uint64_t bytes;    /* bytes of record values written */
    double seconds;    /* since imgpack_packer_run started */
    uint64_t resumed;  /* of `done`, those an interrupted run handled */
} imgpack_pack_progress;

/* Called after each image is handled; `progress` is valid during the call. */
typedef void (*imgpack_progress_fn)(void *user,
                                    const imgpack_pack_progress *progress);

/* Called for each rejected file with its path (relative to the source) and
   the reason; both strings are valid during the call only. */
typedef void (*imgpack_reject_fn)(void *user, const char *path,
                                  const char *reason);

/*
 * A pack in progress. Made by imgpack_packer_open, run once, closed. Use it
 * from one thread; the callbacks run on the thread inside
 * imgpack_packer_run, never while the library holds a lock.
 */
typedef struct imgpack_packer imgpack_packer;

/*
 * Lists `src_dir` (ImageFolder layout: one directory per class) and readies
 * `out_dir` (created if missing; must not hold a store yet, unless
 * resuming: then the store is reopened and checked here). Refused
 * (IMGPACK_ERR_INVALID_ARG): `out_dir` equal to or inside a directory
 * `src_dir`, and option files (list, synsets, sums, labels, class names)
 * that are not regular files; (IMGPACK_ERR_EXISTS): a sharded pack into a
 * directory holding a whole store, or a whole one beside shards. A refusal
 * leaves no directory it created behind. A new store's
 * files are created by imgpack_packer_run, while the first images decode.
 * `opts` may be NULL for the defaults and is not used after the call.
 *
 * *out is set even on failure (unless memory ran out: then NULL), so that
 * imgpack_packer_errmsg can say what went wrong; close it in either case.
 * Returns IMGPACK_OK, IMGPACK_ERR_NOT_FOUND, IMGPACK_ERR_INVALID_ARG (no
 * class directories), IMGPACK_ERR_EXISTS, IMGPACK_ERR_IO, IMGPACK_ERR_STORE,
 * IMGPACK_ERR_CATALOG or IMGPACK_ERR_NOMEM.
 */
IMGPACK_API imgpack_status
imgpack_packer_open(imgpack_packer **out, const char *src_dir,
                    const char *out_dir, const imgpack_pack_options *opts);

/* Sets the callbacks (either may be NULL) before imgpack_packer_run. */
IMGPACK_API void imgpack_packer_set_callbacks(imgpack_packer *packer,
                                              imgpack_progress_fn progress,
                                              imgpack_reject_fn reject,
                                              void *user);

/*
 * Creates the store (unless resuming), packs every listed image, then marks
 * the store complete. Rejected files
 * do not make it fail: they are counted, reported to the reject callback
 * and recorded in the catalog. Returns IMGPACK_OK when the store is
 * complete; otherwise the store holds the batches committed so far and is
 * not marked complete: IMGPACK_ERR_REJECTED (strict mode),
 * IMGPACK_ERR_NO_SPACE, IMGPACK_ERR_IO, IMGPACK_ERR_EXISTS, IMGPACK_ERR_STORE,
 * IMGPACK_ERR_CATALOG, IMGPACK_ERR_THREAD, IMGPACK_ERR_NOMEM.
 */
IMGPACK_API imgpack_status imgpack_packer_run(imgpack_packer *packer);

/* Copies the current counters into *out. */
IMGPACK_API void imgpack_packer_progress(const imgpack_packer *packer,
                                         imgpack_pack_progress *out);

/* What a resume found instead of an interrupted pack, as a sentence for
   the user ("OUT_DIR: no pack to resume: starting a new pack"); NULL when
   no resume was asked or one was reopened, and for a NULL packer. Owned
   by the packer. */
IMGPACK_API const char *imgpack_packer_notice(const imgpack_packer *packer);

/* The last failure: file and reason. Owned by the packer, valid until its
   next call; "" when nothing failed. NULL packer: "out of memory". */
IMGPACK_API const char *imgpack_packer_errmsg(const imgpack_packer *packer);

/* Closes the store and frees the packer; NULL is accepted. */
IMGPACK_API void imgpack_packer_close(imgpack_packer *packer);

/*
 * Writes OUT_DIR/catalog.db for the sharded pack in `dir` once every shard
 * is complete: all classes (image counts summed), every image with its
 * index in the whole dataset and its shard, every reject, and the dataset
 * table over the whole set. Replaces an earlier combined catalog atomically.
 * Refuses, naming them, missing or incomplete shards and shards packed with
 * other options or from another source listing. On failure the reason goes
 * into `message` (`message_size` bytes, NUL-terminated; may be NULL).
 * Returns IMGPACK_OK, IMGPACK_ERR_NOT_FOUND, IMGPACK_ERR_INCOMPLETE,
 * IMGPACK_ERR_INVALID_ARG, IMGPACK_ERR_NOT_A_STORE, IMGPACK_ERR_CATALOG,
 * IMGPACK_ERR_IO or IMGPACK_ERR_NOMEM.
 */
IMGPACK_API imgpack_status imgpack_combine(const char *dir, char *message,
                                           uint64_t message_size);

#ifdef __cplusplus
}
#endif

#endif /* IMGPACK_PACK_H */
