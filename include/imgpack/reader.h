/*
 * Reading a store at training time: random access to records, batches of
 * ready-to-train tensors, and the epoch order of a distributed sampler.
 *
 * Usage:
 *
 *     imgpack_reader *r;
 *     imgpack_record rec;
 *     if (imgpack_reader_open(&r, "train.imgpack", 0)) {
 *         fprintf(stderr, "%s\n", imgpack_reader_errmsg(r));
 *     } else if (imgpack_reader_get(r, 42, &rec) == IMGPACK_OK) {
 *         ... rec.data holds rec.size bytes straight out of the map ...
 *     }
 *     imgpack_reader_close(r);
 *
 * Three objects:
 *  - imgpack_reader: an open store (holds the LMDB environment). Counts,
 *    classes, labels, single records as zero-copy views or decoded pixels.
 *    Safe to share between threads; survives fork().
 *  - imgpack_batcher: turns an array of record indices into one buffer of
 *    uint8 or normalized float32/float16/bfloat16 images, center-cropped,
 *    randomly cropped or RandomResizedCrop'd, optionally flipped, on a pool
 *    of threads it owns, synchronously or prefetched in the background.
 *    One per training loop.
 *  - imgpack_sampler_*: plain functions giving the indices of an epoch for
 *    one rank, partitioned the way torch's DistributedSampler does, or
 *    drawn with replacement by weight (imgpack_sampler_weighted).
 * And imgpack_reader_channel_stats: the Normalize mean/std of a store,
 * and imgpack_reader_select: the indices of a subset, chosen by a SQL
 * WHERE clause on the store's catalog.
 *
 * How the reader uses LMDB. The environment is opened MDB_RDONLY |
 * MDB_NOTLS | MDB_NORDAHEAD: read-only, no OS readahead (random reads would
 * waste it), and read transactions owned by the reader rather than by
 * threads. Instead, the reader reads ahead what it knows it will read: a
 * batch's records, or those named to imgpack_reader_prefetch, are located
 * (no I/O: LMDB keeps a large record on contiguous overflow pages, one byte
 * range of data.mdb) and requested from the disk all at once, so a store
 * larger than memory is read with a few large requests per batch rather
 * than one synchronous page fault per 4 KiB. Each thread that calls in gets its
 * own read transaction (per shard it reads), kept for the life of the reader: a
 * complete store's stays open, an incomplete store's is renewed (mdb_txn_reset
 * + mdb_txn_renew) in every call, so a call sees everything committed before it
 * began, and costs no allocation.
 *
 * Read-only media. When LMDB cannot create or write lock.mdb (EACCES,
 * EROFS), the reader opens the store again with MDB_NOLOCK. Without a lock
 * file LMDB cannot tell a writer which pages readers still use, so this
 * mode is only safe when nothing writes the store, which is what an
 * unwritable directory implies. imgpack_reader_is_nolock() says which mode
 * was taken.
 *
 * Stores still being packed. A store whose meta `state` is not `complete`
 * opens only with IMGPACK_OPEN_INCOMPLETE. The record count is read at open
 * and again by imgpack_reader_refresh(); records past it stay out of range
 * until then. The reader maps far more address space than the file needs
 * (IMGPACK_READER_MAP_SIZE), so a growing store almost never needs a
 * remap; when it does (MDB_MAP_RESIZED), the reader remaps between calls.
 *
 * Sharded datasets. `imgpack pack --shard K/N` packs slice K of N into
 * OUT_DIR/shard-K-of-N, each an ordinary store (docs/FORMAT.md, "Sharded
 * datasets"). imgpack_reader_open(OUT_DIR) opens all N as one dataset: one
 * dense index 0..count-1, shard 0's records first, then shard 1's, ...,
 * which is the order a single pack of the same source has, so record i,
 * its label, batches, epoch order and rank partition are the single
 * pack's. Every function below takes these global indices. Each shard is
 * its own LMDB environment (two file descriptors, its own lock file); a
 * thread begins a read transaction on a shard when it first reads it, and
 * the rules on threads, fork() and read-only media hold per shard. The
 * shards share the address space one store maps
 * (IMGPACK_READER_MAP_SIZE / N each). A global index finds its shard by a
 * binary search over N; a single store skips it.
 *
 * fork(). LMDB forbids using an environment in a child process. A reader
 * notices that it runs in a new process (a pthread_atfork handler counts
 * forks) and opens the store again before its first call there; the
 * parent's environment is left alone in the child (closing it would clear
 * the parent's reader slots in the shared lock file). That is what PyTorch
 * DataLoader workers need. A batcher restarts its threads the same way
 * (batches its parent had submitted stay the parent's).
 *
 * Errors. Functions return an imgpack_status; imgpack_reader_errmsg() and
 * imgpack_batcher_errmsg() name the store, the record and the reason. A
 * damaged record (bad magic or CRC, truncated value, unknown version) fails
 * the call that reads it with IMGPACK_ERR_CORRUPT or
 * IMGPACK_ERR_VERSION_MISMATCH; it never crashes the process.
 *
 * Checks. By default every record is checked in full the first time the
 * process (or any process forked from it after open) reads it: header
 * CRC, payload CRC, and in a complete store that its label and payload
 * CRC are the ones the `labels` and `payload_crcs` metadata hold for its
 * index, so damage never comes back as success, not even a damaged
 * LMDB page that files one record under another's index. Later reads of
 * a record of a complete store only parse its header. Every metadata
 * value is checked against its checksum when read (stores packed before
 * metadata checksums existed have none, and open as before).
 * IMGPACK_OPEN_NO_VERIFY skips the payload CRC; IMGPACK_OPEN_VERIFY
 * checks it on every read. What is checked, and what a damaged LMDB
 * B-tree can still do (crash inside liblmdb), is in docs/FORMAT.md,
 * "Damage".
 */
