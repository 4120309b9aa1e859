/*
 * The public packing API: the packer that ties the source, the worker
 * pool, the ordered queue and the writer together (its options are in
 * pack_options.c).
 *
 * imgpack_packer_run starts the workers and then acts as the writer itself:
 * the calling thread owns every LMDB write transaction and runs the
 * callbacks, so they never race with the library's own state.
 */
#include "imgpack/pack.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "append.h"
#include "checksums.h"
#include "error.h"
#include "pack_options.h"
#include "pool.h"
#include "queue.h"
#include "resize.h"
#include "sources.h"
#include "store_meta.h"
#include "transform.h"
#include "writer.h"

/* Results the queue may hold per worker: enough that a slow image does not
   idle the others, few enough that memory stays a few dozen records. */
#define QUEUE_RESULTS_PER_JOB 8
#define QUEUE_MIN_RESULTS 32

struct imgpack_packer {
    imgpack__error error;
    imgpack__source source;
    imgpack__writer writer;
    int writer_open; /* reopened by a resume; else imgpack_packer_run opens it
                      */
    char *notice;    /* what a resume with nothing to resume did, or NULL */
    /* A new store is created by imgpack_packer_run, while the workers
       decode the first images; these say where and how. */
    char *store_dir;
    char *command;
    imgpack__writer_info info;
    imgpack__transform_settings settings;
    uint32_t jobs;
    int32_t strict;
    uint64_t start; /* first source item this run packs */
    uint64_t end;   /* one past the last item of this store's slice */
    int ran;
    imgpack_progress_fn on_progress;
    imgpack_reject_fn on_reject;
    void *user;
    imgpack_pack_progress progress;
    /* What the store held before an append, which its progress leaves
       out; zero for a pack. */
    imgpack__writer_counts held;
    struct timespec started;
};

/* Lists the source (sources.h picks its kind); then settles what depends
   on whether its items are gray digits. */
static imgpack_status scan_source(imgpack_packer *p, const char *src,
                                  const imgpack_pack_options *opts) {
    imgpack__source *s = &p->source;
    imgpack__source_request request = {.path = src,
                                       .list = opts->list,
                                       .sort_list = opts->sort_list,
                                       .labels = opts->labels};
    imgpack_status status = imgpack__source_open(&request, s, &p->error);
    if (status == IMGPACK_OK && opts->class_names)
        status = imgpack__source_name_classes(s, opts->class_names, &p->error);
    if (status != IMGPACK_OK)
        return status;
    int gray = s->ops->gray;
    p->settings.channels = opts->channels ? opts->channels : gray ? 1 : 3;
    if (!gray && p->settings.channels != 3)
        return imgpack__error_set(&p->error, IMGPACK_ERR_INVALID_ARG,
                                  "%s: images are packed as RGB: one channel "
                                  "is for gray sources (IDX, CSV)",
                                  src);
    /* Gray digit sets are used at their own size unless asked otherwise. */
    if (gray && !opts->resize_set)
        p->settings.resize = 0;
    if (gray && !opts->crop_set)
        p->settings.crop = 0;
    return IMGPACK_OK;
}

/* The size every record will have, for the store's metadata: cropped
   ones, or ones resized from items that share a size (gray digit sets);
   else 0 by 0, they vary. */
static void record_size(imgpack_packer *p) {
    imgpack__geometry g = {0};
    if (p->settings.crop > 0)
        g.out_width = g.out_height = p->settings.crop;
    else if (p->source.width > 0)
        imgpack__geometry_plan(p->source.width, p->source.height,
                               p->settings.resize, 0, &g);
    p->info.width = g.out_width;
    p->info.height = g.out_height;
}

/* Shard k of n holds items [k*m/n, (k+1)*m/n) of the m listed: contiguous
   slices, so the shards in order are the single pack's order. */
static void shard_slice(uint64_t m, uint32_t k, uint32_t n, uint64_t *begin,
                        uint64_t *end) {
    *begin = m * k / n;
    *end = m * (k + 1) / n;
}

/* Creates `dir` if it does not exist yet (its parent must); *created says
   whether it did. */
