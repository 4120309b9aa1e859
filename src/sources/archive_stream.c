/*
 * The reader thread of a compressed archive, and the compressed tar kind
 * of source built on it. Lock discipline: one mutex
 * guards the slots and counters; the thread reads member data with the
 * lock released, and workers copy a member out with it released too (the
 * slot is theirs once marked taken).
 */
#include "archive_stream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive_walk.h"

enum { SLOT_EMPTY, SLOT_READY, SLOT_FAILED, SLOT_TAKEN };

typedef struct slot {
    uint8_t *data;
    size_t size;
    int state;
} slot;

struct imgpack__archive_stream {
    const imgpack__source *src;
    uint64_t first, end;   /* positions packed */
    uint64_t *position_of; /* stream sequence -> position, or UINT64_MAX */
    uint64_t sequences;
    slot *slots;     /* by position - first */
    uint64_t oldest; /* lowest position not yet taken */
    size_t held;     /* bytes in READY slots */
    size_t max_held;
    int stop, done;
    char failure[IMGPACK__REASON_SIZE]; /* the stream failed as a whole */
    char damage[IMGPACK__REASON_SIZE];  /* why later members are missing */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_t thread;
    int started;
};

static slot *slot_at(imgpack__archive_stream *s, uint64_t position) {
    return &s->slots[position - s->first];
}

/* The walk's visitor: hold the member if the pack needs it. */
static int hold_member(void *user, const imgpack__archive_member *m) {
    imgpack__archive_stream *s = user;
    uint64_t position =
        m->sequence < s->sequences ? s->position_of[m->sequence] : UINT64_MAX;
    if (position == UINT64_MAX || position < s->first || position >= s->end)
        return 0; /* not ours: the walk skips its data */
    uint8_t *data = malloc(m->size ? m->size : 1);
    size_t got = 0;
    while (data && got < m->size) {
        la_ssize_t n =
            m->la->archive_read_data(m->data, data + got, m->size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    pthread_mutex_lock(&s->lock);
    /* Wait for room, unless this member is the one the workers wait for:
       if that one were never read, waiting would never end. */
    while (!s->stop && s->held > 0 && s->held + m->size > s->max_held) {
        if (position > s->oldest &&
            slot_at(s, s->oldest)->state == SLOT_EMPTY) {
            snprintf(s->failure, sizeof s->failure,
                     "%s: members are too far out of order to stream within "
                     "%zu MiB: decompress it to a .tar",
                     s->src->root, s->max_held >> 20);
            s->stop = 1;
            break;
        }
        pthread_cond_wait(&s->changed, &s->lock);
    }
    slot *sl = slot_at(s, position);
    if (data && got == m->size && !s->stop) {
        sl->data = data;
        sl->size = got;
        sl->state = SLOT_READY;
        s->held += got;
        data = NULL;
    } else {
        sl->state = SLOT_FAILED;
    }
    int stop = s->stop;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    free(data);
    return stop;
}

static void *reader_main(void *arg) {
    imgpack__archive_stream *s = arg;
    imgpack__archive_walk w = {.path = s->src->root,
                               .fd = s->src->archive_fd,
                               .visit = hold_member,
                               .user = s};
    imgpack__error err;
    pthread_setname_np(pthread_self(), "imgpack-tar");
    imgpack_status status = imgpack__archive_walk_run(&w, &err);
    pthread_mutex_lock(&s->lock);
    if (status != IMGPACK_OK && !s->failure[0])
        snprintf(s->failure, sizeof s->failure, "%.*s",
                 (int)sizeof s->failure - 1, err.message);
    snprintf(s->damage, sizeof s->damage, "%s",
             w.damage ? w.damage
                      : "not found when the archive was read "
                        "again: it changed since it was listed");
    s->done = 1;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    free(w.damage);
    return NULL;
}

imgpack_status imgpack__archive_stream_start(imgpack__archive_stream **out,
                                             const imgpack__source *src,
                                             uint64_t first, uint64_t end,
                                             size_t max_held,
                                             imgpack__error *err) {
    imgpack__archive_stream *s = calloc(1, sizeof *s);
    *out = s;
    if (!s)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    s->src = src;
    s->first = first;
    s->end = end;
    s->max_held = max_held;
    for (uint64_t i = 0; i < src->num_items; i++)
        if (!src->items[i].reject && src->items[i].offset + 1 > s->sequences)
            s->sequences = src->items[i].offset + 1;
    s->position_of = malloc((s->sequences + 1) * sizeof *s->position_of);
    s->slots = calloc(end - first + 1, sizeof *s->slots);
    s->oldest = first;
    if (!s->position_of || !s->slots)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    for (uint64_t q = 0; q < s->sequences; q++)
        s->position_of[q] = UINT64_MAX;
    for (uint64_t i = 0; i < src->num_items; i++)
        if (!src->items[i].reject)
            s->position_of[src->items[i].offset] = i;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    if (pthread_create(&s->thread, NULL, reader_main, s) != 0)
        return imgpack__error_set(err, IMGPACK_ERR_THREAD,
                                  "cannot start the archive reader");
    s->started = 1;
    return IMGPACK_OK;
}

imgpack_status imgpack__archive_stream_take(imgpack__archive_stream *s,
                                            uint64_t position, uint8_t **buffer,
                                            size_t *capacity, size_t *size,
                                            char reason[IMGPACK__REASON_SIZE]) {
    imgpack_status status = IMGPACK_OK;
    pthread_mutex_lock(&s->lock);
    slot *sl = slot_at(s, position);
    while (sl->state == SLOT_EMPTY && !s->done && !s->stop)
        pthread_cond_wait(&s->changed, &s->lock);
    int ready = sl->state == SLOT_READY;
    uint8_t *data = sl->data;
    *size = sl->size;
    if (!ready)
        snprintf(reason, IMGPACK__REASON_SIZE, "%s",
                 s->failure[0] ? s->failure : s->damage);
    sl->state = SLOT_TAKEN;
    sl->data = NULL;
    if (ready)
        s->held -= *size;
    while (s->oldest < s->end && slot_at(s, s->oldest)->state == SLOT_TAKEN)
        s->oldest++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (!ready)
        return IMGPACK_ERR_DECODE;
    if (*size + 1 > *capacity) {
        uint8_t *grown = realloc(*buffer, *size + 1);
        if (!grown) {
            free(data);
            snprintf(reason, IMGPACK__REASON_SIZE, "out of memory");
            return IMGPACK_ERR_NOMEM;
        }
        *buffer = grown;
        *capacity = *size + 1;
    }
    memcpy(*buffer, data, *size);
    free(data);
    return status;
}

void imgpack__archive_stream_stop(imgpack__archive_stream *s,
                                  imgpack__error *err) {
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->lock);
        s->stop = 1;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->changed);
        pthread_mutex_destroy(&s->lock);
    }
    if (s->failure[0])
        imgpack__error_set(err, IMGPACK_ERR_UNSUPPORTED, "%s", s->failure);
    for (uint64_t p = s->first; s->slots && p < s->end; p++)
        free(slot_at(s, p)->data);
    free(s->slots);
    free(s->position_of);
    free(s);
}