#ifndef IMGPACK_READER_H
#define IMGPACK_READER_H

#include "imgpack/imgpack.h"
#include "imgpack/meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Address space the reader maps: 1 TiB. Only pages that are read cost
   memory; mapping more than the file lets a store that is still being
   appended to grow without a remap. If the system refuses that much
   (ulimit -v), the reader maps just what the writer asked for. */
#define IMGPACK_READER_MAP_SIZE ((uint64_t)1 << 40)

/* imgpack_reader_open flags. */
/* Open a store whose meta state is not "complete" (otherwise
   IMGPACK_ERR_INCOMPLETE). */
#define IMGPACK_OPEN_INCOMPLETE 0x1u
/* Check the payload CRC on every read, not just the first. */
#define IMGPACK_OPEN_VERIFY 0x2u
/* Skip the payload CRC (the header is still checked): the check's cost on
   a first epoch, in docs/BENCHMARKS.md, is not worth the risk for most. */
#define IMGPACK_OPEN_NO_VERIFY 0x4u

/*
 * An open store. Every function taking a reader may be called from any
 * number of threads at once, except imgpack_reader_refresh and
 * imgpack_reader_close, which need the reader to themselves.
 */
typedef struct imgpack_reader imgpack_reader;

/*
 * One record, as imgpack_reader_get and imgpack_reader_decode describe it.
 * `data` is a view, never owned by the caller: see the function that
 * filled it for how long it stays valid.
 */
typedef struct imgpack_record {
    const uint8_t *data; /* payload (get) or HWC pixels (decode) */
    uint64_t size;       /* bytes at data */
    int32_t format;      /* imgpack_format of data: decode gives RAW */
    uint32_t width, height, channels;
    uint32_t label; /* class id, < imgpack_reader_num_classes() */
} imgpack_record;

/*
 * Opens the store in directory `dir` read-only. `flags` is 0 or a
 * combination of IMGPACK_OPEN_*.
 *
 * `dir` holds either one store (data.mdb) or the shard-K-of-N
 * subdirectories of a sharded pack (K = 0..N-1, decimal, no padding; at
 * most IMGPACK_MAX_SHARDS, imgpack/pack.h), opened as one dataset. Every shard
 * must be there, all for the same N, each saying in its meta `shard` that it is
 * K/N, and all must agree on format version, format, width, height,
 * channels, resize, crop, settings, source_digest and classes; a dataset
 * is complete when every shard is.
 *
 * *out is set even on failure (unless memory ran out: then NULL), so that
 * imgpack_reader_errmsg can say what went wrong; close it in either case.
 * Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG, IMGPACK_ERR_NOT_FOUND (no
 * such directory), IMGPACK_ERR_NOT_A_STORE (neither data.mdb nor shard
 * directories, not our databases, a shard missing, shards of different
 * N, or shards of different datasets; the message names the shard and
 * the key), IMGPACK_ERR_VERSION_MISMATCH (format_version is not 1),
 * IMGPACK_ERR_INCOMPLETE (a store or shard still packing, or its pack
 * failed, and IMGPACK_OPEN_INCOMPLETE was not given), IMGPACK_ERR_CORRUPT
 * (metadata that does not parse or fails its checksum), IMGPACK_ERR_IO,
 * IMGPACK_ERR_STORE, IMGPACK_ERR_NOMEM; IMGPACK_ERR_INVALID_ARG also for
 * IMGPACK_OPEN_VERIFY with IMGPACK_OPEN_NO_VERIFY.
 */
IMGPACK_API imgpack_status imgpack_reader_open(imgpack_reader **out,
                                               const char *dir, uint32_t flags);

/* Closes the store and frees the reader; NULL is accepted. Every view the
   reader handed out ends. No other call on `r` may be running. */
IMGPACK_API void imgpack_reader_close(imgpack_reader *r);

/*
 * The calling thread's last failure on this reader: store, record and
 * reason; "" after a call that succeeded. Owned by the reader, valid until
 * the calling thread's next call on it. NULL reader: "out of memory".
 */
IMGPACK_API const char *imgpack_reader_errmsg(const imgpack_reader *r);

/* The store's directory as given to open; owned by the reader. */
IMGPACK_API const char *imgpack_reader_path(const imgpack_reader *r);

/* Records in the store (all shards'), as of open or the last refresh. */
IMGPACK_API uint64_t imgpack_reader_count(const imgpack_reader *r);

/* Shards the dataset was packed as: N for OUT_DIR/shard-K-of-N, 1 for a
   single store. */
IMGPACK_API uint32_t imgpack_reader_num_shards(const imgpack_reader *r);

/* The directory of shard k (below num_shards): OUT_DIR/shard-K-of-N, or
   the reader's own directory for a single store; NULL past the last.
   Owned by the reader, valid until it is closed. */
IMGPACK_API const char *imgpack_reader_shard_path(const imgpack_reader *r,
                                                  uint32_t k);

/* Classes (label values are below this). */
IMGPACK_API uint32_t imgpack_reader_num_classes(const imgpack_reader *r);

/* The name of class `class_id` (its directory name), NUL-terminated, owned
   by the reader until close; NULL if out of range. */
IMGPACK_API const char *imgpack_reader_class_name(const imgpack_reader *r,
                                                  uint32_t class_id);

/* The record format of the store (imgpack_format). */
IMGPACK_API int32_t imgpack_reader_format(const imgpack_reader *r);

/* Record width and height; 0 when records differ in size (packed with
   --crop 0). */
IMGPACK_API uint32_t imgpack_reader_width(const imgpack_reader *r);
IMGPACK_API uint32_t imgpack_reader_height(const imgpack_reader *r);

