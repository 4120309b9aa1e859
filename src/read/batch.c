/*
 * Batches: record indices in, one buffer of images out (uint8, float32,
 * float16 or bfloat16; NHWC or NCHW), with crops, RandomResizedCrop boxes,
 * flips and normalization on the way.
 *
 * Work is shared per image. A batch is published under the lock and the
 * workers woken; then the workers and the filling thread (the caller of
 * imgpack_batcher_run, or the prefetch driver of batch_queue.c) all claim
 * image positions from one atomic counter until none are left, each inside
 * one read session on the reader (so one transaction renewal per thread
 * per batch), and the filling thread waits until every worker has
 * reported back. Each image is written straight into its place in the
 * output, so nothing is copied twice and no position needs ordering. The
 * pool is not src/common/pool.c's: that one streams numbered results through a
 * bounded queue to a consumer, while a batch has a fixed output the
 * workers write in place.
 *
 * One image: its placement (crop offsets, or the RandomResizedCrop box,
 * and the flip) is drawn from the sample's key (src/read/augment.c), as soon as
 * its size is known: from the decoder, before it decodes, for jpeg and
 * webp records, so that it decodes only the window the image needs; from
 * the header for raw ones. A box is resized by src/image/resize.c, Pillow's
 * arithmetic, from a view of the box in the source into the thread's
 * scratch image, which is then converted like a plain crop. The box of a
 * record is its own image to Pillow (torchvision crops, then resizes), so
 * resizing the view reads nothing outside it and equals Pillow's bytes.
 *
 * Conversion to the output type and layout is batch_convert.c's, the
 * prefetch queue batch_queue.c's, the random draws augment.c's. Each
 * thread fences its streaming stores before reporting its part done.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "augment.h"
#include "batch_convert.h"
#include "batch_options.h"
#include "batch_queue.h"
#include "pool.h"
#include "reader_internal.h"
#include "resize.h"

/* One thread's reusable state for RandomResizedCrop, made by that thread
   on its first box. */
typedef struct thread_scratch {
    imgpack__resizer *resizer;
    uint8_t *pixels; /* the resized box: output size, source channels */
} thread_scratch;

struct imgpack_batcher {
    imgpack__error err;
    imgpack_reader *reader;
    imgpack_batch_options opts;
    uint32_t width, height, channels;
    uint64_t image_bytes;
    imgpack__converter convert;

    uint32_t threads; /* working on a batch, the filling thread included */
    pthread_t *workers;
    /* threads entries: worker i uses entry i, the filling thread the last
       (the caller of run and the prefetch driver never fill at once) */
    thread_scratch *scratch;
    uint32_t started;
    unsigned generation; /* fork generation the workers run in */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a batch was published, or stop */
    pthread_cond_t done; /* the last worker finished the batch */
    uint64_t job_id;     /* bumped per batch */
    uint64_t start_job_id; /* job_id when the workers started */
    int stopping;
    uint32_t running; /* workers not yet done with the batch */
    imgpack__batch_job job;
    atomic_uint_fast64_t next; /* next position to claim */
    atomic_int failed;         /* stop claiming: the batch failed */
    atomic_int cancelled;      /* stop claiming: the batcher is going */
    imgpack_status status;     /* first failure, under lock */
    char message[IMGPACK__ERRMSG_SIZE];
    imgpack__batch_queue *queue; /* prefetch; NULL without */
};

/* ---- Placement -------------------------------------------------------- */

/* torchvision's CenterCrop offset: int(round((in - out) / 2.0)), where
   Python rounds halves to even. */
static int64_t center_offset(uint32_t in, uint32_t out) {
    if (in < out) /* padded: CenterCrop puts (out - in) // 2 before */
        return -(int64_t)((out - in) / 2);
    uint32_t d = in - out, half = d / 2;
    return (d & 1) && (half & 1) ? half + 1 : half;
}

/* Where one output image comes from. */
typedef struct placement {
    int64_t top, left; /* source position of the crop's (or box's) corner */
    uint32_t box_width, box_height; /* a box resized to the output, or 0 */
    int flip;
} placement;

/* One image being made: the sample's key and, once the record's size is
   known, its placement. */
typedef struct sample {
    const imgpack_batcher *b;
    uint64_t key;
    int placed;
    placement pl;
} sample;