/* The compressed tar kind: its listing is the tar kind's, its items come
   from the reader thread that start begins and stop ends. */
static imgpack_status start_stream(imgpack__source *src, uint64_t first,
                                   uint64_t end, imgpack__error *err) {
    imgpack_status status = imgpack__archive_stream_start(
        &src->stream, src, first, end, IMGPACK__STREAM_MAX_HELD, err);
    if (status != IMGPACK_OK) {
        imgpack__archive_stream_stop(src->stream, err);
        src->stream = NULL;
    }
    return status;
}

static imgpack_status take_member(const imgpack__source *src, size_t index,
                                  imgpack__item_buffer *buffer,
                                  imgpack__item_data *out,
                                  char reason[IMGPACK__REASON_SIZE]) {
    size_t size = 0;
    imgpack_status status = imgpack__archive_stream_take(
        src->stream, index, &buffer->bytes, &buffer->capacity, &size, reason);
    out->data = buffer->bytes;
    out->size = size;
    return status;
}

static void stop_stream(imgpack__source *src, imgpack__error *err) {
    imgpack__archive_stream_stop(src->stream, err);
    src->stream = NULL;
}

const imgpack__source_ops imgpack__source_tar_stream = {
    .start = start_stream,
    .read = take_member,
    .stop = stop_stream,
    .close = imgpack__source_close_archive,
};