static imgpack_status make_out_dir(const char *dir, int *created,
                                   imgpack__error *err) {
    struct stat st;
    *created = mkdir(dir, 0755) == 0;
    if (*created ||
        (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return IMGPACK_OK;
    return imgpack__error_set(err, imgpack__status_from_errno(errno),
                              "%s: cannot create the output directory: %s", dir,
                              strerror(errno == EEXIST ? ENOTDIR : errno));
}

/* Refuses a file option naming something other than a regular file: a
   FIFO would hold the pack until something writes to it, perhaps forever.
   A path that does not resolve is left to the code that opens it. */
static imgpack_status check_input_file(const char *option, const char *path,
                                       imgpack__error *err) {
    struct stat st;
    if (!path || stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return IMGPACK_OK;
    return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                              "%s %s: not a regular file but %s: save it to "
                              "a file first",
                              option, path,
                              S_ISFIFO(st.st_mode)  ? "a FIFO"
                              : S_ISDIR(st.st_mode) ? "a directory"
                                                    : "a device or socket");
}

static imgpack_status check_input_files(const imgpack_pack_options *o,
                                        imgpack__error *err) {
    imgpack_status status;
    if ((status = check_input_file("--list", o->list, err)) ||
        (status = check_input_file("--synsets", o->synsets, err)) ||
        (status = check_input_file("--sha256", o->checksums, err)) ||
        (status = check_input_file("--labels", o->labels, err)))
        return status;
    return check_input_file("--class-names", o->class_names, err);
}

/* The absolute path without symbolic links that `path` names, or would
   name once created (its parent must exist); NULL if it cannot be told.
   The caller frees it. */
static char *resolve(const char *path) {
    char *full = realpath(path, NULL), *copy, *slash, *parent;
    if (full || errno != ENOENT || !(copy = strdup(path)))
        return full;
    for (size_t n = strlen(copy); n > 1 && copy[n - 1] == '/'; n--)
        copy[n - 1] = '\0';
    slash = strrchr(copy, '/');
    if (slash)
        *slash = '\0';
    parent = realpath(!slash ? "." : slash == copy ? "/" : copy, NULL);
    if (parent &&
        asprintf(&full, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent,
                 slash ? slash + 1 : copy) < 0)
        full = NULL;
    free(parent);
    free(copy);
    return full;
}

/* Refuses OUT_DIR at or below a directory SRC: the store would be listed
   as a class of SRC, and every later resume would find the source
   changed. */
static imgpack_status check_out_outside_src(const char *src,
                                            const char *out_dir,
                                            imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    struct stat st;
    if (stat(src, &st) != 0 || !S_ISDIR(st.st_mode))
        return IMGPACK_OK;
    char *from = realpath(src, NULL), *to = resolve(out_dir);
    size_t n = from ? strlen(from) : 0;
    if (from && to && strcmp(from, to) == 0)
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: OUT_DIR is SRC itself: pack into a "
                                    "directory outside SRC",
                                    out_dir);
    else if (from && to && strncmp(from, to, n) == 0 &&
             (to[n] == '/' || from[n - 1] == '/'))
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: OUT_DIR is inside SRC %s: the store "
                                    "would become a class of it; pack into "
                                    "a directory outside SRC",
                                    out_dir, src);
    free(from);
    free(to);
    return status;
}

/* A whole store and the shard folders of a sharded pack never share
   OUT_DIR: readers could not tell which one it holds. */
static imgpack_status check_layout(const char *out_dir, uint32_t shard_count,
                                   imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    char path[4096];
    uint32_t k, n;
    struct stat st;
    struct dirent *entry;
    DIR *dir;
    if (shard_count > 1) {
        snprintf(path, sizeof path, "%s/data.mdb", out_dir);
        if (stat(path, &st) == 0)
            status = imgpack__error_set(
                err, IMGPACK_ERR_EXISTS,
                "%s: holds a whole store (data.mdb), not shards: pack the "
                "shards into a directory of their own",
                out_dir);
        return status;
    }
    if (!(dir = opendir(out_dir)))
        return IMGPACK_OK;
    while (status == IMGPACK_OK && (entry = readdir(dir)))
        if (imgpack__shard_name_parse(entry->d_name, &k, &n))
            status = imgpack__error_set(
                err, IMGPACK_ERR_EXISTS,
                "%s: holds the shards of a sharded pack (%s): pack or resume "
                "each with --shard K/N",
                out_dir, entry->d_name);
    closedir(dir);
    return status;
}