static void place(sample *s, uint32_t width, uint32_t height) {
    const imgpack_batcher *b = s->b;
    placement *p = &s->pl;
    p->box_width = p->box_height = 0;
    if (b->opts.crop_mode == IMGPACK_CROP_RANDOM_RESIZED) {
        imgpack_augment box;
        imgpack__augment_box(s->key, width, height, &b->opts.rrc, &box);
        p->top = box.top;
        p->left = box.left;
        p->box_width = box.width;
        p->box_height = box.height;
    } else {
        p->top = center_offset(height, b->height);
        p->left = center_offset(width, b->width);
        if (b->opts.crop_mode == IMGPACK_CROP_RANDOM) {
            /* A side shorter than the crop stays centred and padded. */
            uint32_t top, left;
            imgpack__augment_offsets(
                s->key, height > b->height ? height - b->height : 0,
                width > b->width ? width - b->width : 0, &top, &left);
            if (height >= b->height)
                p->top = top;
            if (width >= b->width)
                p->left = left;
        }
    }
    p->flip = b->opts.flip && imgpack__augment_flip(s->key);
    s->placed = 1;
}

/* The decoder's window: places the image and asks for what it reads. */
static void window_region(void *user, uint32_t width, uint32_t height,
                          imgpack__region *out) {
    sample *s = user;
    place(s, width, height);
    const placement *p = &s->pl;
    int64_t w = p->box_width ? p->box_width : s->b->width;
    int64_t h = p->box_height ? p->box_height : s->b->height;
    int64_t x0 = p->left > 0 ? p->left : 0, y0 = p->top > 0 ? p->top : 0;
    int64_t x1 = p->left + w < width ? p->left + w : width;
    int64_t y1 = p->top + h < height ? p->top + h : height;
    if (x1 <= x0 || y1 <= y0)
        *out = (imgpack__region){0, 0, 0, 0};
    else
        *out = (imgpack__region){(uint32_t)x0, (uint32_t)x1, (uint32_t)y0,
                                 (uint32_t)y1};
}

/* ---- Workers ---------------------------------------------------------- */

static void record_failure(imgpack_batcher *b, imgpack_status status,
                           const char *message) {
    pthread_mutex_lock(&b->lock);
    if (b->status == IMGPACK_OK) {
        b->status = status;
        snprintf(b->message, sizeof b->message, "%s", message);
    }
    pthread_mutex_unlock(&b->lock);
    atomic_store(&b->failed, 1);
}

/* The box of `s`, resized to the output size into the thread's scratch
   image, as *resized. */
static imgpack_status resize_box(imgpack_batcher *b, thread_scratch *ts,
                                 const imgpack__pixels *px, const sample *s,
                                 imgpack__pixels *resized) {
    const placement *p = &s->pl;
    if ((!ts->resizer &&
         imgpack__resizer_create(&ts->resizer) != IMGPACK_OK) ||
        (!ts->pixels &&
         !(ts->pixels = malloc((size_t)b->width * b->height * b->channels))))
        return IMGPACK_ERR_NOMEM;
    /* The box is an image of its own, as torchvision's crop makes it. */
    imgpack__pixels box = {px->data + (size_t)p->top * px->stride +
                               (size_t)p->left * px->channels,
                           p->box_width, p->box_height, px->channels,
                           px->stride};
    imgpack__geometry g = {p->box_width, p->box_height, b->width, b->height,
                           b->width,     b->height,     0,        0};
    *resized = (imgpack__pixels){ts->pixels, b->width, b->height,
                                 px->channels,
                                 (size_t)b->width * px->channels};
    return imgpack__resize_crop(ts->resizer, &box, &g, ts->pixels,
                                resized->stride);
}