/* Channels of decoded pixels (3: RGB). */
IMGPACK_API uint32_t imgpack_reader_channels(const imgpack_reader *r);

/* The packing options recorded in the store: short side after resizing
   and center-crop side (0 = off). */
IMGPACK_API uint32_t imgpack_reader_resize(const imgpack_reader *r);
IMGPACK_API uint32_t imgpack_reader_crop(const imgpack_reader *r);

/* 1 if the store's meta state is "complete" (every shard's), else 0. */
IMGPACK_API int32_t imgpack_reader_is_complete(const imgpack_reader *r);

/* 1 if the store (any shard) was opened without a lock file (MDB_NOLOCK:
   read-only media), else 0. */
IMGPACK_API int32_t imgpack_reader_is_nolock(const imgpack_reader *r);

/*
 * Copies the metadata value under `key` (<imgpack/meta.h> names the keys,
 * docs/FORMAT.md says what they hold)
 * into `buf`, at most `capacity` bytes, and its full size into *size
 * (which may exceed `capacity`: call again with a bigger buffer). No NUL
 * is added. A sharded dataset answers as one store would: `count` and
 * `labels` for the whole dataset, `state` "complete" once every shard is
 * (else the first incomplete shard's), `next_position` from the last
 * shard, no `shard` or `shard_first_position` (they describe one shard),
 * and every other key from shard 0. The value is checked against its
 * checksum first (see "Checks"). Returns IMGPACK_OK,
 * IMGPACK_ERR_NOT_FOUND (no such key), IMGPACK_ERR_INVALID_ARG,
 * IMGPACK_ERR_CORRUPT (the value fails its checksum), IMGPACK_ERR_STORE.
 */
IMGPACK_API imgpack_status imgpack_reader_meta(imgpack_reader *r,
                                               const char *key, uint8_t *buf,
                                               uint64_t capacity,
                                               uint64_t *size);

/*
 * The label of record `index` into *label. A complete store answers from
 * its "labels" metadata without touching records; an incomplete one reads
 * the record's header. Returns IMGPACK_OK, IMGPACK_ERR_RANGE,
 * IMGPACK_ERR_CORRUPT, IMGPACK_ERR_VERSION_MISMATCH, IMGPACK_ERR_STORE.
 */
IMGPACK_API imgpack_status imgpack_reader_label(imgpack_reader *r,
                                                uint64_t index,
                                                uint32_t *label);

/*
 * The labels of records 0..n-1 into `labels` (n at most the count).
 * Returns as imgpack_reader_label; IMGPACK_ERR_RANGE if n > count.
 */
IMGPACK_API imgpack_status imgpack_reader_labels(imgpack_reader *r,
                                                 uint32_t *labels, uint64_t n);

/*
 * Record `index` as a zero-copy view: out->data points at the payload
 * inside the memory map (raw pixels, or the JPEG/WebP file); 16-byte
 * aligned when the record fills LMDB overflow pages (any record over half
 * a page, 2 KiB: every real image), only 2-byte aligned for tiny ones.
 * The record is checked (see "Checks" above) before anything is
 * returned.
 *
 * The view belongs to the reader and is valid until the calling thread's
 * next call of get, decode, label(s), meta, prefetch or release on this
 * reader, or until close; it is read-only memory. (In a complete store
 * nothing ever rewrites a record, so in practice the bytes stay as they
 * are until close; the guarantee is the shorter one.)
 *
 * Returns IMGPACK_OK, IMGPACK_ERR_RANGE (index >= count),
 * IMGPACK_ERR_CORRUPT, IMGPACK_ERR_VERSION_MISMATCH, IMGPACK_ERR_STORE,
 * IMGPACK_ERR_NOMEM.
 */
IMGPACK_API imgpack_status imgpack_reader_get(imgpack_reader *r, uint64_t index,
                                              imgpack_record *out);

/*
 * Record `index` as HWC uint8 pixels in the caller's buffer `pixels` of
 * `capacity` bytes (width*height*channels are needed; a fixed-size store
 * says so up front, otherwise imgpack_reader_get gives the size first).
 * Raw records are copied, jpeg and webp records decoded (each thread keeps
 * its own decoder). out->data = pixels, out->format = IMGPACK_FORMAT_RAW.
 *
 * Returns the codes of imgpack_reader_get, and IMGPACK_ERR_INVALID_ARG
 * (buffer too small), IMGPACK_ERR_DECODE (payload does not decode to the
 * header's size).
 */
IMGPACK_API imgpack_status imgpack_reader_decode(imgpack_reader *r,
                                                 uint64_t index,
                                                 uint8_t *pixels,
                                                 uint64_t capacity,
                                                 imgpack_record *out);

/*
 * Hints that records indices[0..n-1] will be read soon: locates each one
 * (a B-tree lookup, no I/O for the record itself), merges the page ranges
 * that touch, and queues their reads from the disk with
 * madvise(MADV_WILLNEED), all at once and without waiting for them. Later
 * gets, decodes and batches of those records then find them in the page
 * cache instead of taking one synchronous page fault per 4 KiB. Works the
 * same for every record format and across the shards of a sharded
 * dataset. imgpack_batcher_run does this itself for each batch; call it
 * for records you will read with get or decode, e.g. the next batch while
 * the current one is being used.
 *
 * Bounds: one call requests at most the prefetch limit (default
 * IMGPACK_PREFETCH_DEFAULT_LIMIT, see imgpack_reader_set_prefetch_limit)
 * in whole pages; the indices past it are not read ahead. The data goes
 * to the page cache, not to memory the reader holds: the kernel may drop
 * it again under memory pressure (then the record is simply read when
 * used). Ask for what the next batch or two need, not for an epoch.
 *
 * Cost when the pages are already cached: one B-tree lookup per index
 * and a mincore probe of 16 records' first pages per 512 indices; when
 * all probes are cached nothing is requested (about 50 us for 256 records
 * here). A partly cached store may thus have a round skipped (see
 * src/read/readahead.c, PROBES). Any thread may call it, as for
 * imgpack_reader_get; like get, it ends the calling thread's earlier
 * views. With a limit of 0 it does nothing and returns IMGPACK_OK.
 *
 * Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG (indices NULL with n > 0),
 * IMGPACK_ERR_RANGE (an index >= count: the indices before it were
 * requested), IMGPACK_ERR_CORRUPT (a record is missing),
 * IMGPACK_ERR_STORE.
 */