/* Says what a resume with nothing to resume did instead. */
static imgpack_status set_notice(imgpack_packer *p, const char *what) {
    if (asprintf(&p->notice, "%s: %s: starting a new pack", p->store_dir,
                 what) < 0) {
        p->notice = NULL;
        return imgpack__error_set(&p->error, IMGPACK_ERR_NOMEM,
                                  "out of memory");
    }
    return IMGPACK_OK;
}

/*
 * Reopens the interrupted pack in the store directory, or readies a new
 * one where there is nothing to resume, so that one command line serves
 * the first run and every retry: no store yet, or the store of a pack
 * killed while starting, before LMDB held anything (then it is cleared).
 */
static imgpack_status resume_or_start(imgpack_packer *p) {
    imgpack__error probe;
    imgpack_status status;
    imgpack__error_clear(&probe);
    if (imgpack__store_check_new(p->store_dir, &probe) == IMGPACK_OK)
        return set_notice(p, "no pack to resume");
    status = imgpack__writer_resume(&p->writer, p->store_dir, &p->source,
                                    &p->info, &p->start, &p->error);
    p->writer_open = status == IMGPACK_OK;
    if (status != IMGPACK_ERR_NOT_A_STORE)
        return status;
    imgpack__error_clear(&p->error);
    if ((status = imgpack__writer_discard_unstarted(p->store_dir, &p->error)))
        return status;
    return set_notice(p, "the pack there stopped while starting, before it "
                         "committed anything; cleared it");
}

/* Readies an append to the complete store in the store directory: the
   listing becomes what it lacks, and the writer reopens it. */
static imgpack_status open_append(imgpack_packer *p) {
    imgpack_status status =
        imgpack__append_listing(&p->source, p->store_dir, &p->error);
    if (status == IMGPACK_OK) {
        p->start = p->info.begin = 0;
        p->end = p->info.end = p->source.num_items;
        status = imgpack__writer_append(&p->writer, p->store_dir, &p->source,
                                        &p->info, &p->error);
        p->held = p->writer.durable;
    }
    p->writer_open = status == IMGPACK_OK;
    return status;
}

/* Keeps what imgpack_packer_run needs to create the store once the options
   are gone: its directory (a shard's own one below OUT_DIR) and the
   command line to record. */
static imgpack_status name_store(imgpack_packer *p, const char *out_dir,
                                 const imgpack_pack_options *opts) {
    char name[IMGPACK__SHARD_NAME_SIZE];
    imgpack__shard_name(name, opts->shard_index, opts->shard_count);
    if (opts->shard_count == 1)
        p->store_dir = strdup(out_dir);
    else if (asprintf(&p->store_dir, "%s/%s", out_dir, name) < 0)
        p->store_dir = NULL;
    if (!p->store_dir ||
        (opts->command && !(p->command = strdup(opts->command))))
        return imgpack__error_set(&p->error, IMGPACK_ERR_NOMEM,
                                  "out of memory");
    return IMGPACK_OK;
}