/* Makes image `i` of the current batch. */
static imgpack_status one_image(imgpack_batcher *b, thread_scratch *ts,
                                imgpack__read_slot *rs, uint64_t i) {
    const imgpack__batch_job *job = &b->job;
    uint64_t index = job->indices[i];
    imgpack__record_header h;
    imgpack__pixels px, resized;
    imgpack_status status;
    sample s = {b, imgpack__augment_key(job->seed, job->epoch, index), 0,
                {0, 0, 0, 0, 0}};
    imgpack__window window = {window_region, &s};
    uint8_t *dst = job->out + i * b->image_bytes;

    if ((status = imgpack__reader_pixels(b->reader, rs, index, &window, &h,
                                         &px))) {
        record_failure(b, status, imgpack__reader_message(b->reader));
        return status;
    }
    if (!s.placed) /* raw records: their size is the header's */
        place(&s, px.width, px.height);
    if (s.pl.box_width &&
        (s.pl.box_width != b->width || s.pl.box_height != b->height)) {
        if ((status = resize_box(b, ts, &px, &s, &resized))) {
            char message[IMGPACK__ERRMSG_SIZE];
            snprintf(message, sizeof message,
                     "%s: record %" PRIu64 ": out of memory resizing",
                     imgpack_reader_path(b->reader), index);
            record_failure(b, status, message);
            return status;
        }
        imgpack__convert(&b->convert, &resized, 0, 0, s.pl.flip, dst);
    } else {
        /* A crop, or a box the size of the output: Pillow's resize to
           the same size is a copy. */
        imgpack__convert(&b->convert, &px, s.pl.top, s.pl.left, s.pl.flip,
                         dst);
    }
    if (job->labels)
        job->labels[i] = h.label;
    return IMGPACK_OK;
}

/* Claims and fills images of the current batch until none are left. */
static void work(imgpack_batcher *b, thread_scratch *ts) {
    imgpack__read_slot *rs;
    imgpack_status status = imgpack__reader_begin(b->reader, &rs);
    if (status) {
        record_failure(b, status, imgpack__reader_message(b->reader));
        return;
    }
    for (;;) {
        uint64_t i = atomic_fetch_add(&b->next, 1);
        if (i >= b->job.n ||
            atomic_load_explicit(&b->failed, memory_order_relaxed) ||
            atomic_load_explicit(&b->cancelled, memory_order_relaxed))
            break;
        if (one_image(b, ts, rs, i))
            break;
    }
    imgpack__convert_fence();
    imgpack__reader_end(b->reader, rs);
}

typedef struct worker_start {
    imgpack_batcher *b;
    uint32_t id;
} worker_start;

static void *worker_main(void *arg) {
    imgpack_batcher *b = ((worker_start *)arg)->b;
    uint32_t id = ((worker_start *)arg)->id;
    char name[16];
    snprintf(name, sizeof name, "imgpack-b%u", id);
    pthread_setname_np(pthread_self(), name);
    free(arg);

    pthread_mutex_lock(&b->lock);
    uint64_t seen = b->start_job_id;
    for (;;) {
        while (!b->stopping && b->job_id == seen)
            pthread_cond_wait(&b->wake, &b->lock);
        if (b->stopping)
            break;
        seen = b->job_id;
        pthread_mutex_unlock(&b->lock);
        work(b, &b->scratch[id]);
        pthread_mutex_lock(&b->lock);
        if (--b->running == 0)
            pthread_cond_signal(&b->done);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static int init_sync(imgpack_batcher *b) {
    int rc = pthread_mutex_init(&b->lock, NULL);
    if (rc != 0)
        goto fail;
    if ((rc = pthread_cond_init(&b->wake, NULL)) != 0)
        goto fail_wake;
    if ((rc = pthread_cond_init(&b->done, NULL)) != 0)
        goto fail_done;
    return 0;
fail_done:
    pthread_cond_destroy(&b->wake);
fail_wake:
    pthread_mutex_destroy(&b->lock);
fail:
    return rc;
}

/* Starts threads-1 workers; the filling thread is the last one. Fewer
   than asked only slow batches down, so a failed pthread_create is not an
   error. */
static void start_workers(imgpack_batcher *b) {
    b->started = 0;
    b->stopping = 0;
    b->start_job_id = b->job_id;
    b->generation = imgpack__fork_generation();
    for (uint32_t i = 0; i + 1 < b->threads; i++) {
        worker_start *start = malloc(sizeof *start);
        if (!start)
            break;
        *start = (worker_start){b, i};
        if (pthread_create(&b->workers[i], NULL, worker_main, start) != 0) {
            free(start);
            break;
        }
        b->started++;
    }
}

static void stop_workers(imgpack_batcher *b) {
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
    for (uint32_t i = 0; i < b->started; i++)
        pthread_join(b->workers[i], NULL);
    b->started = 0;
}

/* Publishes `job` to the workers: where a batch begins, so whatever
   should happen once per batch before its images are claimed goes here. */
static void start_batch(imgpack_batcher *b, const imgpack__batch_job *job) {
    /* Every record's read queued before the first is converted: the
       conversion's page faults then wait on reads already in flight. For
       a submitted batch this runs on the driver thread, never the
       caller's: under a memory limit the kernel reclaims inside it. */
    imgpack__reader_readahead(b->reader, job->indices, job->n);
    pthread_mutex_lock(&b->lock);
    b->job = *job;
    atomic_store(&b->next, 0);
    atomic_store(&b->failed, 0);
    b->status = IMGPACK_OK;
    b->running = b->started;
    b->job_id++;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
}

/*
 * Fills one batch on the calling thread and the workers; on failure
 * copies the message naming the record into `message`. Also the prefetch
 * driver's fill function.
 */
static imgpack_status fill(void *context, const imgpack__batch_job *job,
                           char *message) {
    imgpack_batcher *b = context;
    imgpack_status status;
    if (job->n == 0)
        return IMGPACK_OK;
    start_batch(b, job);
    work(b, &b->scratch[b->threads - 1]);

    pthread_mutex_lock(&b->lock);
    while (b->running > 0)
        pthread_cond_wait(&b->done, &b->lock);
    status = b->status;
    if (status)
        snprintf(message, IMGPACK__ERRMSG_SIZE, "%s", b->message);
    pthread_mutex_unlock(&b->lock);
    return status;
}

/* ---- Batcher ---------------------------------------------------------- */

static imgpack_status set_geometry(imgpack_batcher *b) {
    imgpack_reader *r = b->reader;
    const imgpack_batch_options *o = &b->opts;
    uint32_t width, height, channels = imgpack_reader_channels(r);
    width = o->crop_width ? o->crop_width : imgpack_reader_width(r);
    height = o->crop_height ? o->crop_height : imgpack_reader_height(r);
    if (width == 0 || height == 0)
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: records differ in size: a batch needs "
                                  "a crop size",
                                  imgpack_reader_path(r));
    if (o->n_norm != 1 && o->n_norm != channels)
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: %" PRIu32 " mean/std values for %" PRIu32
                                  " channels",
                                  imgpack_reader_path(r), o->n_norm, channels);
    if (channels == 0 || channels > IMGPACK__CONVERT_MAX_CHANNELS)
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: %" PRIu32 " channels",
                                  imgpack_reader_path(r), channels);
    b->width = width;
    b->height = height;
    b->channels = channels;
    imgpack__converter_init(&b->convert, width, height, channels, o->layout,
                            o->dtype, o->mean, o->std, o->n_norm);
    b->image_bytes =
        (uint64_t)width * height * channels * b->convert.elem_size;
    return IMGPACK_OK;
}