IMGPACK_API imgpack_status imgpack_reader_prefetch(imgpack_reader *r,
                                                   const uint64_t *indices,
                                                   uint64_t n);

/* Read-ahead per imgpack_reader_prefetch call (and per batch): 64 MiB,
   a batch of 256 raw 224x224 records (38.5 MB) with room to spare, and
   small beside the page cache of any machine that trains. */
#define IMGPACK_PREFETCH_DEFAULT_LIMIT ((uint64_t)64 << 20)
/* The most imgpack_reader_set_prefetch_limit accepts: 1 GiB. */
#define IMGPACK_PREFETCH_MAX_LIMIT ((uint64_t)1 << 30)

/*
 * Sets how many bytes one imgpack_reader_prefetch call (or the read-ahead
 * of one batch) may request: default IMGPACK_PREFETCH_DEFAULT_LIMIT, at
 * most IMGPACK_PREFETCH_MAX_LIMIT; 0 turns read-ahead off, batches
 * included. Any thread, any time; calls already running keep the limit
 * they started with. Returns IMGPACK_OK or IMGPACK_ERR_INVALID_ARG.
 */
IMGPACK_API imgpack_status imgpack_reader_set_prefetch_limit(imgpack_reader *r,
                                                             uint64_t bytes);

/* Ends the calling thread's views now (resets its read transaction), so
   that an idle thread does not hold back a writer's page reuse. */
IMGPACK_API void imgpack_reader_release(imgpack_reader *r);

/*
 * Reads the store's count and state again, to see records committed since
 * open. A store that became complete gains its labels metadata. In a
 * sharded dataset still being packed, a shard's growth moves the global
 * indices of every later shard; indices are final once all are complete.
 * Returns IMGPACK_OK, IMGPACK_ERR_STORE, IMGPACK_ERR_CORRUPT,
 * IMGPACK_ERR_NOMEM. Not concurrently with any other call on `r`.
 */
IMGPACK_API imgpack_status imgpack_reader_refresh(imgpack_reader *r);

/* ---- Statistics ------------------------------------------------------- */

/*
 * Per-channel mean and standard deviation of the pixel values of records
 * indices[0..n-1] (indices NULL: records 0..n-1, so n =
 * imgpack_reader_count(r) gives every record), in 0..1 units (value/255):
 * the arguments torchvision's Normalize(mean, std) wants for this data.
 * The std is over all pixel values of the set (population, ddof=0), not
 * an average of per-image stds. An index given twice counts twice. A gray
 * record counts its value for every channel, as batches replicate it.
 *
 * Sums and sums of squares are accumulated exactly in integers, per
 * thread, and merged, so the result does not depend on the thread count
 * or order; only the final division rounds. That holds up to
 * IMGPACK_STATS_MAX_PIXELS pixels in all; records of different sizes
 * (stores packed with --crop 0) weigh by their pixel count.
 *
 * `threads`: threads reading and decoding, the calling thread included;
 * 0 = the number of online cores; at most 256. Workers are named
 * "imgpack-s<N>" and end before the call returns. `mean` and `std` each
 * hold `n_values` doubles, at least imgpack_reader_channels(r); the first
 * channels values are written.
 *
 * Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG (n == 0, NULL pointers,
 * n_values too small, too many threads), IMGPACK_ERR_RANGE (an index past
 * the count, or more than IMGPACK_STATS_MAX_PIXELS pixels), and the codes
 * of imgpack_reader_decode; imgpack_reader_errmsg names a failing record.
 */
IMGPACK_API imgpack_status imgpack_reader_channel_stats(
    imgpack_reader *r, const uint64_t *indices, uint64_t n, uint32_t threads,
    double *mean, double *std, uint32_t n_values);

/* Pixels imgpack_reader_channel_stats sums exactly: a sum of squares of
   8-bit values, 255^2 each, stays within 64 bits up to here (about 5.6
   billion 224x224 records). */
#define IMGPACK_STATS_MAX_PIXELS (UINT64_MAX / (255u * 255u))

/* ---- Batches ---------------------------------------------------------- */

/* Output layouts and element types of a batch. */
#define IMGPACK_LAYOUT_NHWC 0   /* image, row, column, channel */
#define IMGPACK_LAYOUT_NCHW 1   /* image, channel, row, column (torch) */
#define IMGPACK_DTYPE_UINT8 0   /* the stored pixel values */
#define IMGPACK_DTYPE_FLOAT32 1 /* (v/255 - mean[c]) / std[c] */
/* The float32 value, rounded once to IEEE half (nearest, ties to even):
   torch's .half() of the float32 batch. */
#define IMGPACK_DTYPE_FLOAT16 2
/* The float32 value, rounded once to bfloat16 (nearest, ties to even):
   torch's .bfloat16() of the float32 batch. */
#define IMGPACK_DTYPE_BFLOAT16 3

/* Crop modes. */
#define IMGPACK_CROP_CENTER 0 /* torchvision CenterCrop */
#define IMGPACK_CROP_RANDOM 1 /* torchvision RandomCrop */
/* torchvision RandomResizedCrop: a random box, resized to the output
   size. */