imgpack_status imgpack_packer_open(imgpack_packer **out, const char *src_dir,
                                   const char *out_dir,
                                   const imgpack_pack_options *opts) {
    imgpack_pack_options *defaults = NULL;
    imgpack_status status;
    int created_out = 0, created_store = 0;
    imgpack_packer *p = calloc(1, sizeof *p);
    *out = p;
    if (!p)
        return IMGPACK_ERR_NOMEM;
    if (!opts) {
        if ((status = imgpack_pack_options_create(&defaults)))
            return imgpack__error_set(&p->error, status, "out of memory");
        opts = defaults;
    }
    p->settings = opts->settings;
    p->strict = opts->strict;
    p->jobs = opts->jobs;
    if (p->jobs == 0)
        p->jobs = imgpack__parallel_cores();
    imgpack__writer_info *info = &p->info;
    *info = (imgpack__writer_info){.settings = &p->settings,
                                   .shard_index = opts->shard_index,
                                   .shard_count = opts->shard_count};
    status = name_store(p, out_dir, opts);
    info->command = p->command;
    if (!status)
        status = check_input_files(opts, &p->error);
    if (!status)
        status = check_out_outside_src(src_dir, out_dir, &p->error);
    if (!status)
        status = check_layout(out_dir, opts->shard_count, &p->error);
    if (!status && opts->append &&
        (opts->shard_count > 1 || opts->classes_from))
        status = imgpack__error_set(
            &p->error, IMGPACK_ERR_INVALID_ARG,
            "%s: --append adds to one whole store, under its own classes: "
            "not with --shard or --classes-from",
            out_dir);
    if (!status && opts->checksums)
        status = imgpack__verify_checksums(opts->checksums, &p->error);
    if (!status)
        status = scan_source(p, src_dir, opts);
    if (!status)
        record_size(p);
    if (!status && opts->classes_from)
        status = imgpack__source_use_classes(&p->source, opts->classes_from,
                                             &p->error);
    if (!status &&
        !(status = opts->synsets ? imgpack__source_load_synsets(
                                       &p->source, opts->synsets, &p->error)
                                 : IMGPACK_OK) &&
        !(status = make_out_dir(out_dir, &created_out, &p->error)) &&
        !(status = make_out_dir(p->store_dir, &created_store, &p->error))) {
        shard_slice(p->source.num_items, opts->shard_index, opts->shard_count,
                    &info->begin, &info->end);
        p->start = info->begin;
        p->end = info->end;
        status = opts->append ? open_append(p)
                 : opts->resume
                     ? resume_or_start(p)
                     : imgpack__store_check_new(p->store_dir, &p->error);
    }
    /* A refusal leaves nothing behind. OUT_DIR is left to a sharded pack's
       other shards, which may be creating their folders in it. */
    if (status != IMGPACK_OK && created_store)
        rmdir(p->store_dir);
    if (status != IMGPACK_OK && created_out && opts->shard_count == 1)
        rmdir(out_dir);

    imgpack_pack_options_destroy(defaults);
    p->progress.total = p->end - info->begin;
    p->progress.resumed = p->start - info->begin;
    p->progress.skipped = p->source.skipped;
    return status;
}

void imgpack_packer_set_callbacks(imgpack_packer *packer,
                                  imgpack_progress_fn progress,
                                  imgpack_reject_fn reject, void *user) {
    packer->on_progress = progress;
    packer->on_reject = reject;
    packer->user = user;
}

/* The pool job: each worker turns source item n into a result. */
static void *make_transformer(void *context) {
    imgpack_packer *p = context;
    imgpack__transformer *t;
    return imgpack__transformer_create(&t, &p->settings) == IMGPACK_OK ? t
                                                                       : NULL;
}

static void free_transformer(void *scratch) {
    imgpack__transformer_destroy(scratch);
}