imgpack_status imgpack_batcher_create(imgpack_batcher **out,
                                      imgpack_reader *reader,
                                      const imgpack_batch_options *opts) {
    imgpack_status status = IMGPACK_OK;
    imgpack_batcher *b = NULL;
    imgpack_batch_options *defaults = NULL;

    if (!out) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    *out = NULL;
    if (!opts) {
        if ((status = imgpack_batch_options_create(&defaults)))
            goto done;
        opts = defaults;
    }
    if (!(b = calloc(1, sizeof *b))) {
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    if (init_sync(b) != 0) {
        free(b);
        b = NULL;
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    *out = b;
    b->opts = *opts;
    b->reader = reader;
    if (!reader) {
        status = imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                    "batcher_create: no reader");
        goto done;
    }
    if ((status = set_geometry(b)))
        goto done;
    b->threads = opts->threads;
    if (b->threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        b->threads = cores < 1 ? 1
                     : cores > IMGPACK__MAX_THREADS ? IMGPACK__MAX_THREADS
                                                    : (uint32_t)cores;
    }
    if (!(b->scratch = calloc(b->threads, sizeof *b->scratch)) ||
        (b->threads > 1 &&
         !(b->workers = calloc(b->threads - 1, sizeof *b->workers)))) {
        status = imgpack__error_set(&b->err, IMGPACK_ERR_NOMEM,
                                    "out of memory");
        goto done;
    }
    if (opts->prefetch > 0 &&
        (status = imgpack__batch_queue_create(&b->queue, opts->prefetch, fill,
                                              b))) {
        imgpack__error_set(&b->err, status, "cannot make the prefetch queue");
        goto done;
    }
    start_workers(b);
done:
    imgpack_batch_options_destroy(defaults);
    return status;
}

void imgpack_batcher_destroy(imgpack_batcher *b) {
    if (!b)
        return;
    /* The batch being filled stops claiming images; the queue's driver
       then finishes it and stops before the queued ones. */
    atomic_store(&b->cancelled, 1);
    imgpack__batch_queue_destroy(b->queue);
    /* In a forked child the workers never existed: nothing to join. */
    if (b->generation == imgpack__fork_generation())
        stop_workers(b);
    pthread_cond_destroy(&b->done);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
    for (uint32_t i = 0; b->scratch && i < b->threads; i++) {
        imgpack__resizer_destroy(b->scratch[i].resizer);
        free(b->scratch[i].pixels);
    }
    free(b->scratch);
    free(b->workers);
    free(b);
}

const char *imgpack_batcher_errmsg(const imgpack_batcher *b) {
    return b ? imgpack__error_text(&b->err) : "out of memory";
}

uint32_t imgpack_batcher_width(const imgpack_batcher *b) { return b->width; }

uint32_t imgpack_batcher_height(const imgpack_batcher *b) {
    return b->height;
}

uint32_t imgpack_batcher_channels(const imgpack_batcher *b) {
    return b->channels;
}

uint64_t imgpack_batcher_image_bytes(const imgpack_batcher *b) {
    return b->image_bytes;
}

uint32_t imgpack_batcher_in_flight(const imgpack_batcher *b) {
    return b && b->queue ? imgpack__batch_queue_in_flight(b->queue) : 0;
}

/* In a forked child: the parent's workers are gone, and their lock may
   have been held at the fork; start over with new ones. */
static imgpack_status restart_after_fork(imgpack_batcher *b) {
    if (init_sync(b) != 0)
        return imgpack__error_set(&b->err, IMGPACK_ERR_THREAD,
                                  "cannot make locks after fork");
    b->started = 0;
    start_workers(b);
    return IMGPACK_OK;
}

/* The checks run and submit share, into b->err; fills *job. */
static imgpack_status prepare(imgpack_batcher *b, const uint64_t *indices,
                              uint64_t n, uint64_t seed, uint64_t epoch,
                              void *out, uint64_t capacity, int64_t *labels,
                              imgpack__batch_job *job) {
    uint32_t align = b->convert.elem_size;
    imgpack__error_clear(&b->err);
    if (b->image_bytes == 0)
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "batcher was not created");
    if ((n > 0 && (!indices || !out)) || capacity / b->image_bytes < n ||
        ((uintptr_t)out % align))
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "batch of %" PRIu64 ": needs %" PRIu64
                                  " bytes aligned to %" PRIu32
                                  ", the buffer has %" PRIu64,
                                  n, n * b->image_bytes, align, capacity);
    if (b->generation != imgpack__fork_generation()) {
        imgpack_status status = restart_after_fork(b);
        if (status)
            return status;
    }
    *job = (imgpack__batch_job){indices, n, seed, epoch, out, labels};
    return IMGPACK_OK;
}

