/*
 * Batches: record indices in, one buffer of images out (uint8 or float32,
 * NHWC or NCHW), with crops, flips and normalization on the way.
 *
 * Work is shared per image. imgpack_batcher_run publishes the batch under
 * the lock and wakes the workers; then the workers and the calling thread
 * all claim image positions from one atomic counter until none are left,
 * each inside one read session on the reader (so one transaction renewal
 * per thread per batch), and the caller waits until every worker has
 * reported back. Each image is written straight into its place in the
 * output, so nothing is copied twice and no position needs ordering. The
 * pool is not src/pool.c's: that one streams numbered results through a
 * bounded queue to a consumer, while a batch has a fixed output the
 * workers write in place.
 *
 * Conversion is one pass from the source pixels (the memory map for raw
 * records, the thread's decoder buffer otherwise) to the output: the crop
 * is an offset, the flip a negative step, and float32 values come from a
 * 256-entry table per channel holding (v/255 - mean)/std computed in
 * float32 exactly as torch computes it, so the output equals torch's bit
 * for bit at the cost of one load per value.
 *
 * Output is written with streaming (non-temporal) stores where it is
 * aligned: a batch is bigger than the caches and is read later, by
 * another thread, so writing around the cache saves the read-for-ownership
 * of each line, half the memory traffic. Each thread fences its streaming
 * stores before reporting its part done.
 *
 * Randomness (crop offsets, flips) comes from the caller's seed and the
 * image's position in the batch only, never from which thread did it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "imgpack/pack.h"
#include "pool.h"
#include "random.h"
#include "reader_internal.h"

/* Channels an image may have in a batch: gray, RGB (and room for RGBA). */
#define MAX_CHANNELS 4

struct imgpack_batch_options {
    int32_t layout;
    int32_t dtype;
    float mean[MAX_CHANNELS];
    float std[MAX_CHANNELS];
    uint32_t n_norm; /* values given in mean/std: 1 or the channel count */
    uint32_t crop_width, crop_height;
    int32_t crop_mode;
    int32_t flip;
    uint32_t threads;
};

/* The batch being filled, as published to the workers. */
typedef struct batch_job {
    const uint64_t *indices;
    uint64_t n;
    uint64_t seed;
    uint8_t *out;
    int64_t *labels;
} batch_job;

struct imgpack_batcher {
    imgpack__error err;
    imgpack_reader *reader;
    imgpack_batch_options opts;
    uint32_t width, height, channels;
    uint64_t image_bytes;
    float lut[MAX_CHANNELS][256];

    uint32_t threads; /* working on a batch, the caller included */
    pthread_t *workers;
    uint32_t started;
    unsigned generation; /* fork generation the workers run in */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a batch was published, or stop */
    pthread_cond_t done; /* the last worker finished the batch */
    uint64_t job_id;     /* bumped per batch */
    uint64_t start_job_id; /* job_id when the workers started */
    int stopping;
    uint32_t running; /* workers not yet done with the batch */
    batch_job job;
    atomic_uint_fast64_t next; /* next position to claim */
    atomic_int failed;         /* stop claiming: the batch failed */
    imgpack_status status;     /* first failure, under lock */
    char message[IMGPACK__ERRMSG_SIZE];
};

/* ---- Options ---------------------------------------------------------- */