#define IMGPACK_CROP_RANDOM_RESIZED 2

/* ImageNet's statistics, torchvision's usual Normalize arguments: the
   default mean and std of float batches. */
#define IMGPACK_IMAGENET_MEAN_R 0.485f
#define IMGPACK_IMAGENET_MEAN_G 0.456f
#define IMGPACK_IMAGENET_MEAN_B 0.406f
#define IMGPACK_IMAGENET_STD_R 0.229f
#define IMGPACK_IMAGENET_STD_G 0.224f
#define IMGPACK_IMAGENET_STD_B 0.225f

/* torchvision's RandomResizedCrop defaults: the box covers 8% to 100% of
   the image's area, with a width/height ratio from 3/4 to 4/3. */
#define IMGPACK_RRC_SCALE_MIN 0.08
#define IMGPACK_RRC_SCALE_MAX 1.0
#define IMGPACK_RRC_RATIO_MIN (3.0 / 4.0)
#define IMGPACK_RRC_RATIO_MAX (4.0 / 3.0)

/* Batches a batcher prepares ahead at most (imgpack_batcher_submit). Each
   holds its caller's output buffer, so a deeper queue only holds more of
   the caller's memory; a training step hides one or two batches. */
#define IMGPACK_MAX_PREFETCH 16

/*
 * The random augmentation of one record: the box cut out of it (rows
 * top..top+height-1, columns left..left+width-1 of the record) and whether
 * the result is flipped horizontally.
 */
typedef struct imgpack_augment {
    uint32_t top, left, height, width;
    int32_t flip; /* 1: flipped, 0: not */
} imgpack_augment;

/*
 * The RandomResizedCrop box and the flip of record `index` (its global
 * index in the store) in epoch `epoch`, for a record of `width` x `height`
 * pixels, into *out: exactly what a batcher with IMGPACK_CROP_RANDOM_RESIZED
 * and the same seed, scale, ratio and flip setting cuts out of that record
 * (imgpack_batcher_run, imgpack_batcher_submit). A pure function of its
 * arguments: the same on every thread, rank and machine, whatever the
 * batch the record is in.
 *
 * The box follows torchvision 0.14's RandomResizedCrop.get_params as an
 * algorithm: up to 10 attempts of area = width*height*U(scale_min,
 * scale_max), log-ratio U(log ratio_min, log ratio_max), w =
 * round(sqrt(area*r)), h = round(sqrt(area/r)) (Python's round, halves to
 * even), accepted if 0 < w <= width and 0 < h <= height, with top a
 * uniform integer in [0, height-h] and left in [0, width-w]; if no attempt
 * fits, the fallback: the whole image with its ratio clamped to [ratio_min,
 * ratio_max], centred (a side that would round to 0 is 1 here, where
 * torchvision would fail). The numbers come from imgpack's own generator,
 * not torch's, so the boxes have torchvision's distribution, not its
 * values: splitmix64 (Steele, Lea, Flood 2014) over a counter, keyed by
 * k = mix(mix(mix(seed) ^ epoch) ^ index), mix(x) being splitmix64's
 * output for state x (x + 0x9e3779b97f4a7c15, then its finalizer); the
 * box draws come from one stream of k, the flip from another (so the box
 * does not depend on `flip`); doubles take the top 53 bits of a draw,
 * integers in a range are drawn without modulo bias. (exp and log come
 * from the C library: one that rounds their last bit differently could,
 * in very rare cases, move a box by one pixel.) `flip` nonzero: out->flip
 * is 1 with probability 1/2; 0: never.
 *
 * Returns IMGPACK_OK, or IMGPACK_ERR_INVALID_ARG (out NULL, width or
 * height 0, scale or ratio not finite with 0 < min <= max).
 */
IMGPACK_API imgpack_status imgpack_augment_params(
    uint64_t seed, uint64_t epoch, uint64_t index, uint32_t width,
    uint32_t height, double scale_min, double scale_max, double ratio_min,
    double ratio_max, int32_t flip, imgpack_augment *out);

/*
 * Options for a batcher: create, set what differs from the defaults, pass
 * to imgpack_batcher_create, destroy. Memory only; one thread at a time.
 */
typedef struct imgpack_batch_options imgpack_batch_options;

/* Makes options holding every default. IMGPACK_ERR_NOMEM on failure. */
IMGPACK_API imgpack_status
imgpack_batch_options_create(imgpack_batch_options **out);

/* Frees the options; NULL is accepted. */
IMGPACK_API void imgpack_batch_options_destroy(imgpack_batch_options *opts);

/* IMGPACK_LAYOUT_*: default IMGPACK_LAYOUT_NCHW. */
IMGPACK_API imgpack_status
imgpack_batch_options_set_layout(imgpack_batch_options *opts, int32_t layout);

/* IMGPACK_DTYPE_*: default IMGPACK_DTYPE_FLOAT32. */
IMGPACK_API imgpack_status
imgpack_batch_options_set_dtype(imgpack_batch_options *opts, int32_t dtype);

/*
 * Per-channel mean and std of float output (float32, float16, bfloat16),
 * `n` values each (1: the same for every channel; or the store's channel
 * count). Default ImageNet's. Each value v becomes (v/255.0f - mean[c]) /
 * std[c], computed in float32 in that order, as torchvision's ToTensor() +
 * Normalize(mean, std) do, so the results equal torch's bit for bit; the
 * 16-bit types then round that float32 once. std values must be nonzero.
 */
IMGPACK_API imgpack_status imgpack_batch_options_set_normalize(
    imgpack_batch_options *opts, const float *mean, const float *std,
    uint32_t n);

