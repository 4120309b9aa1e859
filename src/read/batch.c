/*
 * Batches: record indices in, one buffer of images out (uint8, float32,
 * float16 or bfloat16; NHWC or NCHW), with crops, RandomResizedCrop boxes,
 * flips and normalization on the way.
 *
 * Work is shared per image: a batch is one loop of the batcher's team
 * (parallel.h). Its workers and the filling thread (the caller of
 * imgpack_batcher_run, or the prefetch driver of batch_queue.c) all claim
 * image positions until none are left, each inside one read session on
 * the reader (so one transaction renewal per thread per batch), and the
 * filling thread waits until every worker has reported back. Each image is
 * written straight into its place in the output, so nothing is copied
 * twice and no position needs ordering.
 *
 * One image: its placement (crop offsets, or the RandomResizedCrop box,
 * and the flip) is drawn from the sample's key (augment.c), as soon as
 * its size is known: from the decoder, before it decodes, for jpeg and
 * webp records, so that it decodes only the window the image needs; from
 * the header for raw ones. A box is resized by resize.c, Pillow's
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "batch_convert.h"
#include "batch_options.h"
#include "batch_queue.h"
#include "parallel.h"
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

    imgpack__parallel team; /* team.threads: the filling thread included */
    /* team.threads entries: worker i uses entry i, the filling thread the
       last (the caller of run and the prefetch driver never fill at once) */
    thread_scratch *scratch;
    imgpack__batch_job job;      /* the batch being filled */
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

/* The box of `s`, resized to the output size into the thread's scratch
   image, as *resized. */
static imgpack_status resize_box(imgpack_batcher *b, thread_scratch *ts,
                                 const imgpack__pixels *px, const sample *s,
                                 imgpack__pixels *resized) {
    const placement *p = &s->pl;
    if ((!ts->resizer && imgpack__resizer_create(&ts->resizer) != IMGPACK_OK) ||
        (!ts->pixels &&
         !(ts->pixels = malloc((size_t)b->width * b->height * b->channels))))
        return IMGPACK_ERR_NOMEM;
    /* The box is an image of its own, as torchvision's crop makes it. */
    imgpack__pixels box = {
        px->data + (size_t)p->top * px->stride + (size_t)p->left * px->channels,
        p->box_width, p->box_height, px->channels, px->stride};
    imgpack__geometry g = {p->box_width, p->box_height, b->width, b->height,
                           b->width,     b->height,     0,        0};
    *resized = (imgpack__pixels){ts->pixels, b->width, b->height, px->channels,
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
    sample s = {b,
                imgpack__augment_key(job->seed, job->epoch, index),
                0,
                {0, 0, 0, 0, 0}};
    imgpack__window window = {window_region, &s};
    uint8_t *dst = job->out + i * b->image_bytes;

    if ((status =
             imgpack__reader_pixels(b->reader, rs, index, &window, &h, &px))) {
        imgpack__parallel_fail(&b->team, status,
                               imgpack__reader_message(b->reader));
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
            imgpack__parallel_fail(&b->team, status, message);
            return status;
        }
        imgpack__convert(&b->convert, &resized, 0, 0, s.pl.flip, dst);
    } else {
        /* A crop, or a box the size of the output: Pillow's resize to
           the same size is a copy. */
        imgpack__convert(&b->convert, &px, s.pl.top, s.pl.left, s.pl.flip, dst);
    }
    if (job->labels)
        job->labels[i] = h.label;
    return IMGPACK_OK;
}

/* Claims and fills images of the current batch until none are left:
   the body of the team's loop. */
static void work(void *context, uint32_t thread) {
    imgpack_batcher *b = context;
    imgpack__read_slot *rs;
    uint64_t i;
    imgpack_status status = imgpack__reader_begin(b->reader, &rs);
    if (status) {
        imgpack__parallel_fail(&b->team, status,
                               imgpack__reader_message(b->reader));
        return;
    }
    while (imgpack__parallel_claim(&b->team, &i))
        if (one_image(b, &b->scratch[thread], rs, i))
            break;
    imgpack__convert_fence();
    imgpack__reader_end(b->reader, rs);
}

/*
 * Fills one batch on the calling thread and the workers; on failure
 * copies the message naming the record into `message`. Also the prefetch
 * driver's fill function.
 */
static imgpack_status fill(void *context, const imgpack__batch_job *job,
                           char *message) {
    imgpack_batcher *b = context;
    if (job->n == 0)
        return IMGPACK_OK;
    /* Every record's read queued before the first is converted: the
       conversion's page faults then wait on reads already in flight. For
       a submitted batch this runs on the driver thread, never the
       caller's: under a memory limit the kernel reclaims inside it. */
    imgpack__reader_readahead(b->reader, job->indices, job->n);
    b->job = *job;
    return imgpack__parallel_run(&b->team, job->n, work, b, message);
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
    b->image_bytes = (uint64_t)width * height * channels * b->convert.elem_size;
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
    uint32_t threads =
        opts->threads ? opts->threads : imgpack__parallel_cores();
    if (!(b->scratch = calloc(threads, sizeof *b->scratch))) {
        status =
            imgpack__error_set(&b->err, IMGPACK_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((status = imgpack__parallel_create(&b->team, threads, "imgpack-b"))) {
        imgpack__error_set(&b->err, status, "cannot make the batch threads");
        goto done;
    }
    if (opts->prefetch > 0 && (status = imgpack__batch_queue_create(
                                   &b->queue, opts->prefetch, fill, b))) {
        imgpack__error_set(&b->err, status, "cannot make the prefetch queue");
        goto done;
    }
done:
    imgpack_batch_options_destroy(defaults);
    return status;
}

void imgpack_batcher_destroy(imgpack_batcher *b) {
    if (!b)
        return;
    /* The batch being filled stops claiming images; the queue's driver
       then finishes it and stops before the queued ones. */
    imgpack__parallel_cancel(&b->team);
    imgpack__batch_queue_destroy(b->queue);
    uint32_t threads = b->team.threads;
    imgpack__parallel_destroy(&b->team);
    for (uint32_t i = 0; b->scratch && i < threads; i++) {
        imgpack__resizer_destroy(b->scratch[i].resizer);
        free(b->scratch[i].pixels);
    }
    free(b->scratch);
    free(b);
}

const char *imgpack_batcher_errmsg(const imgpack_batcher *b) {
    return b ? imgpack__error_text(&b->err) : "out of memory";
}

uint32_t imgpack_batcher_width(const imgpack_batcher *b) {
    return b->width;
}

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
    /* In a forked child: the parent's workers are gone, and their lock
       may have been held at the fork; start over with new ones. */
    if (imgpack__parallel_after_fork(&b->team) != IMGPACK_OK)
        return imgpack__error_set(&b->err, IMGPACK_ERR_THREAD,
                                  "cannot make locks after fork");
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