static void transform_item(void *context, void *scratch, uint64_t n,
                           void *slot) {
    imgpack_packer *p = context;
    const imgpack__source_item *item = &p->source.items[p->start + n];
    imgpack__result *r = slot;
    if (item->reject) {
        memset(r, 0, sizeof *r);
        r->status = IMGPACK_ERR_INVALID_ARG;
        snprintf(r->reason, sizeof r->reason, "%s", item->reject);
        return;
    }
    imgpack__transform_item(scratch, &p->source, p->start + n, r);
}

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) +
           (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Sets the progress from the writer's counts, less what an append's store
   held before it. */
static void set_progress(imgpack_packer *p, uint64_t packed, uint64_t rejected,
                         uint64_t bytes) {
    p->progress.packed = packed - p->held.packed;
    p->progress.rejected = rejected - p->held.rejected;
    p->progress.done = p->progress.packed + p->progress.rejected;
    p->progress.bytes = bytes - p->held.bytes;
    p->progress.seconds = seconds_since(&p->started);
}

static void update_progress(imgpack_packer *p) {
    set_progress(p, p->writer.packed, p->writer.rejected, p->writer.bytes);
}

/* After a failure: the counters of what was committed, the store's
   content, not of what was handled. */
static void committed_progress(imgpack_packer *p) {
    uint64_t packed, rejected, bytes;
    imgpack__writer_committed(&p->writer, &packed, &rejected, &bytes);
    set_progress(p, packed, rejected, bytes);
}

/* Takes results in order and writes them; returns the first failure. */
static imgpack_status write_results(imgpack_packer *p, imgpack__queue *q) {
    imgpack_status status = IMGPACK_OK;
    imgpack__result r;
    for (uint64_t position = p->start; status == IMGPACK_OK; position++) {
        if (!imgpack__queue_take(q, &r))
            break;
        imgpack_status outcome = r.status;
        if (outcome != IMGPACK_OK && p->on_reject)
            p->on_reject(p->user, p->source.items[position].path, r.reason);
        status = imgpack__writer_add(&p->writer, position, &r, &p->error);
        update_progress(p);
        if (p->on_progress)
            p->on_progress(p->user, &p->progress);
        if (status == IMGPACK_OK && outcome != IMGPACK_OK && p->strict) {
            imgpack__writer_flush(&p->writer, &p->error);
            status = imgpack__error_set(
                &p->error, IMGPACK_ERR_REJECTED, "%s/%s: %s (strict mode)",
                p->source.root, p->source.items[position].path,
                imgpack_strerror(outcome));
        }
    }
    return status;
}

imgpack_status imgpack_packer_run(imgpack_packer *p) {
    imgpack__queue queue;
    imgpack__pool pool;
    imgpack_status status, joined;
    uint32_t capacity = p->jobs * QUEUE_RESULTS_PER_JOB;
    imgpack__pool_job job = {p, make_transformer, free_transformer,
                             transform_item};

    if (p->ran || p->error.code != IMGPACK_OK)
        return imgpack__error_set(&p->error, IMGPACK_ERR_INVALID_ARG,
                                  "the packer was already run or not opened");
    p->ran = 1;
    clock_gettime(CLOCK_MONOTONIC, &p->started);
    if (capacity < QUEUE_MIN_RESULTS)
        capacity = QUEUE_MIN_RESULTS;
    if (imgpack__queue_init(&queue, p->end - p->start, capacity,
                            sizeof(imgpack__result)) != 0)
        return imgpack__error_set(&p->error, IMGPACK_ERR_NOMEM,
                                  "out of memory");
    if ((status =
             imgpack__source_start(&p->source, p->start, p->end, &p->error))) {
        imgpack__queue_destroy(&queue);
        return status;
    }
    if ((status = imgpack__pool_start(&pool, p->jobs, &queue, &job))) {
        imgpack__source_stop(&p->source, &p->error);
        imgpack__queue_destroy(&queue);
        return imgpack__error_set(&p->error, status,
                                  "cannot start the worker threads");
    }
    /* A new store is made while the workers decode the first images. */
    status = p->writer_open
                 ? IMGPACK_OK
                 : imgpack__writer_open(&p->writer, p->store_dir, &p->source,
                                        &p->info, &p->error);
    if (status == IMGPACK_OK)
        status = write_results(p, &queue);
    /* Workers wait for room in the queue: release them before joining. */
    imgpack__queue_stop(&queue);
    joined = imgpack__pool_join(&pool);
    imgpack__error reading;
    imgpack__error_clear(&reading);
    imgpack__source_stop(&p->source, &reading);
    if (status == IMGPACK_OK && reading.code != IMGPACK_OK)
        status =
            imgpack__error_set(&p->error, reading.code, "%s", reading.message);
    for (void *left; (left = imgpack__queue_drain(&queue)) != NULL;)
        imgpack__result_clear(left);
    imgpack__queue_destroy(&queue);
    if (status == IMGPACK_OK && joined != IMGPACK_OK)
        status = imgpack__error_set(&p->error, joined,
                                    "a worker could not allocate its buffers");
    if (status == IMGPACK_OK)
        status = imgpack__writer_finish(&p->writer, &p->error);
    if (status == IMGPACK_OK)
        update_progress(p);
    else
        committed_progress(p);
    return status;
}

void imgpack_packer_progress(const imgpack_packer *p,
                             imgpack_pack_progress *out) {
    *out = p->progress;
}

const char *imgpack_packer_notice(const imgpack_packer *p) {
    return p ? p->notice : NULL;
}

const char *imgpack_packer_errmsg(const imgpack_packer *p) {
    return p ? imgpack__error_text(&p->error) : "out of memory";
}

void imgpack_packer_close(imgpack_packer *p) {
    if (!p)
        return;
    imgpack__writer_close(&p->writer);
    imgpack__source_free(&p->source);
    free(p->store_dir);
    free(p->command);
    free(p->notice);
    free(p);
}