/*
 * Output size `width` x `height` of each image and how it is cut out of a
 * record (mode IMGPACK_CROP_*):
 *  - CENTER, RANDOM: torchvision's CenterCrop / RandomCrop of that size. A
 *    record smaller than the crop is padded with black as CenterCrop pads,
 *    centred, in either mode.
 *  - RANDOM_RESIZED: torchvision's RandomResizedCrop(size=(height, width)):
 *    the box of imgpack_augment_params (scale and ratio as set by
 *    imgpack_batch_options_set_random_resized), resized to width x height
 *    with Pillow's antialiased bilinear filter, the one the packer uses, so
 *    each image equals torchvision.transforms.functional.resized_crop(
 *    record, top, left, h, w, [height, width], BILINEAR) on the PIL image
 *    of the record, byte for byte, and then hflip when flipped.
 * Default 0 x 0 with CENTER: the record size, which stores packed with
 * --crop 0 do not have (then a crop is required); RANDOM_RESIZED needs a
 * size. At most IMGPACK_MAX_SIDE.
 */
IMGPACK_API imgpack_status imgpack_batch_options_set_crop(
    imgpack_batch_options *opts, uint32_t width, uint32_t height, int32_t mode);

/*
 * RandomResizedCrop's `scale` (fraction of the record's area) and `ratio`
 * (width/height) ranges, used by IMGPACK_CROP_RANDOM_RESIZED. Defaults
 * IMGPACK_RRC_*: (0.08, 1.0) and (3/4, 4/3). torchvision only warns about
 * a range given backwards; here each must be finite with 0 < min <= max
 * (IMGPACK_ERR_INVALID_ARG otherwise). scale_max may exceed 1 (boxes that
 * do not fit are drawn again, as in torchvision).
 */
IMGPACK_API imgpack_status imgpack_batch_options_set_random_resized(
    imgpack_batch_options *opts, double scale_min, double scale_max,
    double ratio_min, double ratio_max);

/* Nonzero: flip each image horizontally with probability 1/2, after the
   crop and resize (torchvision's RandomHorizontalFlip). Default 0. */
IMGPACK_API imgpack_status
imgpack_batch_options_set_flip(imgpack_batch_options *opts, int32_t flip);

/* Threads working on a batch: default 1 (no pool); 0 = the number of
   online cores; at most 256. The thread filling the batch counts as one:
   the caller of imgpack_batcher_run, or the batcher's own driver thread
   for submitted batches. */
IMGPACK_API imgpack_status imgpack_batch_options_set_threads(
    imgpack_batch_options *opts, uint32_t threads);

/* Batches imgpack_batcher_submit may hold in flight: 0 (the default) to
   IMGPACK_MAX_PREFETCH. 0 leaves only imgpack_batcher_run. */
IMGPACK_API imgpack_status
imgpack_batch_options_set_prefetch(imgpack_batch_options *opts, uint32_t depth);

/*
 * Fills batches from one reader. Owns threads-1 worker threads
 * ("imgpack-b<N>"), idle between batches, and with prefetch a driver
 * thread ("imgpack-bq") started by the first submit. Use from one thread
 * at a time; the reader must outlive it.
 *
 * Randomness is keyed by sample: the crop, box and flip of record i in
 * epoch e depend on (seed, e, i, the record's size, the options) alone,
 * never on the batch, the position in it, the thread count, the rank or
 * the world size. In every crop mode the flip is the one
 * imgpack_augment_params reports; RandomCrop draws its top, then its left
 * offset from the stream the box would use. So the images of an epoch are the
 * same however it is split into batches, and an interrupted epoch resumes
 * exactly. (An index given twice in an epoch, as DistributedSampler's padding
 * does, gets the same augmentation twice.)
 *
 * fork(): a batcher used in a child process starts new threads there
 * before its first batch; batches the parent had submitted stay the
 * parent's (the child's copy has none in flight). A child may keep using
 * the copy or make its own batcher.
 *
 * A training epoch with RandomResizedCrop(224) and flips, two batches
 * prepared ahead while the caller trains on the one before (order: this
 * rank's indices from imgpack_sampler_indices; out[k] hold `batch` images
 * each; error handling left out):
 *
 *     imgpack_batch_options_set_crop(o, 224, 224,
 *                                    IMGPACK_CROP_RANDOM_RESIZED);
 *     imgpack_batch_options_set_flip(o, 1);
 *     imgpack_batch_options_set_prefetch(o, 2);
 *     imgpack_batcher_create(&b, reader, o);
 *     for (k = 0; k < 2 && k < batches; k++)
 *         imgpack_batcher_submit(b, order + k * batch, batch, seed, epoch,
 *                                out[k % 2], size, labels[k % 2]);
 *     for (k = 0; k < batches; k++) {
 *         imgpack_batcher_wait(b);
 *         ... batch k is in out[k % 2]: train on it ...
 *         if (k + 2 < batches)
 *             imgpack_batcher_submit(b, order + (k + 2) * batch, batch,
 *                                    seed, epoch, out[k % 2], size,
 *                                    labels[k % 2]);
 *     }
 */
typedef struct imgpack_batcher imgpack_batcher;

/*
 * Makes a batcher reading `reader` with `opts` (NULL: defaults; not used
 * after the call). *out is set even on failure (unless memory ran out) so
 * imgpack_batcher_errmsg works; destroy it in either case.
 * Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG (no crop on a store whose
 * records differ in size, mean/std count not 1 or the channel count),
 * IMGPACK_ERR_THREAD, IMGPACK_ERR_NOMEM.
 */
IMGPACK_API imgpack_status
imgpack_batcher_create(imgpack_batcher **out, imgpack_reader *reader,
                       const imgpack_batch_options *opts);