imgpack_status imgpack_batcher_run(imgpack_batcher *b, const uint64_t *indices,
                                   uint64_t n, uint64_t seed, uint64_t epoch,
                                   void *out, uint64_t capacity,
                                   int64_t *labels) {
    imgpack__batch_job job;
    char message[IMGPACK__ERRMSG_SIZE];
    imgpack_status status =
        prepare(b, indices, n, seed, epoch, out, capacity, labels, &job);
    if (status)
        return status;
    if (imgpack_batcher_in_flight(b) > 0)
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "%" PRIu32 " submitted batches in flight: "
                                  "wait for them before running one",
                                  imgpack_batcher_in_flight(b));
    if ((status = fill(b, &job, message)))
        imgpack__error_set(&b->err, status, "%s", message);
    return status;
}

imgpack_status imgpack_batcher_submit(imgpack_batcher *b,
                                      const uint64_t *indices, uint64_t n,
                                      uint64_t seed, uint64_t epoch, void *out,
                                      uint64_t capacity, int64_t *labels) {
    imgpack__batch_job job;
    imgpack_status status =
        prepare(b, indices, n, seed, epoch, out, capacity, labels, &job);
    if (status)
        return status;
    if (!b->queue)
        return imgpack__error_set(&b->err, IMGPACK_ERR_RANGE,
                                  "prefetch is 0: no batch can be submitted");
    return imgpack__batch_queue_submit(b->queue, &job, &b->err);
}

imgpack_status imgpack_batcher_wait(imgpack_batcher *b) {
    imgpack__error_clear(&b->err);
    if (!b->queue)
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "no batch in flight: prefetch is 0");
    return imgpack__batch_queue_wait(b->queue, &b->err);
}