imgpack_status imgpack_batch_options_create(imgpack_batch_options **out) {
    imgpack_status status = IMGPACK_OK;
    imgpack_batch_options *o = NULL;
    if (!out) {
        status = IMGPACK_ERR_INVALID_ARG;
        goto done;
    }
    *out = NULL;
    if (!(o = calloc(1, sizeof *o))) {
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    o->layout = IMGPACK_LAYOUT_NCHW;
    o->dtype = IMGPACK_DTYPE_FLOAT32;
    o->mean[0] = IMGPACK_IMAGENET_MEAN_R;
    o->mean[1] = IMGPACK_IMAGENET_MEAN_G;
    o->mean[2] = IMGPACK_IMAGENET_MEAN_B;
    o->std[0] = IMGPACK_IMAGENET_STD_R;
    o->std[1] = IMGPACK_IMAGENET_STD_G;
    o->std[2] = IMGPACK_IMAGENET_STD_B;
    o->n_norm = 3;
    o->crop_mode = IMGPACK_CROP_CENTER;
    o->threads = 1;
    *out = o;
done:
    return status;
}

void imgpack_batch_options_destroy(imgpack_batch_options *opts) {
    free(opts);
}

imgpack_status imgpack_batch_options_set_layout(imgpack_batch_options *opts,
                                                int32_t layout) {
    if (!opts ||
        (layout != IMGPACK_LAYOUT_NHWC && layout != IMGPACK_LAYOUT_NCHW))
        return IMGPACK_ERR_INVALID_ARG;
    opts->layout = layout;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_dtype(imgpack_batch_options *opts,
                                               int32_t dtype) {
    if (!opts ||
        (dtype != IMGPACK_DTYPE_UINT8 && dtype != IMGPACK_DTYPE_FLOAT32))
        return IMGPACK_ERR_INVALID_ARG;
    opts->dtype = dtype;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_normalize(imgpack_batch_options *opts,
                                                   const float *mean,
                                                   const float *std,
                                                   uint32_t n) {
    if (!opts || !mean || !std || n == 0 || n > MAX_CHANNELS)
        return IMGPACK_ERR_INVALID_ARG;
    for (uint32_t c = 0; c < n; c++)
        if (std[c] == 0.0f || std[c] != std[c] || mean[c] != mean[c])
            return IMGPACK_ERR_INVALID_ARG;
    memcpy(opts->mean, mean, n * sizeof *mean);
    memcpy(opts->std, std, n * sizeof *std);
    opts->n_norm = n;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_crop(imgpack_batch_options *opts,
                                              uint32_t width, uint32_t height,
                                              int32_t mode) {
    if (!opts || (width == 0) != (height == 0) || width > IMGPACK_MAX_SIDE ||
        height > IMGPACK_MAX_SIDE ||
        (mode != IMGPACK_CROP_CENTER && mode != IMGPACK_CROP_RANDOM))
        return IMGPACK_ERR_INVALID_ARG;
    opts->crop_width = width;
    opts->crop_height = height;
    opts->crop_mode = mode;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_flip(imgpack_batch_options *opts,
                                              int32_t flip) {
    if (!opts)
        return IMGPACK_ERR_INVALID_ARG;
    opts->flip = flip != 0;
    return IMGPACK_OK;
}

imgpack_status imgpack_batch_options_set_threads(imgpack_batch_options *opts,
                                                 uint32_t threads) {
    if (!opts || threads > IMGPACK__MAX_THREADS)
        return IMGPACK_ERR_INVALID_ARG;
    opts->threads = threads;
    return IMGPACK_OK;
}

/* ---- Conversion ------------------------------------------------------- */

/* torchvision's CenterCrop offset: int(round((in - out) / 2.0)), where
   Python rounds halves to even. */
static int64_t center_offset(uint32_t in, uint32_t out) {
    if (in < out) /* padded: CenterCrop puts (out - in) // 2 before */
        return -(int64_t)((out - in) / 2);
    uint32_t d = in - out, half = d / 2;
    return (d & 1) && (half & 1) ? half + 1 : half;
}

typedef struct placement {
    int64_t top, left; /* source position of the output's corner */
    int flip;
} placement;

/* Where image `position` of a batch comes from: crop offsets and flip. */
static placement place(const imgpack_batcher *b, uint64_t seed,
                       uint64_t position, const imgpack__pixels *px) {
    uint64_t state = imgpack__mix64(seed ^ imgpack__mix64(position));
    placement p;
    if (b->opts.crop_mode == IMGPACK_CROP_RANDOM && px->height >= b->height)
        p.top = (int64_t)imgpack__uniform(&state, px->height - b->height + 1);
    else
        p.top = center_offset(px->height, b->height);
    if (b->opts.crop_mode == IMGPACK_CROP_RANDOM && px->width >= b->width)
        p.left = (int64_t)imgpack__uniform(&state, px->width - b->width + 1);
    else
        p.left = center_offset(px->width, b->width);
    p.flip = b->opts.flip && (imgpack__mix64(state) >> 63);
    return p;
}

/* memcpy, with streaming stores for the 16-byte aligned part of `dst`. */
static void stream_copy(uint8_t *dst, const uint8_t *src, size_t n) {
#ifdef __SSE2__
    size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
    if (head > n)
        head = n;
    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    for (; n >= 16; n -= 16, dst += 16, src += 16)
        _mm_stream_si128((__m128i *)(void *)dst,
                         _mm_loadu_si128((const __m128i *)(const void *)src));
#endif
    memcpy(dst, src, n);
}

/* Orders this thread's streaming stores before what follows. */
static void stream_fence(void) {
#ifdef __SSE2__
    _mm_sfence();
#endif
}

/*
 * One output row of an image: output columns x0..x1-1 have a source
 * pixel, the first at `p`, each next one `step` bytes on (negative when
 * flipped); the columns outside are padding. A row wholly outside the
 * source has x0 == x1 == 0 and no `p`.
 */
typedef struct row_job {
    const uint8_t *p;
    ptrdiff_t step;
    uint32_t x0, x1;
    uint32_t src_channels;
} row_job;

static void row_u8_nhwc(const imgpack_batcher *b, const row_job *j,
                        uint8_t *dst) {
    uint32_t c = b->channels, w = b->width;
    memset(dst, 0, (size_t)j->x0 * c);
    memset(dst + (size_t)j->x1 * c, 0, (size_t)(w - j->x1) * c);
    if (j->x1 == j->x0)
        return;
    const uint8_t *p = j->p;
    uint8_t *o = dst + (size_t)j->x0 * c;
    if (j->step > 0 && j->src_channels == c) {
        stream_copy(o, p, (size_t)(j->x1 - j->x0) * c);
    } else if (j->src_channels == c && c == 3) {
        for (uint32_t x = j->x0; x < j->x1; x++, o += 3, p += j->step) {
            o[0] = p[0];
            o[1] = p[1];
            o[2] = p[2];
        }
    } else {
        for (uint32_t x = j->x0; x < j->x1; x++, o += c, p += j->step)
            for (uint32_t k = 0; k < c; k++)
                o[k] = p[j->src_channels == 1 ? 0 : k];
    }
}

static void row_u8_nchw(const imgpack_batcher *b, const row_job *j,
                        uint8_t *dst, size_t plane) {
    for (uint32_t k = 0; k < b->channels; k++) {
        uint8_t *o = dst + k * plane;
        memset(o, 0, j->x0);
        memset(o + j->x1, 0, b->width - j->x1);
        if (j->x1 == j->x0)
            continue;
        const uint8_t *p = j->p + (j->src_channels == 1 ? 0 : k);
        for (uint32_t x = j->x0; x < j->x1; x++, p += j->step)
            o[x] = *p;
    }
}

static void fill_f32(float *o, uint32_t from, uint32_t to, float v) {
    for (uint32_t x = from; x < to; x++)
        o[x] = v;
}

static void row_f32_nchw(const imgpack_batcher *b, const row_job *j,
                         float *dst, size_t plane) {
    uint32_t c = b->channels, w = b->width;
    for (uint32_t k = 0; k < c; k++) {
        fill_f32(dst + k * plane, 0, j->x0, b->lut[k][0]);
        fill_f32(dst + k * plane, j->x1, w, b->lut[k][0]);
    }
    if (j->x1 == j->x0)
        return;
    const uint8_t *p = j->p;
    if (c == 3 && j->src_channels == 3) {
        /* The hot loop: three table loads and three stores per pixel. */
        const float *l0 = b->lut[0], *l1 = b->lut[1], *l2 = b->lut[2];
        float *o0 = dst, *o1 = dst + plane, *o2 = dst + 2 * plane;
        uint32_t x = j->x0;
        ptrdiff_t s = j->step;
#ifdef __SSE2__
        /* Scalar up to 16-byte alignment, then four pixels per step with
           streaming stores, when the three planes align alike. */
        if ((((uintptr_t)(o0 + x) ^ (uintptr_t)(o1 + x)) & 15) == 0 &&
            (((uintptr_t)(o0 + x) ^ (uintptr_t)(o2 + x)) & 15) == 0) {
            for (; x < j->x1 && ((uintptr_t)(o0 + x) & 15); x++, p += s) {
                o0[x] = l0[p[0]];
                o1[x] = l1[p[1]];
                o2[x] = l2[p[2]];
            }
            for (; x + 4 <= j->x1; x += 4, p += 4 * s) {
                _mm_stream_ps(o0 + x, _mm_setr_ps(l0[p[0]], l0[p[s]],
                                                  l0[p[2 * s]], l0[p[3 * s]]));
                _mm_stream_ps(o1 + x,
                              _mm_setr_ps(l1[p[1]], l1[p[s + 1]],
                                          l1[p[2 * s + 1]], l1[p[3 * s + 1]]));
                _mm_stream_ps(o2 + x,
                              _mm_setr_ps(l2[p[2]], l2[p[s + 2]],
                                          l2[p[2 * s + 2]], l2[p[3 * s + 2]]));
            }
        }
#endif
        for (; x < j->x1; x++, p += s) {
            o0[x] = l0[p[0]];
            o1[x] = l1[p[1]];
            o2[x] = l2[p[2]];
        }
        return;
    }
    for (uint32_t k = 0; k < c; k++) {
        const uint8_t *q = p + (j->src_channels == 1 ? 0 : k);
        float *o = dst + k * plane;
        for (uint32_t x = j->x0; x < j->x1; x++, q += j->step)
            o[x] = b->lut[k][*q];
    }
}

static void row_f32_nhwc(const imgpack_batcher *b, const row_job *j,
                         float *dst) {
    uint32_t c = b->channels;
    for (uint32_t x = 0; x < b->width; x++)
        if (x < j->x0 || x >= j->x1)
            for (uint32_t k = 0; k < c; k++)
                dst[(size_t)x * c + k] = b->lut[k][0];
    const uint8_t *p = j->p;
    for (uint32_t x = j->x0; x < j->x1; x++, p += j->step)
        for (uint32_t k = 0; k < c; k++)
            dst[(size_t)x * c + k] = b->lut[k][p[j->src_channels == 1 ? 0 : k]];
}

/* Writes one image of the batch into `dst`. */
static void convert(const imgpack_batcher *b, const imgpack__pixels *px,
                    const placement *pl, uint8_t *dst) {
    int64_t w = b->width, in_w = px->width;
    int64_t x0, x1;
    row_job j;
    size_t plane = (size_t)b->width * b->height;
    j.src_channels = px->channels;
    if (!pl->flip) {
        /* Output x reads source column left + x. */
        x0 = pl->left < 0 ? -pl->left : 0;
        x1 = in_w - pl->left < w ? in_w - pl->left : w;
        j.step = (ptrdiff_t)px->channels;
    } else {
        /* Output x reads source column left + (w - 1 - x). */
        x0 = pl->left + w - in_w > 0 ? pl->left + w - in_w : 0;
        x1 = pl->left + w < w ? pl->left + w : w;
        j.step = -(ptrdiff_t)px->channels;
    }
    if (x1 < x0)
        x1 = x0;
    j.x0 = (uint32_t)x0;
    j.x1 = (uint32_t)x1;
    for (uint32_t y = 0; y < b->height; y++) {
        int64_t sy = pl->top + y;
        row_job rj = j;
        if (sy >= 0 && sy < px->height && x1 > x0) {
            int64_t sx = pl->flip ? pl->left + w - 1 - x0 : pl->left + x0;
            rj.p = px->data + (size_t)sy * px->stride +
                   (size_t)sx * px->channels;
        } else {
            rj.p = NULL;
            rj.x0 = rj.x1 = 0;
        }
        if (b->opts.dtype == IMGPACK_DTYPE_UINT8) {
            if (b->opts.layout == IMGPACK_LAYOUT_NHWC)
                row_u8_nhwc(b, &rj, dst + (size_t)y * w * b->channels);
            else
                row_u8_nchw(b, &rj, dst + (size_t)y * w, plane);
        } else {
            float *f = (float *)(void *)dst;
            if (b->opts.layout == IMGPACK_LAYOUT_NHWC)
                row_f32_nhwc(b, &rj, f + (size_t)y * w * b->channels);
            else
                row_f32_nchw(b, &rj, f + (size_t)y * w, plane);
        }
    }
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

/* Claims and fills images of the current batch until none are left. */
static void work(imgpack_batcher *b) {
    imgpack__read_slot *s;
    imgpack__record_header h;
    imgpack__pixels px;
    const batch_job *job = &b->job;
    imgpack_status status = imgpack__reader_begin(b->reader, &s);
    if (status) {
        record_failure(b, status, imgpack__reader_message(b->reader));
        return;
    }
    for (;;) {
        uint64_t i = atomic_fetch_add(&b->next, 1);
        if (i >= job->n || atomic_load_explicit(&b->failed,
                                                memory_order_relaxed))
            break;
        status = imgpack__reader_pixels(b->reader, s, job->indices[i], &h, &px);
        if (status) {
            record_failure(b, status, imgpack__reader_message(b->reader));
            break;
        }
        placement pl = place(b, job->seed, i, &px);
        convert(b, &px, &pl, job->out + i * b->image_bytes);
        if (job->labels)
            job->labels[i] = h.label;
    }
    stream_fence();
    imgpack__reader_end(b->reader, s);
}

typedef struct worker_start {
    imgpack_batcher *b;
    uint32_t id;
} worker_start;

static void *worker_main(void *arg) {
    imgpack_batcher *b = ((worker_start *)arg)->b;
    char name[16];
    snprintf(name, sizeof name, "imgpack-b%u", ((worker_start *)arg)->id);
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
        work(b);
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

/* Starts threads-1 workers; the caller is the last one. Fewer than asked
   only slow batches down, so a failed pthread_create is not an error. */
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

/* ---- Batcher ---------------------------------------------------------- */

static imgpack_status set_geometry(imgpack_batcher *b) {
    imgpack_reader *r = b->reader;
    const imgpack_batch_options *o = &b->opts;
    b->channels = imgpack_reader_channels(r);
    b->width = o->crop_width ? o->crop_width : imgpack_reader_width(r);
    b->height = o->crop_height ? o->crop_height : imgpack_reader_height(r);
    if (b->width == 0 || b->height == 0)
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: records differ in size: a batch needs "
                                  "a crop size",
                                  imgpack_reader_path(r));
    if (o->n_norm != 1 && o->n_norm != b->channels)
        return imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: %" PRIu32 " mean/std values for %" PRIu32
                                  " channels",
                                  imgpack_reader_path(r), o->n_norm,
                                  b->channels);
    b->image_bytes = (uint64_t)b->width * b->height * b->channels *
                     (o->dtype == IMGPACK_DTYPE_FLOAT32 ? 4 : 1);
    for (uint32_t c = 0; c < b->channels; c++) {
        float mean = o->mean[o->n_norm == 1 ? 0 : c];
        float std = o->std[o->n_norm == 1 ? 0 : c];
        /* torch: img.float().div(255), then .sub_(mean).div_(std), each
           a float32 operation; no step can fuse with another. */
        for (int v = 0; v < 256; v++)
            b->lut[c][v] = ((float)v / 255.0f - mean) / std;
    }
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
    if (b->threads > 1 &&
        !(b->workers = calloc(b->threads - 1, sizeof *b->workers))) {
        status = imgpack__error_set(&b->err, IMGPACK_ERR_NOMEM,
                                    "out of memory");
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
    /* In a forked child the workers never existed: nothing to join. */
    if (b->generation == imgpack__fork_generation())
        stop_workers(b);
    pthread_cond_destroy(&b->done);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
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

imgpack_status imgpack_batcher_run(imgpack_batcher *b, const uint64_t *indices,
                                   uint64_t n, uint64_t seed, void *out,
                                   uint64_t capacity, int64_t *labels) {
    imgpack_status status = IMGPACK_OK;
    imgpack__error_clear(&b->err);
    if (b->image_bytes == 0) {
        status = imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                    "batcher was not created");
        goto done;
    }
    if ((n > 0 && (!indices || !out)) || capacity / b->image_bytes < n ||
        (b->opts.dtype == IMGPACK_DTYPE_FLOAT32 && ((uintptr_t)out & 3))) {
        status = imgpack__error_set(&b->err, IMGPACK_ERR_INVALID_ARG,
                                    "batch of %" PRIu64 ": needs %" PRIu64
                                    " bytes%s, the buffer has %" PRIu64,
                                    n, n * b->image_bytes,
                                    b->opts.dtype == IMGPACK_DTYPE_FLOAT32
                                        ? " aligned to 4"
                                        : "",
                                    capacity);
        goto done;
    }
    if (n == 0)
        goto done;
    if (b->generation != imgpack__fork_generation() &&
        (status = restart_after_fork(b)))
        goto done;
    /* Every record's read queued before the first is converted: the
       conversion's page faults then wait on reads already in flight. */
    imgpack__reader_readahead(b->reader, indices, n);
    pthread_mutex_lock(&b->lock);
    b->job = (batch_job){indices, n, seed, out, labels};
    atomic_store(&b->next, 0);
    atomic_store(&b->failed, 0);
    b->status = IMGPACK_OK;
    b->running = b->started;
    b->job_id++;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);

    work(b);

    pthread_mutex_lock(&b->lock);
    while (b->running > 0)
        pthread_cond_wait(&b->done, &b->lock);
    status = b->status;
    if (status)
        imgpack__error_set(&b->err, status, "%s", b->message);
    pthread_mutex_unlock(&b->lock);
done:
    return status;
}