/* Stops and joins the threads and frees the batcher; NULL is accepted.
   Batches still in flight are cancelled: the one being filled stops after
   the images already claimed, queued ones never start, and their output
   buffers are not touched once this returns. */
IMGPACK_API void imgpack_batcher_destroy(imgpack_batcher *b);

/* The last failure, naming the record; "" after success. Owned by the
   batcher, valid until its next call. NULL batcher: "out of memory". */
IMGPACK_API const char *imgpack_batcher_errmsg(const imgpack_batcher *b);

/* Output geometry of one image: width, height, channels, and bytes. */
IMGPACK_API uint32_t imgpack_batcher_width(const imgpack_batcher *b);
IMGPACK_API uint32_t imgpack_batcher_height(const imgpack_batcher *b);
IMGPACK_API uint32_t imgpack_batcher_channels(const imgpack_batcher *b);
IMGPACK_API uint64_t imgpack_batcher_image_bytes(const imgpack_batcher *b);

/*
 * Fills `out` (`capacity` bytes, at least n * image_bytes; float32 output
 * needs 4-byte alignment, float16 and bfloat16 2-byte) with records
 * indices[0..n-1] in that order, and `labels` (n values; may be NULL) with
 * their labels, as int64 so they go straight into a torch LongTensor.
 * Random crops and flips are those of (seed, epoch, indices[k]): see
 * imgpack_batcher and imgpack_augment_params. Returns when the batch is
 * done. Not while submitted batches are in flight (IMGPACK_ERR_INVALID_ARG:
 * wait for them first).
 *
 * On failure the contents of `out` are unspecified; the error names a
 * failing record. Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG,
 * IMGPACK_ERR_RANGE, IMGPACK_ERR_CORRUPT, IMGPACK_ERR_VERSION_MISMATCH,
 * IMGPACK_ERR_DECODE, IMGPACK_ERR_STORE, IMGPACK_ERR_THREAD,
 * IMGPACK_ERR_NOMEM.
 */
IMGPACK_API imgpack_status imgpack_batcher_run(
    imgpack_batcher *b, const uint64_t *indices, uint64_t n, uint64_t seed,
    uint64_t epoch, void *out, uint64_t capacity, int64_t *labels);

/*
 * Queues the batch imgpack_batcher_run would fill with the same arguments
 * and returns at once; the batcher's threads fill it in the background
 * (the calling thread does no part of it), in submission order. `indices`
 * is copied; `out` and `labels` are written until imgpack_batcher_wait
 * has returned this batch's status, and the caller must not touch or free
 * them before. Call imgpack_batcher_wait once per successful submit.
 *
 * Returns IMGPACK_OK (queued), IMGPACK_ERR_RANGE (already `prefetch`
 * batches in flight, or prefetch is 0: wait first), IMGPACK_ERR_INVALID_ARG
 * (as imgpack_batcher_run checks its arguments), IMGPACK_ERR_THREAD (the
 * driver thread could not start), IMGPACK_ERR_NOMEM. Errors while filling
 * come from imgpack_batcher_wait.
 */
IMGPACK_API imgpack_status imgpack_batcher_submit(
    imgpack_batcher *b, const uint64_t *indices, uint64_t n, uint64_t seed,
    uint64_t epoch, void *out, uint64_t capacity, int64_t *labels);

/*
 * Waits for the oldest submitted batch (first in, first out) to be filled
 * and returns its status, as imgpack_batcher_run would have; on failure
 * imgpack_batcher_errmsg names the failing record. A failed batch does
 * not stop the ones queued after it. Returns IMGPACK_ERR_INVALID_ARG when
 * nothing is in flight, and the codes of imgpack_batcher_run.
 */
IMGPACK_API imgpack_status imgpack_batcher_wait(imgpack_batcher *b);

/* Batches submitted and not yet waited for. */
IMGPACK_API uint32_t imgpack_batcher_in_flight(const imgpack_batcher *b);

/* ---- Subsets --------------------------------------------------------- */

/*
 * The indices of the records that the SQL expression `where` selects, read
 * from the store's catalog (OUT_DIR/catalog.db; for a sharded pack the one
 * `imgpack combine` wrote, whose indices are the dataset's), ascending,
 * into `out`, and their number into *count. `where` is a WHERE clause
 * over the columns of the catalog's images and classes tables
 * (schema/catalog.sql), run as
 *
 *     SELECT images.idx FROM images JOIN classes USING (class_id)
 *     WHERE (<where>) ORDER BY images.idx
 *
 * e.g. "classes.name IN ('n01440764', 'n02102040')", "min(src_width,
 * src_height) >= ?", "idx % 10 != 0". Subqueries are allowed; the clause
 * must be one expression (its parentheses balance, no ';'), and the query
 * may only read: the catalog is opened read-only (SQLITE_OPEN_READONLY,
 * PRAGMA query_only) and an authorizer refuses ATTACH, PRAGMA, writes,
 * transactions and load_extension; the message says what was refused.
 *
 * `params`: `n_params` NUL-terminated values for the clause's parameters
 * (?, ?NNN, :name, @name, $name, numbered as SQLite numbers them: in order
 * of first appearance); exactly as many as the clause has. A value
 * written exactly as printf writes an integer ("%lld") is bound as an
 * integer, one written as printf writes a double ("%.15g" or "%.17g") as
 * a real, anything else as text: "256" and "0.5" are numbers, "007",
 * "1e3" and " 5" are text.
 *
 * Only indices below imgpack_reader_count(r) are given (the store, not the
 * catalog, says what was packed), so `capacity` = imgpack_reader_count(r)
 * is always enough. The indices' labels are the store's class ids.
 *
 * Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG (the clause is not one
 * read-only expression, a wrong number of parameters, `capacity` too
 * small, NULL pointers), IMGPACK_ERR_CATALOG (no catalog, or SQLite's
 * error: a syntax error, an unknown column), IMGPACK_ERR_NOMEM;
 * imgpack_reader_errmsg says why, naming the catalog. Any thread.
 */
IMGPACK_API imgpack_status imgpack_reader_select(
    imgpack_reader *r, const char *where, const char *const *params,
    uint32_t n_params, uint64_t *out, uint64_t capacity, uint64_t *count);

/* ---- Epoch order ------------------------------------------------------ */

/*
 * Indices per rank and epoch for a dataset of `n` records split over
 * `world_size` ranks, as torch.utils.data.DistributedSampler computes it:
 * ceil(n / world_size), or with `drop_last` floor(n / world_size).
 * 0 if world_size is 0.
 */
IMGPACK_API uint64_t imgpack_sampler_count(uint64_t n, uint32_t world_size,
                                           int32_t drop_last);

/*
 * The indices of epoch `epoch` for rank `rank` into `out` (`capacity` at
 * least imgpack_sampler_count). Without `shuffle`: 0..n-1. With it: a
 * permutation of 0..n-1 drawn from (seed, epoch) by our own generator
 * (Fisher-Yates over a splitmix64 stream; not torch's RNG, so the order
 * differs from torch's, but it is the same on every machine and rank).
 * Then DistributedSampler's rule: without `drop_last` the list is padded to
 * a multiple of world_size by repeating its start; with it, the tail past
 * the last multiple is dropped; rank r takes positions r, r+world_size,
 * ... Ranks are disjoint apart from padding, and together cover every
 * index each epoch.
 *
 * Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG (rank >= world_size,
 * capacity too small, n == 0 with world_size > 0 is fine and gives 0),
 * IMGPACK_ERR_NOMEM (the full permutation takes 8*n bytes while it runs).
 */
IMGPACK_API imgpack_status imgpack_sampler_indices(
    uint64_t n, uint64_t seed, uint64_t epoch, int32_t shuffle, uint32_t rank,
    uint32_t world_size, int32_t drop_last, uint64_t *out, uint64_t capacity);

/*
 * imgpack_sampler_indices in an order for devices with poor random reads
 * (disks, network file systems): with `shuffle`, the records are cut into
 * windows of `window` consecutive indices ([0, W), [W, 2W), ...; the last
 * may be shorter), the windows come in a seeded random order, and each
 * window's records in a seeded random order within it; all from (seed,
 * epoch). Then DistributedSampler's padding and partition, as
 * imgpack_sampler_indices. `window` 0 or 1, or at least n, gives exactly
 * imgpack_sampler_indices' order; without `shuffle`, window is ignored.
 *
 * What it does to randomness: every record is still seen once per epoch
 * (ranks partitioned as before), but records that are neighbours in the
 * store arrive close together: a stretch of W positions of the order
 * holds at most two windows. Stores keep their packing order, so with an
 * ImageFolder source a window is mostly one class (ImageNet's classes
 * hold about 1,300 images), and a batch smaller than W is then mostly of
 * one or two classes, which hurts batch-norm statistics and SGD as a
 * class-sorted order does. Choose W well below a class's size (or pack
 * from a shuffled --list), large enough that a window is worth one long
 * read: with world_size ranks each rank reads every world_size-th record
 * of a window, so W / world_size records of ~150 KB per window per rank.
 *
 * Returns as imgpack_sampler_indices.
 */
IMGPACK_API imgpack_status imgpack_sampler_indices_windowed(
    uint64_t n, uint64_t seed, uint64_t epoch, int32_t shuffle, uint64_t window,
    uint32_t rank, uint32_t world_size, int32_t drop_last, uint64_t *out,
    uint64_t capacity);

/*
 * Weighted sampling with replacement, as torch's WeightedRandomSampler:
 * the indices rank `rank` reads in epoch `epoch`, each drawn from 0..n-1
 * with probability weights[i] / sum(weights), independently, from (seed,
 * epoch) by our own generator (not torch's). An epoch is
 * `num_samples` draws rounded up to a multiple of `world_size`: rank r
 * gets imgpack_sampler_count(num_samples, world_size, 0) of them, draws
 * r, r+world_size, ... of one stream, so the ranks' lists interleave into
 * what world_size 1 draws for that many samples. Ranks draw independently
 * (with replacement an index may come up on several).
 *
 * `weights`: n finite values >= 0 with a positive sum (need not sum to
 * 1); a zero weight is never drawn. `out`: `capacity` at least that
 * count.
 *
 * Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG (rank >= world_size,
 * capacity too small, a negative, NaN or infinite weight, all weights 0,
 * n == 0 with samples to draw), IMGPACK_ERR_NOMEM (8*n bytes of prefix
 * sums while it runs). Any thread.
 */
IMGPACK_API imgpack_status imgpack_sampler_weighted(
    const double *weights, uint64_t n, uint64_t num_samples, uint64_t seed,
    uint64_t epoch, uint32_t rank, uint32_t world_size, uint64_t *out,
    uint64_t capacity);

/*
 * Class-balanced weights for imgpack_sampler_weighted: weights[i] = 1 /
 * (records with label labels[i]), so each class present is equally likely
 * per draw and records within a class are equally likely. `labels`,
 * `weights`: n values each (labels from imgpack_reader_labels, or a
 * subset's). Returns IMGPACK_OK, IMGPACK_ERR_INVALID_ARG (NULL pointers),
 * IMGPACK_ERR_NOMEM.
 */
IMGPACK_API imgpack_status imgpack_sampler_balanced_weights(
    const uint32_t *labels, uint64_t n, double *weights);

#ifdef __cplusplus
}
#endif

#endif /* IMGPACK_READER_H */
